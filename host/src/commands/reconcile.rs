//! `sync`'s second half: make an IPSet agree with the desired set, by
//! COVERAGE. An address is enforced when PVE holds any entry, ours or not,
//! whose network contains it: a policy that rewrites entries (three bans in
//! a /24 become the /24) lives with it, and a ban whose covering manual
//! entry the admin deleted is added again.

use super::drain::changes;
use super::errors::db_failure;
use super::metrics;
use crate::bindings::Entry;
use crate::capabilities::guard::entry::network;
use crate::capabilities::pve::{Write, WriteOutcome};
use crate::error::Failure;
use crate::log;
use crate::runtime::session::{Answer, Remedy, Session};
use crate::state::applied::{self, Change};
use crate::state::db::Db;
use crate::state::desired::{self, Desired};
use crate::state::queue::{self, Action, Request};
use ipnet::IpNet;
use std::collections::{BTreeMap, HashSet};

/// What `sync` changed in PVE besides draining.
#[derive(Default, Debug)]
pub struct Reconciled {
    pub readded: usize,
    pub expired_removed: usize,
    pub entries: usize,
}

/// Makes `ipset` agree with the desired set, reading it once:
/// - forgets holders whose ban is over;
/// - re-adds (through the policy's ban, as restored) each live desired
///   entry without pending events that no PVE entry covers;
/// - removes each entry whose tag says this instance, whose tag expiry has
///   passed, that covers no live desired entry and has no pending events.
///
/// An entry without our tag, or with another instance's, is never touched.
pub fn reconcile(session: &mut Session, db: &mut Db, ipset: &str) -> Result<Reconciled, Failure> {
    let now = queue::now() as i64;
    let entries = session.entries(ipset)?.map_err(|r| r.failure)?;
    let mut done = Reconciled {
        entries: entries.len(),
        ..Reconciled::default()
    };
    seen(db, ipset, &entries, &session.instance_name)?;
    desired::forget_expired(db.conn(), ipset, now).map_err(db_failure)?;

    // The live wishes, one per entry (the longest holder's request).
    let mut wanted: BTreeMap<String, Desired> = BTreeMap::new();
    for d in desired::all(db.conn()).map_err(db_failure)? {
        if d.ipset != ipset || !d.is_live(now) {
            continue;
        }
        let longer =
            |old: &Desired| d.expires.unwrap_or(i64::MAX) > old.expires.unwrap_or(i64::MAX);
        if wanted.get(&d.entry).is_none_or(longer) {
            wanted.insert(d.entry.clone(), d);
        }
    }
    let held: Vec<IpNet> = entries.iter().filter_map(|e| network(&e.cidr)).collect();
    let wanted_nets: Vec<IpNet> = wanted.keys().filter_map(|e| network(e)).collect();

    for (entry, want) in &wanted {
        let covered = network(entry).is_some_and(|net| held.iter().any(|h| h.contains(&net)));
        if covered || queue::has_pending(db.conn(), ipset, entry).map_err(db_failure)? {
            continue;
        }
        let req = Request {
            restored: true,
            ..want.request.clone()
        };
        if call(session, db, Action::Ban, &req, entry)? {
            log::info(&format!(
                "re-added {entry} to IPSet '{ipset}': no entry in PVE covered it"
            ));
            done.readded += 1;
        }
    }

    for e in &entries {
        let Some(owner) = &e.owner else { continue };
        let expired = owner.expires.is_some_and(|t| t <= now);
        if owner.instance != session.instance_name || !expired {
            continue;
        }
        let covers_a_wish =
            network(&e.cidr).is_some_and(|net| wanted_nets.iter().any(|w| net.contains(w)));
        if covers_a_wish || queue::has_pending(db.conn(), ipset, &e.cidr).map_err(db_failure)? {
            continue;
        }
        // The host removes it itself, through the guard's own-entry delete
        // (GET, tag check, DELETE with digest): there may be no request of
        // the policy's that maps to this entry (a /24 it escalated to).
        if remove_own(session, db, ipset, &e.cidr)? {
            log::info(&format!("removed expired {} from IPSet '{ipset}'", e.cidr));
            done.expired_removed += 1;
        }
    }
    Ok(done)
}

