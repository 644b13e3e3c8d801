//! The runner's configuration: where PVE is, how to authenticate and whom to
//! trust, which IPSet, where state lives.
//!
//! Loaded from `--config`, else `$FAIL2PVEFW_CONFIG`, else
//! `/etc/fail2pvefw/config.toml` (clap resolves the first two).

mod crowdsec;
mod dns;
mod fingerprint;
mod host;
mod redact;
mod rules;
mod secrets;
mod token;
mod toml;

pub use crowdsec::{ApiKey, CrowdSec};
pub use dns::{Dns, host_name, ipset_name};
pub use fingerprint::{format_fingerprint, parse_fingerprint};
pub use host::HostPort;
pub use rules::{
    DEFAULT_FUEL, DEFAULT_MEMORY, DEFAULT_WIDEST_IPV4, DEFAULT_WIDEST_IPV6, Limits, Rules,
    check_network,
};
pub use token::Token;

use crate::error::{Failure, Result};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/fail2pvefw";
pub const DEFAULT_IPSET: &str = "fail2ban";
/// Where `fail2pvefw serve` listens when `[serve] socket` does not say.
pub const DEFAULT_SOCKET: &str = "/run/fail2pvefw/fail2pvefw.sock";
const DEFAULT_SYNC_INTERVAL_SECS: f64 = 300.0;
const DEFAULT_TIMEOUT_SECS: f64 = 10.0;
/// `[pve] writes_per_second`: see the README's "With CrowdSec" for the
/// measurement behind it.
pub const DEFAULT_WRITES_PER_SECOND: f64 = 2.0;

/// The checked configuration.
#[derive(Debug)]
pub struct Config {
    /// The file it came from, for messages.
    pub path: PathBuf,
    pub pve: Pve,
    /// The datacenter IPSet used when `-i` is not given.
    pub ipset: String,
    pub state_dir: PathBuf,
    /// This instance's name, tagged into every entry it writes so that
    /// `sync` removes only its own expired entries.
    pub instance: String,
    /// A policy module to run instead of the embedded one.
    pub policy: Option<PathBuf>,
    /// Things worth telling the admin that do not stop the run.
    pub warnings: Vec<String>,
    /// The file the token was read from: `token_file`, or this file itself
    /// (for `doctor`'s permission check).
    pub token_path: PathBuf,
    /// `[metrics] textfile`: Prometheus metrics written after each drain.
    pub metrics_textfile: Option<PathBuf>,
    /// `[limits]`: fuel and memory of each policy call.
    pub limits: Limits,
    /// `[rules]` and `[policy_settings]`: what the policy is told and granted.
    pub rules: Rules,
    /// `[crowdsec]`, when fail2pvefw is also a CrowdSec bouncer.
    pub crowdsec: Option<CrowdSec>,
    /// `[dns]`: the host names `fail2pvefw dns` keeps in an accept list.
    pub dns: Dns,
    /// `[metrics] listen`: where `fail2pvefw serve` serves `/metrics`
    /// (checked to be loopback by `serve` itself).
    pub metrics_listen: Option<String>,
    /// `[serve]`: the resident service and its socket.
    pub serve: Serve,
}

/// `[serve]`: where the local API listens, who may use it, how often the
/// service runs `sync`.
#[derive(Clone, Debug, PartialEq)]
pub struct Serve {
    pub socket: PathBuf,
    /// The socket's group (a name or a number); root's when `None`.
    pub group: Option<String>,
    pub sync_interval: Duration,
}

/// How to reach and authenticate to the PVE cluster.
#[derive(Clone, Debug)]
pub struct Pve {
    pub host: HostPort,
    pub token: Token,
    /// Whom to trust; the pins `fail2pvefw trust` stored in the state
    /// directory are accepted besides (`transport::pins` loads them).
    pub trust: Trust,
    /// More nodes of the cluster (`hosts = [...]`), tried in order when
    /// `host` cannot be reached.
    pub fallbacks: Vec<HostPort>,
    /// The command that pins this config's node, for error hints:
    /// `fail2pvefw --config '/etc/…' trust`.
    pub trust_command: String,
    pub timeout: Duration,
    /// `writes_per_second`: the PVE writes every process of this state
    /// directory may send, together.
    pub writes_per_second: f64,
}

