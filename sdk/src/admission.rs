//! What gets into PVE when more is wanted than the cluster can hold: the
//! default rules of the WIT's `admission` interface (CrowdSec's decisions).
//!
//! 1. **One entry per network**: decisions for the same entry are one
//!    candidate; an address (or network) inside a wanted network goes in
//!    with that network (`aggregated`), as does every address of an
//!    aggregate when `aggregate-ipv4`/`aggregate-ipv6` is set and at least
//!    `aggregate-min` addresses share one network that the rules allow.
//! 2. **Order**: local decisions (`crowdsec`, `cscli`, `cscli-import`)
//!    before community ones (`CAPI`, `lists`, anything else); within a
//!    class, what was admitted before (no churn: a newcomer never evicts an
//!    entry of its own class), then the longer remaining, then the more
//!    recent, then the entry (a deterministic order).
//! 3. **Budget**: in that order, while the count stays within
//!    `max-entries` and the lines within `max-bytes`; entries another holder
//!    keeps in PVE cost nothing. A local decision may so evict an admitted
//!    community entry, and that is the only eviction.
//!
//! Pure and native, no feature needed: [`crate::Policy::admit`]'s default
//! calls [`admit`] with the host's rules; the bindings convert the WIT
//! records. The host runs a policy's `admit` with every `pve` request
//! denied, and so does the test host ([`crate::test_host::TestHost::admit`]).

use crate::cidr;
use crate::rules::Rules;
use crate::tag as owner;
use crate::types::Error;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The scenario is cut to this many characters in a comment.
const SCENARIO_CHARS: usize = 24;

/// One decision that wants an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub key: String,
    pub entry: String,
    pub origin: String,
    pub scenario: String,
    pub expires: i64,
    pub seen: i64,
    pub admitted: bool,
}

/// What the chosen entries may cost.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    pub ipset: String,
    pub instance: String,
    pub now: i64,
    pub max_entries: Option<u32>,
    pub max_bytes: u64,
    pub shared: Vec<String>,
    pub aggregate_ipv4: Option<u8>,
    pub aggregate_ipv6: Option<u8>,
    pub aggregate_min: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub entry: String,
    pub comment: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    OverEntries,
    OverBytes,
    Aggregated,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeftOut {
    pub key: String,
    pub reason: Reason,
    pub detail: Option<String>,
}

/// What `admit` answers: the chosen entries, the most wanted first, and the
/// candidates left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Admitted {
    pub chosen: Vec<Chosen>,
    pub left_out: Vec<LeftOut>,
}

/// The jail the host names in the requests it makes for the chosen entries
/// (`ban` with `jail` `crowdsec`; see `admission` in the WIT).
pub const JAIL: &str = "crowdsec";

/// Local decisions (0) come before community ones (1).
pub fn class(origin: &str) -> u8 {
    match origin {
        "crowdsec" | "cscli" | "cscli-import" => 0,
        _ => 1,
    }
}

/// `cs ORIGIN SCENARIO`: who decided and why, short.
pub fn comment(origin: &str, scenario: &str) -> String {
    let scenario: String = printable(scenario).chars().take(SCENARIO_CHARS).collect();
    owner::strip_tags(&format!("cs {} {}", printable(origin), scenario.trim()))
        .trim()
        .to_string()
}

/// The ownership tag of a CrowdSec entry that ends at `expires`.
pub fn tag(instance: &str, expires: i64) -> String {
    format!(
        "{}{}/crowdsec/{expires}",
        owner::PREFIX,
        owner::tag_name(instance)
    )
}

/// The bytes of one entry's line in `cluster.fw`: `CIDR # COMMENT TAG\n`.
pub fn line_bytes(entry: &str, comment: &str, tag: &str) -> u64 {
    (entry.len() + 3 + comment.len() + 1 + tag.len() + 1) as u64
}

fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The candidates of one entry, and those merged into it.
#[derive(Debug)]
struct Group {
    entry: String,
    net: Option<IpNet>,
    keys: Vec<String>,
    /// Keys of entries inside this one, with their entries.
    members: Vec<(String, String)>,
    class: u8,
    expires: i64,
    seen: i64,
    admitted: bool,
    /// Origin and scenario of its most wanted decision.
    origin: String,
    scenario: String,
    /// The expiry of that decision.
    best_expires: i64,
    /// How many entries an aggregate stands for (0: not an aggregate).
    aggregate_of: usize,
}

impl Group {
    fn new(c: &Candidate) -> Group {
        Group {
            entry: c.entry.clone(),
            net: cidr::normalize(&c.entry).ok().map(|e| e.net()),
            keys: vec![c.key.clone()],
            members: Vec::new(),
            class: class(&c.origin),
            expires: c.expires,
            seen: c.seen,
            admitted: c.admitted,
            origin: c.origin.clone(),
            scenario: c.scenario.clone(),
            best_expires: c.expires,
            aggregate_of: 0,
        }
    }

    fn add(&mut self, c: &Candidate) {
        self.keys.push(c.key.clone());
        let better = (class(&c.origin), std::cmp::Reverse(c.expires))
            < (class(&self.origin), std::cmp::Reverse(self.best_expires));
        if better {
            self.origin = c.origin.clone();
            self.scenario = c.scenario.clone();
            self.best_expires = c.expires;
        }
        self.join(class(&c.origin), c.expires, c.seen, c.admitted);
    }

    fn join(&mut self, class: u8, expires: i64, seen: i64, admitted: bool) {
        self.class = self.class.min(class);
        self.expires = self.expires.max(expires);
        self.seen = self.seen.max(seen);
        self.admitted |= admitted;
    }

    /// Takes `other` (an entry inside this one) in.
    fn absorb(&mut self, other: Group) {
        if (other.class, std::cmp::Reverse(other.best_expires))
            < (class(&self.origin), std::cmp::Reverse(self.best_expires))
        {
            self.origin = other.origin.clone();
            self.scenario = other.scenario.clone();
            self.best_expires = other.best_expires;
        }
        self.join(other.class, other.expires, other.seen, other.admitted);
        for key in other.keys {
            self.members.push((key, other.entry.clone()));
        }
        self.members.extend(other.members);
    }

    fn comment(&self) -> String {
        if self.aggregate_of > 0 {
            let origin = comment(&self.origin, "");
            format!("{origin} {} addresses", self.aggregate_of)
        } else {
            comment(&self.origin, &self.scenario)
        }
    }

    fn is_address(&self) -> bool {
        self.net
            .is_some_and(|n| n.prefix_len() == n.max_prefix_len())
    }
}

/// The default rules: which entries go in, in order, and why the rest stay
/// out. `rules` are the administrator's (`never-ban`, `pve-hosts`): an
/// aggregate they refuse is not made.
pub fn admit(
    candidates: &[Candidate],
    budget: &Budget,
    rules: &Rules,
) -> Result<(Vec<Chosen>, Vec<LeftOut>), Error> {
    for (name, prefix, max) in [
        ("aggregate-ipv4", budget.aggregate_ipv4, 32),
        ("aggregate-ipv6", budget.aggregate_ipv6, 128),
    ] {
        if prefix.is_some_and(|p| p == 0 || p >= max) {
            return Err(Error::InvalidInput(format!(
                "{name} must be 1 to {}, not {}",
                max - 1,
                prefix.unwrap_or(0)
            )));
        }
    }
    let mut groups: BTreeMap<String, Group> = BTreeMap::new();
    for c in candidates.iter().filter(|c| c.expires > budget.now) {
        match groups.get_mut(&c.entry) {
            Some(g) => g.add(c),
            None => {
                groups.insert(c.entry.clone(), Group::new(c));
            }
        }
    }
    let mut groups = merge_covered(groups);
    aggregate(&mut groups, budget, rules);
    let mut order: Vec<Group> = groups.into_values().collect();
    order.sort_by(|a, b| {
        (a.class, !a.admitted, std::cmp::Reverse(a.expires))
            .cmp(&(b.class, !b.admitted, std::cmp::Reverse(b.expires)))
            .then(b.seen.cmp(&a.seen))
            .then(a.entry.cmp(&b.entry))
    });
    let shared: HashSet<&str> = budget.shared.iter().map(String::as_str).collect();
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut chosen = Vec::new();
    let mut left = Vec::new();
    for g in order {
        let comment = g.comment();
        let verdict = if shared.contains(g.entry.as_str()) {
            None
        } else if budget
            .max_entries
            .is_some_and(|max| count >= u64::from(max))
        {
            Some(Reason::OverEntries)
        } else {
            let line = line_bytes(&g.entry, &comment, &tag(&budget.instance, g.expires));
            if bytes + line > budget.max_bytes {
                Some(Reason::OverBytes)
            } else {
                count += 1;
                bytes += line;
                None
            }
        };
        match verdict {
            None => {
                for (key, _) in &g.members {
                    left.push(LeftOut {
                        key: key.clone(),
                        reason: Reason::Aggregated,
                        detail: Some(g.entry.clone()),
                    });
                }
                chosen.push(Chosen {
                    entry: g.entry,
                    comment,
                });
            }
            Some(reason) => {
                for key in g.keys.iter().chain(g.members.iter().map(|(k, _)| k)) {
                    left.push(LeftOut {
                        key: key.clone(),
                        reason,
                        detail: None,
                    });
                }
            }
        }
    }
    Ok((chosen, left))
}

