//! `sync` (run by the timer): send everything queued now, then make each
//! IPSet agree with the bans; the PVE nodes' names are resolved again.

use super::context::Context;
use super::drain::{Backoff, Report, pass};
use super::errors::{db_failure, lock_failure};
use super::metrics::after_drain;
use super::reconcile::reconcile;
use crate::error::{Failure, Result};
use crate::state::desired;
use crate::state::locks::DrainLock;
use std::time::Duration;

/// `sync`: drain everything now (ignoring back-off), then reconcile each
/// IPSet we have bans in, and the configured one.
pub fn run(ctx: &Context, ipset: Option<String>) -> Result<String> {
    let (mut db, bound) = ctx.state(true)?;
    let mut session = ctx.session_for(&bound)?;
    let dir = &ctx.config.state_dir;
    let lock = DrainLock::take(dir, ctx.config.pve.timeout * 3 + Duration::from_secs(5))
        .map_err(lock_failure)?
        .ok_or_else(|| {
            Failure::pve("another fail2pvefw process is draining the queue; try again")
        })?;
    let mut report = Report::default();
    pass(&mut session, &mut db, &bound, Backoff::Ignore, &mut report)?;
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
            all.push(ctx.config.ipset.clone());
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
        let done = reconcile(&mut session, &mut db, &ipset)
            .map_err(|f| f.context(format!("sync IPSet '{ipset}'")))?;
        lines.push(format!(
            "sync: IPSet '{ipset}': {} entries, {} re-added, {} expired removed",
            done.entries, done.readded, done.expired_removed
        ));
    }
    drop(lock);
    after_drain(&ctx.config, &mut session, &db);
    Ok(lines.join("\n"))
}
