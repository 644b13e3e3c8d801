//! Draining the queue into PVE: one pass for `-f`, `sync` and `flush`, the
//! background drainer that `ban` and `unban` start, and the hidden `drain`
//! command it runs.
//!
//! PVE serialises every firewall write behind one cluster-wide lock, so the
//! queue is sent one request at a time, by one process (the holder of the
//! drain lock), over one keep-alive connection. Each entry's events are
//! reduced to one decision from the effective state (`Group::decide`), and
//! what a call did is settled from its remedy (`Remedy`) and from the
//! writes the `pve` capability recorded.

use super::cluster::Bound;
use super::context::Context;
use super::errors::{db_failure, lock_failure};
use super::metrics::{self, after_drain};
use crate::bindings::RefusalCause;
use crate::capabilities::pve::{Write, WriteOutcome};
use crate::error::{Failure, Result};
use crate::log;
use crate::runtime::session::{Remedy, Session};
use crate::state::applied::{self, Applied, Change};
use crate::state::db::Db;
use crate::state::locks::{self, DrainLock};
use crate::state::queue::{self, Action, Call, Fate, Group};
use crate::state::{desired, holds, stats};
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Entries read per pass; the rest follow in the next pass.
const BATCH: usize = 500;
/// How long a background drainer keeps retrying an unreachable PVE before it
/// leaves the events to the next run, `sync` or the timer.
const BACKGROUND_PATIENCE: Duration = Duration::from_secs(60);

/// What one drain did.
#[derive(Default)]
pub struct Report {
    /// Calls that PVE confirmed.
    pub sent: usize,
    /// Events that needed no call (cancelled, already applied, still held
    /// by another holder).
    pub skipped: usize,
    /// The failure of each event id that was tried and did not succeed.
    pub failures: HashMap<i64, Failure>,
    /// Why the last pass stopped early, if it did.
    pub stopped: Option<Remedy>,
    /// The failure that stopped it: it holds the events the pass did not
    /// reach (`-f` names it).
    pub blocker: Option<Failure>,
    /// The policy's words for events whose entry the host left alone
    /// (someone else's): `-f` says so instead of "done".
    pub left_alone: HashMap<i64, String>,
    /// PVE refused a write because `cluster.fw` is full.
    pub capacity: bool,
}

/// Whether entries in back-off wait (`Respect`) or are tried now (`Ignore`:
/// `sync` and `-f`, where someone is waiting for the outcome).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Respect,
    Ignore,
}

/// Sends what is ready, entry by entry in order, until the queue is empty
/// or a failure says to stop. The caller holds the drain lock.
pub fn pass(
    session: &mut Session,
    db: &mut Db,
    bound: &Bound,
    backoff: Backoff,
    report: &mut Report,
) -> Result<(), Failure> {
    pass_until(session, db, bound, backoff, report, None)
}

/// [`pass`], stopping between entries once `deadline` has come (the
/// CrowdSec bouncer's slice, so it pulls on time and lets others send).
/// While it sends a later lane, an event of lane 0 that arrives goes next.
pub fn pass_until(
    session: &mut Session,
    db: &mut Db,
    bound: &Bound,
    backoff: Backoff,
    report: &mut Report,
    deadline: Option<Instant>,
) -> Result<(), Failure> {
    pass_stoppable(session, db, bound, backoff, report, deadline, &|| false)
}

/// [`pass_until`], also stopping before the next entry once `stop` says so
/// (the service's SIGTERM): what was not sent stays queued, what was sent
/// is settled.
pub fn pass_stoppable(
    session: &mut Session,
    db: &mut Db,
    bound: &Bound,
    backoff: Backoff,
    report: &mut Report,
    deadline: Option<Instant>,
    stop: &dyn Fn() -> bool,
) -> Result<(), Failure> {
    report.stopped = None;
    report.blocker = None;
    match backoff {
        Backoff::Ignore => holds::release_all(db.conn()).map_err(db_failure)?,
        Backoff::Respect => {
            let held = holds::queue_held_until(db.conn()).map_err(db_failure)?;
            if held.is_some_and(|t| t > queue::now()) {
                return Ok(());
            }
        }
    }
    loop {
        let groups = queue::ready(db, Some(&bound.id), BATCH)
            .map_err(db_failure)?
            .ok_or_else(rebound)?;
        if groups.is_empty() {
            return Ok(());
        }
        let newest = groups.iter().flat_map(Group::ids).max().unwrap_or(0);
        for group in &groups {
            if stop() || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
            if let Some(remedy) = send(session, db, group, report)? {
                report.stopped = Some(remedy);
                return Ok(());
            }
            if group.lane > queue::LANE_FAIL2BAN
                && queue::urgent_since(db.conn(), newest).map_err(db_failure)?
            {
                break;
            }
        }
    }
}

fn rebound() -> Failure {
    Failure::config(
        "the state directory was bound to another PVE cluster while this process ran; nothing more was sent",
    )
    .hint("Give each cluster its own [state] dir.")
}

