//! The long-lived bouncer: a cycle every `update_frequency`, the queue sent
//! in between, back-off while the LAPI fails. [`Service::tick`] does what
//! is due and says when to come back, so a resident process that does
//! other work too (a later `fail2pvefw serve`) runs it beside its own.
//!
//! It never exits on a fault of the LAPI or of PVE, so it cannot
//! crash-loop: a LAPI that is down, refuses the key or lost its database
//! is retried with back-off (from `update_frequency`, doubling, up to five
//! minutes, ±20 %), logged once, then reminded every ten minutes, and the
//! pull after a failure is a full one. Nothing is removed from PVE while
//! it fails, except decisions whose time ran out. It does not flush on
//! stop: the IPSet is the cluster's, and a restart must cost no write.

use super::bouncer::{Bouncer, Cycle};
use super::budget;
use crate::commands::cluster::Bound;
use crate::commands::drain::{Backoff, Report, pass_until};
use crate::commands::errors::{db_failure, lock_failure};
use crate::commands::metrics::after_drain;
use crate::config::Config;
use crate::error::Result;
use crate::log;
use crate::runtime::session::Session;
use crate::state::db::Db;
use crate::state::holds;
use crate::state::locks::DrainLock;
use std::time::{Duration, Instant, SystemTime};

/// The longest wait between tries of a failing LAPI.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often a LAPI that keeps failing is mentioned again.
pub const REMINDER: Duration = Duration::from_secs(600);

pub struct Service {
    pub bouncer: Bouncer,
    next_pull: Instant,
    failures: u32,
    failing_since: Option<SystemTime>,
    last_said: Option<Instant>,
}

impl Service {
    pub fn new(bouncer: Bouncer) -> Service {
        Service {
            bouncer,
            next_pull: Instant::now(),
            failures: 0,
            failing_since: None,
            last_said: None,
        }
    }

    /// Does what is due now (a cycle when the pull is due, then sending
    /// until the next one is), and returns when to call again. `Err` is a
    /// fault of our own (the state database, a broken policy).
    pub fn tick(
        &mut self,
        session: &mut Session,
        db: &mut Db,
        config: &Config,
        bound: &Bound,
    ) -> Result<Instant> {
        if Instant::now() >= self.next_pull {
            let cycle = self.bouncer.cycle(session, db, config, bound)?;
            self.after(&cycle);
        }
        let report = send_until(session, db, config, bound, Some(self.next_pull))?;
        if report.capacity {
            budget::capacity_reached(db, &self.bouncer.cs)?;
        }
        let wake = match holds::next_try_in(db.conn()).map_err(db_failure)? {
            // Something is ready, but another process sends: look again soon.
            Some(wait) if wait <= 0.0 => Instant::now() + Duration::from_millis(500),
            Some(wait) => Instant::now() + Duration::from_secs_f64(wait.min(3600.0)),
            None => self.next_pull,
        };
        Ok(wake.min(self.next_pull))
    }

    /// Schedules the next pull and logs what is worth logging.
    fn after(&mut self, cycle: &Cycle) {
        let url = &self.bouncer.cs.url;
        let every = self.bouncer.cs.update_frequency;
        match &cycle.error {
            None => {
                if self.failures > 0 {
                    log::warn(&format!(
                        "crowdsec: the LAPI at {url} answers again, after {} failed tries; {}",
                        self.failures,
                        cycle.summary(url)
                    ));
                } else if cycle.planned.bans + cycle.planned.unbans > 0
                    || cycle.pulled.as_ref().is_some_and(|p| p.startup)
                {
                    log::info(&cycle.summary(url));
                }
                self.failures = 0;
                self.failing_since = None;
                self.last_said = None;
                self.next_pull = Instant::now() + every;
            }
            Some(error) => {
                self.failures += 1;
                let since = *self.failing_since.get_or_insert_with(SystemTime::now);
                let wait = backoff(every, self.failures);
                let due = self.last_said.is_none_or(|t| t.elapsed() >= REMINDER);
                if due {
                    let words = if self.failures == 1 {
                        format!(
                            "{}; keeping what is in PVE; retrying with back-off",
                            error.describe(url)
                        )
                    } else {
                        format!(
                            "{}; still failing since {} ({} tries); keeping what is in PVE",
                            error.describe(url),
                            local_time(since),
                            self.failures
                        )
                    };
                    log::warn(&format!("crowdsec: {words}\n\n{}", error.hint()));
                    self.last_said = Some(Instant::now());
                }
                self.next_pull = Instant::now() + wait;
            }
        }
    }
}

