//! `flush` (fail2ban's actionflush, at stop): keep this jail's bans in PVE,
//! or release them.

use super::ban::start_background_drainer;
use super::cluster::Bound;
use super::context::Context;
use super::drain::{Backoff, Report, pass};
use super::errors::{db_failure, lock_failure};
use crate::cli::Flush;
use crate::error::{Failure, Result};
use crate::state::db::Db;
use crate::state::desired;
use crate::state::locks::DrainLock;
use crate::state::queue::{self, Action};
use std::collections::BTreeSet;

/// `flush` (fail2ban's actionflush, at stop): by default bans stay in PVE
/// across restarts; `--remove` releases this jail's wishes (every jail's
/// without `--jail`) with one unban each. An entry another holder still
/// wants stays in PVE; nothing but what this state asked for is touched.
pub fn run(ctx: &Context, flush: &Flush) -> Result<String> {
    let (mut db, bound) = ctx.state(false)?;
    let (text, queued) = queue_flush(&mut db, &bound, flush)?;
    if !queued {
        return Ok(text);
    }
    if ctx.foreground {
        let mut session = ctx.session_for(&bound)?;
        let mut report = Report::default();
        if let Some(_lock) = DrainLock::take(&ctx.config.state_dir, ctx.config.pve.timeout * 3)
            .map_err(lock_failure)?
        {
            pass(&mut session, &mut db, &bound, Backoff::Ignore, &mut report)?;
        }
    } else {
        start_background_drainer(ctx)?;
    }
    Ok(text)
}

/// What `flush` tells, and whether it queued removals (with `--remove`);
/// the command and the local API of `fail2pvefw serve` share it.
pub fn queue_flush(db: &mut Db, bound: &Bound, flush: &Flush) -> Result<(String, bool)> {
    let holder = if flush.crowdsec {
        crate::state::crowdsec::HOLDER.to_string()
    } else {
        desired::jail_holder(flush.jail.as_deref(), false)
    };
    let rows = desired::of_holder(db.conn(), &holder).map_err(db_failure)?;
    let jail = match &flush.jail {
        _ if flush.crowdsec => "CrowdSec".to_string(),
        Some(jail) => format!("jail {jail}"),
        None => "all jails".to_string(),
    };
    if !flush.remove {
        let now = queue::now() as i64;
        let live = rows.iter().filter(|d| d.is_live(now)).count();
        return Ok((format!("flush: kept {live} ban(s) of {jail} in PVE"), false));
    }
    let mut entries = BTreeSet::new();
    for row in &rows {
        let mut req = row.request.clone();
        req.restored = false;
        queue::enqueue(
            db,
            Action::Unban,
            &row.entry,
            &row.holder,
            &req,
            Some(&bound.id),
        )
        .map_err(db_failure)?
        .ok_or_else(|| {
            Failure::config("flush: the state directory was bound to another PVE cluster meanwhile")
        })?;
        entries.insert((row.ipset.clone(), row.entry.clone()));
    }
    let now = queue::now() as i64;
    let mut kept = 0;
    for (ipset, entry) in &entries {
        if !desired::live(db.conn(), ipset, entry, now)
            .map_err(db_failure)?
            .is_empty()
        {
            kept += 1;
        }
    }
    let mut text = format!(
        "flush: queued removal of {} ban(s) of {jail}",
        entries.len() - kept
    );
    if kept > 0 {
        text.push_str(&format!("; {kept} stay in PVE, still held by others"));
    }
    Ok((text, true))
}
