//! One pull from the LAPI into `crowdsec_decisions`: full (startup) or a
//! delta, by what the state says, then merged in one transaction.
//!
//! A full pull when: nothing was pulled yet; the LAPI's URL or the key
//! changed (a fingerprint in `meta`, never the key); a pull began and was
//! not committed (the LAPI moved its place in the stream anyway, so that
//! delta is lost for good); the last cycle failed (a 403 before a 200 may
//! mean a new LAPI database, whose deltas start from nothing); the ids went
//! back; or `resync` has passed. Otherwise a delta: a timer-driven
//! `--once` does deltas too.

use crate::commands::errors::db_failure;
use crate::config::CrowdSec;
use crate::error::Failure;
use crate::log;
use crate::state::crowdsec::{self as table, Incoming, Merged};
use crate::state::db::Db;
use crate::state::meta;
use crate::transport::lapi::{Decision, Lapi, LapiError, go_duration_secs};
use rusqlite::TransactionBehavior;

/// Set while a pull is out, cleared when its answer is committed.
const PULLING: &str = "crowdsec.pulling";
/// Set when a delta showed the ids going back: the next pull is full.
const FULL_NEXT: &str = "crowdsec.full_next";

/// What one pull did.
#[derive(Debug, Default)]
pub struct Pulled {
    pub startup: bool,
    /// Why it was full.
    pub why: &'static str,
    pub merged: Merged,
    /// Decisions in the answer, after the type filter.
    pub listed: usize,
    /// Decisions the answer held that we cannot use (a duration that is no
    /// duration).
    pub unreadable: usize,
}

/// `sha256(url, key)`, cut: tells a new URL or key from the old one
/// without keeping the key.
pub fn fingerprint(cs: &CrowdSec) -> String {
    let mut data = cs.url.as_bytes().to_vec();
    data.push(b'\n');
    data.extend_from_slice(cs.key.expose().as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &data);
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether the next pull must be full, and why.
pub fn full_needed(db: &Db, cs: &CrowdSec, now: f64) -> Result<Option<&'static str>, Failure> {
    let conn = db.conn();
    let get = |key: &str| meta::get(conn, key).map_err(db_failure);
    if get(table::LAST_OK)?.is_none() {
        return Ok(Some("the first pull"));
    }
    if get(table::SOURCE)?.as_deref() != Some(fingerprint(cs).as_str()) {
        return Ok(Some("the LAPI's URL or the bouncer key changed"));
    }
    if get(table::FAILURES)?.is_some_and(|n| n != "0") {
        return Ok(Some("after a failed pull"));
    }
    if get(PULLING)?.is_some() {
        return Ok(Some("the last pull was not finished"));
    }
    if get(FULL_NEXT)?.is_some() {
        return Ok(Some("the LAPI's decision ids went back (a new database?)"));
    }
    if let Some(every) = cs.resync {
        let last = table::get_f64(conn, table::LAST_FULL).map_err(db_failure)?;
        if last.is_none_or(|t| now - t >= every.as_secs_f64()) {
            return Ok(Some("the periodic full pull ([crowdsec] resync)"));
        }
    }
    Ok(None)
}

/// Pulls and merges. `Err(Ok(lapi))` is the LAPI's failure (nothing
/// changed); `Err(Err(failure))` is ours (the state database).
pub fn pull(
    db: &mut Db,
    lapi: &Lapi,
    cs: &CrowdSec,
    now: f64,
) -> Result<Pulled, Result<LapiError, Failure>> {
    let why = full_needed(db, cs, now).map_err(Err)?;
    let startup = why.is_some();
    meta::set(db.conn(), PULLING, "1")
        .map_err(db_failure)
        .map_err(Err)?;
    let answer = match lapi.pull(startup) {
        Ok(answer) => answer,
        Err(error) => {
            // Known to have failed: the failure makes the next pull full.
            meta::delete(db.conn(), PULLING)
                .map_err(db_failure)
                .map_err(Err)?;
            return Err(Ok(error));
        }
    };
    let arrived = crate::state::request::now();
    let (new, unreadable_new) = incoming(&answer.new, cs, arrived, true);
    let (deleted, _) = incoming(&answer.deleted, cs, arrived, false);
    if startup {
        log::debug(&format!(
            "crowdsec: the full pull also listed {} decisions the LAPI holds as expired or deleted",
            answer.deleted.len()
        ));
    }
    let mut commit = || -> rusqlite::Result<Merged> {
        let tx = db
            .conn_mut()
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let merged = table::merge(&tx, startup, &deleted, &new, arrived as i64)?;
        meta::set(&tx, table::SOURCE, &fingerprint(cs))?;
        meta::set(&tx, table::URL, &cs.url)?;
        meta::set(&tx, table::LAST_OK, &arrived.to_string())?;
        if startup {
            meta::set(&tx, table::LAST_FULL, &arrived.to_string())?;
            meta::delete(&tx, FULL_NEXT)?;
        }
        if merged.ids_went_back.is_some() {
            meta::set(&tx, FULL_NEXT, "1")?;
        }
        meta::delete(&tx, PULLING)?;
        tx.commit()?;
        Ok(merged)
    };
    let merged = commit().map_err(db_failure).map_err(Err)?;
    if let Some((was, now)) = merged.ids_went_back {
        log::info(&format!(
            "crowdsec: the LAPI's decision ids went back ({was} → {now}): a new database? The next pull is a full one"
        ));
    }
    Ok(Pulled {
        startup,
        why: why.unwrap_or("delta"),
        merged,
        listed: new.len(),
        unreadable: unreadable_new,
    })
}

/// The decisions of one list that pass our filters, with their expiry by
/// our clock (`new`: only those still running); and how many had a
/// duration that is none.
fn incoming(list: &[Decision], cs: &CrowdSec, now: f64, new: bool) -> (Vec<Incoming>, usize) {
    let mut out = Vec::with_capacity(list.len());
    let mut unreadable = 0;
    for d in list {
        if !cs.types.iter().any(|t| t == &d.kind) {
            continue;
        }
        let Some(left) = go_duration_secs(&d.duration) else {
            unreadable += 1;
            continue;
        };
        let expires = (now + left).ceil() as i64;
        if new && expires <= now as i64 {
            continue;
        }
        out.push(Incoming {
            scope: d.scope.clone(),
            value: d.value.clone(),
            kind: d.kind.clone(),
            id: d.id,
            origin: d.origin.clone(),
            scenario: d.scenario.clone(),
            expires,
        });
    }
    if unreadable > 0 {
        log::warn(&format!(
            "crowdsec: {unreadable} decision(s) had a duration that is not one; left out"
        ));
    }
    (out, unreadable)
}
