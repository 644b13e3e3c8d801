//! What `fail2pvefw dns` keeps: the addresses of host names in an accept
//! list (an IPSet a firewall rule ACCEPTs), through the same queue, order
//! and guard as bans.
//!
//! Each name is a holder, `dns:NAME`, of its addresses' entries in the
//! desired set (permanent rows). [`keep`] turns one lookup into queued
//! events, in ONE transaction with the name's record: a ban for each new
//! address (or one PVE lost), an unban for each address the name no longer
//! resolves to. An unban releases only this name's hold: the entry leaves
//! PVE when no holder wants it, and the host's guard deletes only entries
//! that carry our tag. A failed lookup queues nothing, so its entries stay:
//! a passing DNS failure must not lock the admin out.
//!
//! The record, meta `dns:NAME` (JSON): the IPSet, the addresses of the
//! last successful lookup (never banned while `[dns] never_ban_resolved`),
//! when, and the last failed lookup.
//!
//! An IPSet is a ban list or an accept list, never both: [`keep`] refuses,
//! inside its transaction, an IPSet where any other holder wants a ban.

use super::applied::{self, Change};
use super::db::Db;
use super::desired::{self, DNS, dns_holder};
use super::meta;
use super::queue::{self, Action, CLUSTER_ID, Request};
use rusqlite::{Connection, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What `fail2pvefw dns` remembers of one host name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The accept list its addresses are kept in.
    pub ipset: String,
    /// The entries of the last successful lookup, sorted.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// When it last resolved, Unix seconds.
    #[serde(default)]
    pub resolved: Option<f64>,
    /// When a lookup last failed, if none succeeded since.
    #[serde(default)]
    pub failed: Option<f64>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// Every name's record, by name. An unreadable one is left out (the next
/// run of `dns` for the name writes it anew).
pub fn records(conn: &Connection) -> rusqlite::Result<Vec<(String, Record)>> {
    let mut stmt = conn.prepare(
        "SELECT key, value FROM meta WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
    )?;
    let rows = stmt.query_map(params![DNS], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, json) = row?;
        if let Ok(record) = serde_json::from_str(&json) {
            out.push((key[DNS.len()..].to_string(), record));
        }
    }
    Ok(out)
}

fn record(conn: &Connection, name: &str) -> rusqlite::Result<Option<Record>> {
    Ok(meta::get(conn, &dns_holder(name))?.and_then(|json| serde_json::from_str(&json).ok()))
}

fn store(conn: &Connection, name: &str, record: &Record) -> rusqlite::Result<()> {
    let json = serde_json::to_string(record).expect("a record serialises");
    meta::set(conn, &dns_holder(name), &json)
}

/// What the records tell every command: the accept lists, and the
/// addresses the names resolved to last.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Known {
    /// The IPSets host names are kept in.
    pub accept_lists: Vec<String>,
    /// Each address of the last lookups, with its name.
    pub resolved: Vec<(IpAddr, String)>,
}

pub fn known(conn: &Connection) -> rusqlite::Result<Known> {
    let mut known = Known::default();
    for (name, record) in records(conn)? {
        known.accept_lists.push(record.ipset);
        for entry in &record.addresses {
            if let Ok(addr) = entry.parse() {
                known.resolved.push((addr, name.clone()));
            }
        }
    }
    known.accept_lists.sort();
    known.accept_lists.dedup();
    Ok(known)
}

/// The holders that want bans in `ipset`: anyone but a host name.
pub fn ban_holders(conn: &Connection, ipset: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT holder FROM desired WHERE ipset = ?1
             AND substr(holder, 1, length(?2)) != ?2 ORDER BY holder",
    )?;
    let rows = stmt.query_map(params![ipset, DNS], |row| row.get(0))?;
    rows.collect()
}

/// One lookup of a name: its entries (as PVE stores them), or why not.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    Found(Vec<String>),
    Failed(String),
}

/// What a read of the IPSet just before showed, for one name.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// The resolved entries that no entry in PVE covers.
    pub uncovered: BTreeSet<String>,
    /// This instance's entries for the name (its tag, jail slot `dns`, the
    /// name in the comment), found even without a row (a lost state).
    pub own: BTreeSet<String>,
}