/// What the read showed: an entry we believed applied that PVE no longer
/// holds is gone; one that carries our tag is ours, with its comment.
fn seen(db: &Db, ipset: &str, entries: &[Entry], instance: &str) -> Result<(), Failure> {
    let present: HashSet<&str> = entries.iter().map(|e| e.cidr.as_str()).collect();
    for entry in applied::entries(db.conn(), ipset).map_err(db_failure)? {
        if !present.contains(entry.as_str()) {
            applied::change(db.conn(), ipset, &entry, &Change::Removed).map_err(db_failure)?;
        }
    }
    for e in entries {
        if e.owner.as_ref().is_some_and(|o| o.instance == instance) {
            applied::change(db.conn(), ipset, &e.cidr, &Change::Added(e.comment.clone()))
                .map_err(db_failure)?;
        }
    }
    Ok(())
}

/// One policy call of `sync` for `entry`, settled like the queue's: the
/// recorded writes update what PVE holds. `Ok(true)` when it was done; a
/// refusal of this one entry is logged and sync goes on; PVE down or a
/// refusal a person must fix stops it.
fn call(
    session: &mut Session,
    db: &mut Db,
    action: Action,
    req: &Request,
    entry: &str,
) -> Result<bool, Failure> {
    session.take_writes();
    let answer: Answer<String> = session.apply(action, req)?;
    let writes = session.take_writes();
    let ipset = &req.ipset;
    let fallback = match (&answer, action) {
        (Ok(_), Action::Ban) => Some(Change::Certain),
        (Ok(_), Action::Unban) => Some(Change::Removed),
        (Err(r), _) if r.kind == Remedy::Done => Some(Change::Removed),
        (Err(r), Action::Ban) if r.kind == Remedy::Retry => Some(Change::Uncertain),
        (Err(_), _) => None,
    };
    if let Some(change) = fallback {
        applied::change(db.conn(), ipset, entry, &change).map_err(db_failure)?;
    }
    record_writes(db, writes)?;
    match answer {
        Ok(_) => {
            metrics::count_applied(db, action == Action::Ban);
            Ok(true)
        }
        Err(r) => match r.kind {
            Remedy::Done => Ok(false),
            Remedy::Drop => {
                metrics::count_failure(db, r.label);
                log::warn(&format!(
                    "sync: {} of '{entry}' in IPSet '{ipset}' failed: {}",
                    action.as_str(),
                    r.failure
                ));
                Ok(false)
            }
            Remedy::Hold | Remedy::Retry => {
                metrics::count_failure(db, r.label);
                Err(r.failure)
            }
        },
    }
}

/// Removes our own expired entry `cidr` through the guard; `Ok(true)` when
/// PVE no longer holds it because of us. Failures are settled as the
/// queue's: one entry's refusal is logged, PVE down stops sync.
fn remove_own(
    session: &mut Session,
    db: &mut Db,
    ipset: &str,
    cidr: &str,
) -> Result<bool, Failure> {
    session.take_writes();
    let answer = session.delete_own_entry(ipset, cidr);
    record_writes(db, session.take_writes())?;
    match answer {
        Ok(WriteOutcome::Deleted) => {
            metrics::count_applied(db, false);
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(r) => match r.kind {
            Remedy::Done => Ok(false),
            Remedy::Drop => {
                metrics::count_failure(db, r.label);
                log::warn(&format!("sync: {}", r.failure));
                Ok(false)
            }
            Remedy::Hold | Remedy::Retry => {
                metrics::count_failure(db, r.label);
                Err(r.failure)
            }
        },
    }
}

fn record_writes(db: &Db, writes: Vec<Write>) -> Result<(), Failure> {
    for (ipset, entry, change) in changes(writes) {
        applied::change(db.conn(), &ipset, &entry, &change).map_err(db_failure)?;
    }
    Ok(())
}
