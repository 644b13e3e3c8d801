//! What the CrowdSec LAPI holds for our filters (`crowdsec_decisions`), and
//! the bouncer's small values in `meta`.
//!
//! Decisions are keyed by (scope, value, type), never by id: the LAPI
//! streams one decision per key (the one that ends last), sends deletes
//! for ids a bouncer never saw, and a delete may come twice. A full
//! (startup) pull is the whole truth: what it does not list is gone. Each
//! row keeps what the policy's `validate` and the host's rules made of its
//! value (`entry`), and what became of it (`verdict`, `why`) for `status`.

use super::meta;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;

/// Meta keys.
pub const SOURCE: &str = "crowdsec.source";
pub const GENERATION: &str = "crowdsec.generation";
pub const MAX_ID: &str = "crowdsec.max_id";
pub const LAST_OK: &str = "crowdsec.last_ok";
pub const LAST_FULL: &str = "crowdsec.last_full";
pub const FAILING_SINCE: &str = "crowdsec.failing_since";
pub const FAILURES: &str = "crowdsec.failures";
pub const FAILURES_TOTAL: &str = "crowdsec.failures_total";
pub const LAST_ERROR: &str = "crowdsec.last_error";
pub const URL: &str = "crowdsec.url";
/// Bytes of `cluster.fw` left for CrowdSec's entries, measured at a full pull.
pub const ROOM: &str = "crowdsec.room";

/// The holder of CrowdSec's wishes in `desired`.
pub const HOLDER: &str = "crowdsec";
/// The jail the requests for CrowdSec's entries name (see `admission` in
/// the WIT): the tag reads `f2p:INSTANCE/crowdsec/EXPIRY`.
pub const JAIL: &str = "crowdsec";

/// A verdict: what became of a decision.
pub const NEW: &str = "new";
pub const CHOSEN: &str = "chosen";
pub const INVALID: &str = "invalid";
pub const RULE: &str = "rule";

/// A decision as it arrived: `expires` worked out from its duration on
/// arrival, by our clock (the LAPI sends time left, so no clock skew).
#[derive(Clone, Debug, PartialEq)]
pub struct Incoming {
    pub scope: String,
    pub value: String,
    pub kind: String,
    pub id: i64,
    pub origin: String,
    pub scenario: String,
    pub expires: i64,
}

/// What a merge changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    pub added: usize,
    pub removed: usize,
    /// A delta listed an id at or below the largest seen for a key we do
    /// not hold under it: the LAPI's ids went back (a new database?).
    pub ids_went_back: Option<(i64, i64)>,
}

/// One decision row.
#[derive(Clone, Debug)]
pub struct Row {
    pub rowid: i64,
    pub scope: String,
    pub value: String,
    pub kind: String,
    pub lapi_id: i64,
    pub origin: String,
    pub scenario: String,
    pub expires: i64,
    pub seen: i64,
    pub entry: Option<String>,
    pub verdict: String,
    pub why: Option<String>,
}