/// Whom to trust for the server certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trust {
    /// SHA-256 fingerprints of the leaf certificate; any one may match.
    Pins(Vec<[u8; 32]>),
    /// A CA certificate file (the cluster's `pve-root-ca.pem`).
    CaFile(PathBuf),
    /// Neither set: the system's root CAs, with host name checking (ACME).
    SystemRoots,
}

impl Config {
    /// Reads and checks the file at `path`. No error shows a secret of the
    /// file (or of its `token_file`), whatever key it was put under.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::config(format!("cannot read config '{}': {e}", path.display())).hint(
                "Create it (see the README's Configuration section), or pass --config FILE or set FAIL2PVEFW_CONFIG.",
            )
        })?;
        let mut secrets = secrets::Secrets::from_text(&text);
        let file = toml::parse(&text).map_err(|e| {
            Failure::config(format!(
                "config '{}', {}",
                path.display(),
                secrets.scrub(&e)
            ))
        })?;
        Config::from_file(path, file, &mut secrets).map_err(|failure| Failure {
            message: secrets.scrub(&failure.message),
            hint: failure.hint.map(|hint| secrets.scrub(&hint)),
            ..failure
        })
    }

    fn from_file(path: &Path, file: toml::File, secrets: &mut secrets::Secrets) -> Result<Config> {
        let bad = |msg: String| Failure::config(format!("config '{}': {msg}", path.display()));
        let mut warnings = Vec::new();
        let pve = file.pve;

        let (key, given) = match (pve.host, pve.hosts) {
            (Some(_), Some(_)) => {
                return Err(bad("[pve] has both host and hosts: keep one".into()));
            }
            (Some(one), None) => ("host", vec![one]),
            (None, Some(many)) if !many.is_empty() => ("hosts", many),
            _ => {
                return Err(bad(
                    "[pve] host is missing: set it to the PVE node, e.g. host = \"192.168.0.1\" (or hosts = [...] for several nodes)"
                        .into(),
                ));
            }
        };
        let mut hosts = given
            .iter()
            .map(|h| HostPort::parse(h).map_err(|e| bad(format!("[pve] {key}: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        let host = hosts.remove(0);

        let token_path = pve.token_file.clone().unwrap_or_else(|| path.to_path_buf());
        let token_text = match (pve.token, &pve.token_file) {
            (Some(_), Some(_)) => {
                return Err(bad("[pve] has both token and token_file: keep one".into()));
            }
            (Some(token), None) => {
                warn_if_readable_by_others(path, &mut warnings);
                token
            }
            (None, Some(file)) => {
                warn_if_readable_by_others(file, &mut warnings);
                let text = std::fs::read_to_string(file).map_err(|e| {
                    bad(format!("cannot read token_file '{}': {e}", file.display()))
                })?;
                secrets.add(&text);
                text
            }
            (None, None) => {
                return Err(bad(
                    "[pve] has no token: set token = \"USER@REALM!TOKENID=SECRET\" or token_file"
                        .into(),
                ));
            }
        };
        let token_key = match &pve.token_file {
            Some(file) => format!("token_file '{}'", file.display()),
            None => "token".into(),
        };
        let token =
            Token::parse(&token_text).map_err(|e| bad(format!("[pve] {token_key}: {e}")))?;

        let trust = match (pve.fingerprint, pve.ca_file) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    "[pve] has both fingerprint and ca_file: keep one".into()
                ));
            }
            (Some(fps), None) => {
                let fps = fps.into_vec();
                if fps.is_empty() {
                    return Err(bad("[pve] fingerprint is an empty list".into()));
                }
                let pins = fps
                    .iter()
                    .map(|fp| {
                        parse_fingerprint(fp).map_err(|e| bad(format!("[pve] fingerprint: {e}")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Trust::Pins(pins)
            }
            (None, Some(ca)) => Trust::CaFile(relative_to(path, &ca)),
            (None, None) => Trust::SystemRoots,
        };

        let ipset = pve.ipset.unwrap_or_else(|| DEFAULT_IPSET.to_string());
        let timeout = pve.timeout.unwrap_or(DEFAULT_TIMEOUT_SECS);
        if !(timeout > 0.0 && timeout <= 600.0) {
            return Err(bad(format!(
                "[pve] timeout = {timeout}: give seconds more than 0 and at most 600 (default {DEFAULT_TIMEOUT_SECS})"
            )));
        }
        let state_dir = file
            .state
            .dir
            .map(|d| relative_to(path, &d))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let writes_per_second = crowdsec::writes_per_second(pve.writes_per_second).map_err(bad)?;
        let rules = rules::rules(file.rules, file.policy_settings).map_err(bad)?;
        let crowdsec = match file.crowdsec {
            None => None,
            Some(section) => Some(
                crowdsec::crowdsec(
                    section,
                    path,
                    &ipset,
                    (rules.widest_ipv4, rules.widest_ipv6),
                    &mut |text| secrets.add(text),
                )
                .map_err(bad)?,
            ),
        };
        let instance = match file.state.instance {
            Some(name) => {
                check_instance(&name).map_err(|e| bad(format!("[state] instance: {e}")))?
            }
            None => default_instance(),
        };

        let sync_interval = file
            .serve
            .sync_interval
            .unwrap_or(DEFAULT_SYNC_INTERVAL_SECS);
        if !(1.0..=86400.0).contains(&sync_interval) {
            return Err(bad(format!(
                "[serve] sync_interval = {sync_interval}: give seconds from 1 to 86400 (default {DEFAULT_SYNC_INTERVAL_SECS})"
            )));
        }
        let serve = Serve {
            socket: file
                .serve
                .socket
                .map(|p| relative_to(path, &p))
                .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
            group: file.serve.group.filter(|g| !g.is_empty()),
            sync_interval: Duration::from_secs_f64(sync_interval),
        };

        Ok(Config {
            path: path.to_path_buf(),
            pve: Pve {
                host,
                token,
                trust,
                fallbacks: hosts,
                trust_command: format!("fail2pvefw --config '{}' trust", path.display()),
                timeout: Duration::from_secs_f64(timeout),
                writes_per_second,
            },
            ipset,
            state_dir,
            instance,
            policy: file.policy.map(|p| relative_to(path, &p)),
            limits: rules::limits(file.limits).map_err(bad)?,
            rules,
            crowdsec,
            dns: dns::dns(file.dns).map_err(bad)?,
            warnings,
            token_path,
            metrics_textfile: file.metrics.textfile.map(|p| relative_to(path, &p)),
            metrics_listen: file.metrics.listen,
            serve,
        })
    }
}

/// An instance name as the ownership tag keeps it: `[A-Za-z0-9._-]`, 1–32.
fn check_instance(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name != "-"
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "'{name}' must be 1-32 letters, digits, '.', '_' or '-'"
        ))
    }
}

