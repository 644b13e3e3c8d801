//! The rules every entry a policy writes must pass, whichever grant let the
//! path through: an address or network (no alias), not wider than `[rules]
//! widest_ipv4` / `widest_ipv6`, and, in a ban list, clear of `[rules]
//! never_ban`, of every PVE node's own address and (with `[dns]
//! never_ban_resolved`) of the addresses `fail2pvefw dns` resolved last.
//!
//! Plain functions without I/O, so the host can apply the same rules before
//! it queues a ban (`EntryRules::check`) as the `pve` capability applies
//! before it sends one.

use crate::config::Rules;
use ipnet::IpNet;
use std::net::IpAddr;

/// What an IPSet is for. In a ban list (`Ban`) an entry must not cover a
/// protected address. An accept list (`Accept`: `[dns] ipset`, the IPSets
/// `fail2pvefw dns` keeps names in) is the host's alone: a policy may read
/// it, never write it (the guard denies that), and the host's own writes
/// there pass only the form and the width, since putting an admin's own
/// address there is the point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Purpose {
    #[default]
    Ban,
    Accept,
}

/// An entry as PVE will store it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The exact string PVE stores (host bits cleared, `/32` dropped, …).
    pub text: String,
    /// Its network (an address is a `/32` or `/128`).
    pub net: IpNet,
}

/// The administrator's limits on entries, and the addresses no ban may hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryRules {
    pub never_ban: Vec<IpNet>,
    /// The PVE nodes' own addresses (`[pve] host`/`hosts`, resolved).
    pub node_addresses: Vec<IpAddr>,
    /// The addresses of `[dns]` host names as last resolved, with the name
    /// (empty unless `never_ban_resolved`): the state remembers them, so a
    /// ban makes no lookup.
    pub resolved: Vec<(IpAddr, String)>,
    pub widest_ipv4: u8,
    pub widest_ipv6: u8,
}

impl Default for EntryRules {
    fn default() -> Self {
        EntryRules::new(&Rules::default(), &[])
    }
}

impl EntryRules {
    /// The rules of `[rules]`, with the nodes' addresses. Every `never_ban`
    /// parses: `config::check_network` accepts only what [`network`] reads.
    pub fn new(rules: &Rules, node_addresses: &[IpAddr]) -> EntryRules {
        EntryRules {
            never_ban: rules.never_ban.iter().filter_map(|n| network(n)).collect(),
            node_addresses: node_addresses.to_vec(),
            resolved: Vec::new(),
            widest_ipv4: rules.widest_ipv4,
            widest_ipv6: rules.widest_ipv6,
        }
    }

    /// With the host names' last resolved addresses, never to be banned.
    pub fn with_resolved(mut self, resolved: Vec<(IpAddr, String)>) -> EntryRules {
        self.resolved = resolved;
        self
    }

    /// Checks one entry a policy wants written into an IPSet for `purpose`.
    /// `Ok` is what PVE will store; `Err` says which rule refuses it, without
    /// the entry (`wider than /16 ([rules] widest_ipv4)`), for the caller
    /// to put after what was refused.
    pub fn check(&self, cidr: &str, purpose: Purpose) -> Result<Stored, String> {
        let stored = stored(cidr)?;
        let net = stored.net;
        let (widest, key) = match net {
            IpNet::V4(_) => (self.widest_ipv4, "widest_ipv4"),
            IpNet::V6(_) => (self.widest_ipv6, "widest_ipv6"),
        };
        if net.prefix_len() < widest {
            return Err(format!("wider than /{widest} ([rules] {key})"));
        }
        if purpose == Purpose::Accept {
            return Ok(stored);
        }
        if let Some(node) = self.node_addresses.iter().find(|a| net.contains(*a)) {
            return Err(format!(
                "it holds {node}, the address of a PVE node of this cluster: a ban on it would \
                 lock the administrator out of every node"
            ));
        }
        if let Some((addr, name)) = self.resolved.iter().find(|(a, _)| net.contains(a)) {
            return Err(format!(
                "it holds {addr}, an address of '{name}', whose addresses are never banned \
                 ([dns] never_ban_resolved)"
            ));
        }
        if let Some(kept) = self
            .never_ban
            .iter()
            .find(|n| n.contains(&net) || net.contains(*n))
        {
            return Err(format!("it overlaps {kept} ([rules] never_ban)"));
        }
        Ok(stored)
    }
}

