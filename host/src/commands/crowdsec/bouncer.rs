//! One bouncer cycle: pull, merge, validate, choose, queue. Sending is the
//! queue's (`drain`), so `sync`, `status`, the metrics, ownership, per-entry
//! order and the guard hold for CrowdSec's entries as for fail2ban's.
//!
//! A failed pull never changes what is wanted: only a successful pull, or
//! our own clock (a decision that ran out), does. So a LAPI that is down,
//! refuses the key or lost its database leaves what is applied in place.

use super::budget::{self, Budget};
use super::plan::{self, Planned};
use super::pull::{self, Pulled};
use crate::commands::cluster::Bound;
use crate::commands::errors::db_failure;
use crate::config::{Config, CrowdSec};
use crate::error::{Failure, Result};
use crate::runtime::session::Session;
use crate::state::crowdsec as table;
use crate::state::db::Db;
use crate::state::meta;
use crate::state::request::now;
use crate::transport::lapi::{Lapi, LapiError};

/// The key of the last plan (see `plan::key`).
const PLAN_KEY: &str = "crowdsec.plan_key";

/// The LAPI and the `[crowdsec]` section.
pub struct Bouncer {
    pub cs: CrowdSec,
    lapi: Lapi,
}

/// What one cycle did.
#[derive(Debug, Default)]
pub struct Cycle {
    /// The pull, when the LAPI answered.
    pub pulled: Option<Pulled>,
    /// Why it did not.
    pub error: Option<LapiError>,
    /// Decisions whose time ran out, by our clock.
    pub expired: usize,
    pub planned: Planned,
}

impl Cycle {
    /// One line: what came, what was chosen, what was queued.
    pub fn summary(&self, url: &str) -> String {
        let pull = match (&self.pulled, &self.error) {
            (Some(p), _) if p.startup => format!(
                "full pull ({}): {} decisions, +{} −{}",
                p.why, p.listed, p.merged.added, p.merged.removed
            ),
            (Some(p), _) => format!("delta: +{} −{}", p.merged.added, p.merged.removed),
            (None, Some(e)) => format!("no pull: {}", e.describe(url)),
            (None, None) => "no pull".to_string(),
        };
        let p = &self.planned;
        let expired = if self.expired > 0 {
            format!(", {} ran out", self.expired)
        } else {
            String::new()
        };
        if p.unchanged {
            return format!("crowdsec: {pull}{expired}; nothing to choose anew");
        }
        format!(
            "crowdsec: {pull}{expired}; {} entries chosen, {} decisions left out; queued {} bans, {} unbans",
            p.chosen, p.left_out, p.bans, p.unbans
        )
    }
}

impl Bouncer {
    pub fn new(config: &Config) -> Result<Bouncer> {
        let cs = CrowdSec::required(config.crowdsec.as_ref(), &config.path)?.clone();
        let lapi = Lapi::new(&cs).map_err(|e| Failure::config(format!("crowdsec: {e}")))?;
        Ok(Bouncer { cs, lapi })
    }

    pub fn lapi(&self) -> &Lapi {
        &self.lapi
    }

    /// One cycle (see the module). A LAPI fault is in the answer; `Err` is
    /// ours (the state, the policy) and ends a run.
    pub fn cycle(
        &mut self,
        session: &mut Session,
        db: &mut Db,
        config: &Config,
        bound: &Bound,
    ) -> Result<Cycle> {
        let started = now();
        let mut cycle = Cycle::default();
        match pull::pull(db, &self.lapi, &self.cs, started) {
            Ok(pulled) => {
                succeeded(db)?;
                cycle.pulled = Some(pulled);
            }
            Err(Ok(error)) => {
                failed(db, &error, &self.cs.url)?;
                cycle.error = Some(error);
            }
            Err(Err(failure)) => return Err(failure),
        }
        let at = now() as i64;
        cycle.expired = table::expire(db.conn(), at).map_err(db_failure)?;
        let full = cycle.pulled.as_ref().is_some_and(|p| p.startup);
        if full {
            budget::measure_room(session, db, config, &self.cs)?;
        }
        plan::validate(session, db, config, &self.cs, bound, full)?;
        let budget = Budget::now(db, &self.cs, at)?;
        let key = plan::key(db, config, &self.cs, &budget, session.has_admission())?;
        let last = meta::get(db.conn(), PLAN_KEY).map_err(db_failure)?;
        if !full && cycle.expired == 0 && last.as_deref() == Some(key.as_str()) {
            cycle.planned.unchanged = true;
            return Ok(cycle);
        }
        cycle.planned = plan::plan(session, db, config, &self.cs, bound, &budget, at)?;
        // The key of what the plan left behind (it queued and chose).
        let key = plan::key(db, config, &self.cs, &budget, session.has_admission())?;
        meta::set(db.conn(), PLAN_KEY, &key).map_err(db_failure)?;
        Ok(cycle)
    }
}

fn succeeded(db: &Db) -> Result<()> {
    let c = db.conn();
    meta::set(c, table::FAILURES, "0")
        .and_then(|_| meta::delete(c, table::FAILING_SINCE))
        .and_then(|_| meta::delete(c, table::LAST_ERROR))
        .map_err(db_failure)
}

fn failed(db: &Db, error: &LapiError, url: &str) -> Result<()> {
    let c = db.conn();
    let count = |key: &str| -> rusqlite::Result<()> {
        let n: u64 = meta::get(c, key)?.and_then(|v| v.parse().ok()).unwrap_or(0);
        meta::set(c, key, &(n + 1).to_string())
    };
    count(table::FAILURES)
        .and_then(|_| count(table::FAILURES_TOTAL))
        .and_then(|_| {
            if meta::get(c, table::FAILING_SINCE)?.is_none() {
                meta::set(c, table::FAILING_SINCE, &now().to_string())?;
            }
            meta::set(c, table::LAST_ERROR, &error.describe(url))
        })
        .map_err(db_failure)
}
