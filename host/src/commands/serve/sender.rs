//! The sender worker: one thread with its own policy instance (and so its
//! keep-alive HTTPS connection to PVE) and database connection, running
//! the periodic tasks of the [`Scheduler`]: drain the queue (at once when
//! the intake committed an event, and every [`POLL`] for events CLI
//! processes committed), `sync` every `[serve] sync_interval`.
//!
//! It sends like every other sender: under the drain lock (`drain.lock`),
//! one at a time, so a CLI `-f` or `sync` while the service runs is safe.
//! It holds `drainer.lock` for its life, so CLI bans start no background
//! drainer of their own. Events leave the queue only when PVE answered; a
//! SIGTERM stops the pass before the next entry.

use super::scheduler::Scheduler;
use super::worker::{self, Wake};
use crate::commands::cluster::{self, Bound};
use crate::commands::crowdsec;
use crate::commands::drain::{Backoff, Report, pass_stoppable};
use crate::commands::errors::lock_failure;
use crate::commands::metrics::after_drain;
use crate::commands::sync;
use crate::config::Config;
use crate::error::{Failure, Result};
use crate::log;
use crate::runtime::Source;
use crate::runtime::session::{Remedy, Session};
use crate::state::db::Db;
use crate::state::locks::{self, DrainLock};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often the queue is looked at for events other processes committed.
pub const POLL: Duration = Duration::from_millis(250);
/// How often the CrowdSec bouncer is asked whether a pull is due.
const CROWDSEC_LOOK: Duration = Duration::from_secs(1);
/// At most one WAL checkpoint in this time.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(10);

pub struct Worker {
    pub config: Arc<Config>,
    source: Source,
    db: Db,
    bound: Bound,
    session: Session,
    stop: Arc<AtomicBool>,
    /// `drainer.lock`, once we have it.
    alive: Option<DrainLock>,
    checkpointed: Instant,
    /// The policy trapped: renew the instance before the next pass.
    broken: bool,
    /// The CrowdSec bouncer, with `[crowdsec]`.
    crowdsec: Option<Bouncing>,
}

/// The CrowdSec bouncer as the service runs it: one per state directory
/// (`crowdsec.lock`; while `fail2pvefw crowdsec` runs, the service leaves
/// the pulls to it), its next tick.
struct Bouncing {
    service: crowdsec::service::Service,
    lock: Option<DrainLock>,
    next: Instant,
    said: bool,
}

/// The tasks, each one registration. The CrowdSec pull cycle goes here.
pub fn tasks(config: &Config) -> Scheduler<Worker> {
    let mut s = Scheduler::default();
    s.every("drain", POLL, Duration::ZERO, Worker::drain)
        .on_wake()
        .every(
            "sync",
            config.serve.sync_interval,
            config.serve.sync_interval,
            Worker::sync,
        );
    // CROWDSEC: with `[crowdsec]`, the bouncer's cycle (its own clock
    // says when a pull is due: `Worker::crowdsec` asks it every second).
    if config.crowdsec.is_some() {
        s.every("crowdsec", CROWDSEC_LOOK, Duration::ZERO, Worker::crowdsec);
    }
    s
}

impl Worker {
    pub fn new(config: Arc<Config>, source: Source, stop: Arc<AtomicBool>) -> Result<Worker> {
        let (db, bound, session) = worker::open(&config, &source)?;
        let crowdsec = bouncing(&config)?;
        Ok(Worker {
            config,
            source,
            db,
            bound,
            session,
            stop,
            alive: None,
            checkpointed: Instant::now(),
            broken: false,
            crowdsec,
        })
    }

    /// Runs the tasks until `Stop`.
    pub fn run(mut self, wake: Receiver<Wake>) {
        let mut scheduler = tasks(&self.config);
        log::debug(&format!("serve: tasks {:?}", scheduler.names()));
        loop {
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            let woken = match wake.recv_timeout(scheduler.until_next()) {
                Ok(Wake::Queued) => {
                    // Many commits, one pass.
                    while let Ok(Wake::Queued) = wake.try_recv() {}
                    true
                }
                Ok(Wake::Reload(config)) => {
                    self.reload(config);
                    scheduler = tasks(&self.config);
                    continue;
                }
                Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => false,
            };
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            scheduler.run_due(&mut self, woken);
        }
        self.db.checkpoint();
    }

