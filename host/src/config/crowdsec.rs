//! `[crowdsec]`: fail2pvefw as a CrowdSec bouncer (`fail2pvefw crowdsec`):
//! where the Local API is, the bouncer key (never shown), how often to
//! pull, which decisions, and what they may cost in PVE.

use super::toml;
use crate::error::{Failure, Result};
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_URL: &str = "http://127.0.0.1:8080/";
pub const DEFAULT_UPDATE_FREQUENCY: f64 = 10.0;
pub const DEFAULT_RESYNC: f64 = 3600.0;
/// The CrowdSec share of `cluster.fw`'s 1 MiB: 384 KiB, about 5,000 entries
/// with the compact comment, leaving the rest to fail2ban's bans, the other
/// IPSets, aliases and rules.
pub const DEFAULT_MAX_BYTES: u64 = 384 * 1024;
pub const DEFAULT_AGGREGATE_MIN: u32 = 8;

/// The bouncer key: sent as `X-Api-Key`, never shown (`Debug` redacts it).
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The checked `[crowdsec]` section.
#[derive(Clone, Debug)]
pub struct CrowdSec {
    /// The LAPI's base URL, ending in `/`.
    pub url: String,
    pub key: ApiKey,
    /// Where the key came from, for messages (`api_key_file '…'` or `api_key`).
    pub key_source: String,
    /// The key file, for `doctor`'s permission check.
    pub key_file: Option<PathBuf>,
    /// A CA for an https LAPI (else the system's roots).
    pub ca_file: Option<PathBuf>,
    pub update_frequency: Duration,
    /// Between full (startup) pulls; `None`: only at start and after faults.
    pub resync: Option<Duration>,
    pub ipset: String,
    pub types: Vec<String>,
    /// Lower case (`ip`, `range`), as the LAPI compares them.
    pub scopes: Vec<String>,
    pub origins: Vec<String>,
    pub scenarios_containing: Vec<String>,
    pub scenarios_not_containing: Vec<String>,
    pub max_entries: Option<u32>,
    pub max_bytes: u64,
    pub aggregate_ipv4: Option<u8>,
    pub aggregate_ipv6: Option<u8>,
    pub aggregate_min: u32,
}

