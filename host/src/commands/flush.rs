//! `flush` (fail2ban's actionflush, at stop): keep this jail's bans in PVE,
//! or queue their removal.

use super::ban::start_background_drainer;
use super::context::Context;
use super::drain::{Backoff, Report, db_failure, lock_failure, pass};
use crate::cli::Flush;
use crate::error::Result;
use crate::state::locks::DrainLock;
use crate::state::queue::{self, Action};

/// `flush` (fail2ban's actionflush, at stop): by default bans stay in
/// PVE across restarts; `--remove` queues an unban of this jail's
/// entries instead.
pub fn run(ctx: &Context, flush: &Flush) -> Result<String> {
    let mut db = ctx.db()?;
    let ours: Vec<_> = queue::desired(&db)
        .map_err(db_failure)?
        .into_iter()
        .filter(|d| flush.jail.is_none() || d.jail == flush.jail)
        .collect();
    let jail = flush.jail.as_deref().unwrap_or("all jails");
    if !flush.remove {
        return Ok(format!(
            "flush: kept {} ban(s) of {jail} in PVE",
            ours.len()
        ));
    }
    for want in &ours {
        let mut req = want.request.clone();
        req.restored = false;
        queue::enqueue(&mut db, Action::Unban, &want.entry, &req).map_err(db_failure)?;
    }
    if ctx.foreground {
        let mut session = ctx.session()?;
        let mut report = Report::default();
        if let Some(_lock) = DrainLock::take(&ctx.config.state_dir, ctx.config.pve.timeout * 3)
            .map_err(lock_failure)?
        {
            pass(&mut session, &mut db, Backoff::Ignore, &mut report)?;
        }
    } else {
        start_background_drainer(ctx)?;
    }
    Ok(format!(
        "flush: queued removal of {} ban(s) of {jail}",
        ours.len()
    ))
}