/// The change one lookup makes to a name in its IPSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// New addresses: a ban each.
    pub add: Vec<String>,
    /// Held addresses that no PVE entry covers any more: a ban each.
    pub readd: Vec<String>,
    /// Our own entries of the name that PVE holds without a row: taken
    /// into the desired set, nothing sent.
    pub adopt: Vec<String>,
    /// Addresses it no longer resolves to: an unban each (this name's hold).
    pub remove: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.readd.is_empty() && self.remove.is_empty()
    }
}

/// The change from `held` (the name's rows) and `seen` to `resolved`.
pub fn diff(resolved: &[String], held: &BTreeSet<String>, seen: &Seen) -> Diff {
    let wanted: BTreeSet<&String> = resolved.iter().collect();
    let mut d = Diff::default();
    for entry in &wanted {
        match (held.contains(*entry), seen.own.contains(*entry)) {
            (false, false) => d.add.push(entry.to_string()),
            (false, true) => d.adopt.push(entry.to_string()),
            (true, _) if seen.uncovered.contains(*entry) => d.readd.push(entry.to_string()),
            (true, _) => {}
        }
    }
    d.remove = held
        .union(&seen.own)
        .filter(|e| !wanted.contains(e))
        .cloned()
        .collect();
    d
}

/// One event [`keep`] or [`forget`] queued.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    pub id: i64,
    pub action: Action,
    pub ipset: String,
    pub entry: String,
}

/// What [`keep`] or [`forget`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Kept {
    /// `diff` in `ipset`; `moved`: entries released in other IPSets (the
    /// name was kept elsewhere before); `events`: what was queued.
    Done {
        diff: Diff,
        moved: Vec<(String, String)>,
        events: Vec<Queued>,
    },
    /// The state serves another cluster now: nothing was queued.
    Rebound,
    /// These holders want bans in the IPSet: nothing was queued.
    BanList(Vec<String>),
}

/// The request of a name's event for `entry`.
fn request(name: &str, ipset: &str, entry: &str, now: f64) -> Request {
    Request {
        ip: entry.to_string(),
        ipset: ipset.to_string(),
        time: Some(now),
        dns: Some(name.to_string()),
        ..Request::default()
    }
}

/// Queues one event of `name` for `entry` in `ipset`, inside `tx`.
fn put(
    tx: &Connection,
    name: &str,
    action: Action,
    ipset: &str,
    entry: &str,
    now: f64,
) -> rusqlite::Result<Queued> {
    let req = request(name, ipset, entry, now);
    let id = queue::put(tx, action, entry, &dns_holder(name), &req, now)?;
    Ok(Queued {
        id,
        action,
        ipset: ipset.to_string(),
        entry: entry.to_string(),
    })
}

