//! The settings the host passes (the `settings` import) and the
//! administrator's rules they carry, applied to every entry before it is
//! banned or unbanned: networks never to ban, the PVE nodes' own addresses,
//! and the widening of IPv6 bans to a prefix.
//!
//! The names are the host's: [`NEVER_BAN`], [`PVE_HOSTS`], [`IPV6_PREFIX`],
//! and `policy.NAME` ([`POLICY_PREFIX`]) for each key of the config's
//! `[policy_settings]`. A value a policy cannot work with is
//! [`Error::Denied`] naming the setting ([`bad_setting`]): exit 3, a
//! configuration error, and the policy must not ban with half of its rules.
//!
//! [`Rules::from_settings`] reads them with a lookup function, so the tests
//! below run natively with a map; [`Rules::from_host`] asks the host.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::cidr::{self, Cidr};
use crate::types::Error;

/// `never-ban`: networks never to ban, space-separated
/// (`10.0.0.0/8 192.0.2.1`), from `[rules] never_ban`.
pub const NEVER_BAN: &str = "never-ban";
/// `pve-hosts`: the PVE nodes' own addresses, space-separated.
pub const PVE_HOSTS: &str = "pve-hosts";
/// `ipv6-prefix`: widen IPv6 bans to this prefix length (`64`), if set.
pub const IPV6_PREFIX: &str = "ipv6-prefix";
/// `policy.NAME`: the config's `[policy_settings]` NAME, as text.
pub const POLICY_PREFIX: &str = "policy.";

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
        let never_ban = words(get(NEVER_BAN))
            .map(|net| parse_net(&net).map_err(|e| bad_setting(NEVER_BAN, &net, &e)))
            .collect::<Result<_, _>>()?;
        let pve_hosts = words(get(PVE_HOSTS))
            .map(|addr| {
                addr.parse::<IpAddr>()
                    .map_err(|e| bad_setting(PVE_HOSTS, &addr, &e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let ipv6_prefix = match get(IPV6_PREFIX) {
            None => None,
            Some(text) => Some(
                text.trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|p| (1..=128).contains(p))
                    .ok_or_else(|| bad_setting(IPV6_PREFIX, &text, "not 1 to 128"))?,
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
    pub fn apply(&self, entry: Cidr) -> Result<Cidr, Error> {
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

    fn widen(&self, entry: Cidr) -> Result<Cidr, Error> {
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

/// The error for a setting a policy cannot work with: `denied` naming the
/// setting and its value (exit 3: a person must fix the configuration).
pub fn bad_setting(name: &str, value: &str, why: &str) -> Error {
    Error::Denied(format!("the host's setting '{name}' has '{value}': {why}"))
}

/// The `[policy_settings]` value `name` read with `get`, parsed; `default`
/// when it is not set; [`bad_setting`] when it does not parse.
pub fn parse_setting<T: FromStr>(
    get: impl Fn(&str) -> Option<String>,
    name: &str,
    default: T,
) -> Result<T, Error>
where
    T::Err: std::fmt::Display,
{
    let key = format!("{POLICY_PREFIX}{name}");
    match get(&key) {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|e: T::Err| bad_setting(&key, &text, &e.to_string())),
    }
}

crate::with_host! {
    impl Rules {
        /// The rules of the host's settings; a bad one is [`bad_setting`].
        pub fn from_host() -> Result<Rules, Error> {
            Rules::from_settings(crate::settings::get)
        }
    }
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
    fn policy_settings_parse_with_a_default_and_name_a_bad_value() {
        let get = |name: &str| (name == "policy.threshold").then(|| " 3 ".to_string());
        assert_eq!(parse_setting(get, "threshold", 5u32), Ok(3));
        assert_eq!(parse_setting(get, "window", 600u64), Ok(600));
        let get = |_: &str| Some("soon".to_string());
        let Err(Error::Denied(m)) = parse_setting(get, "window", 600u64) else {
            panic!()
        };
        assert!(m.contains("'policy.window' has 'soon'"), "{m}");
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
}
