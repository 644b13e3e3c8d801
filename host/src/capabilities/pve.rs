//! `pve`: HTTPS to the configured Proxmox VE node, on the policy's behalf.
//!
//! The policy names a method, a path and parameters; this capability checks
//! them against what the policy is granted (before any I/O), then adds what
//! the policy must never see: the API token and the TLS trust.

use super::pve_memory::MemoryPve;
use crate::bindings::fail2pvefw::policy::pve::{self, Response};
use crate::bindings::fail2pvefw::policy::types::Error;
use crate::config;
use crate::error::Failure;
use crate::log;
use crate::transport::client::{Client, Outcome};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Where requests go.
pub enum Backend {
    /// The configured PVE node over HTTPS. The client is built on the first
    /// request: `validate` and refused paths cost no TLS setup.
    Remote {
        config: Box<config::Pve>,
        /// Where the pins `fail2pvefw trust` stored are read from.
        state_dir: PathBuf,
        client: Option<Client>,
    },
    /// An IPSet in memory (`fail2pvefw sandbox`): no network, no token.
    Memory(MemoryPve),
}

pub struct Pve {
    backend: Backend,
    /// What the policy may ask for; checked before any I/O.
    pub grant: Grant,
    /// The last transport failure with its remedy, for the runner's message.
    pub last_failure: Option<Failure>,
    /// Every request the policy made, `METHOD path -> status`, for logs.
    pub calls: Vec<String>,
}

impl Pve {
    /// The configured PVE node, for what `grant` allows.
    pub fn new(config: config::Pve, state_dir: PathBuf, grant: Grant) -> Pve {
        Pve::with_backend(
            Backend::Remote {
                config: Box::new(config),
                state_dir,
                client: None,
            },
            grant,
        )
    }

    pub fn with_backend(backend: Backend, grant: Grant) -> Pve {
        Pve {
            backend,
            grant,
            last_failure: None,
            calls: Vec::new(),
        }
    }

    /// The in-memory PVE, when this is the sandbox's.
    pub fn memory(&self) -> Option<&MemoryPve> {
        match &self.backend {
            Backend::Memory(memory) => Some(memory),
            Backend::Remote { .. } => None,
        }
    }
}

/// What a policy may ask PVE for: the configured IPSets (the config's, and
/// any named with `-i` for this run) and below, `GET /version`, and the
/// paths the config's `[rules] allow_paths` adds.
#[derive(Clone, Debug, Default)]
pub struct Grant {
    ipsets: BTreeSet<String>,
    paths: Vec<String>,
}

impl Grant {
    pub fn new(ipsets: impl IntoIterator<Item = String>, paths: &[String]) -> Grant {
        Grant {
            ipsets: ipsets.into_iter().collect(),
            paths: paths
                .iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .collect(),
        }
    }

    /// Grants one more IPSet: the host calls it with the IPSet of each
    /// request it hands the policy (the admin named it; the policy did not).
    pub fn allow_ipset(&mut self, name: &str) {
        if !self.ipsets.contains(name) {
            self.ipsets.insert(name.to_string());
        }
    }

    /// `Ok` when `method path` is granted; the path is what follows
    /// `/api2/json`, percent-encoded.
    pub fn check(&self, method: &str, path: &str) -> Result<(), String> {
        check_plain(method, path)?;
        let under = |root: &str| path == root || path.starts_with(&format!("{root}/"));
        let granted = (method == "GET" && path == "/version")
            || self
                .ipsets
                .iter()
                .any(|name| under(&format!("/cluster/firewall/ipset/{name}")))
            || self.paths.iter().any(|root| under(root));
        if granted {
            return Ok(());
        }
        Err(format!(
            "{method} '{path}' is outside what the policy is granted ({})",
            self.describe()
        ))
    }

    /// `IPSet 'f2b', GET /version, /cluster/firewall/rules`.
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self.ipsets.iter().map(|n| format!("IPSet '{n}'")).collect();
        parts.push("GET /version".into());
        parts.extend(self.paths.iter().cloned());
        parts.join(", ")
    }
}

/// A method and a path fit to send at all: no query, fragment or dot
/// segments that could leave the granted tree.
fn check_plain(method: &str, path: &str) -> Result<(), String> {
    let method_ok = matches!(method, "GET" | "POST" | "PUT" | "DELETE");
    if !method_ok {
        return Err(format!("method '{method}' is not granted to the policy"));
    }
    let clean = path.starts_with('/')
        && !path.contains(|c: char| c.is_whitespace() || c.is_control() || "?#\\".contains(c))
        // `..` would be resolved by the URL parser and could leave the firewall tree.
        && !path.split('/').any(|seg| seg == "." || seg == "..")
        && !path.to_ascii_lowercase().contains("%2e");
    if !clean {
        return Err(format!("path '{path}' is not a plain API path"));
    }
    Ok(())
}

