//! Draining the queue into PVE: one pass for `-f`, `sync` and `flush`, the
//! background drainer that `ban` and `unban` start, and the hidden `drain`
//! command it runs.
//!
//! PVE serialises every firewall write behind one cluster-wide lock, so the
//! queue is sent one request at a time, by one process (the holder of the
//! drain lock), over one keep-alive connection.

use super::context::Context;
use super::metrics::{self, after_drain};
use crate::error::{Failure, Result};
use crate::log;
use crate::runtime::session::{Remedy, Session};
use crate::state::db::Db;
use crate::state::locks::{self, DrainLock};
use crate::state::queue::{self, Action, Group};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Events read per pass; the rest follow in the next pass.
const BATCH: usize = 500;
/// How long a background drainer keeps retrying an unreachable PVE before it
/// leaves the events to the next run, `sync` or the timer.
const BACKGROUND_PATIENCE: Duration = Duration::from_secs(60);

/// What one drain did.
#[derive(Default)]
pub struct Report {
    /// Calls that PVE confirmed.
    pub sent: usize,
    /// Events that needed no call (cancelled, or already applied).
    pub skipped: usize,
    /// The failure of each event id that was tried and did not succeed.
    pub failures: HashMap<i64, Failure>,
    /// Why the last pass stopped early, if it did.
    pub stopped: Option<Remedy>,
}

/// Whether events in back-off wait (`Respect`) or are tried now (`Ignore`:
/// `sync` and `-f`, where someone is waiting for the outcome).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Respect,
    Ignore,
}

/// Sends what is ready, in order, until the queue is empty or a failure
/// says to stop. The caller holds the drain lock.
pub fn pass(
    session: &mut Session,
    db: &mut Db,
    backoff: Backoff,
    report: &mut Report,
) -> Result<(), Failure> {
    loop {
        let groups = ready(db, backoff)?;
        if groups.is_empty() {
            report.stopped = None;
            return Ok(());
        }
        for group in &groups {
            if let Some(remedy) = send(session, db, group, report)? {
                report.stopped = Some(remedy);
                return Ok(());
            }
        }
    }
}

fn ready(db: &Db, backoff: Backoff) -> Result<Vec<Group>, Failure> {
    if backoff == Backoff::Ignore {
        // Someone waits for the outcome: everything pending is ready now.
        db.conn()
            .execute(
                "UPDATE events SET next_try = 0 WHERE failed = 0 AND next_try > 0",
                [],
            )
            .map_err(db_failure)?;
    }
    queue::ready_groups(db, BATCH).map_err(db_failure)
}

/// Sends one group. `Some(remedy)` stops the pass: PVE is down or a person
/// must act, so the following events would fail the same way.
fn send(
    session: &mut Session,
    db: &mut Db,
    group: &Group,
    report: &mut Report,
) -> Result<Option<Remedy>, Failure> {
    let applied = queue::is_applied(db, &group.ipset, &group.entry).map_err(db_failure)?;
    let Some(action) = group.call(applied) else {
        queue::complete(db, group, applied).map_err(db_failure)?;
        report.skipped += group.ids.len();
        return Ok(None);
    };
    let answer = match session.apply(action, &group.last.request) {
        Ok(answer) => answer,
        Err(trap) => {
            // A broken policy: keep the events, say why.
            let text = trap.to_string();
            queue::postpone(db, group, &text, retry_delay(group)).map_err(db_failure)?;
            metrics::count_failure(db, "policy");
            record(report, group, trap);
            return Ok(Some(Remedy::Hold));
        }
    };
    match answer {
        Ok(words) => {
            let event = group.last.id.to_string();
            let fields = [
                ("action", action.as_str()),
                ("entry", group.entry.as_str()),
                ("ipset", group.ipset.as_str()),
                ("event", event.as_str()),
            ];
            log::event(log::Level::Info, "", &words, &fields);
            // An earlier try may have failed; this one is what counts.
            for id in &group.ids {
                report.failures.remove(id);
            }
            queue::complete(db, group, action == Action::Ban).map_err(db_failure)?;
            metrics::count_applied(db, action == Action::Ban);
            report.sent += 1;
            Ok(None)
        }
        Err(reported) => {
            let text = reported.failure.to_string();
            if reported.kind != Remedy::Done {
                metrics::count_failure(db, reported.label);
            }
            match reported.kind {
                Remedy::Done => {
                    // Someone else's entry, left alone: the right outcome.
                    log::info(&format!("{} '{}': {text}", action.as_str(), group.entry));
                    for id in &group.ids {
                        report.failures.remove(id);
                    }
                    queue::complete(db, group, false).map_err(db_failure)?;
                    Ok(None)
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
                    queue::fail(db, group, &text).map_err(db_failure)?;
                    record(report, group, reported.failure);
                    Ok(None)
                }
                Remedy::Hold | Remedy::Retry => {
                    queue::postpone(db, group, &text, retry_delay(group)).map_err(db_failure)?;
                    record(report, group, reported.failure);
                    Ok(Some(reported.kind))
                }
            }
        }
    }
}

