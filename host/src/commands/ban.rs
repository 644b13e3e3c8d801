//! `ban` and `unban`: validate, commit the event to the queue, then leave it
//! to a background drainer, or (`-f`) drain and report the real outcome.

use super::cluster::Bound;
use super::context::{Context, request_from};
use super::drain::{Backoff, Report, pass};
use super::errors::{db_failure, lock_failure};
use crate::capabilities::guard::Purpose;
use crate::cli::Target;
use crate::error::{Failure, Result};
use crate::log;
use crate::runtime::Source;
use crate::runtime::session::{Remedy, Session};
use crate::state::db::Db;
use crate::state::desired::{self, Desired};
use crate::state::locks::{self, DrainLock};
use crate::state::queue::{self, Action, EventState};
use std::time::Duration;

/// Size at which the background drainer's log is rotated.
const DRAIN_LOG_LIMIT: u64 = 1024 * 1024;

/// `ban`/`unban`: validate (bad input never reaches the queue), check the
/// admin's rules, commit the event, then either return at once and let a
/// background drainer send it, or (`-f`) drain and report this event's
/// real outcome.
pub fn submit(ctx: &Context, target: &Target, action: Action) -> Result<String> {
    let req = request_from(target, &ctx.config.ipset);
    let verb = action.as_str();
    let what = format!("{verb} '{}'", target.ip);
    let (mut db, bound) = ctx.state(false)?;
    if bound.dns.accept_lists.contains(&req.ipset) {
        return Err(accept_list(&what, &req.ipset, action));
    }
    let mut session = ctx.session_for(&bound)?;
    // The policy's message already quotes the input.
    let entry = session
        .validate(&req)?
        .map_err(|r| r.failure.context(verb))?;
    if action == Action::Ban
        && let Err(why) = bound
            .entry_rules(&ctx.config.rules)
            .check(&entry, Purpose::Ban)
    {
        return Err(Failure::input(format!(
            "{what}: refused by the host: '{entry}': {why}; nothing was queued"
        ))
        .hint("The host checks [rules] never_ban, widest_ipv4/widest_ipv6, the PVE nodes' addresses and the addresses of [dns] names whatever the policy says."));
    }
    let holder = desired::jail_holder(req.jail.as_deref(), action == Action::Ban);
    let id = queue::enqueue(&mut db, action, &entry, &holder, &req, Some(&bound.id))
        .map_err(db_failure)?
        .ok_or_else(|| {
            Failure::config(format!(
                "{what}: the state directory '{}' was bound to another PVE cluster meanwhile; nothing was queued",
                ctx.config.state_dir.display()
            ))
            .hint("Give each cluster its own [state] dir.")
        })?;
    log::debug(&format!("queued {verb} of '{entry}' (event {id})"));
    let note = note(&db, action, &what, &req, &entry)?;
    if !ctx.foreground || ctx.queue_only {
        start_background_drainer(ctx)?;
        return Ok(note.unwrap_or_default());
    }
    let left_alone =
        drain_for(ctx, &mut session, &mut db, &bound, id).map_err(|f| f.context(&what))?;
    Ok(note
        .or(left_alone)
        .unwrap_or_else(|| format!("{verb} of {entry} in IPSet '{}' done", req.ipset)))
}

/// The refusal of a ban or unban in an accept list: `fail2pvefw dns` keeps
/// host names there, and a ban would let the address in.
fn accept_list(what: &str, ipset: &str, action: Action) -> Failure {
    let (why, hint) = match action {
        Action::Ban => (
            "a ban there would let the address in",
            "Ban into the IPSet your DROP rule uses ([pve] ipset, or -i).",
        ),
        Action::Unban => (
            "its entries are a host name's, not bans",
            "To stop keeping a name there: `fail2pvefw dns --remove NAME`.",
        ),
    };
    Failure::input(format!(
        "{what}: IPSet '{ipset}' is an accept list (`fail2pvefw dns` keeps host names there): \
         {why}; nothing was queued"
    ))
    .hint(hint)
}

/// What to tell about an event that needs no call: an unban of an entry
/// other holders still want, a ban whose time is already over.
fn note(
    db: &Db,
    action: Action,
    what: &str,
    req: &queue::Request,
    entry: &str,
) -> Result<Option<String>> {
    let now = queue::now();
    if action == Action::Ban {
        return Ok(req.expires(now).filter(|&t| t <= now as i64).map(|t| {
            format!(
                "{what}: its ban time ended at {}; nothing to send",
                local_time(t)
            )
        }));
    }
    let holders = desired::live(db.conn(), &req.ipset, entry, now as i64).map_err(db_failure)?;
    if holders.is_empty() {
        return Ok(None);
    }
    let by: Vec<String> = holders.iter().map(held_by).collect();
    Ok(Some(format!(
        "{what}: still held by {}; left in PVE",
        by.join(", ")
    )))
}

/// `jail recidive until 2026-12-03 10:00:00 +00:00`, `jail sshd for good`.
fn held_by(d: &Desired) -> String {
    let who = desired::describe(&d.holder);
    match d.expires {
        Some(t) => format!("{who} until {}", local_time(t)),
        None => format!("{who} for good"),
    }
}

fn local_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_else(|| t.to_string())
}

/// `-f`: takes the drain lock (waiting for a running drainer), drains,
/// and tells how event `id` ended; when the pass stopped before it, the
/// failure that holds it, with its fix.
fn drain_for(
    ctx: &Context,
    session: &mut Session,
    db: &mut Db,
    bound: &Bound,
    id: i64,
) -> Result<Option<String>> {
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
                pass(session, db, bound, Backoff::Ignore, &mut report)?;
                if report.stopped != Some(Remedy::Retry) {
                    break;
                }
            }
            drop(lock);
            break;
        }
        // Another drainer runs; it may send our event for us.
        if queue::event_state(db, id).map_err(db_failure)? == EventState::Done {
            return Ok(None);
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
        EventState::Done => Ok(report.left_alone.remove(&id)),
        EventState::Failed(error) => Err(Failure::pve(error)),
        EventState::Pending(error) => Err(match (report.blocker, error) {
            (Some(blocker), _) => {
                let held = Failure::new(
                    blocker.kind,
                    format!(
                        "queued, not sent: earlier events are held: {}",
                        blocker.message
                    ),
                );
                match blocker.hint {
                    Some(hint) => held.hint(hint),
                    None => held,
                }
            }
            (None, Some(error)) => Failure::pve(error),
            (None, None) => Failure::pve("queued; not sent yet"),
        }),
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
