//! One queue per cluster, and the PVE nodes' own addresses.
//!
//! The state directory records which cluster it serves (`state::cluster`):
//! the nodes, their resolved addresses and the token id. A configuration
//! names the same cluster when it names at least one recorded node, by
//! `host:port` or by address and port. Otherwise the state is re-bound
//! when it holds nothing (no events, no wishes, nothing applied), and
//! refused when it does (exit 3): two configurations sharing one state
//! directory would send one cluster's events to the other.
//!
//! Node names (`[pve] host`/`hosts`) are resolved once and remembered, so a
//! ban makes no DNS lookup; `sync` refreshes them. The addresses go to the
//! policy (`pve-hosts`) and to the host's rule that never bans a node.
//!
//! What `fail2pvefw dns` keeps comes along ([`dns_known`]): its accept
//! lists and, with `[dns] never_ban_resolved`, the addresses its names
//! resolved to last, which no ban may hold.

use crate::capabilities::guard::EntryRules;
use crate::config::{Config, HostPort, Rules};
use crate::error::{Failure, Result};
use crate::log;
use crate::state::cluster::{self, Record};
use crate::state::db::Db;
use crate::state::dns::{self, Known};
use crate::state::{queue, stats};
use rusqlite::TransactionBehavior;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use super::errors::db_failure;

/// The cluster this run serves, checked against the state.
#[derive(Clone, Debug)]
pub struct Bound {
    /// The state's binding id; the queue checks it in every transaction.
    pub id: String,
    /// The configured nodes' own addresses: IP literals and resolved names.
    pub node_addresses: Vec<IpAddr>,
    /// `fail2pvefw dns`'s accept lists and protected addresses.
    pub dns: Known,
}

impl Bound {
    /// The rules the host checks an entry against before it queues a ban
    /// (fail2ban's, CrowdSec's): `[rules]`, the nodes' addresses and the
    /// host names' resolved ones. The guard applies the same when it is sent.
    pub fn entry_rules(&self, rules: &Rules) -> EntryRules {
        EntryRules::new(rules, &self.node_addresses).with_resolved(self.dns.resolved.clone())
    }
}

/// What the state and `[dns]` say of `fail2pvefw dns`: the IPSets it keeps
/// names in and `[dns] ipset` are accept lists, except `[pve] ipset`,
/// which bans go to whatever else says; the names' last addresses are
/// protected unless `never_ban_resolved = false`.
pub fn dns_known(config: &Config, db: &Db) -> Result<Known> {
    let mut known = dns::known(db.conn()).map_err(db_failure)?;
    known.accept_lists.extend(config.dns.ipset.clone());
    known.accept_lists.retain(|ipset| *ipset != config.ipset);
    known.accept_lists.sort();
    known.accept_lists.dedup();
    if !config.dns.never_ban_resolved {
        known.resolved.clear();
    }
    Ok(known)
}

/// The configured nodes, `[pve] host` first.
fn nodes(config: &Config) -> Vec<&HostPort> {
    std::iter::once(&config.pve.host)
        .chain(&config.pve.fallbacks)
        .collect()
}

/// The nodes given as IP literals: known without any lookup.
pub fn literal_addresses(config: &Config) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = nodes(config)
        .into_iter()
        .filter_map(|n| n.host.parse().ok())
        .collect();
    out.dedup();
    out
}

/// Resolves the node names (not the literals), one lookup each. A name that
/// does not resolve is remembered with no address (and a warning): it is
/// tried again by `sync`, not on every ban.
fn resolve(config: &Config, keep: Option<&Record>) -> BTreeMap<String, Vec<IpAddr>> {
    let mut out = BTreeMap::new();
    for node in nodes(config) {
        if node.host.parse::<IpAddr>().is_ok() {
            continue;
        }
        let key = node.to_string();
        if let Some(known) = keep.and_then(|r| r.addresses.get(&key)) {
            out.insert(key, known.clone());
            continue;
        }
        let found: Vec<IpAddr> = match (node.host.as_str(), node.port).to_socket_addrs() {
            Ok(addrs) => {
                let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
                ips.sort();
                ips.dedup();
                ips
            }
            Err(e) => {
                log::warn(&format!(
                    "cannot resolve the PVE node '{}': {e}; the rule that never bans a node \
                     covers it again when `fail2pvefw sync` resolves it",
                    node.host
                ));
                Vec::new()
            }
        };
        log::debug(&format!("PVE node {key} resolves to {found:?}"));
        out.insert(key, found);
    }
    out
}

fn record_for(config: &Config, addresses: BTreeMap<String, Vec<IpAddr>>) -> Record {
    Record {
        nodes: nodes(config).iter().map(|n| n.to_string()).collect(),
        addresses,
        token: config.pve.token.id.clone(),
        resolved: queue::now(),
    }
}

