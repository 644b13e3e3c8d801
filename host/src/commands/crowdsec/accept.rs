//! The host's own rules over the policy's `admit`: a policy is trusted to
//! be clever, not safe. What it chose is kept only when a decision asks
//! for it, or it is a network the guard allows that holds one; the cap and
//! the bytes hold in the answer's order; comments are one short line that
//! claims no owner.

use super::budget::Budget;
use crate::bindings::admission;
use crate::capabilities::guard::entry::network;
use crate::capabilities::guard::{EntryRules, Purpose};
use crate::log;
use crate::state::crowdsec::Row;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap, HashSet};

/// One candidate as the host keeps it.
pub struct Cand<'a> {
    pub row: &'a Row,
    pub entry: &'a str,
    pub net: Option<IpNet>,
    pub local: bool,
}

/// Local decisions: a local agent's and the admin's (`cscli`).
pub fn is_local(origin: &str) -> bool {
    matches!(origin, "crowdsec" | "cscli" | "cscli-import")
}

/// A chosen entry the host accepted.
pub struct Accepted {
    pub entry: String,
    pub comment: String,
    /// The latest expiry among the decisions it covers.
    pub expires: i64,
    /// Whether it covers a local decision (its lane).
    pub local: bool,
}

/// The host's own rules over the policy's answer: an entry that is no
/// candidate's, and no network that passes the guard and contains one, is
/// dropped; past the cap or the bytes (as PVE writes the lines), in the
/// answer's order, the rest is left out.
pub fn hold_to_rules(
    chosen: &[admission::Chosen],
    cands: &[Cand],
    rules: &EntryRules,
    budget: &Budget,
    shared: &HashSet<&str>,
    instance: &str,
) -> Vec<Accepted> {
    let mut by_entry: HashMap<&str, Vec<&Cand>> = HashMap::new();
    for c in cands {
        by_entry.entry(c.entry).or_default().push(c);
    }
    let mut out: Vec<Accepted> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let (mut count, mut bytes) = (0u64, 0u64);
    let (mut invented, mut over) = (Vec::new(), 0usize);
    for ch in chosen {
        if !seen.insert(ch.entry.as_str()) {
            continue;
        }
        let covered = by_entry.get(ch.entry.as_str());
        if covered.is_none() {
            // An aggregate: a network the guard allows, holding a candidate.
            let holds = network(&ch.entry).is_some_and(|n| {
                rules.check(&ch.entry, Purpose::Ban).is_ok()
                    && cands.iter().any(|c| c.net.is_some_and(|m| n.contains(&m)))
            });
            if !holds {
                invented.push(ch.entry.clone());
                continue;
            }
        }
        let comment = tidy(&ch.comment);
        let expires = covered
            .and_then(|cs| cs.iter().map(|c| c.row.expires).max())
            .unwrap_or(0);
        if !shared.contains(ch.entry.as_str()) {
            // Expiries of a time to come all have as many digits.
            let at = expires.max(budget.now + 1);
            let line = super::budget::line_bytes(&ch.entry, &comment, instance, at);
            if budget.max_entries.is_some_and(|m| count >= u64::from(m))
                || bytes + line > budget.max_bytes
            {
                over += 1;
                continue;
            }
            count += 1;
            bytes += line;
        }
        out.push(Accepted {
            entry: ch.entry.clone(),
            comment,
            expires,
            local: covered.is_some_and(|cs| cs.iter().any(|c| c.local)),
        });
    }
    // A network holds the decisions inside it: its expiry is the latest of
    // theirs, its lane the best. One lookup per candidate and prefix length.
    let mut nets: BTreeMap<(bool, u8), HashMap<IpNet, usize>> = BTreeMap::new();
    for (i, a) in out.iter().enumerate() {
        if let Some(n) = network(&a.entry).filter(|n| n.prefix_len() < n.max_prefix_len()) {
            let v4 = matches!(n, IpNet::V4(_));
            nets.entry((v4, n.prefix_len())).or_default().insert(n, i);
        }
    }
    if !nets.is_empty() {
        for c in cands {
            let Some(m) = c.net else { continue };
            let v4 = matches!(m, IpNet::V4(_));
            for ((family, len), by_net) in &nets {
                if *family != v4 || *len > m.prefix_len() {
                    continue;
                }
                let Ok(wide) = IpNet::new(m.addr(), *len) else {
                    continue;
                };
                if let Some(&i) = by_net.get(&wide.trunc()) {
                    out[i].expires = out[i].expires.max(c.row.expires);
                    out[i].local |= c.local;
                }
            }
        }
    }
    if let Some(first) = invented.first() {
        log::warn(&format!(
            "crowdsec: the policy chose {} entr{} that no decision asks for and no allowed network holds (e.g. '{first}'); the host left {} out",
            invented.len(),
            if invented.len() == 1 { "y" } else { "ies" },
            if invented.len() == 1 { "it" } else { "them" },
        ));
    }
    if over > 0 {
        log::warn(&format!(
            "crowdsec: the policy chose {over} entr{} beyond the budget ({}); the host left {} out",
            if over == 1 { "y" } else { "ies" },
            budget.entries_words(),
            if over == 1 { "it" } else { "them" },
        ));
    }
    out.into_iter().filter(|a| a.expires > budget.now).collect()
}

/// Networks by family and prefix length: which one holds a network, with
/// one lookup per prefix length.
pub struct NetIndex<'a> {
    by_len: BTreeMap<(bool, u8), HashMap<IpNet, &'a str>>,
}

impl<'a> NetIndex<'a> {
    pub fn new(entries: impl Iterator<Item = &'a str>) -> NetIndex<'a> {
        let mut by_len: BTreeMap<(bool, u8), HashMap<IpNet, &'a str>> = BTreeMap::new();
        for entry in entries {
            if let Some(n) = network(entry).filter(|n| n.prefix_len() < n.max_prefix_len()) {
                let v4 = matches!(n, IpNet::V4(_));
                by_len
                    .entry((v4, n.prefix_len()))
                    .or_default()
                    .insert(n, entry);
            }
        }
        NetIndex { by_len }
    }

    /// The widest network strictly around `net`.
    pub fn widest_around(&self, net: IpNet) -> Option<&'a str> {
        let v4 = matches!(net, IpNet::V4(_));
        self.by_len
            .iter()
            .filter(|((family, len), _)| *family == v4 && *len < net.prefix_len())
            .find_map(|((_, len), by_net)| {
                let wide = IpNet::new(net.addr(), *len).ok()?.trunc();
                by_net.get(&wide).copied()
            })
    }
}

/// A comment fit for `cluster.fw`: one line, short, claiming no owner.
fn tidy(comment: &str) -> String {
    let text: String = log::sanitize(comment)
        .split(' ')
        .filter(|w| !w.starts_with("f2p:"))
        .collect::<Vec<_>>()
        .join(" ");
    text.trim().chars().take(100).collect()
}
