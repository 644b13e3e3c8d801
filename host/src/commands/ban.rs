//! `ban` and `unban`: validate, commit the event to the queue, then leave it
//! to a background drainer, or (`-f`) drain and report the real outcome.

use super::context::{Context, request_from};
use super::drain::{Backoff, Report, db_failure, lock_failure, pass};
use crate::cli::Target;
use crate::error::{Failure, Result};
use crate::log;
use crate::runtime::Source;
use crate::runtime::session::{Remedy, Session};
use crate::state::db::Db;
use crate::state::locks::{self, DrainLock};
use crate::state::queue::{self, Action, EventState};
use std::time::Duration;

/// Size at which the background drainer's log is rotated.
const DRAIN_LOG_LIMIT: u64 = 1024 * 1024;

/// `ban`/`unban`: validate (bad input never reaches the queue), commit the
/// event, then either return at once and let a background drainer send
/// it, or (`-f`) drain and report this event's real outcome.
pub fn submit(ctx: &Context, target: &Target, action: Action) -> Result<String> {
    let req = request_from(target, &ctx.config.ipset);
    let verb = action.as_str();
    let mut session = ctx.session()?;
    // The policy's message already quotes the input.
    let entry = session
        .validate(&req)?
        .map_err(|r| r.failure.context(verb))?;
    let mut db = ctx.db()?;
    let id = queue::enqueue(&mut db, action, &entry, &req).map_err(db_failure)?;
    log::debug(&format!("queued {verb} of '{entry}' (event {id})"));
    if !ctx.foreground || ctx.queue_only {
        start_background_drainer(ctx)?;
        return Ok(String::new());
    }
    let what = format!("{verb} '{}'", target.ip);
    drain_for(ctx, &mut session, &mut db, id)
        .map_err(|f| f.context(&what))
        .map(|()| format!("{verb} of {entry} in IPSet '{}' done", req.ipset))
}

/// `-f`: takes the drain lock (waiting for a running drainer), drains,
/// and tells how event `id` ended.
fn drain_for(ctx: &Context, session: &mut Session, db: &mut Db, id: i64) -> Result<()> {
    let dir = &ctx.config.state_dir;
    let patience = ctx.config.pve.timeout * 3 + Duration::from_secs(5);
    let deadline = std::time::Instant::now() + patience;
    let mut report = Report::default();
    loop {
        if let Some(lock) = DrainLock::try_take(dir).map_err(lock_failure)? {
            for attempt in 0..2 {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_secs(1));
                }
                pass(session, db, Backoff::Ignore, &mut report)?;
                if report.stopped != Some(Remedy::Retry) {
                    break;
                }
            }
            drop(lock);
            break;
        }
        // Another drainer runs; it may send our event for us.
        if queue::event_state(db, id).map_err(db_failure)? == EventState::Done {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Failure::pve(
                "queued, but another fail2pvefw process is still draining the queue",
            )
            .hint(
                "The event stays queued and will be sent; `fail2pvefw status` shows the queue.",
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(failure) = report.failures.remove(&id) {
        return Err(failure);
    }
    match queue::event_state(db, id).map_err(db_failure)? {
        EventState::Done => Ok(()),
        EventState::Failed(error) | EventState::Pending(Some(error)) => Err(Failure::pve(error)),
        EventState::Pending(None) => Err(Failure::pve("queued; not sent yet")),
    }
}

/// Starts `fail2pvefw drain` detached, unless a drainer is alive (it
/// will see the event: it looks again after releasing its lock).
pub fn start_background_drainer(ctx: &Context) -> Result<()> {
    let dir = &ctx.config.state_dir;
    if ctx.queue_only {
        return Ok(());
    }
    if DrainLock::try_take_named(dir, locks::DRAINER)
        .map_err(lock_failure)?
        .is_none()
    {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| {
        Failure::config(format!(
            "cannot find our own program to drain the queue: {e}"
        ))
    })?;
    let log_path = dir.join("drain.log");
    // The drainer has no terminal: its warnings go here. Keep one old
    // generation, so a long outage cannot fill the disk.
    if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > DRAIN_LOG_LIMIT) {
        let _ = std::fs::rename(&log_path, dir.join("drain.log.1"));
    }
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map(std::process::Stdio::from)
        .unwrap_or_else(|_| std::process::Stdio::null());
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--config").arg(&ctx.config.path);
    if let Source::File(policy) = &ctx.source {
        cmd.arg("--policy").arg(policy);
    }
    use std::os::unix::process::CommandExt;
    cmd.arg("drain")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        // Its own process group: fail2ban's timeout kill of our group
        // must not take the drainer with it.
        .process_group(0);
    cmd.spawn().map_err(|e| {
        Failure::config(format!("cannot start the background drainer: {e}"))
            .hint("The event is queued; `fail2pvefw sync` sends it.")
    })?;
    Ok(())
}
