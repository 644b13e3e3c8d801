//! `sync` (run by the timer): send everything queued now, then make each
//! IPSet agree with the bans; the PVE nodes' names are resolved again.

use super::cluster::Bound;
use super::context::Context;
use super::drain::{Backoff, Report, pass};
use super::errors::{db_failure, lock_failure};
use super::metrics::after_drain;
use super::reconcile::reconcile;
use crate::config::Config;
use crate::error::{Failure, Result};
use crate::runtime::session::Session;
use crate::state::db::Db;
use crate::state::desired;
use crate::state::locks::DrainLock;
use std::time::Duration;

/// `sync`: drain everything now (ignoring back-off), then reconcile each
/// IPSet we have bans in, and the configured one.
pub fn run(ctx: &Context, ipset: Option<String>) -> Result<String> {
    let (mut db, bound) = ctx.state(true)?;
    let mut session = ctx.session_for(&bound)?;
    sync(&ctx.config, &mut session, &mut db, &bound, ipset)
}

/// One `sync` with an open session and state; the command and the
/// periodic task of `fail2pvefw serve` share it.
pub fn sync(
    config: &Config,
    session: &mut Session,
    db: &mut Db,
    bound: &Bound,
    ipset: Option<String>,
) -> Result<String> {
    let dir = &config.state_dir;
    let lock = DrainLock::take(dir, config.pve.timeout * 3 + Duration::from_secs(5))
        .map_err(lock_failure)?
        .ok_or_else(|| {
            Failure::pve("another fail2pvefw process is draining the queue; try again")
        })?;
    let mut report = Report::default();
    pass(session, db, bound, Backoff::Ignore, &mut report)?;
    db.checkpoint();
    if let Some(blocker) = report.blocker.take()
        && report.stopped.is_some()
    {
        return Err(blocker.context("sync"));
    }
    let mut ipsets: Vec<String> = match ipset {
        Some(one) => vec![one],
        None => {
            let mut all = desired::ipsets(db.conn()).map_err(db_failure)?;
            all.push(config.ipset.clone());
            all
        }
    };
    ipsets.sort();
    ipsets.dedup();
    let mut lines = vec![format!(
        "sync: queue drained ({} sent, {} needed no call)",
        report.sent, report.skipped
    )];
    for ipset in ipsets {
        let done = reconcile(session, db, &ipset)
            .map_err(|f| f.context(format!("sync IPSet '{ipset}'")))?;
        lines.push(format!(
            "sync: IPSet '{ipset}': {} entries, {} re-added, {} expired removed",
            done.entries, done.readded, done.expired_removed
        ));
    }
    drop(lock);
    after_drain(config, session, db);
    Ok(lines.join("\n"))
}