/// Entries inside a wanted network go in with it (the widest one).
fn merge_covered(mut groups: BTreeMap<String, Group>) -> BTreeMap<String, Group> {
    // The networks by family and prefix length, widest first.
    let mut lengths: Vec<(bool, u8)> = groups
        .values()
        .filter_map(|g| g.net)
        .filter(|n| n.prefix_len() < n.max_prefix_len())
        .map(|n| (matches!(n, IpNet::V4(_)), n.prefix_len()))
        .collect();
    lengths.sort();
    lengths.dedup();
    if lengths.is_empty() {
        return groups;
    }
    let by_net: HashMap<IpNet, String> = groups
        .values()
        .filter_map(|g| g.net.map(|n| (n, g.entry.clone())))
        .collect();
    // Each entry's widest container among the wanted networks.
    let mut into: Vec<(String, String)> = Vec::new();
    for g in groups.values() {
        let Some(net) = g.net else { continue };
        let v4 = matches!(net, IpNet::V4(_));
        let container = lengths
            .iter()
            .filter(|(is_v4, len)| *is_v4 == v4 && *len < net.prefix_len())
            .find_map(|(_, len)| {
                let wider = IpNet::new(net.addr(), *len).ok()?.trunc();
                by_net.get(&wider)
            });
        if let Some(container) = container {
            into.push((g.entry.clone(), container.clone()));
        }
    }
    // Widest containers first were found, so a container is never itself
    // merged into something narrower; nested networks all go to the widest.
    let roots: HashMap<String, String> = into.iter().cloned().collect();
    for (entry, container) in into {
        let mut root = container;
        while let Some(up) = roots.get(&root) {
            root = up.clone();
        }
        if let Some(g) = groups.remove(&entry) {
            if let Some(target) = groups.get_mut(&root) {
                target.absorb(g);
            } else {
                groups.insert(entry, g);
            }
        }
    }
    groups
}

