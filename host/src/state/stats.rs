//! What the state holds, in figures (`status`, the metrics), and whether it
//! holds anything at all (a state that holds nothing may serve another
//! cluster).

use super::db::Db;
use super::request::now;
use super::{desired, holds, meta};
use rusqlite::{Connection, params};
use serde::Serialize;
use std::collections::BTreeMap;

/// Whether the state holds anything of a cluster: events, wishes, or
/// entries PVE holds of ours. An empty state may serve another cluster.
pub fn is_empty(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT NOT EXISTS (SELECT 1 FROM events) AND NOT EXISTS (SELECT 1 FROM desired)
             AND NOT EXISTS (SELECT 1 FROM applied)",
        [],
        |row| row.get(0),
    )
}

/// Queue figures for `status`.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub pending: u64,
    pub failed: u64,
    pub oldest_pending_age_secs: Option<f64>,
    /// Entries wanted banned in PVE now (by any live holder but a host
    /// name: those are kept in accept lists, not banned).
    pub desired: u64,
    /// Entries wanted banned, per holder (`jail:sshd`, `jail:-`, …).
    pub holders: BTreeMap<String, u64>,
    /// Entries waiting out a back-off.
    pub held_entries: u64,
    pub last_error: Option<String>,
}

pub fn stats(db: &Db) -> rusqlite::Result<Stats> {
    let conn = db.conn();
    let now = now();
    let events = |failed: i64| {
        conn.query_row(
            "SELECT COUNT(*) FROM events WHERE failed = ?1",
            params![failed],
            |row| row.get::<_, i64>(0).map(|n| n as u64),
        )
    };
    let oldest: Option<f64> = conn.query_row(
        "SELECT MIN(created) FROM events WHERE failed = 0",
        [],
        |row| row.get(0),
    )?;
    let live = format!(
        "({} IS NULL OR {} > ?1) AND substr(holder, 1, {}) != '{}'",
        desired::EXPIRES,
        desired::EXPIRES,
        desired::DNS.len(),
        desired::DNS
    );
    let mut holders = BTreeMap::new();
    let mut stmt = conn.prepare(&format!(
        "SELECT holder, COUNT(*) FROM desired WHERE {live} GROUP BY holder ORDER BY holder"
    ))?;
    for row in stmt.query_map(params![now as i64], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
    })? {
        let (holder, n) = row?;
        holders.insert(holder, n);
    }
    Ok(Stats {
        pending: events(0)?,
        failed: events(1)?,
        oldest_pending_age_secs: oldest.map(|t| (now - t).max(0.0)),
        desired: conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM (SELECT DISTINCT ipset, entry FROM desired WHERE {live})"
            ),
            params![now as i64],
            |row| row.get::<_, i64>(0).map(|n| n as u64),
        )?,
        holders,
        held_entries: holds::held_entries(conn)?,
        last_error: meta::get(conn, "last_error")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::desired::jail_holder;
    use crate::state::queue::{Action, Request, enqueue};

    fn put(db: &mut Db, r: &Request) {
        let holder = jail_holder(r.jail.as_deref(), true);
        enqueue(db, Action::Ban, &r.ip, &holder, r, None)
            .unwrap()
            .unwrap();
    }

    fn jailed(ip: &str, jail: &str) -> Request {
        Request {
            ip: ip.into(),
            ipset: "f2b".into(),
            jail: Some(jail.into()),
            ..Request::default()
        }
    }

    #[test]
    fn stats_count_live_entries_per_holder() {
        let mut db = Db::in_memory();
        put(&mut db, &jailed("192.0.2.1", "sshd"));
        put(&mut db, &jailed("192.0.2.1", "recidive"));
        put(
            &mut db,
            &Request {
                bantime: Some(1),
                time: Some(5.0),
                ..jailed("192.0.2.2", "sshd")
            },
        );
        let s = stats(&db).unwrap();
        assert_eq!(s.desired, 1);
        assert_eq!(s.holders.get("jail:sshd"), Some(&1));
        assert_eq!(s.holders.get("jail:recidive"), Some(&1));
        // A host name's entry is no ban.
        crate::state::desired::add(
            db.conn(),
            "trusted",
            "192.0.2.7",
            "dns:home.test",
            "{}",
            None,
        )
        .unwrap();
        let s = stats(&db).unwrap();
        assert_eq!((s.desired, s.holders.len()), (1, 2));
        assert!(!is_empty(db.conn()).unwrap());
    }
}
