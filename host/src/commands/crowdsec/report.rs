//! The bouncer in `status` and the metrics: the last pulls, the decisions
//! the LAPI holds, how many are in PVE, and how many were not applied and
//! why.

use crate::commands::errors::db_failure;
use crate::config::Config;
use crate::error::Result;
use crate::state::crowdsec::{self as table, HOLDER};
use crate::state::db::Db;
use crate::state::request::now;
use crate::state::{meta, pace};
use rusqlite::params;
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a decision is not in PVE, in the order `status` lists them.
pub const NOT_APPLIED: [&str; 5] = ["over-entries", "over-bytes", "invalid", "rule", "new"];

#[derive(Debug, Default, Serialize)]
pub struct CrowdsecReport {
    pub url: Option<String>,
    pub ipset: String,
    /// Decisions the LAPI holds for our filters.
    pub decisions: u64,
    /// Decisions per verdict: chosen, aggregated (in PVE through a
    /// network), over-entries, over-bytes, invalid, rule, new.
    pub verdicts: BTreeMap<String, u64>,
    /// Decisions not in PVE (over the cap or the bytes, refused, not yet
    /// validated), and some of them with why.
    pub not_applied: u64,
    pub examples: BTreeMap<String, Vec<String>>,
    /// Entries chosen for PVE, and those PVE holds of them.
    pub chosen_entries: u64,
    pub applied_entries: u64,
    /// CrowdSec's events waiting in the queue.
    pub pending_events: u64,
    pub max_entries: Option<u32>,
    pub max_bytes: Option<u64>,
    pub last_pull_age_secs: Option<f64>,
    pub last_full_pull: Option<i64>,
    pub failing_since: Option<i64>,
    pub failures: u64,
    pub pull_failures_total: u64,
    pub last_error: Option<String>,
    pub writes_per_second: f64,
    /// PVE writes every process of this state directory sent.
    pub pve_writes_total: u64,
}

/// `None` when the bouncer is neither configured nor has run here.
pub fn gather(db: &Db, config: &Config) -> Result<Option<CrowdsecReport>> {
    let c = db.conn();
    let decisions = table::count(c).map_err(db_failure)?;
    let cs = config.crowdsec.as_ref();
    let url = match cs {
        Some(cs) => Some(cs.url.clone()),
        None => meta::get(c, table::URL).map_err(db_failure)?,
    };
    if cs.is_none() && decisions == 0 && url.is_none() {
        return Ok(None);
    }
    let ipset = cs.map_or_else(|| config.ipset.clone(), |cs| cs.ipset.clone());
    let number = |key: &str| -> Result<Option<f64>> { table::get_f64(c, key).map_err(db_failure) };
    let mut report = CrowdsecReport {
        url,
        decisions,
        max_entries: cs.and_then(|cs| cs.max_entries),
        max_bytes: cs.map(|cs| cs.max_bytes),
        last_pull_age_secs: number(table::LAST_OK)?.map(|t| (now() - t).max(0.0)),
        last_full_pull: number(table::LAST_FULL)?.map(|t| t as i64),
        failing_since: number(table::FAILING_SINCE)?.map(|t| t as i64),
        failures: number(table::FAILURES)?.unwrap_or(0.0) as u64,
        pull_failures_total: number(table::FAILURES_TOTAL)?.unwrap_or(0.0) as u64,
        last_error: meta::get(c, table::LAST_ERROR).map_err(db_failure)?,
        writes_per_second: config.pve.writes_per_second,
        pve_writes_total: pace::writes(c).map_err(db_failure)?,
        ..CrowdsecReport::default()
    };
    for (verdict, (n, examples)) in table::verdicts(c).map_err(db_failure)? {
        if NOT_APPLIED.contains(&verdict.as_str()) {
            report.not_applied += n;
            let shown = examples
                .into_iter()
                .map(|(value, why)| {
                    if why.is_empty() {
                        format!("'{value}'")
                    } else {
                        format!("'{value}': {why}")
                    }
                })
                .collect();
            report.examples.insert(verdict.clone(), shown);
        }
        report.verdicts.insert(verdict, n);
    }
    let (chosen, applied) = table::chosen_applied(c, &ipset).map_err(db_failure)?;
    report.chosen_entries = chosen;
    report.applied_entries = applied;
    report.pending_events = c
        .query_row(
            "SELECT COUNT(*) FROM events WHERE holder = ?1 AND failed = 0",
            params![HOLDER],
            |r| r.get::<_, i64>(0),
        )
        .map_err(db_failure)? as u64;
    report.ipset = ipset;
    Ok(Some(report))
}

impl CrowdsecReport {
    /// The lines of `status`.
    pub fn human(&self) -> Vec<String> {
        let mut out = Vec::new();
        let pulled = match self.last_pull_age_secs {
            Some(age) => format!("last pull {age:.0} s ago"),
            None => "never pulled".to_string(),
        };
        let full = self
            .last_full_pull
            .map(|t| format!(", last full pull {}", local_time(t)))
            .unwrap_or_default();
        out.push(format!(
            "crowdsec:      {}: {pulled}{full}; {} decisions",
            self.url.as_deref().unwrap_or("(not configured)"),
            self.decisions
        ));
        let cap = match self.max_entries {
            Some(n) => format!("cap {n}"),
            None => "no cap".to_string(),
        };
        let bytes = self
            .max_bytes
            .map(|b| format!(", {} KiB of cluster.fw", b / 1024))
            .unwrap_or_default();
        let wait = if self.pending_events > 0 {
            format!(
                " (about {:.0} s at {} writes/s)",
                self.pending_events as f64 / self.writes_per_second,
                self.writes_per_second
            )
        } else {
            String::new()
        };
        out.push(format!(
            "               in IPSet '{}': {} of {} chosen entries ({cap}{bytes}); {} events queued{wait}",
            self.ipset, self.applied_entries, self.chosen_entries, self.pending_events
        ));
        if let Some(n) = self.verdicts.get("aggregated").filter(|n| **n > 0) {
            out.push(format!(
                "               aggregated:  {n} decisions held by a network entry"
            ));
        }
        if self.not_applied > 0 {
            let parts: Vec<String> = NOT_APPLIED
                .iter()
                .filter_map(|v| {
                    let n = self.verdicts.get(*v).copied().unwrap_or(0);
                    (n > 0).then(|| format!("{n} {}", words(v)))
                })
                .collect();
            out.push(format!(
                "               not applied: {}: {}",
                self.not_applied,
                parts.join(", ")
            ));
            for v in NOT_APPLIED {
                if let Some(first) = self.examples.get(v).and_then(|e| e.first()) {
                    out.push(format!("                 e.g. {first}"));
                }
            }
        }
        if let Some(error) = &self.last_error {
            let since = self
                .failing_since
                .map(|t| format!(" since {}", local_time(t)))
                .unwrap_or_default();
            out.push(format!(
                "               failing{since} ({} tries): {}",
                self.failures,
                error.lines().next().unwrap_or("")
            ));
        }
        out
    }
}

fn words(verdict: &str) -> &'static str {
    match verdict {
        "over-entries" => "over max_entries",
        "over-bytes" => "over the byte budget",
        "invalid" => "invalid",
        "rule" => "refused by [rules] or a PVE node",
        _ => "not yet validated",
    }
}

fn local_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|| t.to_string())
}
