//! Which PVE cluster this state serves, kept in `meta`: the nodes (as
//! `host:port`), the addresses their names resolved to, the token id, and
//! an id that changes only when the state is bound to another cluster.
//!
//! The queue's events belong to the cluster the state serves: `enqueue`
//! and `ready` check the id inside their transaction, so an event can
//! never be queued for one cluster and sent to another (`commands::cluster`
//! decides whether a configuration names the same cluster).

use super::meta;
use super::queue::CLUSTER_ID;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

const RECORD: &str = "cluster";

/// What the state remembers of its cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The configured nodes, `host:port`, `[pve] host` first.
    pub nodes: Vec<String>,
    /// The addresses each node NAME resolved to (IP literals need none).
    #[serde(default)]
    pub addresses: BTreeMap<String, Vec<IpAddr>>,
    /// The API token id (never the secret).
    #[serde(default)]
    pub token: String,
    /// When the names were last resolved, Unix seconds.
    #[serde(default)]
    pub resolved: f64,
}

/// The record and its id, if the state serves a cluster. A record that does
/// not parse is `Err` with the reason (the caller decides).
pub fn load(conn: &Connection) -> rusqlite::Result<Option<(String, Result<Record, String>)>> {
    let Some(id) = meta::get(conn, CLUSTER_ID)? else {
        return Ok(None);
    };
    let record = match meta::get(conn, RECORD)? {
        Some(json) => serde_json::from_str(&json).map_err(|e| e.to_string()),
        None => Err("no record".to_string()),
    };
    Ok(Some((id, record)))
}

/// Writes the record under `id` when the state's id is still `expected`
/// (`None`: unbound); returns whether it did. The caller holds a write
/// transaction.
pub fn store(
    conn: &Connection,
    expected: Option<&str>,
    id: &str,
    record: &Record,
) -> rusqlite::Result<bool> {
    if meta::get(conn, CLUSTER_ID)?.as_deref() != expected {
        return Ok(false);
    }
    meta::set(conn, CLUSTER_ID, id)?;
    meta::set(
        conn,
        RECORD,
        &serde_json::to_string(record).expect("a record serialises"),
    )?;
    Ok(true)
}

/// A new id for a binding: unique enough across the processes of one host.
pub fn new_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos:x}-{:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::db::Db;

    #[test]
    fn a_record_is_stored_only_over_the_expected_id() {
        let db = Db::in_memory();
        let c = db.conn();
        assert!(load(c).unwrap().is_none());
        let rec = Record {
            nodes: vec!["pve1.test:8006".into()],
            token: "a@pve!b".into(),
            ..Record::default()
        };
        assert!(store(c, None, "one", &rec).unwrap());
        assert!(!store(c, None, "two", &rec).unwrap());
        assert!(store(c, Some("one"), "one", &rec).unwrap());
        let (id, got) = load(c).unwrap().unwrap();
        assert_eq!((id.as_str(), got.unwrap()), ("one", rec));
        meta::set(c, RECORD, "{garbage").unwrap();
        assert!(load(c).unwrap().unwrap().1.is_err());
    }
}
