//! The commands: load the configuration and the policy, then queue, drain,
//! reconcile or report.

use crate::cli::{Cli, Command, Flush, IpsetOnly, Status, Target};
use crate::config::Config;
use crate::drain::{self, Backoff, Report, db_failure, lock_failure};
use crate::error::{Failure, Result};
use crate::log;
use crate::runtime::Source;
use crate::runtime::session::Session;
use crate::state::db::Db;
use crate::state::locks::{self, DrainLock};
use crate::state::queue::{self, Action, EventState, Request};
use std::time::Duration;

/// Size at which the background drainer's log is rotated.
const DRAIN_LOG_LIMIT: u64 = 1024 * 1024;

/// Runs one command; `Ok` carries what to tell the user.
pub fn run(cli: Cli) -> Result<String> {
    log::set_threshold(match cli.verbose {
        0 => log::Level::Warn,
        1 => log::Level::Info,
        _ => log::Level::Debug,
    });
    log::set_format(cli.log_format);
    // These need no configuration file, token or PVE, or check it themselves.
    match cli.command {
        Command::Sandbox(args) => return crate::sandbox::run(args, cli.policy),
        Command::Policy(args) => return crate::policy_check::run(args),
        Command::GenerateDocs(args) => return crate::docs::run(&args),
        Command::Init(args) => return crate::init::run(&args),
        Command::Doctor(IpsetOnly { ipset }) => return crate::doctor::run(&cli.config, ipset),
        _ => {}
    }
    let config = Config::load(&cli.config)?;
    for warning in &config.warnings {
        log::warn(warning);
    }
    if let Command::Trust(args) = &cli.command {
        return crate::trust::run(&config, args.yes);
    }
    if cli.manual {
        crate::trust::manual(&config)?;
    }
    let source = match cli.policy.clone().or_else(|| config.policy.clone()) {
        Some(path) => Source::File(path),
        None => Source::Embedded,
    };
    let app = App {
        config,
        source,
        foreground: cli.foreground,
        queue_only: cli.queue_only,
    };
    match cli.command {
        Command::Ban(target) => app.submit(&target, Action::Ban),
        Command::Unban(target) => app.submit(&target, Action::Unban),
        Command::Start(IpsetOnly { ipset }) => app.start_or_check(ipset, false),
        Command::Check(IpsetOnly { ipset }) => app.start_or_check(ipset, true),
        Command::Sync(IpsetOnly { ipset }) => app.sync(ipset),
        Command::Status(status) => app.status(&status),
        Command::Flush(flush) => app.flush(&flush),
        Command::Drain => app.drain(),
        Command::Trust(_)
        | Command::Sandbox(_)
        | Command::Policy(_)
        | Command::GenerateDocs(_)
        | Command::Init(_)
        | Command::Doctor(_) => {
            unreachable!("handled above")
        }
    }
}

struct App {
    config: Config,
    source: Source,
    foreground: bool,
    /// Commit events and leave sending to `sync` or the timer.
    queue_only: bool,
}

impl App {
    fn session(&self) -> Result<Session> {
        Session::open(&self.config, self.source.clone())
    }

    fn db(&self) -> Result<Db> {
        Db::open(&self.config.state_dir).map_err(|e| {
            Failure::config(e).hint("Check [state] dir: it must be writable by the user fail2ban runs as (usually root).")
        })
    }

    /// `ban`/`unban`: validate (bad input never reaches the queue), commit the
    /// event, then either return at once and let a background drainer send
    /// it, or (`-f`) drain and report this event's real outcome.
    fn submit(&self, target: &Target, action: Action) -> Result<String> {
        let req = Request {
            ip: target.ip.clone(),
            ipset: target
                .ipset
                .clone()
                .unwrap_or_else(|| self.config.ipset.clone()),
            jail: target.jail.clone(),
            comment: target.comment.clone(),
            time: target.time,
            bantime: target.bantime,
            failures: target.failures,
            restored: target.restored.unwrap_or(false),
        };
        let verb = action.as_str();
        let mut session = self.session()?;
        // The policy's message already quotes the input.
        let entry = session
            .validate(&req)?
            .map_err(|r| r.failure.context(verb))?;
        let mut db = self.db()?;
        let id = queue::enqueue(&mut db, action, &entry, &req).map_err(db_failure)?;
        log::debug(&format!("queued {verb} of '{entry}' (event {id})"));
        if !self.foreground || self.queue_only {
            self.start_background_drainer()?;
            return Ok(String::new());
        }
        let what = format!("{verb} '{}'", target.ip);
        self.drain_for(&mut session, &mut db, id)
            .map_err(|f| f.context(&what))
            .map(|()| format!("{verb} of {entry} in IPSet '{}' done", req.ipset))
    }