/// Keeps `name` in `ipset` after `lookup`, with `seen` from a read of the
/// IPSet: queues its change and writes its record, in one transaction, and
/// only while the state serves cluster `bound` and no other holder wants
/// bans in `ipset`. A name kept in another IPSet before moves: its entries
/// there are released. A failed lookup queues nothing.
pub fn keep(
    db: &mut Db,
    bound: &str,
    name: &str,
    ipset: &str,
    lookup: &Lookup,
    seen: &Seen,
    now: f64,
) -> rusqlite::Result<Kept> {
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    if meta::get(&tx, CLUSTER_ID)?.as_deref() != Some(bound) {
        return Ok(Kept::Rebound);
    }
    let holders = ban_holders(&tx, ipset)?;
    if !holders.is_empty() {
        return Ok(Kept::BanList(holders));
    }
    let old = record(&tx, name)?;
    let resolved = match lookup {
        Lookup::Found(entries) => entries,
        Lookup::Failed(why) => {
            let record = Record {
                failed: Some(now),
                error: Some(why.clone()),
                ..old.unwrap_or_else(|| Record {
                    ipset: ipset.to_string(),
                    ..Record::default()
                })
            };
            store(&tx, name, &record)?;
            tx.commit()?;
            return Ok(Kept::Done {
                diff: Diff::default(),
                moved: Vec::new(),
                events: Vec::new(),
            });
        }
    };
    let holder = dns_holder(name);
    let rows = desired::of_holder(&tx, &holder)?;
    let mut events = Vec::new();
    let mut moved = Vec::new();
    for row in rows.iter().filter(|r| r.ipset != ipset) {
        events.push(put(&tx, name, Action::Unban, &row.ipset, &row.entry, now)?);
        moved.push((row.ipset.clone(), row.entry.clone()));
    }
    let held: BTreeSet<String> = rows
        .iter()
        .filter(|r| r.ipset == ipset)
        .map(|r| r.entry.clone())
        .collect();
    let mut sorted = resolved.clone();
    sorted.sort();
    sorted.dedup();
    let d = diff(&sorted, &held, seen);
    for entry in d.add.iter().chain(&d.readd) {
        events.push(put(&tx, name, Action::Ban, ipset, entry, now)?);
    }
    for entry in &d.adopt {
        let json =
            serde_json::to_string(&request(name, ipset, entry, now)).expect("a request serialises");
        desired::add(&tx, ipset, entry, &holder, &json, None)?;
        applied::change(&tx, ipset, entry, &Change::Certain)?;
    }
    for entry in &d.remove {
        events.push(put(&tx, name, Action::Unban, ipset, entry, now)?);
    }
    let record = Record {
        ipset: ipset.to_string(),
        addresses: sorted,
        resolved: Some(now),
        failed: None,
        error: None,
    };
    store(&tx, name, &record)?;
    tx.commit()?;
    Ok(Kept::Done {
        diff: d,
        moved,
        events,
    })
}

