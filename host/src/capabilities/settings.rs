//! `settings`: what the administrator configured for the policy, read-only.
//!
//! The names are documented in `wit/policy.wit`: `never-ban`, `pve-hosts`,
//! `ipv6-prefix`, and `policy.NAME` for `[policy_settings]`.

use crate::bindings::fail2pvefw::policy::settings;
use crate::config::{HostPort, Rules};
use std::collections::BTreeMap;
use std::net::IpAddr;

#[derive(Clone, Debug, Default)]
pub struct Settings {
    values: BTreeMap<String, String>,
}

impl Settings {
    /// The settings for `rules`, with the PVE nodes' own addresses.
    pub fn new(rules: &Rules, pve_hosts: &[IpAddr]) -> Settings {
        let mut values = BTreeMap::new();
        let mut put = |name: &str, value: String| {
            if !value.is_empty() {
                values.insert(name.to_string(), value);
            }
        };
        put("never-ban", rules.never_ban.join(" "));
        put("pve-hosts", join(pve_hosts));
        put(
            "ipv6-prefix",
            rules.ipv6_prefix.map(|p| p.to_string()).unwrap_or_default(),
        );
        for (key, value) in &rules.policy_settings {
            put(&format!("policy.{key}"), value.clone());
        }
        Settings { values }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// The addresses a ban must never cover: the configured PVE node, when it is
/// given as an address. A host name is not resolved: a DNS lookup on every
/// fail2ban action would cost time and could fail; add its addresses to
/// `[rules] never_ban` instead (the README says so).
pub fn pve_host_addresses(host: &HostPort) -> Vec<IpAddr> {
    host.host.parse::<IpAddr>().into_iter().collect()
}

fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

impl settings::Host for Settings {
    fn get(&mut self, name: String) -> Option<String> {
        self.values.get(&name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_become_the_documented_names() {
        let rules = Rules {
            never_ban: vec!["10.0.0.0/8".into(), "192.0.2.1".into()],
            ipv6_prefix: Some(64),
            allow_paths: vec![],
            policy_settings: [("threshold".to_string(), "3".to_string())].into(),
            ..Rules::default()
        };
        let s = Settings::new(&rules, &["192.0.2.10".parse().unwrap()]);
        assert_eq!(s.get("never-ban"), Some("10.0.0.0/8 192.0.2.1"));
        assert_eq!(s.get("pve-hosts"), Some("192.0.2.10"));
        assert_eq!(s.get("ipv6-prefix"), Some("64"));
        assert_eq!(s.get("policy.threshold"), Some("3"));
    }

    #[test]
    fn unset_rules_are_absent_not_empty() {
        let s = Settings::new(&Rules::default(), &[]);
        assert_eq!(s.get("never-ban"), None);
        assert_eq!(s.get("ipv6-prefix"), None);
    }

    #[test]
    fn only_an_address_literal_host_is_protected() {
        let hp = |h: &str| HostPort::parse(h).unwrap();
        assert_eq!(pve_host_addresses(&hp("192.0.2.10:8006")).len(), 1);
        assert_eq!(pve_host_addresses(&hp("[2001:db8::1]:8006")).len(), 1);
        assert!(pve_host_addresses(&hp("pve.test")).is_empty());
    }
}