fn record(report: &mut Report, group: &Group, failure: Failure) {
    let text = failure.to_string();
    let kind = failure.kind;
    report.failures.insert(group.last.id, failure);
    for id in &group.ids {
        report
            .failures
            .entry(*id)
            .or_insert_with(|| Failure::new(kind, text.clone()));
    }
}

/// 1 s, 2 s, 4 s … up to 5 minutes between tries of one event.
fn retry_delay(group: &Group) -> f64 {
    2f64.powi(group.last.attempts.min(8) as i32).min(300.0)
}

pub fn db_failure(e: rusqlite::Error) -> Failure {
    Failure::config(format!("the state database failed: {e}"))
        .hint("Check that the state directory ([state] dir) is writable and the disk not full.")
}

/// The background drainer, started by `ban`/`unban` without `-f`. It holds
/// `drainer.lock` for its whole life, sends whenever it gets the sending
/// lock, retries an unreachable PVE for a while, and hands over cleanly:
/// after releasing its lock it looks once more, since an event committed
/// while it held the lock did not start a drainer of its own.
pub fn background(session: &mut Session, db: &mut Db, dir: &Path) -> Result<Report, Failure> {
    let mut report = Report::default();
    let started = std::time::Instant::now();
    loop {
        let Some(alive) = DrainLock::try_take_named(dir, locks::DRAINER).map_err(lock_failure)?
        else {
            return Ok(report); // another drainer lives, and will see our events
        };
        loop {
            if let Some(sending) = DrainLock::try_take(dir).map_err(lock_failure)? {
                pass(session, db, Backoff::Respect, &mut report)?;
                drop(sending);
            }
            let Some(wait) = next_try_in(db)? else { break };
            if started.elapsed() + Duration::from_secs_f64(wait.max(0.0)) > BACKGROUND_PATIENCE {
                log::warn(&format!(
                    "PVE still fails; {} event(s) stay queued for the next run, `fail2pvefw sync` or the timer",
                    queue::stats(db).map(|s| s.pending).unwrap_or(0)
                ));
                return Ok(report);
            }
            // Sleep until the next try, or until a `-f` or `sync` that held
            // the sending lock is done: never busy-wait.
            std::thread::sleep(Duration::from_secs_f64(wait.clamp(0.05, 1.0)));
        }
        drop(alive);
        if next_try_in(db)?.is_none_or(|wait| wait > 0.0) {
            return Ok(report);
        }
    }
}

/// Seconds until the earliest pending event may be tried; `None` when the
/// queue is empty.
fn next_try_in(db: &Db) -> Result<Option<f64>, Failure> {
    let next: Option<f64> = db
        .conn()
        .query_row(
            "SELECT MIN(next_try) FROM events WHERE failed = 0",
            [],
            |row| row.get(0),
        )
        .map_err(db_failure)?;
    Ok(next.map(|t| t - queue::now()))
}

pub fn lock_failure(e: std::io::Error) -> Failure {
    Failure::config(format!(
        "cannot use the drain lock in the state directory: {e}"
    ))
    .hint("Check that the state directory ([state] dir) is writable by the user fail2ban runs as.")
}

/// The hidden `drain` command the background drainer runs.
pub fn run(ctx: &Context) -> Result<String> {
    let mut session = ctx.session()?;
    let mut db = ctx.db()?;
    let report = background(&mut session, &mut db, &ctx.config.state_dir)?;
    db.checkpoint();
    for failure in report.failures.values().take(1) {
        log::write(log::Level::Error, "drain", &failure.to_string());
    }
    after_drain(&ctx.config, &mut session, &db);
    Ok(String::new())
}