/// Checks the section. `config` is the configuration file (relative paths
/// start beside it); `default_ipset` is `[pve] ipset`; `widest` the
/// `[rules] widest_ipv4`/`widest_ipv6` an aggregate must respect. The key
/// read from a file is added to `secret` so no message shows it.
pub(super) fn crowdsec(
    file: toml::CrowdSec,
    config: &Path,
    default_ipset: &str,
    widest: (u8, u8),
    secret: &mut dyn FnMut(&str),
) -> Result<CrowdSec, String> {
    // The key first: a message about anything after it is scrubbed of it,
    // even when it was pasted where it does not belong (the URL).
    let (text, key_source, key_file) = match (file.api_key, file.api_key_file) {
        (Some(_), Some(_)) => {
            return Err("[crowdsec] has both api_key and api_key_file: keep one".into());
        }
        (Some(key), None) => (key, "[crowdsec] api_key".to_string(), None),
        (None, Some(path)) => {
            let path = super::relative_to(config, &path);
            let shown = path.display().to_string();
            let meta = std::fs::metadata(&path)
                .map_err(|e| format!("[crowdsec] cannot read api_key_file '{shown}': {e}"))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "[crowdsec] api_key_file '{shown}' holds the bouncer key and other users may read it \
                     (mode {mode:04o}): run chmod 600 '{shown}'"
                ));
            }
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("[crowdsec] cannot read api_key_file '{shown}': {e}"))?;
            secret(&text);
            (
                text,
                format!("[crowdsec] api_key_file '{shown}'"),
                Some(path),
            )
        }
        (None, None) => {
            return Err(
                "[crowdsec] has no bouncer key: create one with `cscli bouncers add fail2pvefw` \
                 and put it into api_key_file (mode 0600) or api_key"
                    .into(),
            );
        }
    };
    let url = file.url.unwrap_or_else(|| DEFAULT_URL.to_string());
    let url = check_url(&url)?;
    let key = text.trim().to_string();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "{key_source}: the bouncer key is empty or holds spaces or characters an HTTP header cannot carry"
        ));
    }
    let seconds = |name: &str, value: Option<f64>, default: f64, zero_ok: bool| {
        let v = value.unwrap_or(default);
        let ok = v.is_finite() && v <= 86_400.0 && (v > 0.0 || (zero_ok && v == 0.0));
        if ok {
            Ok(v)
        } else {
            Err(format!(
                "[crowdsec] {name} = {v}: give seconds{} up to 86400 (default {default})",
                if zero_ok {
                    ", 0 or more"
                } else {
                    " more than 0"
                }
            ))
        }
    };
    let update = seconds(
        "update_frequency",
        file.update_frequency,
        DEFAULT_UPDATE_FREQUENCY,
        false,
    )?;
    let resync = seconds("resync", file.resync, DEFAULT_RESYNC, true)?;
    let ipset = file.ipset.unwrap_or_else(|| default_ipset.to_string());
    let types = file.types.unwrap_or_else(|| vec!["ban".to_string()]);
    if types.is_empty() {
        return Err(
            "[crowdsec] types is empty: give the decision types to apply, e.g. [\"ban\"]".into(),
        );
    }
    let scopes: Vec<String> = file
        .scopes
        .unwrap_or_else(|| vec!["ip".into(), "range".into()])
        .into_iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if let Some(bad) = scopes.iter().find(|s| *s != "ip" && *s != "range") {
        return Err(format!(
            "[crowdsec] scopes: '{bad}' is not a scope a firewall can hold: give \"ip\" and \"range\""
        ));
    }
    let lists = [
        ("types", &types),
        ("scopes", &scopes),
        ("origins", &file.origins),
        ("scenarios_containing", &file.scenarios_containing),
        ("scenarios_not_containing", &file.scenarios_not_containing),
    ];
    for (name, list) in lists {
        if let Some(bad) = list
            .iter()
            .find(|v| v.is_empty() || v.contains(',') || !v.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(format!(
                "[crowdsec] {name}: '{bad}' is not a plain word (no commas, spaces or control characters)"
            ));
        }
    }
    let max_bytes = file.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
    if max_bytes == 0 || max_bytes > 1024 * 1024 {
        return Err(format!(
            "[crowdsec] max_bytes = {max_bytes}: give 1 to 1048576, the bytes of cluster.fw CrowdSec's entries may take (default {DEFAULT_MAX_BYTES})"
        ));
    }
    let aggregate = |name: &str, value: Option<u8>, widest: u8, max: u8| match value {
        None => Ok(None),
        Some(p) if p >= widest && p < max => Ok(Some(p)),
        Some(p) => Err(format!(
            "[crowdsec] {name} = {p}: give a prefix length from {widest} ([rules] widest) to {}",
            max - 1
        )),
    };
    Ok(CrowdSec {
        url,
        key: ApiKey(key),
        key_source,
        key_file,
        ca_file: file.ca_file.map(|p| super::relative_to(config, &p)),
        update_frequency: Duration::from_secs_f64(update),
        resync: (resync > 0.0).then(|| Duration::from_secs_f64(resync)),
        ipset,
        types,
        scopes,
        origins: file.origins,
        scenarios_containing: file.scenarios_containing,
        scenarios_not_containing: file.scenarios_not_containing,
        max_entries: file.max_entries,
        max_bytes,
        aggregate_ipv4: aggregate("aggregate_ipv4", file.aggregate_ipv4, widest.0, 32)?,
        aggregate_ipv6: aggregate("aggregate_ipv6", file.aggregate_ipv6, widest.1, 128)?,
        aggregate_min: file.aggregate_min.unwrap_or(DEFAULT_AGGREGATE_MIN).max(2),
    })
}

/// `http://host:port/` or `https://…`, ending in `/`, with no user part,
/// query or fragment.
fn check_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("[crowdsec] url '{url}' must start with http:// or https://"))?;
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || url.contains(['?', '#'])
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "[crowdsec] url '{url}' is not a plain http(s)://HOST[:PORT]/ URL"
        ));
    }
    Ok(if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    })
}

