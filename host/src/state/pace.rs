//! The write budget: `[pve] writes_per_second`, a token bucket in `meta`
//! shared by every fail2pvefw process of the state directory (fail2ban's
//! bans, the drainer, `sync`, the CrowdSec bouncer).
//!
//! PVE rewrites the whole `cluster.fw` under one cluster-wide lock on every
//! write and replicates it to every node, so what matters is the rate of
//! writes the cluster sees, whoever sends them. Each write reserves the
//! next slot in one short transaction and waits until it comes: the
//! bucket holds one second's worth (at least one write), refills at the
//! rate, and may go negative, which is the queue of writers waiting for
//! their slot. Reads cost nothing: they do not rewrite `cluster.fw`.

use super::meta;
use rusqlite::{Connection, TransactionBehavior};

const TOKENS: &str = "pve.tokens";
const TOKENS_AT: &str = "pve.tokens_at";
/// Writes reserved so far: `fail2pvefw_pve_writes_total`.
pub const WRITES: &str = "pve.writes";

/// The bucket's size for `rate` writes a second: one second's worth, and
/// never less than one write.
pub fn burst(rate: f64) -> f64 {
    rate.max(1.0)
}

/// Reserves one write at `now` (Unix seconds) and returns how many seconds
/// to wait before sending it (0: at once).
pub fn reserve(conn: &mut Connection, rate: f64, now: f64) -> rusqlite::Result<f64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let read = |key: &str| -> rusqlite::Result<Option<f64>> {
        Ok(meta::get(&tx, key)?
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite()))
    };
    let full = burst(rate);
    let at = read(TOKENS_AT)?.unwrap_or(now);
    let tokens = read(TOKENS)?.unwrap_or(full);
    // A clock that went back refills nothing, and restarts the count.
    let elapsed = (now - at).max(0.0);
    let tokens = (tokens + elapsed * rate).min(full) - 1.0;
    meta::set(&tx, TOKENS, &tokens.to_string())?;
    meta::set(&tx, TOKENS_AT, &now.to_string())?;
    let writes = read(WRITES)?.unwrap_or(0.0) as u64;
    meta::set(&tx, WRITES, &(writes + 1).to_string())?;
    tx.commit()?;
    Ok(if tokens >= 0.0 { 0.0 } else { -tokens / rate })
}

/// The tokens in the bucket now (negative: writers wait), for the metrics.
pub fn tokens(conn: &Connection, rate: f64, now: f64) -> rusqlite::Result<f64> {
    let read = |key: &str| -> rusqlite::Result<Option<f64>> {
        Ok(meta::get(conn, key)?
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite()))
    };
    let full = burst(rate);
    let at = read(TOKENS_AT)?.unwrap_or(now);
    let tokens = read(TOKENS)?.unwrap_or(full);
    Ok((tokens + (now - at).max(0.0) * rate).min(full))
}

/// Writes reserved so far, by every process of this state directory.
pub fn writes(conn: &Connection) -> rusqlite::Result<u64> {
    Ok(meta::get(conn, WRITES)?
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::db::Db;

    #[test]
    fn a_burst_then_one_write_per_slot() {
        let mut db = Db::in_memory();
        let c = db.conn_mut();
        // Two a second: two at once, then every half second.
        assert_eq!(reserve(c, 2.0, 100.0).unwrap(), 0.0);
        assert_eq!(reserve(c, 2.0, 100.0).unwrap(), 0.0);
        assert_eq!(reserve(c, 2.0, 100.0).unwrap(), 0.5);
        assert_eq!(reserve(c, 2.0, 100.0).unwrap(), 1.0);
        // A second later two slots came back; the queue was two deep.
        assert_eq!(reserve(c, 2.0, 101.0).unwrap(), 0.5);
        assert_eq!(writes(c).unwrap(), 5);
        // A long pause fills the bucket to one second's worth, no more.
        assert_eq!(tokens(c, 2.0, 200.0).unwrap(), 2.0);
        assert_eq!(reserve(c, 2.0, 200.0).unwrap(), 0.0);
    }

    #[test]
    fn a_slow_rate_still_allows_one_write_and_a_clock_going_back_refills_nothing() {
        let mut db = Db::in_memory();
        let c = db.conn_mut();
        assert_eq!(reserve(c, 0.5, 100.0).unwrap(), 0.0);
        assert_eq!(reserve(c, 0.5, 100.0).unwrap(), 2.0);
        assert_eq!(reserve(c, 0.5, 50.0).unwrap(), 4.0);
    }

    #[test]
    fn garbled_values_start_afresh() {
        let mut db = Db::in_memory();
        meta::set(db.conn(), TOKENS, "lots").unwrap();
        meta::set(db.conn(), TOKENS_AT, "NaN").unwrap();
        assert_eq!(reserve(db.conn_mut(), 1.0, 10.0).unwrap(), 0.0);
    }
}