/// What PVE holds after the writes a call recorded: added with its
/// comment, removed (deleted, absent, or someone else's), or unknown (no
/// answer). A refused write changed nothing.
pub fn changes(writes: Vec<Write>) -> Vec<(String, String, Change)> {
    writes
        .into_iter()
        .filter_map(|w| {
            let change = match w.outcome {
                WriteOutcome::Added => Change::Added(w.comment),
                WriteOutcome::Deleted | WriteOutcome::Absent | WriteOutcome::NotOurs => {
                    Change::Removed
                }
                WriteOutcome::Unreachable => Change::Uncertain,
                WriteOutcome::Refused(_) => return None,
            };
            Some((w.ipset, w.cidr, change))
        })
        .collect()
}

/// Sends one entry's decision. `Some(remedy)` stops the pass: PVE is down
/// or a person must act, so the following entries would fail the same way.
fn send(
    session: &mut Session,
    db: &mut Db,
    group: &Group,
    report: &mut Report,
) -> Result<Option<Remedy>, Failure> {
    let now = queue::now() as i64;
    let holders = desired::live(db.conn(), &group.ipset, &group.entry, now).map_err(db_failure)?;
    let applied = applied::get(db.conn(), &group.ipset, &group.entry).map_err(db_failure)?;
    let Some(call) = group.decide(holders.first().map(|d| &d.request), applied) else {
        queue::settle(db, group, Fate::Done, &[]).map_err(db_failure)?;
        forget_failures(report, group);
        report.skipped += group.events.len();
        return Ok(None);
    };
    let action = call.action();
    // A ban about to leave may land even if its answer never comes back
    // (a timeout, a killed drainer): until PVE answers, it may be there.
    let ahead = action == Action::Ban && applied == Applied::No;
    if ahead {
        applied::mark_sending(db.conn(), &group.ipset, &group.entry).map_err(db_failure)?;
    }
    session.take_writes();
    let answer = session.apply(action, call.request());
    let at = |change: Change| (group.ipset.clone(), group.entry.clone(), change);
    let undo = || ahead.then(|| at(Change::Removed));
    let maybe = || (action == Action::Ban || applied != Applied::No).then(|| at(Change::Uncertain));
    // What PVE now holds of the entry (before the recorded writes), what
    // becomes of the events, the failure, and whether the pass stops; the
    // log and the counters follow the commit, so what PVE did is recorded
    // first.
    let mut done_words = None;
    let mut label = None;
    let mut remedy_done = false;
    let mut done_text = String::new();
    let (base, next, failure, remedy) = match answer {
        Err(trap) => {
            // A broken policy: keep the events (exit 3 says why); this
            // instance cannot be called again, so the pass stops.
            label = Some("policy");
            (
                maybe(),
                Next::Held { whole_queue: false },
                Some(trap),
                Some(Remedy::Hold),
            )
        }
        Ok(Ok(words)) => {
            done_words = Some(words);
            let base = match action {
                Action::Ban => at(Change::Certain),
                Action::Unban => at(Change::Removed),
            };
            (Some(base), Next::Done, None, None)
        }
        Ok(Err(reported)) => {
            report.capacity |= reported.cause == Some(RefusalCause::Capacity);
            if reported.kind != Remedy::Done {
                label = Some(reported.label);
            }
            let text = reported.failure.to_string();
            match reported.kind {
                Remedy::Done => {
                    // Someone else's entry, left alone: the right outcome.
                    log::info(&format!("{} '{}': {text}", action.as_str(), group.entry));
                    remedy_done = true;
                    done_text = text.clone();
                    (Some(at(Change::Removed)), Next::Done, None, None)
                }
                Remedy::Drop => {
                    log::write(
                        log::Level::Error,
                        "",
                        &format!(
                            "{} '{}' dropped from the queue: {text}",
                            action.as_str(),
                            group.entry
                        ),
                    );
                    (undo(), Next::Failed, Some(reported.failure), None)
                }
                Remedy::Hold => (
                    undo(),
                    Next::Held { whole_queue: true },
                    Some(reported.failure),
                    Some(Remedy::Hold),
                ),
                Remedy::Retry => (
                    maybe(),
                    Next::Held { whole_queue: false },
                    Some(reported.failure),
                    Some(Remedy::Retry),
                ),
            }
        }
    };
    let writes = session.take_writes();
    if writes.iter().any(|w| w.outcome == WriteOutcome::NotOurs) || remedy_done {
        let words = done_words.clone().unwrap_or_else(|| done_text.clone());
        for id in group.ids() {
            report.left_alone.insert(id, words.clone());
        }
    }
    let mut settled: Vec<_> = base.into_iter().collect();
    settled.extend(changes(writes));
    let text = failure.as_ref().map(Failure::to_string).unwrap_or_default();
    let fate = match next {
        Next::Done => Fate::Done,
        Next::Failed => Fate::Failed(&text),
        Next::Held { whole_queue } => Fate::Held {
            error: &text,
            whole_queue,
        },
    };
    queue::settle(db, group, fate, &settled).map_err(db_failure)?;
    if let Some(words) = done_words {
        log_done(&call, group, &words);
        metrics::count_applied(db, action == Action::Ban);
        report.sent += 1;
    }
    if let Some(label) = label {
        metrics::count_failure(db, label);
    }
    match failure {
        None => forget_failures(report, group),
        Some(failure) => {
            if remedy.is_some() {
                report.blocker = Some(copy(&failure));
            }
            record(report, group, failure);
        }
    }
    Ok(remedy)
}