/// Stops keeping `name`: releases its hold on every entry (each leaves PVE
/// when no other holder wants it), also on our own entries of it that
/// `seen` found in `ipset` without a row, and forgets its record.
pub fn forget(
    db: &mut Db,
    bound: &str,
    name: &str,
    ipset: &str,
    seen: &Seen,
    now: f64,
) -> rusqlite::Result<Kept> {
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    if meta::get(&tx, CLUSTER_ID)?.as_deref() != Some(bound) {
        return Ok(Kept::Rebound);
    }
    let holder = dns_holder(name);
    let mut gone: BTreeSet<(String, String)> = desired::of_holder(&tx, &holder)?
        .into_iter()
        .map(|row| (row.ipset, row.entry))
        .collect();
    gone.extend(seen.own.iter().map(|e| (ipset.to_string(), e.clone())));
    let mut events = Vec::new();
    let mut d = Diff::default();
    let mut moved = Vec::new();
    for (set, entry) in gone {
        events.push(put(&tx, name, Action::Unban, &set, &entry, now)?);
        if set == ipset {
            d.remove.push(entry);
        } else {
            moved.push((set, entry));
        }
    }
    meta::delete(&tx, &holder)?;
    tx.commit()?;
    Ok(Kept::Done {
        diff: d,
        moved,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> BTreeSet<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    fn strings(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    fn bound(db: &mut Db) -> String {
        meta::set(db.conn(), CLUSTER_ID, "c").unwrap();
        "c".into()
    }

    fn found(entries: &[&str]) -> Lookup {
        Lookup::Found(strings(entries))
    }

    fn events(kept: &Kept) -> usize {
        match kept {
            Kept::Done { events, .. } => events.len(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_diff_adds_re_adds_adopts_and_removes() {
        let seen = Seen {
            uncovered: set(&["192.0.2.2"]),
            own: set(&["192.0.2.4", "192.0.2.5"]),
        };
        let held = set(&["192.0.2.2", "192.0.2.3", "192.0.2.6"]);
        let d = diff(
            &strings(&["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]),
            &held,
            &seen,
        );
        assert_eq!(d.add, ["192.0.2.1"]);
        assert_eq!(d.readd, ["192.0.2.2"]);
        assert_eq!(d.adopt, ["192.0.2.4"]);
        assert_eq!(d.remove, ["192.0.2.5", "192.0.2.6"]);
    }

    #[test]
    fn a_lookup_becomes_holders_and_an_unchanged_one_queues_nothing() {
        let mut db = Db::in_memory();
        let b = bound(&mut db);
        let seen = Seen::default();
        let kept = keep(
            &mut db,
            &b,
            "home.test",
            "trusted",
            &found(&["192.0.2.7", "2001:db8::7"]),
            &seen,
            100.0,
        )
        .unwrap();
        assert_eq!(events(&kept), 2);
        let rows = desired::of_holder(db.conn(), "dns:home.test").unwrap();
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter()
                .all(|r| r.expires.is_none() && r.request.dns.is_some())
        );
        let again = keep(
            &mut db,
            &b,
            "home.test",
            "trusted",
            &found(&["2001:db8::7", "192.0.2.7"]),
            &seen,
            200.0,
        )
        .unwrap();
        assert_eq!(events(&again), 0);
        let known = known(db.conn()).unwrap();
        assert_eq!(known.accept_lists, ["trusted"]);
        assert_eq!(known.resolved.len(), 2);
        assert_eq!(records(db.conn()).unwrap()[0].1.resolved, Some(200.0));
    }

    #[test]
    fn a_failed_lookup_queues_nothing_and_keeps_the_addresses() {
        let mut db = Db::in_memory();
        let b = bound(&mut db);
        let seen = Seen::default();
        keep(
            &mut db,
            &b,
            "home.test",
            "trusted",
            &found(&["192.0.2.7"]),
            &seen,
            1.0,
        )
        .unwrap();
        let failed = Lookup::Failed("no such name".into());
        let kept = keep(&mut db, &b, "home.test", "trusted", &failed, &seen, 2.0).unwrap();
        assert_eq!(events(&kept), 0);
        let (_, r) = &records(db.conn()).unwrap()[0];
        assert_eq!(r.addresses, ["192.0.2.7"]);
        assert_eq!((r.resolved, r.failed), (Some(1.0), Some(2.0)));
        assert_eq!(
            desired::of_holder(db.conn(), "dns:home.test")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn an_ipset_with_bans_is_refused_and_the_name_moves_between_accept_lists() {
        let mut db = Db::in_memory();
        let b = bound(&mut db);
        let seen = Seen::default();
        desired::add(db.conn(), "fail2ban", "192.0.2.9", "jail:sshd", "{}", None).unwrap();
        let kept = keep(
            &mut db,
            &b,
            "home.test",
            "fail2ban",
            &found(&["192.0.2.7"]),
            &seen,
            1.0,
        );
        assert_eq!(kept.unwrap(), Kept::BanList(vec!["jail:sshd".into()]));
        assert!(records(db.conn()).unwrap().is_empty());
        keep(
            &mut db,
            &b,
            "home.test",
            "a",
            &found(&["192.0.2.7"]),
            &seen,
            1.0,
        )
        .unwrap();
        let Kept::Done { moved, diff, .. } = keep(
            &mut db,
            &b,
            "home.test",
            "b",
            &found(&["192.0.2.7"]),
            &seen,
            2.0,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(moved, [("a".to_string(), "192.0.2.7".to_string())]);
        assert_eq!(diff.add, ["192.0.2.7"]);
        let rows = desired::of_holder(db.conn(), "dns:home.test").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].ipset, "b");
        assert!(matches!(
            keep(&mut db, "other", "home.test", "b", &found(&[]), &seen, 3.0).unwrap(),
            Kept::Rebound
        ));
    }

    #[test]
    fn forgetting_releases_every_hold_and_the_record() {
        let mut db = Db::in_memory();
        let b = bound(&mut db);
        let seen = Seen::default();
        keep(
            &mut db,
            &b,
            "home.test",
            "trusted",
            &found(&["192.0.2.7"]),
            &seen,
            1.0,
        )
        .unwrap();
        let orphan = Seen {
            own: set(&["192.0.2.8"]),
            ..Seen::default()
        };
        let kept = forget(&mut db, &b, "home.test", "trusted", &orphan, 2.0).unwrap();
        assert_eq!(events(&kept), 2);
        assert!(
            desired::of_holder(db.conn(), "dns:home.test")
                .unwrap()
                .is_empty()
        );
        assert!(records(db.conn()).unwrap().is_empty());
        assert_eq!(known(db.conn()).unwrap(), Known::default());
    }
}
