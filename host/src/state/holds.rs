//! Back-off per entry (`holds`), and the hold of the whole queue.
//!
//! A try that PVE may answer later (unreachable, busy) holds its ENTRY:
//! none of the entry's events is sent until the hold ends, including ones
//! queued after it, so the events of one entry always take effect in
//! commit order. A failure a person must fix (a 401, a 403, no IPSet) holds
//! the whole queue for the background drainer as well: every later event
//! would fail the same way. `sync` and `-f` clear both (someone is waiting
//! for the outcome).

use super::meta;
use super::request::now;
use rusqlite::{Connection, OptionalExtension, params};

/// The meta key of the queue's hold: until when (Unix seconds).
const QUEUE_HELD_UNTIL: &str = "queue_held_until";

/// 1 s, 2 s, 4 s … up to 5 minutes between tries of one entry.
pub fn delay(attempts: u32) -> f64 {
    2f64.powi(attempts.min(9) as i32).min(300.0)
}

/// Holds the entry after a failed try; returns the seconds until its next.
pub fn back_off(conn: &Connection, ipset: &str, entry: &str, error: &str) -> rusqlite::Result<f64> {
    let attempts: u32 = conn
        .query_row(
            "SELECT attempts FROM holds WHERE ipset = ?1 AND entry = ?2",
            params![ipset, entry],
            |row| row.get::<_, i64>(0),
        )
        .optional()?
        .map_or(0, |n| n.clamp(0, 1000) as u32);
    let wait = delay(attempts);
    conn.execute(
        "INSERT INTO holds (ipset, entry, next_try, attempts, last_error) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (ipset, entry) DO UPDATE SET next_try = excluded.next_try,
             attempts = excluded.attempts, last_error = excluded.last_error",
        params![ipset, entry, now() + wait, attempts + 1, error],
    )?;
    Ok(wait)
}

/// The entry's try is settled: no back-off any more.
pub fn clear(conn: &Connection, ipset: &str, entry: &str) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM holds WHERE ipset = ?1 AND entry = ?2",
        params![ipset, entry],
    )?;
    Ok(())
}

/// `sync` and `-f`: everything held may be tried now (the attempts stay,
/// so a failing entry's back-off keeps growing).
pub fn release_all(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute("UPDATE holds SET next_try = 0 WHERE next_try > 0", [])?;
    meta::delete(conn, QUEUE_HELD_UNTIL)
}

/// Holds the whole queue (for the background drainer) for `secs`.
pub fn hold_queue(conn: &Connection, secs: f64) -> rusqlite::Result<()> {
    meta::set(conn, QUEUE_HELD_UNTIL, &(now() + secs).to_string())
}

/// A call went through: whatever held the queue is fixed.
pub fn release_queue(conn: &Connection) -> rusqlite::Result<()> {
    meta::delete(conn, QUEUE_HELD_UNTIL)
}

/// Until when the whole queue is held, if it is (a garbled value: not held).
pub fn queue_held_until(conn: &Connection) -> rusqlite::Result<Option<f64>> {
    Ok(meta::get(conn, QUEUE_HELD_UNTIL)?
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|t| t.is_finite()))
}

/// Seconds until something pending may be tried (0 or less: now); `None`
/// when nothing is pending.
pub fn next_try_in(conn: &Connection) -> rusqlite::Result<Option<f64>> {
    let next: Option<f64> = conn.query_row(
        "SELECT MIN(COALESCE(CAST(h.next_try AS REAL), 0)) FROM events e
         LEFT JOIN holds h ON h.ipset = e.ipset AND h.entry = e.entry
         WHERE e.failed = 0",
        [],
        |row| row.get(0),
    )?;
    let Some(next) = next else { return Ok(None) };
    let queue = queue_held_until(conn)?.unwrap_or(0.0);
    Ok(Some(next.max(queue) - now()))
}

/// How many entries wait out a back-off now.
pub fn held_entries(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT COUNT(*) FROM holds WHERE next_try > ?1",
        params![now()],
        |row| row.get::<_, i64>(0).map(|n| n as u64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::db::Db;

    #[test]
    fn back_off_grows_per_entry_and_clears() {
        let db = Db::in_memory();
        let c = db.conn();
        assert_eq!(back_off(c, "f", "a", "down").unwrap(), 1.0);
        assert_eq!(back_off(c, "f", "a", "down").unwrap(), 2.0);
        assert_eq!(back_off(c, "f", "b", "down").unwrap(), 1.0);
        assert_eq!(held_entries(c).unwrap(), 2);
        release_all(c).unwrap();
        assert_eq!(held_entries(c).unwrap(), 0);
        assert_eq!(back_off(c, "f", "a", "down").unwrap(), 4.0);
        clear(c, "f", "a").unwrap();
        assert_eq!(back_off(c, "f", "a", "down").unwrap(), 1.0);
        assert_eq!(delay(40), 300.0);
    }

    #[test]
    fn a_held_queue_waits_and_a_garbled_hold_does_not() {
        let db = Db::in_memory();
        let c = db.conn();
        hold_queue(c, 60.0).unwrap();
        assert!(queue_held_until(c).unwrap().unwrap() > now() + 59.0);
        meta::set(c, QUEUE_HELD_UNTIL, "soon").unwrap();
        assert_eq!(queue_held_until(c).unwrap(), None);
        release_queue(c).unwrap();
        assert_eq!(queue_held_until(c).unwrap(), None);
    }
}