    /// `-f`: takes the drain lock (waiting for a running drainer), drains,
    /// and tells how event `id` ended.
    fn drain_for(&self, session: &mut Session, db: &mut Db, id: i64) -> Result<()> {
        let dir = &self.config.state_dir;
        let patience = self.config.pve.timeout * 3 + Duration::from_secs(5);
        let deadline = std::time::Instant::now() + patience;
        let mut report = Report::default();
        loop {
            if let Some(lock) = DrainLock::try_take(dir).map_err(lock_failure)? {
                for attempt in 0..2 {
                    if attempt > 0 {
                        std::thread::sleep(Duration::from_secs(1));
                    }
                    drain::pass(session, db, Backoff::Ignore, &mut report)?;
                    if report.stopped != Some(crate::runtime::session::Remedy::Retry) {
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
            EventState::Failed(error) | EventState::Pending(Some(error)) => {
                Err(Failure::pve(error))
            }
            EventState::Pending(None) => Err(Failure::pve("queued; not sent yet")),
        }
    }

    /// Starts `fail2pvefw drain` detached, unless a drainer is alive (it
    /// will see the event: it looks again after releasing its lock).
    fn start_background_drainer(&self) -> Result<()> {
        let dir = &self.config.state_dir;
        if self.queue_only {
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
        cmd.arg("--config").arg(&self.config.path);
        if let Source::File(policy) = &self.source {
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

    /// The hidden `drain` command the background drainer runs.
    fn drain(&self) -> Result<String> {
        let mut session = self.session()?;
        let mut db = self.db()?;
        let report = drain::background(&mut session, &mut db, &self.config.state_dir)?;
        db.checkpoint();
        for failure in report.failures.values().take(1) {
            log::write(log::Level::Error, "drain", &failure.to_string());
        }
        crate::metrics::after_drain(&self.config, &mut session, &db);
        Ok(String::new())
    }

    fn start_or_check(&self, ipset: Option<String>, check: bool) -> Result<String> {
        let ipset = ipset.unwrap_or_else(|| self.config.ipset.clone());
        let mut session = self.session()?;
        let what = if check { "check" } else { "start" };
        let answer = if check {
            session.check(&ipset)?
        } else {
            session.start(&ipset)?
        };
        answer.map_err(|r| r.failure.context(what))
    }

    /// `sync`: drain everything now (ignoring back-off), then reconcile each
    /// IPSet we have bans in, and the configured one.
    fn sync(&self, ipset: Option<String>) -> Result<String> {
        let mut session = self.session()?;
        let mut db = self.db()?;
        let dir = &self.config.state_dir;
        let lock = DrainLock::take(dir, self.config.pve.timeout * 3 + Duration::from_secs(5))
            .map_err(lock_failure)?
            .ok_or_else(|| {
                Failure::pve("another fail2pvefw process is draining the queue; try again")
            })?;
        let mut report = Report::default();
        drain::pass(&mut session, &mut db, Backoff::Ignore, &mut report)?;
        db.checkpoint();
        if let Some(failure) = report.failures.into_values().next()
            && report.stopped.is_some()
        {
            return Err(failure.context("sync"));
        }
        let mut ipsets: Vec<String> = match ipset {
            Some(one) => vec![one],
            None => {
                let mut all: Vec<String> = queue::desired(&db)
                    .map_err(db_failure)?
                    .into_iter()
                    .map(|d| d.ipset)
                    .collect();
                all.push(self.config.ipset.clone());
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
            let done = drain::reconcile(&mut session, &mut db, &ipset)
                .map_err(|f| f.context(format!("sync IPSet '{ipset}'")))?;
            lines.push(format!(
                "sync: IPSet '{ipset}': {} entries, {} re-added, {} expired removed",
                done.entries, done.readded, done.expired_removed
            ));
        }
        drop(lock);
        crate::metrics::after_drain(&self.config, &mut session, &db);
        Ok(lines.join("\n"))
    }

    fn status(&self, status: &Status) -> Result<String> {
        let db = self.db()?;
        let stats = queue::stats(&db).map_err(db_failure)?;
        let ipset = status
            .ipset
            .clone()
            .unwrap_or_else(|| self.config.ipset.clone());
        let mut session = self.session()?;
        let report = crate::status::gather(&mut session, stats, &ipset)?;
        if status.prometheus {
            let counters = crate::metrics::Counters::load(&db).map_err(db_failure)?;
            // `main` adds the last newline.
            return Ok(crate::metrics::render(&report, &counters)
                .trim_end()
                .to_string());
        }
        Ok(if status.json {
            report.json()
        } else {
            report.human()
        })
    }

    /// `flush` (fail2ban's actionflush, at stop): by default bans stay in
    /// PVE across restarts; `--remove` queues an unban of this jail's
    /// entries instead.
    fn flush(&self, flush: &Flush) -> Result<String> {
        let mut db = self.db()?;
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
        if self.foreground {
            let mut session = self.session()?;
            let mut report = Report::default();
            if let Some(_lock) =
                DrainLock::take(&self.config.state_dir, self.config.pve.timeout * 3)
                    .map_err(lock_failure)?
            {
                drain::pass(&mut session, &mut db, Backoff::Ignore, &mut report)?;
            }
        } else {
            self.start_background_drainer()?;
        }
        Ok(format!(
            "flush: queued removal of {} ban(s) of {jail}",
            ours.len()
        ))
    }
}