/// The host name, which stays the same across reinstalls of fail2pvefw; an
/// admin with two machines of one name sets `[state] instance`.
fn default_instance() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let kept: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(32)
        .collect();
    if kept.is_empty() || kept == "-" {
        "fail2pvefw".into()
    } else {
        kept
    }
}

/// Paths in the file are relative to the file's own folder, like most daemons' configs.
fn relative_to(config: &Path, path: &Path) -> PathBuf {
    match config.parent() {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// The token is a password: a file holding it should be 0600.
fn warn_if_readable_by_others(path: &Path, warnings: &mut Vec<String>) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "'{}' holds the API token but other users may read it (mode {mode:04o}); run: chmod 600 '{}'",
                path.display(),
                path.display()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "6043ef45-632a-428b-8777-4b1eb5587d58";

    fn load(text: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Config::load(&path)
    }

    fn minimal(extra: &str) -> String {
        format!(
            "[pve]\nhost = \"192.0.2.10\"\ntoken = \"fail2ban@pve!fail2ban={SECRET}\"\nfingerprint = \"{}\"\n{extra}",
            ["ab"; 32].join(":")
        )
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load(&minimal("")).unwrap();
        assert_eq!(
            c.pve.host,
            HostPort {
                host: "192.0.2.10".into(),
                port: 8006
            }
        );
        assert_eq!(c.ipset, "fail2ban");
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/fail2pvefw"));
        assert_eq!(c.pve.trust, Trust::Pins(vec![[0xab; 32]]));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = load(&minimal("colour = \"red\"\n")).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Config);
        assert!(err.message.contains("colour"), "{err}");
    }

    #[test]
    fn token_secret_never_in_debug_or_errors() {
        let c = load(&minimal("")).unwrap();
        assert!(!format!("{c:?}").contains(SECRET));
        let err = Token::parse(&format!("not a token {SECRET}")).unwrap_err();
        assert!(!err.contains(SECRET), "{err}");
        let err = Token::parse(&format!("bad id={SECRET}")).unwrap_err();
        assert!(!err.contains(SECRET), "{err}");
    }

    #[test]
    fn a_bad_pin_file_does_not_fail_the_config() {
        // The pins are the transport's: read where a connection is set up.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("trusted-fingerprints"), "not a pin\n").unwrap();
        let state = format!("[state]\ndir = \"{}\"\n", dir.path().display());
        assert_eq!(load(&minimal(&state)).unwrap().state_dir, dir.path());
    }

    #[test]
    fn world_readable_config_with_token_warns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, minimal("")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.warnings.len(), 1);
        assert!(c.warnings[0].contains("chmod 600"), "{:?}", c.warnings);
    }

    // See: issue 13, item 2
    #[test]
    fn dns_is_read_with_defaults_and_its_errors_show_no_secret() {
        let c = load(&minimal("")).unwrap();
        assert_eq!(c.dns, Dns::default());
        assert!(c.dns.never_ban_resolved);
        let c = load(&minimal(
            "[dns]\nnames = [\"Home.Test.\"]\nipset = \"trusted\"\nnever_ban_resolved = false\n",
        ))
        .unwrap();
        assert_eq!(c.dns.names, ["home.test"]);
        assert_eq!(c.dns.ipset.as_deref(), Some("trusted"));
        assert!(!c.dns.never_ban_resolved);
        let err = load(&minimal(&format!(
            "[dns]\nnames = [\"fail2ban@pve!fail2ban={SECRET}\"]\n"
        )))
        .unwrap_err();
        assert!(err.message.contains("[dns] names"), "{err}");
        assert!(!err.to_string().contains(&SECRET[..8]), "{err}");
    }

    #[test]
    fn serve_has_defaults_and_its_interval_is_checked() {
        let c = load(&minimal("")).unwrap();
        assert_eq!(c.serve.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(c.serve.sync_interval, Duration::from_secs(300));
        assert_eq!(
            (c.serve.group.as_deref(), c.metrics_listen.as_deref()),
            (None, None)
        );
        let c = load(&minimal(
            "[serve]\nsocket = \"run/f.sock\"\ngroup = \"adm\"\nsync_interval = 60\n\
             [metrics]\nlisten = \"127.0.0.1:9712\"\n",
        ))
        .unwrap();
        assert!(c.serve.socket.is_absolute() && c.serve.socket.ends_with("run/f.sock"));
        assert_eq!(c.serve.group.as_deref(), Some("adm"));
        assert_eq!(c.serve.sync_interval, Duration::from_secs(60));
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9712"));
        let err = load(&minimal("[serve]\nsync_interval = 0\n")).unwrap_err();
        assert!(err.message.contains("sync_interval"), "{err}");
        let err = load(&minimal("[serve]\nsokcet = \"x\"\n")).unwrap_err();
        assert!(err.message.contains("sokcet"), "{err}");
    }

    #[test]
    fn neither_fingerprint_nor_ca_file_means_system_roots() {
        let c = load(&format!(
            "[pve]\nhost = \"h\"\ntoken = \"a@pve!tt={SECRET}\"\n"
        ))
        .unwrap();
        assert_eq!(c.pve.trust, Trust::SystemRoots);
    }
}
