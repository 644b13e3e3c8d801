//! Resolving a host name through the system's resolver (glibc's
//! `getaddrinfo`: `/etc/hosts`, then DNS, as `nsswitch.conf` says), A and
//! AAAA both, into the entries PVE stores; and what a read of the IPSet
//! says about a name.

use crate::bindings::Entry;
use crate::capabilities::guard::entry::{network, stored};
use crate::capabilities::guard::named;
use crate::state::dns::{Lookup, Seen};
use std::net::{IpAddr, ToSocketAddrs};

/// The addresses `name` resolves to now, as entries.
pub fn resolve(name: &str) -> Lookup {
    match (name, 0u16).to_socket_addrs() {
        Ok(addrs) => found(addrs.map(|a| a.ip())),
        Err(e) => Lookup::Failed(format!("it does not resolve ({e})")),
    }
}

/// The entries PVE stores for `addrs`, sorted, each once (an IPv4 address
/// mapped into IPv6 is the IPv4 one); none is a failed lookup.
pub fn found(addrs: impl IntoIterator<Item = IpAddr>) -> Lookup {
    let mut entries: Vec<String> = addrs
        .into_iter()
        .filter_map(|a| stored(&a.to_canonical().to_string()).ok())
        .map(|s| s.text)
        .collect();
    entries.sort();
    entries.dedup();
    if entries.is_empty() {
        return Lookup::Failed("it resolves to no address".into());
    }
    Lookup::Found(entries)
}

/// What the IPSet's `entries` show for `name`: the resolved entries no
/// entry covers (ours or not: a wider manual entry lets the address in
/// too), and the entries `instance` wrote for the name.
pub fn seen(entries: &[Entry], instance: &str, name: &str, lookup: &Lookup) -> Seen {
    let nets: Vec<_> = entries.iter().filter_map(|e| network(&e.cidr)).collect();
    let resolved = match lookup {
        Lookup::Found(r) => r.as_slice(),
        Lookup::Failed(_) => &[],
    };
    Seen {
        uncovered: resolved
            .iter()
            .filter(|r| network(r).is_none_or(|net| !nets.iter().any(|n| n.contains(&net))))
            .cloned()
            .collect(),
        own: entries
            .iter()
            .filter(|e| {
                e.comment
                    .as_deref()
                    .and_then(|c| named::name_of(c, instance))
                    == Some(name)
            })
            .map(|e| e.cidr.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_entries_once_each() {
        let addrs = [
            "2001:db8::7",
            "198.51.100.7",
            "::ffff:198.51.100.7",
            "2001:DB8:0::7",
        ];
        let found = found(addrs.iter().map(|a| a.parse().unwrap()));
        assert_eq!(
            found,
            Lookup::Found(vec!["198.51.100.7".into(), "2001:db8::7".into()])
        );
        assert!(matches!(super::found([]), Lookup::Failed(_)));
    }

    #[test]
    fn localhost_resolves_and_a_bad_name_does_not() {
        assert!(matches!(resolve("localhost"), Lookup::Found(_)));
        let Lookup::Failed(why) = resolve("no-such-name.invalid") else {
            panic!()
        };
        assert!(why.starts_with("it does not resolve"), "{why}");
    }

    #[test]
    fn a_read_shows_what_is_uncovered_and_ours() {
        let entry = |cidr: &str, comment: Option<&str>| Entry {
            cidr: cidr.into(),
            comment: comment.map(str::to_string),
            owner: None,
        };
        let entries = [
            entry("198.51.100.0/24", Some("manual")),
            entry(
                "203.0.113.5",
                Some("[2026/01/01 00:00:00] home.test f2p:web01/dns/-"),
            ),
            entry(
                "203.0.113.6",
                Some("[2026/01/01 00:00:00] other.test f2p:web01/dns/-"),
            ),
        ];
        let lookup = Lookup::Found(vec!["198.51.100.7".into(), "203.0.113.9".into()]);
        let s = seen(&entries, "web01", "home.test", &lookup);
        assert_eq!(s.uncovered.into_iter().collect::<Vec<_>>(), ["203.0.113.9"]);
        assert_eq!(s.own.into_iter().collect::<Vec<_>>(), ["203.0.113.5"]);
    }
}
