//! `pve`: HTTPS to the configured Proxmox VE node, on the policy's behalf.
//!
//! The policy names a method, a path and parameters; this capability checks
//! them against what the policy is granted (before any I/O), then adds what
//! the policy must never see: the API token and the TLS trust.

use crate::config;
use crate::error::Failure;
use crate::log;
use crate::policy::bindings::fail2pvefw::policy::pve::{self, Response};
use crate::policy::bindings::fail2pvefw::policy::types::Error;
use crate::pve::{Client, Outcome};

pub struct Pve {
    config: config::Pve,
    /// Built on the first request: `validate` and refused paths cost no TLS setup.
    client: Option<Client>,
    /// The last transport failure with its remedy, for the runner's message.
    pub last_failure: Option<Failure>,
    /// Every request the policy made, `METHOD path -> status`, for logs.
    pub calls: Vec<String>,
}

impl Pve {
    pub fn new(config: config::Pve) -> Pve {
        Pve {
            config,
            client: None,
            last_failure: None,
            calls: Vec::new(),
        }
    }
}

/// The methods and paths a policy may use: the datacenter firewall, and the
/// version endpoint as a connectivity check. The path is what follows
/// `/api2/json`, percent-encoded.
pub fn check_grant(method: &str, path: &str) -> Result<(), String> {
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
    let granted = path.starts_with("/cluster/firewall/") || (method == "GET" && path == "/version");
    if !granted {
        return Err(format!(
            "{method} '{path}' is outside what the policy is granted (paths under /cluster/firewall/, and GET /version)"
        ));
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
        if let Err(why) = check_grant(&method, &path) {
            log::warn(&format!("refused the policy's request: {why}"));
            return Err(Error::Denied(why));
        }
        if self.client.is_none() {
            match Client::new(&self.config) {
                Ok(client) => self.client = Some(client),
                Err(failure) => {
                    let short = failure.message.clone();
                    self.last_failure = Some(failure);
                    return Err(Error::Unreachable(short));
                }
            }
        }
        let client = self.client.as_mut().expect("built above");
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

#[cfg(test)]
mod tests {
    use super::check_grant;

    #[test]
    fn firewall_paths_are_granted() {
        assert!(check_grant("POST", "/cluster/firewall/ipset/f2b").is_ok());
        assert!(check_grant("DELETE", "/cluster/firewall/ipset/f2b/10.0.0.0%2F8").is_ok());
        assert!(check_grant("GET", "/version").is_ok());
    }

    #[test]
    fn path_outside_firewall_is_denied() {
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
}
