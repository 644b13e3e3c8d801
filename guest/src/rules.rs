//! The administrator's rules, applied to every entry before it is banned or
//! unbanned: networks never to ban, the PVE nodes' own addresses, and the
//! widening of IPv6 bans to a prefix.
//!
//! The host passes them through the `settings` import (see `wit/policy.wit`);
//! [`Rules::from_settings`] reads them with a lookup function, so the tests
//! below run natively with a map.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::cidr::{self, Entry};
use crate::plan::{Error, Method, Pve, Response};

/// What the settings say; empty by default (no rule refuses anything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// `never-ban`: a ban overlapping one of these is refused.
    pub never_ban: Vec<IpNet>,
    /// `pve-hosts`: a ban covering one of these is always refused.
    pub pve_hosts: Vec<IpAddr>,
    /// `ipv6-prefix`: IPv6 bans narrower than this are widened to it.
    pub ipv6_prefix: Option<u8>,
}

impl Rules {
    /// Reads the rules through `get` (the host's `settings::get`). A value the
    /// host should never have passed is an error naming the setting: the
    /// policy must not ban with half of its rules.
    pub fn from_settings(get: impl Fn(&str) -> Option<String>) -> Result<Rules, Error> {
        let never_ban = words(get("never-ban"))
            .map(|net| parse_net(&net).map_err(|e| bad_setting("never-ban", &net, &e)))
            .collect::<Result<_, _>>()?;
        let pve_hosts = words(get("pve-hosts"))
            .map(|addr| {
                addr.parse::<IpAddr>()
                    .map_err(|e| bad_setting("pve-hosts", &addr, &e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let ipv6_prefix = match get("ipv6-prefix") {
            None => None,
            Some(text) => Some(
                text.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|p| (1..=128).contains(p))
                    .ok_or_else(|| bad_setting("ipv6-prefix", &text, "not 1 to 128"))?,
            ),
        };
        Ok(Rules {
            never_ban,
            pve_hosts,
            ipv6_prefix,
        })
    }

    /// The entry to send for `entry`: refused if it touches a PVE node or a
    /// never-ban network, widened if it is IPv6 and narrower than the prefix.
    /// Ban and unban both call it, so unban deletes what ban stored.
    pub fn apply(&self, entry: Entry) -> Result<Entry, Error> {
        let entry = self.widen(entry)?;
        let net = entry.net();
        if let Some(host) = self.pve_hosts.iter().find(|h| net.contains(*h)) {
            return Err(Error::InvalidInput(format!(
                "'{entry}' contains {host}, a configured PVE node: a datacenter-wide ban on it \
                 would lock the administrator out of every node; refused"
            )));
        }
        if let Some(kept) = self.never_ban.iter().find(|n| overlaps(n, &net)) {
            return Err(Error::InvalidInput(format!(
                "'{entry}' overlaps '{kept}', which [rules] never_ban protects; refused"
            )));
        }
        Ok(entry)
    }

    fn widen(&self, entry: Entry) -> Result<Entry, Error> {
        let (Some(prefix), IpNet::V6(net)) = (self.ipv6_prefix, entry.net()) else {
            return Ok(entry);
        };
        if net.prefix_len() <= prefix {
            return Ok(entry);
        }
        let wide = ipnet::Ipv6Net::new(net.addr(), prefix)
            .map_err(|e| Error::InvalidInput(e.to_string()))?
            .trunc();
        cidr::normalize(&wide.to_string()).map_err(Error::InvalidInput)
    }
}

fn words(value: Option<String>) -> impl Iterator<Item = String> {
    value
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect::<Vec<_>>()
        .into_iter()
}

/// `10.0.0.0/8` or a bare address (a host network).
fn parse_net(text: &str) -> Result<IpNet, String> {
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| "not an address or network".to_string())
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

fn bad_setting(name: &str, value: &str, why: &str) -> Error {
    Error::Denied(format!("the host's setting '{name}' has '{value}': {why}"))
}

/// A [`Pve`] that keeps the body of the last answer it passed on, so that
/// `start` and `check` can judge the IPSet's size without a second GET.
pub struct Watching<'a, P: Pve> {
    inner: &'a mut P,
    pub last_body: Option<String>,
}

impl<'a, P: Pve> Watching<'a, P> {
    pub fn new(inner: &'a mut P) -> Self {
        Watching {
            inner,
            last_body: None,
        }
    }

    /// [`budget_warning`] for the last body seen.
    pub fn budget_warning(&self, ipset: &str) -> Option<String> {
        budget_warning(ipset, self.last_body.as_deref()?)
    }
}

impl<P: Pve> Pve for Watching<'_, P> {
    fn request(
        &mut self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Response, Error> {
        let outcome = self.inner.request(method, path, params);
        if let Ok(response) = &outcome {
            self.last_body = Some(response.body.clone());
        }
        outcome
    }
}

/// Bytes `cluster.fw` may hold, for all of the datacenter firewall.
pub const CLUSTER_FW_BUDGET: usize = 1024 * 1024;

/// A warning when the IPSet in a `GET /cluster/firewall/ipset/NAME` body
/// takes more than 3/4 of `cluster.fw`'s budget: each entry is one line,
/// `cidr # comment`. `None` when it is far from full or the body is unreadable.
pub fn budget_warning(ipset: &str, body: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let entries = value.get("data")?.as_array()?;
    let bytes: usize = entries.iter().map(line_bytes).sum();
    if bytes * 4 < CLUSTER_FW_BUDGET * 3 {
        return None;
    }
    Some(format!(
        "IPSet '{ipset}' takes about {} KiB of the 1024 KiB that cluster.fw may hold \
         ({} entries); PVE refuses writes once the file is full: shorten ban times or \
         comments, or ban networks",
        bytes / 1024,
        entries.len()
    ))
}

/// One entry's line in `cluster.fw`: `[!]cidr[ # comment]\n`.
fn line_bytes(entry: &serde_json::Value) -> usize {
    let text = |key: &str| entry.get(key).and_then(|v| v.as_str()).map_or(0, str::len);
    let comment = text("comment");
    let nomatch = usize::from(entry.get("nomatch").is_some());
    nomatch + text("cidr") + if comment > 0 { comment + 3 } else { 0 } + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn rules(pairs: &[(&str, &str)]) -> Result<Rules, Error> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Rules::from_settings(|name| map.get(name).cloned())
    }

    fn apply(rules: &Rules, input: &str) -> Result<String, Error> {
        rules
            .apply(cidr::normalize(input).unwrap())
            .map(|e| e.to_string())
    }

    #[test]
    fn no_settings_change_nothing() {
        let r = rules(&[]).unwrap();
        assert_eq!(r, Rules::default());
        assert_eq!(apply(&r, "2001:db8::7").unwrap(), "2001:db8::7");
    }

    #[test]
    fn never_ban_network_refuses_addresses_inside_and_networks_around() {
        let r = rules(&[("never-ban", "10.0.0.0/8 192.0.2.1")]).unwrap();
        let Err(Error::InvalidInput(m)) = apply(&r, "10.1.2.3") else {
            panic!()
        };
        assert!(m.contains("'10.0.0.0/8'") && m.contains("never_ban"), "{m}");
        assert!(apply(&r, "192.0.2.0/24").is_err());
        assert!(apply(&r, "0.0.0.0/1").is_err());
        assert_eq!(apply(&r, "192.0.2.2").unwrap(), "192.0.2.2");
    }

    #[test]
    fn pve_host_is_always_refused_with_the_reason() {
        let r = rules(&[("pve-hosts", "192.0.2.10 2001:db8::10")]).unwrap();
        let Err(Error::InvalidInput(m)) = apply(&r, "192.0.2.10") else {
            panic!()
        };
        assert!(m.contains("lock the administrator out"), "{m}");
        assert!(apply(&r, "192.0.2.0/24").is_err());
        assert!(apply(&r, "2001:db8::10").is_err());
        assert!(apply(&r, "192.0.2.11").is_ok());
    }

    #[test]
    fn ipv6_bans_are_widened_to_the_prefix_identically() {
        let r = rules(&[("ipv6-prefix", "64")]).unwrap();
        assert_eq!(
            apply(&r, "2001:db8:1:2:3:4:5:6").unwrap(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            apply(&r, "2001:DB8:1:2::9/80").unwrap(),
            "2001:db8:1:2::/64"
        );
        // Wider bans and IPv4 stay as they are.
        assert_eq!(apply(&r, "2001:db8::/48").unwrap(), "2001:db8::/48");
        assert_eq!(apply(&r, "192.0.2.1").unwrap(), "192.0.2.1");
    }

    #[test]
    fn widening_cannot_sneak_past_a_pve_host() {
        let r = rules(&[("ipv6-prefix", "64"), ("pve-hosts", "2001:db8::10")]).unwrap();
        assert!(apply(&r, "2001:db8::99").is_err());
    }

    #[test]
    fn bad_settings_are_errors_naming_them() {
        let Err(Error::Denied(m)) = rules(&[("never-ban", "10.0.0.0/33")]) else {
            panic!()
        };
        assert!(m.contains("never-ban") && m.contains("10.0.0.0/33"), "{m}");
        assert!(rules(&[("ipv6-prefix", "0")]).is_err());
        assert!(rules(&[("pve-hosts", "pve.test")]).is_err());
    }

    #[test]
    fn budget_warning_only_near_the_limit() {
        let entry = r#"{"cidr":"203.0.113.77","comment":"[2026/01/01 00:00:00] sshd: 3 failures","digest":"x"}"#;
        let body = |n: usize| format!(r#"{{"data":[{}]}}"#, vec![entry; n].join(","));
        assert_eq!(budget_warning("f2b", &body(100)), None);
        let m = budget_warning("f2b", &body(16_000)).unwrap();
        assert!(
            m.contains("IPSet 'f2b'") && m.contains("16000 entries"),
            "{m}"
        );
        assert_eq!(budget_warning("f2b", "not json"), None);
    }
}