fn get_i64(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    Ok(meta::get(conn, key)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

pub fn get_f64(conn: &Connection, key: &str) -> rusqlite::Result<Option<f64>> {
    Ok(meta::get(conn, key)?
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite()))
}

/// Merges one answer, inside the caller's transaction. A full pull
/// replaces what we hold; a delta removes its `deleted` keys first, then
/// adds or renews its `new` ones.
pub fn merge(
    tx: &Connection,
    startup: bool,
    deleted: &[Incoming],
    new: &[Incoming],
    now: i64,
) -> rusqlite::Result<Merged> {
    let mut merged = Merged::default();
    let mut generation = get_i64(tx, GENERATION)?;
    if startup {
        generation += 1;
        meta::set(tx, GENERATION, &generation.to_string())?;
    } else {
        for d in deleted {
            merged.removed += tx.execute(
                "DELETE FROM crowdsec_decisions WHERE scope = ?1 AND value = ?2 AND type = ?3",
                params![d.scope, d.value, d.kind],
            )?;
        }
    }
    let max_id = get_i64(tx, MAX_ID)?;
    let mut top = if startup { 0 } else { max_id };
    let mut held = tx.prepare(
        "SELECT lapi_id FROM crowdsec_decisions WHERE scope = ?1 AND value = ?2 AND type = ?3",
    )?;
    let mut upsert = tx.prepare(
        "INSERT INTO crowdsec_decisions (scope, value, type, lapi_id, origin, scenario, expires, seen, generation)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (scope, value, type) DO UPDATE SET lapi_id = excluded.lapi_id,
             origin = excluded.origin, scenario = excluded.scenario, expires = excluded.expires,
             generation = excluded.generation",
    )?;
    for d in new {
        let before: Option<i64> = held
            .query_row(params![d.scope, d.value, d.kind], |r| r.get(0))
            .optional()?;
        if !startup && d.id <= max_id && before != Some(d.id) && merged.ids_went_back.is_none() {
            merged.ids_went_back = Some((max_id, d.id));
        }
        if before.is_none() {
            merged.added += 1;
        }
        upsert.execute(params![
            d.scope, d.value, d.kind, d.id, d.origin, d.scenario, d.expires, now, generation
        ])?;
        top = top.max(d.id);
    }
    for d in deleted {
        top = top.max(d.id);
    }
    drop((held, upsert));
    if startup {
        merged.removed += tx.execute(
            "DELETE FROM crowdsec_decisions WHERE generation < ?1",
            params![generation],
        )?;
    }
    meta::set(tx, MAX_ID, &top.to_string())?;
    Ok(merged)
}

/// Drops the decisions whose time is over, by our own clock (also while
/// the LAPI is down: a decision that ran out has run out there too).
pub fn expire(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    conn.execute(
        "DELETE FROM crowdsec_decisions WHERE expires <= ?1",
        params![now],
    )
}

/// Every row, or only those not yet validated.
pub fn rows(conn: &Connection, only_new: bool) -> rusqlite::Result<Vec<Row>> {
    let filter = if only_new {
        "WHERE verdict = 'new'"
    } else {
        ""
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT rowid, scope, value, type, lapi_id, origin, scenario, expires, seen, entry, verdict, why
         FROM crowdsec_decisions {filter} ORDER BY rowid"
    ))?;
    stmt.query_map([], |r| {
        Ok(Row {
            rowid: r.get(0)?,
            scope: r.get(1)?,
            value: r.get(2)?,
            kind: r.get(3)?,
            lapi_id: r.get(4)?,
            origin: r.get(5)?,
            scenario: r.get(6)?,
            expires: r.get(7)?,
            seen: r.get(8)?,
            entry: r.get(9)?,
            verdict: r.get(10)?,
            why: r.get(11)?,
        })
    })?
    .collect()
}

/// Validates again at the next cycle (a full pull: the rules may have
/// changed).
pub fn revalidate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("UPDATE crowdsec_decisions SET verdict = 'new'", [])?;
    Ok(())
}

/// What a row's value became: its entry and verdict, with words.
pub fn set(
    conn: &Connection,
    rowid: i64,
    entry: Option<&str>,
    verdict: &str,
    why: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE crowdsec_decisions SET entry = ?2, verdict = ?3, why = ?4 WHERE rowid = ?1",
        params![rowid, entry, verdict, why],
    )?;
    Ok(())
}

/// Sets a verdict, keeping the entry.
pub fn set_verdict(
    conn: &Connection,
    rowid: i64,
    verdict: &str,
    why: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE crowdsec_decisions SET verdict = ?2, why = ?3 WHERE rowid = ?1",
        params![rowid, verdict, why],
    )?;
    Ok(())
}

/// How many decisions have one verdict, and up to three of them (value,
/// words).
pub type Tally = (u64, Vec<(String, String)>);