/// The entry PVE stores for `cidr`, when it is an address or a network
/// with a prefix as PVE takes them; `Err` for anything else (an alias, a
/// newline, a prefix PVE refuses), which no policy needs to write.
pub fn stored(cidr: &str) -> Result<Stored, String> {
    let not_plain = || {
        "not an address or network (the host lets a policy write no alias and no other form)"
            .to_string()
    };
    // PVE stores a trailing newline with the entry; a control character has
    // no business in an entry.
    if cidr.is_empty() || cidr.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(not_plain());
    }
    match pve_model::cidr::verify(cidr) {
        Ok(pve_model::cidr::Kind::Address) => {}
        _ => return Err(not_plain()),
    }
    let text = pve_model::cidr::normalise(cidr).ok_or_else(not_plain)?;
    let net = network(&text).ok_or_else(not_plain)?;
    Ok(Stored { text, net })
}

/// A stored entry as a network: the SDK's reading, so the host and the
/// SDK's test host judge an entry alike.
pub use fail2pvefw_sdk::cidr::network;

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> EntryRules {
        EntryRules {
            never_ban: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            node_addresses: vec![
                "192.0.2.10".parse().unwrap(),
                "2001:db9::10".parse().unwrap(),
            ],
            resolved: vec![("203.0.113.77".parse().unwrap(), "home.test".into())],
            widest_ipv4: 16,
            widest_ipv6: 32,
        }
    }

    fn check(cidr: &str) -> Result<String, String> {
        rules().check(cidr, Purpose::Ban).map(|s| s.text)
    }

    #[test]
    fn the_stored_form_is_pves() {
        assert_eq!(check("198.51.100.7/24").unwrap(), "198.51.100.0/24");
        assert_eq!(check("198.51.100.7/32").unwrap(), "198.51.100.7");
        assert_eq!(check("198.51.100.7/024").unwrap(), "198.51.100.0/024");
        assert_eq!(check("2001:DB9:1::7/64").unwrap(), "2001:db9:1::/64");
    }

    #[test]
    fn half_the_address_space_is_too_wide() {
        for cidr in ["0.0.0.0/1", "128.0.0.0/1", "1.2.3.4/08", "198.0.0.0/15"] {
            let e = check(cidr).unwrap_err();
            assert_eq!(e, "wider than /16 ([rules] widest_ipv4)", "{cidr}");
        }
        let e = check("2000::/3").unwrap_err();
        assert_eq!(e, "wider than /32 ([rules] widest_ipv6)");
        assert!(check("198.51.0.0/16").is_ok());
        // A zero prefix is wider than anything (PVE refuses it too).
        assert!(check("1.2.3.4/0").is_err());
    }

    #[test]
    fn never_ban_and_nodes_are_refused_in_a_ban_list_only() {
        let e = check("10.1.2.3").unwrap_err();
        assert_eq!(e, "it overlaps 10.0.0.0/8 ([rules] never_ban)");
        // Covering a never-ban network is refused as well as lying in one.
        let mut wide = rules();
        wide.widest_ipv4 = 1;
        let e = wide.check("8.0.0.0/6", Purpose::Ban).unwrap_err();
        assert!(e.contains("never_ban"), "{e}");
        let e = check("192.0.2.0/24").unwrap_err();
        assert!(e.contains("192.0.2.10, the address of a PVE node"), "{e}");
        let e = check("2001:db9::/64").unwrap_err();
        assert!(e.contains("2001:db9::10"), "{e}");
        let e = check("203.0.113.0/24").unwrap_err();
        assert!(e.contains("203.0.113.77, an address of 'home.test'"), "{e}");
        assert!(e.contains("never_ban_resolved"), "{e}");
        assert!(rules().check("203.0.113.77", Purpose::Accept).is_ok());
        assert!(rules().check("192.0.2.10", Purpose::Accept).is_ok());
        assert!(rules().check("10.1.2.3", Purpose::Accept).is_ok());
        let e = rules().check("0.0.0.0/1", Purpose::Accept).unwrap_err();
        assert!(e.contains("widest_ipv4"), "{e}");
    }

    #[test]
    fn aliases_and_odd_forms_are_not_entries() {
        for cidr in [
            "dc/admins",
            "admins",
            "guest/x",
            "",
            "1.2.3.4\n",
            "1.2.3.4 ",
            "1.2.3.4/33",
            "010.0.0.1",
            "1.2.3.4/x",
        ] {
            let e = check(cidr).unwrap_err();
            assert!(e.starts_with("not an address or network"), "{cidr:?}: {e}");
        }
    }

    #[test]
    fn networks_read_like_pve_reads_them() {
        assert_eq!(network("10.1.2.3/08"), Some("10.0.0.0/8".parse().unwrap()));
        assert_eq!(network("10.1.2.3"), Some("10.1.2.3/32".parse().unwrap()));
        assert_eq!(network("::1"), Some("::1/128".parse().unwrap()));
        assert_eq!(network("10.1.2.3/33"), None);
        assert_eq!(network("10.1.2.3/"), None);
    }
}
