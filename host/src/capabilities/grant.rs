//! What a policy may ask PVE for, checked by the `pve` capability before
//! any I/O: the configured IPSets and below, `GET /version`, and the paths
//! `[rules] allow_paths` adds; never a query, a fragment or a dot segment.

use std::collections::BTreeSet;

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