    fn reload(&mut self, config: Arc<Config>) {
        match worker::open(&config, &self.source) {
            Ok((db, bound, session)) => {
                self.db = db;
                self.bound = bound;
                self.session = session;
                match bouncing(&config) {
                    Ok(crowdsec) => self.crowdsec = crowdsec,
                    Err(f) => log::warn(&format!("serve: crowdsec: {f}; the old bouncer stays")),
                }
                self.config = config;
                self.broken = false;
            }
            Err(f) => log::warn(&format!(
                "serve: the new configuration cannot be used ({f}); the old one stays"
            )),
        }
    }

    fn renew(&mut self) -> Result<()> {
        let mut session = Session::open(
            &self.config,
            self.source.clone(),
            self.bound.node_addresses.clone(),
        )?;
        session.know(&self.bound.dns);
        self.session = session;
        self.broken = false;
        Ok(())
    }

    /// The drain task: one pass under the drain lock, respecting back-off.
    pub fn drain(&mut self) -> Result<(), Failure> {
        let dir = self.config.state_dir.clone();
        if self.alive.is_none() {
            self.alive = DrainLock::try_take_named(&dir, locks::DRAINER).map_err(lock_failure)?;
        }
        if self.broken {
            self.renew()?;
        }
        let Some(sending) = DrainLock::try_take(&dir).map_err(lock_failure)? else {
            return Ok(()); // a `-f` or `sync` sends; we look again next poll
        };
        let mut report = Report::default();
        let stop = self.stop.clone();
        let passed = pass_stoppable(
            &mut self.session,
            &mut self.db,
            &self.bound,
            Backoff::Respect,
            &mut report,
            None,
            &|| stop.load(Ordering::SeqCst),
        );
        drop(sending);
        if report.stopped == Some(Remedy::Hold)
            && report
                .blocker
                .as_ref()
                .is_some_and(|b| b.kind == crate::error::Kind::Config)
        {
            self.broken = true;
        }
        passed?;
        if report.sent + report.skipped > 0 {
            if self.checkpointed.elapsed() > CHECKPOINT_EVERY {
                self.db.checkpoint();
                self.checkpointed = Instant::now();
            }
            after_drain(&self.config, &mut self.session, &self.db);
        }
        for failure in report.failures.values().take(1) {
            log::write(log::Level::Warn, "serve", &failure.to_string());
        }
        Ok(())
    }

    /// The CrowdSec task: a tick of the bouncer when it is due (a pull,
    /// then sending until the next one is due or the queue is empty).
    pub fn crowdsec(&mut self) -> Result<(), Failure> {
        let dir = self.config.state_dir.clone();
        let Some(cs) = self.crowdsec.as_mut() else {
            return Ok(());
        };
        if Instant::now() < cs.next {
            return Ok(());
        }
        if cs.lock.is_none() {
            cs.lock = DrainLock::try_take_named(&dir, crowdsec::LOCK).map_err(lock_failure)?;
            if cs.lock.is_none() {
                if !cs.said {
                    log::warn(
                        "serve: crowdsec: `fail2pvefw crowdsec` runs for this state directory; the service leaves the pulls to it",
                    );
                    cs.said = true;
                }
                cs.next = Instant::now() + Duration::from_secs(30);
                return Ok(());
            }
        }
        match cs
            .service
            .tick(&mut self.session, &mut self.db, &self.config, &self.bound)
        {
            Ok(next) => {
                cs.next = next;
                Ok(())
            }
            Err(f) => {
                cs.next = Instant::now() + Duration::from_secs(5);
                self.broken = true;
                Err(f)
            }
        }
    }

    /// The sync task: the nodes' names resolved again, then `sync`.
    pub fn sync(&mut self) -> Result<(), Failure> {
        let mut bound = cluster::bind(&self.config, &mut self.db, true)?;
        bound.dns = cluster::dns_known(&self.config, &self.db)?;
        let renew = bound.node_addresses != self.bound.node_addresses;
        self.bound = bound;
        if renew || self.broken {
            self.renew()?;
        } else {
            self.session.know(&self.bound.dns);
        }
        let text = sync::sync(
            &self.config,
            &mut self.session,
            &mut self.db,
            &self.bound,
            None,
        )?;
        self.checkpointed = Instant::now();
        for line in text.lines() {
            log::info(&format!("serve: {line}"));
        }
        Ok(())
    }
}

/// The bouncer for `[crowdsec]`, if configured.
fn bouncing(config: &Config) -> Result<Option<Bouncing>> {
    if config.crowdsec.is_none() {
        return Ok(None);
    }
    let bouncer = crowdsec::bouncer::Bouncer::new(config)?;
    Ok(Some(Bouncing {
        service: crowdsec::service::Service::new(bouncer),
        lock: None,
        next: Instant::now(),
        said: false,
    }))
}
