//! `fail2pvefw crowdsec`: a bouncer for CrowdSec's Local API. Decisions go
//! through the same policy (validate, comment, admission) and the same
//! durable queue as fail2ban's bans, held by `crowdsec`, so an address both
//! engines ban is one entry in PVE and leaves only when neither wants it.
//!
//! - `pull`: the LAPI's stream into `crowdsec_decisions` (full or delta);
//! - `plan`: `validate`, admit under the budget (`budget`), held to the
//!   host's rules (`accept`), queue the diff;
//! - `bouncer`: one cycle of both;
//! - `service`: the long-lived loop, one `tick` at a time (reusable by a
//!   resident process that does more);
//! - `report`: `status` and the metrics.
//!
//! `--once` runs one cycle, sends the queue for at most `--drain-for`
//! seconds and exits: 0 done, 1 the LAPI or PVE could not be reached, 3 a
//! configuration error or a key the LAPI refuses.

pub mod accept;
pub mod bouncer;
pub mod budget;
pub mod plan;
pub mod pull;
pub mod report;
pub mod service;
pub mod validate;

use super::context::Context;
use crate::cli::CrowdsecArgs;
use crate::error::{Failure, Kind, Result};
use crate::state::locks::DrainLock;
use crate::state::stats;
use crate::transport::lapi::LapiError;
use bouncer::Bouncer;
use service::{Service, send_until};
use std::time::{Duration, Instant};

/// Held by the one bouncer of a state directory for its whole run: two
/// would pull with one key and take each other's deltas.
pub const LOCK: &str = "crowdsec.lock";

pub fn run(ctx: &Context, args: &CrowdsecArgs) -> Result<String> {
    let config = &ctx.config;
    let mut bouncer = Bouncer::new(config)?;
    let (mut db, bound) = ctx.state(false)?;
    let _one = DrainLock::try_take_named(&config.state_dir, LOCK)
        .map_err(super::errors::lock_failure)?
        .ok_or_else(|| {
            Failure::pve(format!(
                "another `fail2pvefw crowdsec` runs for the state directory '{}'; this one did nothing",
                config.state_dir.display()
            ))
            .hint("One bouncer per key: stop the service (systemctl stop fail2pvefw-crowdsec) before running `crowdsec --once` by hand.")
        })?;
    if !args.once {
        let service = Service::new(bouncer);
        let open = || ctx.session_for(&bound);
        return service::run(service, open, &mut db, config, &bound);
    }
    let mut session = ctx.session_for(&bound)?;
    let cycle = bouncer.cycle(&mut session, &mut db, config, &bound)?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain_for.max(0.0));
    let mut sent = 0;
    let mut skipped = 0;
    let mut stopped = None;
    loop {
        let report = send_until(&mut session, &mut db, config, &bound, Some(deadline))?;
        sent += report.sent;
        skipped += report.skipped;
        if report.capacity {
            budget::capacity_reached(&db, &bouncer.cs)?;
        }
        if report.stopped.is_some() {
            stopped = report.blocker;
            break;
        }
        let waiting =
            crate::state::holds::next_try_in(db.conn()).map_err(super::errors::db_failure)?;
        match waiting {
            None => break,
            Some(_) if Instant::now() >= deadline => break,
            // Another process sends, or an entry backs off: wait a little.
            Some(wait) => std::thread::sleep(Duration::from_secs_f64(wait.clamp(0.05, 1.0))),
        }
    }
    let left = stats::stats(&db)
        .map_err(super::errors::db_failure)?
        .pending;
    let mut summary = format!(
        "{}; sent {sent} ({skipped} needed no call)",
        cycle.summary(&bouncer.cs.url)
    );
    if left > 0 {
        summary.push_str(&format!(
            "; {left} events still queued (the service, `fail2pvefw sync` or the next run sends them)"
        ));
    }
    match (cycle.error, stopped) {
        (Some(error), _) => {
            crate::output::line(&summary);
            let kind = match error {
                LapiError::Forbidden => Kind::Config,
                _ => Kind::Pve,
            };
            Err(Failure::new(kind, error.describe(&bouncer.cs.url)).hint(error.hint()))
        }
        (None, Some(blocker)) => {
            crate::output::line(&summary);
            Err(blocker.context("crowdsec: sending to PVE"))
        }
        (None, None) => Ok(summary),
    }
}