/// `[pve] writes_per_second`: every write any fail2pvefw process of this
/// state directory sends to PVE, at most this many a second.
pub(super) fn writes_per_second(value: Option<f64>) -> Result<f64, String> {
    let v = value.unwrap_or(super::DEFAULT_WRITES_PER_SECOND);
    if v.is_finite() && v > 0.0 && v <= 1000.0 {
        Ok(v)
    } else {
        Err(format!(
            "[pve] writes_per_second = {v}: give more than 0 and at most 1000 (default {})",
            super::DEFAULT_WRITES_PER_SECOND
        ))
    }
}

impl CrowdSec {
    /// The section, or the error of a command that needs it.
    pub fn required<'a>(section: Option<&'a CrowdSec>, config: &Path) -> Result<&'a CrowdSec> {
        section.ok_or_else(|| {
            Failure::config(format!(
                "config '{}' has no [crowdsec] section",
                config.display()
            ))
            .hint(
                "Add one with the LAPI's url and the bouncer key (see the README's \"With CrowdSec\"):\n  \
                 [crowdsec]\n  url = \"http://127.0.0.1:8080/\"\n  api_key_file = \"/etc/fail2pvefw/crowdsec.key\"",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(file: toml::CrowdSec) -> Result<CrowdSec, String> {
        crowdsec(
            file,
            Path::new("/etc/f/config.toml"),
            "fail2ban",
            (16, 32),
            &mut |_| {},
        )
    }

    fn keyed() -> toml::CrowdSec {
        toml::CrowdSec {
            api_key: Some("0123456789abcdef0123456789abcdef".into()),
            ..toml::CrowdSec::default()
        }
    }

    #[test]
    fn defaults() {
        let c = check(keyed()).unwrap();
        assert_eq!(c.url, DEFAULT_URL);
        assert_eq!(c.update_frequency, Duration::from_secs(10));
        assert_eq!(c.ipset, "fail2ban");
        assert_eq!(c.types, ["ban"]);
        assert_eq!(c.scopes, ["ip", "range"]);
        assert_eq!(c.max_entries, None);
        assert_eq!(c.max_bytes, DEFAULT_MAX_BYTES);
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn urls_keys_and_values_are_checked() {
        let url = |u: &str| {
            check(toml::CrowdSec {
                url: Some(u.into()),
                ..keyed()
            })
        };
        assert_eq!(
            url("http://10.0.0.2:8080").unwrap().url,
            "http://10.0.0.2:8080/"
        );
        for bad in [
            "ftp://x/",
            "http://",
            "http://u@x/",
            "http://x/?a=1",
            "x:8080",
        ] {
            assert!(url(bad).is_err(), "{bad}");
        }
        assert!(
            check(toml::CrowdSec::default())
                .unwrap_err()
                .contains("cscli bouncers add")
        );
        let both = toml::CrowdSec {
            api_key_file: Some("/k".into()),
            ..keyed()
        };
        assert!(check(both).is_err());
        let spaced = toml::CrowdSec {
            api_key: Some("a b".into()),
            ..toml::CrowdSec::default()
        };
        assert!(!check(spaced).unwrap_err().contains("a b"));
        let agg = toml::CrowdSec {
            aggregate_ipv4: Some(8),
            ..keyed()
        };
        assert!(check(agg).unwrap_err().contains("widest"));
        let scope = toml::CrowdSec {
            scopes: Some(vec!["Country".into()]),
            ..keyed()
        };
        assert!(check(scope).is_err());
        assert!(writes_per_second(Some(0.0)).is_err());
        assert_eq!(writes_per_second(Some(5.0)).unwrap(), 5.0);
    }

    #[test]
    fn a_key_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        std::fs::write(&key, "abc123\n").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let file = || toml::CrowdSec {
            api_key_file: Some(key.clone()),
            ..toml::CrowdSec::default()
        };
        let err = check(file()).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut seen = Vec::new();
        let c = crowdsec(file(), Path::new("/c.toml"), "f", (16, 32), &mut |s| {
            seen.push(s.to_string())
        })
        .unwrap();
        assert_eq!(c.key.expose(), "abc123");
        assert_eq!(seen, ["abc123\n"]);
    }
}