/// From `every`, doubling per failure, up to [`MAX_BACKOFF`], ±20 %.
pub fn backoff(every: Duration, failures: u32) -> Duration {
    let base = every.as_secs_f64() * 2f64.powi(failures.saturating_sub(1).min(16) as i32);
    let base = base.min(MAX_BACKOFF.as_secs_f64());
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.8 + 0.4 * (f64::from(nanos % 1000) / 1000.0);
    Duration::from_secs_f64((base * jitter).max(0.1))
}

fn local_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Sends what is ready until `deadline` (or the queue is empty, or PVE
/// fails), when no other process is sending: one sender at a time.
pub fn send_until(
    session: &mut Session,
    db: &mut Db,
    config: &Config,
    bound: &Bound,
    deadline: Option<Instant>,
) -> Result<Report> {
    let mut report = Report::default();
    if !holds::next_try_in(db.conn())
        .map_err(db_failure)?
        .is_some_and(|wait| wait <= 0.0)
    {
        return Ok(report);
    }
    let Some(lock) = DrainLock::try_take(&config.state_dir).map_err(lock_failure)? else {
        return Ok(report);
    };
    pass_until(session, db, bound, Backoff::Respect, &mut report, deadline)?;
    drop(lock);
    if report.sent > 0 {
        db.checkpoint();
        after_drain(config, session, db);
    }
    Ok(report)
}

/// `fail2pvefw crowdsec`: ticks until killed. A fault of our own (the
/// state database, a policy that trapped) is logged and tried again with
/// back-off, with a fresh policy instance (`open` makes one), so the
/// service never crash-loops; only a bad configuration stops it, at start.
pub fn run(
    mut service: Service,
    mut open: impl FnMut() -> Result<Session>,
    db: &mut Db,
    config: &Config,
    bound: &Bound,
) -> Result<String> {
    let mut session = open()?;
    log::info(&format!(
        "crowdsec: bouncing decisions of the LAPI at {} into IPSet '{}' every {:.0} s",
        service.bouncer.cs.url,
        service.bouncer.cs.ipset,
        service.bouncer.cs.update_frequency.as_secs_f64()
    ));
    let mut faults = 0;
    loop {
        match service.tick(&mut session, db, config, bound) {
            Ok(wake) => {
                faults = 0;
                let now = Instant::now();
                if wake > now {
                    std::thread::sleep(wake - now);
                }
            }
            Err(failure) => {
                faults += 1;
                let wait = backoff(FAULT_BACKOFF, faults);
                log::write(
                    log::Level::Error,
                    "",
                    &format!(
                        "crowdsec: {failure}\n\nTrying again in {:.0} s; entries in PVE stay.",
                        wait.as_secs_f64()
                    ),
                );
                std::thread::sleep(wait);
                match open() {
                    Ok(fresh) => session = fresh,
                    Err(failure) => log::write(log::Level::Error, "", &failure.to_string()),
                }
            }
        }
    }
}

/// The first wait after a fault of our own.
const FAULT_BACKOFF: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes_with_jitter() {
        let s = |n| backoff(Duration::from_secs(10), n).as_secs_f64();
        assert!((8.0..=12.0).contains(&s(1)));
        assert!((16.0..=24.0).contains(&s(2)));
        assert!((240.0..=360.0).contains(&s(30)));
    }
}