/// At least `aggregate-min` addresses of one network become that network.
fn aggregate(groups: &mut BTreeMap<String, Group>, budget: &Budget, rules: &Rules) {
    let min = budget.aggregate_min.max(2) as usize;
    let mut buckets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in groups.values().filter(|g| g.is_address()) {
        let Some(net) = g.net else { continue };
        let prefix = match net {
            IpNet::V4(_) => budget.aggregate_ipv4,
            IpNet::V6(_) => budget.aggregate_ipv6,
        };
        let Some(prefix) = prefix else { continue };
        let Ok(wide) = IpNet::new(net.addr(), prefix) else {
            continue;
        };
        buckets
            .entry(wide.trunc().to_string())
            .or_default()
            .push(g.entry.clone());
    }
    for (network, members) in buckets {
        if members.len() < min {
            continue;
        }
        // The network as PVE stores it, and allowed by the rules.
        let Ok(entry) =
            cidr::normalize(&network).and_then(|e| rules.apply(e).map_err(|e| format!("{e:?}")))
        else {
            continue;
        };
        let entry = entry.to_string();
        let mut target = match groups.remove(&entry) {
            Some(existing) => existing,
            None => {
                let first = &groups[&members[0]];
                Group {
                    entry: entry.clone(),
                    net: cidr::normalize(&entry).ok().map(|e| e.net()),
                    keys: Vec::new(),
                    members: Vec::new(),
                    class: u8::MAX,
                    expires: i64::MIN,
                    seen: i64::MIN,
                    admitted: false,
                    origin: first.origin.clone(),
                    scenario: first.scenario.clone(),
                    best_expires: i64::MIN,
                    aggregate_of: 0,
                }
            }
        };
        target.aggregate_of = members.len();
        for member in &members {
            if let Some(g) = groups.remove(member) {
                target.absorb(g);
            }
        }
        groups.insert(entry, target);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(key: &str, entry: &str, origin: &str, expires: i64) -> Candidate {
        Candidate {
            key: key.into(),
            entry: entry.into(),
            origin: origin.into(),
            scenario: "crowdsecurity/ssh-bf".into(),
            expires,
            seen: 1,
            admitted: false,
        }
    }

    fn budget(max: Option<u32>) -> Budget {
        Budget {
            ipset: "crowdsec".into(),
            instance: "web01".into(),
            now: 100,
            max_entries: max,
            max_bytes: 1 << 20,
            aggregate_min: 8,
            ..Budget::default()
        }
    }

    fn entries(chosen: &[Chosen]) -> Vec<&str> {
        chosen.iter().map(|c| c.entry.as_str()).collect()
    }

    fn reason(left: &[LeftOut], key: &str) -> Option<Reason> {
        left.iter().find(|l| l.key == key).map(|l| l.reason)
    }

    #[test]
    fn local_decisions_go_first_then_longer_ones() {
        let cands = [
            c("a", "192.0.2.1", "CAPI", 10_000),
            c("b", "192.0.2.2", "lists", 20_000),
            c("c", "192.0.2.3", "cscli", 1_000),
            c("d", "192.0.2.4", "crowdsec", 2_000),
        ];
        let (chosen, left) = admit(&cands, &budget(Some(3)), &Rules::default()).unwrap();
        assert_eq!(entries(&chosen), ["192.0.2.4", "192.0.2.3", "192.0.2.2"]);
        assert_eq!(reason(&left, "a"), Some(Reason::OverEntries));
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn an_admitted_entry_keeps_its_place_against_its_own_class() {
        let mut old = c("old", "192.0.2.1", "CAPI", 1_000);
        old.admitted = true;
        let cands = [old, c("new", "192.0.2.2", "CAPI", 99_000)];
        let (chosen, left) = admit(&cands, &budget(Some(1)), &Rules::default()).unwrap();
        assert_eq!(entries(&chosen), ["192.0.2.1"]);
        assert_eq!(reason(&left, "new"), Some(Reason::OverEntries));
        // A local one evicts it.
        let mut old = c("old", "192.0.2.1", "CAPI", 1_000);
        old.admitted = true;
        let cands = [old, c("local", "192.0.2.3", "cscli", 500)];
        let (chosen, _) = admit(&cands, &budget(Some(1)), &Rules::default()).unwrap();
        assert_eq!(entries(&chosen), ["192.0.2.3"]);
    }

    #[test]
    fn the_byte_budget_counts_each_line_as_pve_writes_it() {
        let cands: Vec<Candidate> = (1..=10)
            .map(|i| c(&i.to_string(), &format!("192.0.2.{i}"), "CAPI", 1_000 + i))
            .collect();
        let line = line_bytes(
            "192.0.2.10",
            &comment("CAPI", "crowdsecurity/ssh-bf"),
            &tag("web01", 1_010),
        );
        assert_eq!(
            line as usize,
            "192.0.2.10 # cs CAPI crowdsecurity/ssh-bf f2p:web01/crowdsec/1010\n".len()
        );
        let mut b = budget(None);
        b.max_bytes = line * 3;
        let (chosen, left) = admit(&cands, &b, &Rules::default()).unwrap();
        assert_eq!(chosen.len(), 3);
        assert_eq!(left.len(), 7);
        assert!(left.iter().all(|l| l.reason == Reason::OverBytes));
    }

    #[test]
    fn shared_entries_cost_nothing() {
        let cands = [
            c("a", "192.0.2.1", "CAPI", 1_000),
            c("b", "192.0.2.2", "CAPI", 900),
        ];
        let mut b = budget(Some(1));
        b.shared = vec!["192.0.2.1".into()];
        let (chosen, left) = admit(&cands, &b, &Rules::default()).unwrap();
        assert_eq!(entries(&chosen), ["192.0.2.1", "192.0.2.2"]);
        assert!(left.is_empty());
    }

    #[test]
    fn addresses_inside_a_wanted_network_go_in_with_it() {
        let cands = [
            c("net", "198.51.100.0/24", "CAPI", 1_000),
            c("in", "198.51.100.7", "cscli", 5_000),
            c("out", "203.0.113.1", "CAPI", 1_000),
        ];
        let (chosen, left) = admit(&cands, &budget(None), &Rules::default()).unwrap();
        // The /24 takes the class of its local member, so it goes first.
        assert_eq!(entries(&chosen), ["198.51.100.0/24", "203.0.113.1"]);
        assert_eq!(
            left,
            [LeftOut {
                key: "in".into(),
                reason: Reason::Aggregated,
                detail: Some("198.51.100.0/24".into())
            }]
        );
    }

    #[test]
    fn many_addresses_of_one_network_become_it_unless_the_rules_forbid() {
        let mut cands: Vec<Candidate> = (1..=8)
            .map(|i| c(&format!("a{i}"), &format!("192.0.2.{i}"), "CAPI", 1_000))
            .collect();
        cands.push(c("x", "203.0.113.1", "CAPI", 1_000));
        let mut b = budget(None);
        b.aggregate_ipv4 = Some(24);
        let (chosen, left) = admit(&cands, &b, &Rules::default()).unwrap();
        assert_eq!(entries(&chosen), ["192.0.2.0/24", "203.0.113.1"]);
        assert_eq!(chosen[0].comment, "cs CAPI 8 addresses");
        assert_eq!(left.len(), 8);
        assert!(left.iter().all(|l| l.reason == Reason::Aggregated));
        // Seven are not enough.
        let (chosen, _) = admit(&cands[1..], &b, &Rules::default()).unwrap();
        assert_eq!(chosen.len(), 8);
        // A never-ban address inside the /24 forbids the aggregate.
        let rules = Rules {
            never_ban: vec!["192.0.2.200/32".parse().unwrap()],
            ..Rules::default()
        };
        let (chosen, _) = admit(&cands, &b, &rules).unwrap();
        assert_eq!(chosen.len(), 9);
    }

    #[test]
    fn decisions_for_one_entry_are_one_candidate_and_expired_ones_none() {
        let cands = [
            c("ban", "192.0.2.1", "CAPI", 1_000),
            c("range", "192.0.2.1", "cscli", 2_000),
            c("gone", "192.0.2.9", "cscli", 50),
        ];
        let (chosen, left) = admit(&cands, &budget(None), &Rules::default()).unwrap();
        assert_eq!(entries(&chosen), ["192.0.2.1"]);
        assert_eq!(chosen[0].comment, "cs cscli crowdsecurity/ssh-bf");
        assert!(left.is_empty());
    }

    #[test]
    fn comments_are_short_printable_and_claim_no_owner() {
        assert_eq!(
            comment("CAPI", "a\nvery long scenario name that goes on"),
            "cs CAPI a very long scenario nam"
        );
        assert_eq!(comment("x f2p:evil/a/1", "s"), "cs x s");
    }

    #[test]
    fn a_bad_aggregate_prefix_is_refused() {
        let mut b = budget(None);
        b.aggregate_ipv4 = Some(32);
        assert!(admit(&[], &b, &Rules::default()).is_err());
    }
}