/// What becomes of a group's events after its call.
enum Next {
    Done,
    Failed,
    Held { whole_queue: bool },
}

fn log_done(call: &Call, group: &Group, words: &str) {
    let event = group.last_id().to_string();
    let fields = [
        ("action", call.action().as_str()),
        ("entry", group.entry.as_str()),
        ("ipset", group.ipset.as_str()),
        ("event", event.as_str()),
    ];
    log::event(log::Level::Info, "", words, &fields);
}

/// An earlier try may have failed; this one is what counts.
fn forget_failures(report: &mut Report, group: &Group) {
    for id in group.ids() {
        report.failures.remove(&id);
    }
}

fn record(report: &mut Report, group: &Group, failure: Failure) {
    for id in group.ids() {
        report.failures.insert(id, copy(&failure));
    }
    report.failures.insert(group.last_id(), failure);
}

/// A copy of a failure, with its hint.
pub fn copy(failure: &Failure) -> Failure {
    let copy = Failure::new(failure.kind, failure.message.clone());
    match &failure.hint {
        Some(hint) => copy.hint(hint.clone()),
        None => copy,
    }
}

/// The background drainer, started by `ban`/`unban` without `-f`. It holds
/// `drainer.lock` for its whole life, sends whenever it gets the sending
/// lock, retries an unreachable PVE for a while, and hands over cleanly:
/// after releasing its lock it looks once more, since an event committed
/// while it held the lock did not start a drainer of its own.
pub fn background(
    session: &mut Session,
    db: &mut Db,
    dir: &Path,
    bound: &Bound,
) -> Result<Report, Failure> {
    let mut report = Report::default();
    let started = std::time::Instant::now();
    loop {
        let Some(alive) = DrainLock::try_take_named(dir, locks::DRAINER).map_err(lock_failure)?
        else {
            return Ok(report); // another drainer lives, and will see our events
        };
        loop {
            if let Some(sending) = DrainLock::try_take(dir).map_err(lock_failure)? {
                pass(session, db, bound, Backoff::Respect, &mut report)?;
                drop(sending);
                if report.stopped == Some(Remedy::Hold) {
                    // A person must fix something (or the policy trapped and
                    // this instance is unusable): the next run, `sync` or
                    // the timer tries again.
                    return Ok(report);
                }
            }
            let Some(wait) = holds::next_try_in(db.conn()).map_err(db_failure)? else {
                break;
            };
            if started.elapsed() + Duration::from_secs_f64(wait.max(0.0)) > BACKGROUND_PATIENCE {
                log::warn(&format!(
                    "PVE still fails; {} event(s) stay queued for the next run, `fail2pvefw sync` or the timer",
                    stats::stats(db).map(|s| s.pending).unwrap_or(0)
                ));
                return Ok(report);
            }
            // Sleep until the next try, or until a `-f` or `sync` that held
            // the sending lock is done: never busy-wait.
            std::thread::sleep(Duration::from_secs_f64(wait.clamp(0.05, 1.0)));
        }
        drop(alive);
        if holds::next_try_in(db.conn())
            .map_err(db_failure)?
            .is_none_or(|wait| wait > 0.0)
        {
            return Ok(report);
        }
    }
}

/// The hidden `drain` command the background drainer runs.
pub fn run(ctx: &Context) -> Result<String> {
    let (mut db, bound) = ctx.state(false)?;
    let mut session = ctx.session_for(&bound)?;
    let report = background(&mut session, &mut db, &ctx.config.state_dir, &bound)?;
    db.checkpoint();
    for failure in report.failures.values().take(1) {
        log::write(log::Level::Error, "drain", &failure.to_string());
    }
    after_drain(&ctx.config, &mut session, &db);
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_writes_become_changes_to_what_pve_holds() {
        let w = |cidr: &str, outcome| Write {
            ipset: "f2b".into(),
            cidr: cidr.into(),
            comment: Some("c".into()),
            outcome,
        };
        let got = changes(vec![
            w("192.0.2.1", WriteOutcome::Added),
            w("192.0.2.2", WriteOutcome::Deleted),
            w("192.0.2.3", WriteOutcome::Absent),
            w("192.0.2.4", WriteOutcome::NotOurs),
            w("192.0.2.5", WriteOutcome::Refused(400)),
            w("192.0.2.6", WriteOutcome::Unreachable),
        ]);
        let kinds: Vec<(&str, &Change)> = got.iter().map(|(_, e, c)| (e.as_str(), c)).collect();
        assert_eq!(
            kinds,
            [
                ("192.0.2.1", &Change::Added(Some("c".into()))),
                ("192.0.2.2", &Change::Removed),
                ("192.0.2.3", &Change::Removed),
                ("192.0.2.4", &Change::Removed),
                ("192.0.2.6", &Change::Uncertain),
            ]
        );
    }
}