impl pve::Host for Pve {
    fn request(
        &mut self,
        method: String,
        path: String,
        params: Vec<(String, String)>,
    ) -> Result<Response, Error> {
        if let Err(why) = self.grant.check(&method, &path) {
            log::warn(&format!("refused the policy's request: {why}"));
            self.calls
                .push(format!("{method} {path} -> denied by the host"));
            return Err(Error::Denied(why));
        }
        let (config, state_dir, client) = match &mut self.backend {
            Backend::Memory(memory) => {
                let (status, reason, body) = memory.request(&method, &path, &params);
                self.calls.push(format!(
                    "{method} {path}{} -> {status} {reason}",
                    shown(&params)
                ));
                return Ok(Response {
                    status,
                    reason,
                    body,
                });
            }
            Backend::Remote {
                config,
                state_dir,
                client,
            } => (config, state_dir, client),
        };
        if client.is_none() {
            match Client::new(config, state_dir) {
                Ok(built) => *client = Some(built),
                Err(failure) => {
                    let short = failure.message.clone();
                    self.last_failure = Some(failure);
                    return Err(Error::Unreachable(short));
                }
            }
        }
        let client = client.as_mut().expect("built above");
        match client.request(&method, &path, &params) {
            Outcome::Response(r) => {
                self.calls
                    .push(format!("{method} {path} -> {} {}", r.status, r.reason));
                log::debug(&format!("{method} {path} -> {} {}", r.status, r.reason));
                Ok(Response {
                    status: r.status,
                    reason: r.reason,
                    body: r.body,
                })
            }
            Outcome::Failed(failure) => {
                self.calls.push(format!("{method} {path} -> failed"));
                let short = failure.message.clone();
                self.last_failure = Some(failure);
                Err(Error::Unreachable(short))
            }
        }
    }
}

/// ` cidr="1.2.3.4" comment="…"`, for the sandbox's list of calls.
fn shown(params: &[(String, String)]) -> String {
    params.iter().map(|(k, v)| format!(" {k}={v:?}")).collect()
}

#[cfg(test)]
mod tests {
    use super::Grant;

    fn check_grant(method: &str, path: &str) -> Result<(), String> {
        Grant::new(["f2b".to_string()], &[]).check(method, path)
    }

    #[test]
    fn firewall_paths_are_granted() {
        assert!(check_grant("POST", "/cluster/firewall/ipset/f2b").is_ok());
        assert!(check_grant("DELETE", "/cluster/firewall/ipset/f2b/10.0.0.0%2F8").is_ok());
        assert!(check_grant("GET", "/version").is_ok());
    }

    #[test]
    fn path_outside_the_configured_ipsets_is_denied() {
        assert!(check_grant("GET", "/cluster/firewall/rules").is_err());
        assert!(check_grant("GET", "/cluster/firewall/ipset").is_err());
        assert!(check_grant("POST", "/cluster/firewall/ipset/other").is_err());
        assert!(check_grant("GET", "/cluster/firewall/ipset/f2bx").is_err());
        assert!(check_grant("GET", "/access/users").is_err());
        assert!(check_grant("POST", "/version").is_err());
        assert!(check_grant("GET", "/nodes/pve/qemu").is_err());
    }

    #[test]
    fn dot_segments_and_tricks_are_denied() {
        assert!(check_grant("GET", "/cluster/firewall/../../access/users").is_err());
        assert!(check_grant("GET", "/cluster/firewall/%2e%2e/%2E%2E/access").is_err());
        assert!(check_grant("GET", "/cluster/firewall/ipset?x=1").is_err());
        assert!(check_grant("GET", "/cluster/firewall/ipset#x").is_err());
        assert!(check_grant("GET", "/cluster/firewall/ipset f").is_err());
        assert!(check_grant("PATCH", "/cluster/firewall/ipset").is_err());
        assert!(check_grant("GET", "cluster/firewall/ipset").is_err());
    }

    #[test]
    fn allow_paths_and_run_ipsets_widen_the_grant() {
        let mut grant = Grant::new(
            ["f2b".to_string()],
            &["/cluster/firewall/rules/".to_string()],
        );
        assert!(grant.check("GET", "/cluster/firewall/rules").is_ok());
        assert!(grant.check("POST", "/cluster/firewall/rules/3").is_ok());
        assert!(grant.check("GET", "/cluster/firewall/rulesx").is_err());
        assert!(grant.check("GET", "/cluster/firewall/ipset/web").is_err());
        grant.allow_ipset("web");
        assert!(grant.check("GET", "/cluster/firewall/ipset/web").is_ok());
    }

    #[test]
    fn denial_says_what_is_granted() {
        let err = check_grant("GET", "/access/users").unwrap_err();
        assert!(
            err.contains("IPSet 'f2b'") && err.contains("GET /version"),
            "{err}"
        );
    }
}
