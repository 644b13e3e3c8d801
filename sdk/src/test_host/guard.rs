//! The host's guard rails as the test host applies them: what a policy may
//! ask PVE for, checked before the PVE model answers. The same rules as the
//! host's `capabilities/guard`, where they are cheap to repeat; the words
//! differ a little.

use std::collections::BTreeSet;

use ipnet::IpNet;

use crate::cidr::network;
use crate::ipset::IPSET_API;
use crate::rules::Rules;

/// What the policy may ask for.
#[derive(Debug, Clone)]
pub struct Guard {
    /// The granted IPSets.
    pub ipsets: BTreeSet<String>,
    /// `[rules] allow_paths`.
    pub allow_paths: Vec<String>,
    /// This instance; its tag marks the entries the policy may change.
    pub instance: String,
    pub widest_ipv4: u8,
    pub widest_ipv6: u8,
}

/// A request the guard let through, and how to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A read, or a write the admin granted: sent as it is.
    Pass,
    /// `POST …/NAME` of one entry: sent as it is.
    Add,
    /// `PUT` or `DELETE …/NAME/CIDR`: sent only for an entry of ours.
    Change {
        /// The entry as the path names it, decoded.
        cidr: String,
    },
}

impl Guard {
    pub fn new(instance: &str) -> Guard {
        Guard {
            ipsets: BTreeSet::new(),
            allow_paths: Vec::new(),
            instance: instance.to_string(),
            widest_ipv4: 16,
            widest_ipv6: 32,
        }
    }

    pub fn grant(&mut self, ipset: &str) {
        self.ipsets.insert(ipset.to_string());
    }

    /// `Ok` when `method path params` may be sent, and how; `Err` names the
    /// rule. `settings` are the host's (`never-ban`, `pve-hosts`).
    pub fn check(
        &self,
        method: &str,
        path: &str,
        params: &[(String, String)],
        settings: impl Fn(&str) -> Option<String>,
    ) -> Result<Checked, String> {
        if !matches!(method, "GET" | "POST" | "PUT" | "DELETE") {
            return Err(format!("method '{method}' is not granted to the policy"));
        }
        let plain = path.starts_with('/')
            && !path.contains(|c: char| c.is_whitespace() || c.is_control() || "?#\\".contains(c))
            && !path.split('/').any(|seg| seg == "." || seg == "..")
            && !path.to_ascii_lowercase().contains("%2e");
        if !plain {
            return Err(format!("path '{path}' is not a plain API path"));
        }
        let under = |root: &str| path == root || path.starts_with(&format!("{root}/"));
        let granted = (method == "GET" && path == "/version")
            || self
                .ipsets
                .iter()
                .any(|name| under(&format!("{IPSET_API}/{name}")))
            || self.allow_paths.iter().any(|root| under(root));
        if !granted {
            return Err(format!(
                "{method} '{path}' is outside what the policy is granted"
            ));
        }
        let Some(rest) = path.strip_prefix(IPSET_API) else {
            return Ok(Checked::Pass);
        };
        if method == "GET" || (!rest.is_empty() && !rest.starts_with('/')) {
            return Ok(Checked::Pass);
        }
        let segments: Vec<&str> = rest.split('/').skip(1).collect();
        let exact = || self.allow_paths.iter().any(|p| p == path);
        match (method, segments.as_slice()) {
            ("POST", []) | ("DELETE", [_]) if exact() => Ok(Checked::Pass),
            ("POST", []) => Err(format!(
                "POST '{path}': creating or renaming an IPSet is not an entry write"
            )),
            ("DELETE", [_]) => Err(format!(
                "DELETE '{path}': deleting an IPSet itself is not an entry write"
            )),
            ("POST", [name]) if self.ipsets.contains(*name) => {
                only(params, &["cidr", "comment"])?;
                comment_check(params)?;
                let cidr = params
                    .iter()
                    .find(|(k, _)| k == "cidr")
                    .map(|(_, v)| v.as_str())
                    .ok_or("a POST of an entry needs 'cidr'")?;
                self.entry_check(cidr, &settings)
                    .map_err(|why| format!("POST of '{cidr}' to IPSet '{name}': {why}"))?;
                Ok(Checked::Add)
            }
            ("PUT" | "DELETE", [name, segment]) if self.ipsets.contains(*name) => {
                let allowed: &[&str] = if method == "PUT" { &["comment"] } else { &[] };
                only(params, allowed)?;
                comment_check(params)?;
                Ok(Checked::Change {
                    cidr: pve_model::params::percent_decode(segment, false),
                })
            }
            _ => Err(format!(
                "{method} '{path}' is not an entry write (the host lets a policy POST an entry \
                 to an IPSet, and PUT or DELETE one entry)"
            )),
        }
    }

    /// The entry rules of a POST: an address or network as PVE takes it,
    /// not too wide, clear of `never-ban` and the PVE nodes.
    fn entry_check(
        &self,
        cidr: &str,
        settings: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), String> {
        let not_plain = || "not an address or network".to_string();
        if cidr.is_empty() || cidr.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(not_plain());
        }
        if pve_model::cidr::verify(cidr) != Ok(pve_model::cidr::Kind::Address) {
            return Err(not_plain());
        }
        let stored = pve_model::cidr::normalise(cidr).ok_or_else(not_plain)?;
        let net = network(&stored).ok_or_else(not_plain)?;
        let (widest, key) = match net {
            IpNet::V4(_) => (self.widest_ipv4, "widest_ipv4"),
            IpNet::V6(_) => (self.widest_ipv6, "widest_ipv6"),
        };
        if net.prefix_len() < widest {
            return Err(format!("wider than /{widest} ([rules] {key})"));
        }
        // Settings a test got wrong are the policy's to report.
        if let Ok(rules) = Rules::from_settings(settings) {
            if let Some(node) = rules.pve_hosts.iter().find(|a| net.contains(*a)) {
                return Err(format!("it holds {node}, the address of a PVE node"));
            }
            if let Some(kept) = rules
                .never_ban
                .iter()
                .find(|n| n.contains(&net) || net.contains(*n))
            {
                return Err(format!("it overlaps {kept} ([rules] never_ban)"));
            }
        }
        Ok(())
    }
}

/// Each parameter is one of `allowed`, given once.
fn only(params: &[(String, String)], allowed: &[&str]) -> Result<(), String> {
    for (i, (key, _)) in params.iter().enumerate() {
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "the parameter '{key}' is not allowed (an entry write takes {}; the host \
                 adds 'digest' itself)",
                if allowed.is_empty() {
                    "none".to_string()
                } else {
                    allowed.join(" and ")
                }
            ));
        }
        if params[..i].iter().any(|(k, _)| k == key) {
            return Err(format!("the parameter '{key}' is given twice"));
        }
    }
    Ok(())
}

fn comment_check(params: &[(String, String)]) -> Result<(), String> {
    let control = params
        .iter()
        .any(|(k, v)| k == "comment" && v.chars().any(char::is_control));
    if control {
        return Err(
            "the comment holds a control character (PVE would write it raw into cluster.fw)".into(),
        );
    }
    Ok(())
}