/// Every (address, port) a record's nodes stand for.
fn sockets(record: &Record) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for node in &record.nodes {
        let Ok(hp) = HostPort::parse(node) else {
            continue;
        };
        if let Ok(ip) = hp.host.parse::<IpAddr>() {
            out.push(SocketAddr::new(ip, hp.port));
        }
        for ip in record.addresses.get(node).into_iter().flatten() {
            out.push(SocketAddr::new(*ip, hp.port));
        }
    }
    out
}

fn node_addresses(config: &Config, record: &Record) -> Vec<IpAddr> {
    let mut out = literal_addresses(config);
    for node in nodes(config) {
        out.extend(
            record
                .addresses
                .get(&node.to_string())
                .into_iter()
                .flatten(),
        );
    }
    out.sort();
    out.dedup();
    out
}

/// Checks that the state serves this configuration's cluster (binding a new
/// or empty state to it), and gives the nodes' addresses. With `refresh`
/// (`sync`), the node names are resolved again.
pub fn bind(config: &Config, db: &mut Db, refresh: bool) -> Result<Bound> {
    for _ in 0..3 {
        if let Some(bound) = try_bind(config, db, refresh)? {
            return Ok(bound);
        }
        // Another process bound or re-bound the state meanwhile: look again.
    }
    Err(Failure::config(format!(
        "the state directory '{}' keeps changing which PVE cluster it serves",
        config.state_dir.display()
    ))
    .hint(
        "Two configurations for different clusters use it at once: give each its own [state] dir.",
    ))
}

fn try_bind(config: &Config, db: &mut Db, refresh: bool) -> Result<Option<Bound>> {
    let wanted: Vec<String> = nodes(config).iter().map(|n| n.to_string()).collect();
    let loaded = cluster::load(db.conn()).map_err(db_failure)?;
    let (expected, old) = match loaded {
        None => (None, None),
        Some((id, Ok(record))) => (Some(id), Some(record)),
        Some((id, Err(why))) => {
            log::warn(&format!(
                "the state's record of its PVE cluster is unreadable ({why}); it is written anew for this configuration"
            ));
            (Some(id), None)
        }
    };
    let same_by_name = old
        .as_ref()
        .is_some_and(|r| r.nodes.iter().any(|n| wanted.contains(n)));
    if let (true, Some(record), Some(id)) = (same_by_name, &old, &expected) {
        // The common case, a ban: nothing to look up, nothing to write.
        let unchanged = record.nodes == wanted && record.token == config.pve.token.id;
        if unchanged && !refresh {
            return Ok(Some(Bound {
                id: id.clone(),
                node_addresses: node_addresses(config, record),
                dns: Known::default(),
            }));
        }
    }
    let keep = if refresh { None } else { old.as_ref() };
    let fresh = record_for(config, resolve(config, keep));
    let same = same_by_name
        || old.as_ref().is_some_and(|r| {
            let theirs = sockets(r);
            sockets(&fresh).iter().any(|s| theirs.contains(s))
        })
        || (expected.is_some() && old.is_none());
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_failure)?;
    let id = match (&expected, same) {
        (Some(id), true) => id.clone(),
        (Some(_), false) if !stats::is_empty(&tx).map_err(db_failure)? => {
            drop(tx);
            return Err(refusal(
                config,
                old.as_ref().expect("a record when not the same"),
            ));
        }
        _ => cluster::new_id(),
    };
    if !cluster::store(&tx, expected.as_deref(), &id, &fresh).map_err(db_failure)? {
        return Ok(None);
    }
    tx.commit().map_err(db_failure)?;
    if expected.is_some() && !same {
        log::info(&format!(
            "the state directory '{}' held nothing and now serves the PVE cluster of {}",
            config.state_dir.display(),
            wanted.join(", ")
        ));
    }
    Ok(Some(Bound {
        id,
        node_addresses: node_addresses(config, &fresh),
        dns: Known::default(),
    }))
}

fn refusal(config: &Config, theirs: &Record) -> Failure {
    let ours: Vec<String> = nodes(config).iter().map(|n| n.to_string()).collect();
    let dir = config.state_dir.display().to_string();
    let suffix: String = config
        .pve
        .host
        .host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    Failure::config(format!(
        "the state directory '{dir}' serves another PVE cluster (nodes {}, token {}); \
         this configuration names {}",
        theirs.nodes.join(", "),
        if theirs.token.is_empty() { "unknown" } else { &theirs.token },
        ours.join(", ")
    ))
    .hint(format!(
        "Give each cluster its own state directory: set [state] dir = \"{dir}-{suffix}\" in '{}'. \
         Nothing was queued or sent; the other cluster's events stay queued for its own configuration.",
        config.path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_pair_addresses_with_ports() {
        let record = Record {
            nodes: vec!["192.0.2.10:8006".into(), "pve2.test:8007".into()],
            addresses: [(
                "pve2.test:8007".to_string(),
                vec!["192.0.2.11".parse().unwrap()],
            )]
            .into(),
            ..Record::default()
        };
        let got: Vec<String> = sockets(&record).iter().map(|s| s.to_string()).collect();
        assert_eq!(got, ["192.0.2.10:8006", "192.0.2.11:8007"]);
    }
}
