//! The admin's hard rules, checked by the host before a ban is queued, so a
//! custom policy whose `validate` ignores them still cannot get a
//! `never_ban` network or a PVE node's address into the queue.
//!
//! TODO(merge B): use the guard's exported rule functions (the same ones
//! every write is checked by, with the widths) instead of this copy.

use crate::config::Rules;
use ipnet::IpNet;
use std::net::IpAddr;

/// An entry as PVE stores it (`1.2.3.4`, `10.0.0.0/8`, `2001:db8::/64`) as
/// a network; `None` for anything else (an alias).
pub fn network(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(entry.parse::<IpAddr>().ok()?),
    };
    Some(net.trunc())
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Why the host refuses to ban `entry`, naming the rule; `None` if it may.
pub fn refusal(entry: &str, rules: &Rules, node_addresses: &[IpAddr]) -> Option<String> {
    let net = network(entry)?;
    if let Some(node) = node_addresses.iter().find(|a| net.contains(*a)) {
        return Some(format!(
            "'{entry}' contains {node}, a PVE node's own address ([pve] host/hosts): \
             a datacenter-wide ban on it would lock the administrator out of every node"
        ));
    }
    rules
        .never_ban
        .iter()
        .filter_map(|text| Some((text, network(text)?)))
        .find(|(_, kept)| overlaps(kept, &net))
        .map(|(text, _)| format!("'{entry}' overlaps '{text}' ([rules] never_ban)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(never_ban: &[&str]) -> Rules {
        Rules {
            never_ban: never_ban.iter().map(|s| s.to_string()).collect(),
            ..Rules::default()
        }
    }

    #[test]
    fn never_ban_and_node_addresses_refuse_overlaps_either_way() {
        let r = rules(&["10.0.0.1/8", "192.0.2.7"]);
        let nodes: Vec<IpAddr> = vec!["198.51.100.10".parse().unwrap()];
        assert!(
            refusal("10.1.2.3", &r, &nodes)
                .unwrap()
                .contains("never_ban")
        );
        assert!(
            refusal("192.0.2.0/24", &r, &nodes)
                .unwrap()
                .contains("'192.0.2.7'")
        );
        assert!(
            refusal("198.51.100.0/24", &r, &nodes)
                .unwrap()
                .contains("PVE node")
        );
        assert_eq!(refusal("192.0.2.8", &r, &nodes), None);
        assert_eq!(refusal("2001:db8::1", &r, &nodes), None);
        assert_eq!(refusal("dc/some-alias", &r, &nodes), None);
    }
}