/// The [`Tally`] of each verdict.
pub fn verdicts(conn: &Connection) -> rusqlite::Result<BTreeMap<String, Tally>> {
    let mut out: BTreeMap<String, Tally> = BTreeMap::new();
    let mut stmt =
        conn.prepare("SELECT verdict, COUNT(*) FROM crowdsec_decisions GROUP BY verdict")?;
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (verdict, n) = row?;
        out.insert(verdict, (n as u64, Vec::new()));
    }
    let mut examples = conn.prepare(
        "SELECT value, COALESCE(why, '') FROM crowdsec_decisions WHERE verdict = ?1
         ORDER BY rowid LIMIT 3",
    )?;
    for (verdict, (_, list)) in out.iter_mut() {
        for row in examples.query_map(params![verdict], |r| Ok((r.get(0)?, r.get(1)?)))? {
            list.push(row?);
        }
    }
    Ok(out)
}

/// The decisions we hold.
pub fn count(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COUNT(*) FROM crowdsec_decisions", [], |r| {
        r.get::<_, i64>(0).map(|n| n as u64)
    })
}

/// Chosen decisions whose entry PVE holds of ours (`applied`).
pub fn chosen_applied(conn: &Connection, ipset: &str) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT COUNT(DISTINCT d.entry), COUNT(DISTINCT a.entry) FROM desired d
         LEFT JOIN applied a ON a.ipset = d.ipset AND a.entry = d.entry
         WHERE d.holder = ?1 AND d.ipset = ?2",
        params![HOLDER, ipset],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::db::Db;

    fn d(value: &str, id: i64, expires: i64) -> Incoming {
        Incoming {
            scope: "Ip".into(),
            value: value.into(),
            kind: "ban".into(),
            id,
            origin: "cscli".into(),
            scenario: "s".into(),
            expires,
        }
    }

    fn values(db: &Db) -> Vec<String> {
        rows(db.conn(), false)
            .unwrap()
            .into_iter()
            .map(|r| r.value)
            .collect()
    }

    #[test]
    fn a_full_pull_is_the_whole_truth_and_a_delta_deletes_before_it_adds() {
        let db = Db::in_memory();
        let c = db.conn();
        let m = merge(
            c,
            true,
            &[],
            &[d("192.0.2.1", 1, 100), d("192.0.2.2", 2, 100)],
            10,
        )
        .unwrap();
        assert_eq!((m.added, m.removed), (2, 0));
        // A delta: a delete of an id never seen, twice, and a re-add.
        let m = merge(
            c,
            false,
            &[
                d("192.0.2.1", 7, -1),
                d("192.0.2.1", 7, -1),
                d("192.0.2.9", 8, -1),
            ],
            &[d("192.0.2.1", 9, 200), d("192.0.2.3", 10, 100)],
            20,
        )
        .unwrap();
        assert_eq!((m.added, m.removed, m.ids_went_back), (2, 1, None));
        assert_eq!(values(&db), ["192.0.2.2", "192.0.2.1", "192.0.2.3"]);
        // The next full pull lacks 192.0.2.2: it goes; `seen` stays.
        let m = merge(
            c,
            true,
            &[],
            &[d("192.0.2.1", 9, 300), d("192.0.2.3", 10, 100)],
            30,
        )
        .unwrap();
        assert_eq!((m.added, m.removed), (0, 1));
        let rows = rows(c, false).unwrap();
        // When we first saw it stays across pulls.
        assert_eq!(
            (rows[0].value.as_str(), rows[0].seen, rows[0].expires),
            ("192.0.2.1", 20, 300)
        );
    }

    #[test]
    fn ids_going_back_are_noticed() {
        let db = Db::in_memory();
        let c = db.conn();
        merge(c, true, &[], &[d("192.0.2.1", 500, 100)], 10).unwrap();
        let m = merge(c, false, &[], &[d("192.0.2.7", 3, 100)], 20).unwrap();
        assert_eq!(m.ids_went_back, Some((500, 3)));
    }

    #[test]
    fn expired_decisions_leave_by_our_clock() {
        let db = Db::in_memory();
        let c = db.conn();
        merge(
            c,
            true,
            &[],
            &[d("192.0.2.1", 1, 100), d("192.0.2.2", 2, 50)],
            10,
        )
        .unwrap();
        assert_eq!(expire(c, 60).unwrap(), 1);
        assert_eq!(values(&db), ["192.0.2.1"]);
    }
}
