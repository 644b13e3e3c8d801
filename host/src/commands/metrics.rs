//! Metrics for Prometheus: `status --prometheus`, and the node exporter's
//! textfile (`[metrics] textfile`) written after each background drain and
//! each `sync`.
//!
//! Counters live in the `meta` table of `state.db`, so they survive the
//! short-lived processes fail2ban starts; the drainer increments them where
//! events complete. Text exposition format 0.0.4.

use super::status_report::{Report, gather};
use crate::config::Config;
use crate::log;
use crate::runtime::session::Session;
use crate::state::db::Db;
use rusqlite::params;
use std::fmt::Write as _;

use std::path::Path;

/// Failure kinds, one per WIT error case: bad input, denied by the host's
/// guard, PVE rejected one request, a person must fix something (401, 403,
/// no IPSet, full cluster.fw), PVE unreachable or busy, the policy trapped.
pub const FAILURE_KINDS: [&str; 6] = [
    "invalid",
    "denied",
    "rejected",
    "config",
    "transient",
    "policy",
];

const BANS: &str = "metrics.bans_applied";
const UNBANS: &str = "metrics.unbans_applied";

fn increment(db: &Db, key: &str) {
    // A counter is not worth failing an event for: PVE has already acted.
    let done = db.conn().execute(
        "INSERT INTO meta (key, value) VALUES (?1, '1') ON CONFLICT (key)
         DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
        params![key],
    );
    if let Err(e) = done {
        log::debug(&format!("cannot count {key}: {e}"));
    }
}

/// PVE confirmed an add (`ban = true`) or a removal.
pub fn count_applied(db: &Db, ban: bool) {
    increment(db, if ban { BANS } else { UNBANS });
}

/// A try that failed, by kind (one of [`FAILURE_KINDS`]).
pub fn count_failure(db: &Db, kind: &str) {
    increment(db, &format!("metrics.failures.{kind}"));
}

/// The persisted counters.
#[derive(Debug, Default)]
pub struct Counters {
    pub bans_applied: u64,
    pub unbans_applied: u64,
    pub failures: Vec<(&'static str, u64)>,
}

impl Counters {
    pub fn load(db: &Db) -> rusqlite::Result<Counters> {
        let get = |key: &str| -> rusqlite::Result<u64> {
            Ok(crate::state::meta::get(db.conn(), key)?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0))
        };
        let mut failures = Vec::new();
        for kind in FAILURE_KINDS {
            failures.push((kind, get(&format!("metrics.failures.{kind}"))?));
        }
        Ok(Counters {
            bans_applied: get(BANS)?,
            unbans_applied: get(UNBANS)?,
            failures,
        })
    }
}

/// Builds the exposition text: each family once, HELP then TYPE then samples.
struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str, samples: &[(&[(&str, &str)], f64)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let labels = if labels.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", labels.join(","))
            };
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: f64) {
        self.family(name, kind, help, &[(&[], value)]);
    }
}

/// Label values escape `\`, `"` and newlines (format 0.0.4).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `status --prometheus`: counters from `state.db`, gauges from the report.
pub fn render(report: &Report, counters: &Counters) -> String {
    let mut out = Exposition(String::new());
    let version = env!("CARGO_PKG_VERSION");
    let info: &[(&str, &str)] = &[("version", version), ("instance_name", &report.instance)];
    out.family(
        "fail2pvefw_info",
        "gauge",
        "Version and instance name of fail2pvefw.",
        &[(info, 1.0)],
    );
    out.one(
        "fail2pvefw_bans_applied_total",
        "counter",
        "Entries PVE confirmed added.",
        counters.bans_applied as f64,
    );
    out.one(
        "fail2pvefw_unbans_applied_total",
        "counter",
        "Entries PVE confirmed removed.",
        counters.unbans_applied as f64,
    );
    let failures: Vec<([(&str, &str); 1], f64)> = counters
        .failures
        .iter()
        .map(|(k, n)| ([("kind", *k)], *n as f64))
        .collect();
    let failures: Vec<(&[(&str, &str)], f64)> =
        failures.iter().map(|(l, n)| (&l[..], *n)).collect();
    out.family(
        "fail2pvefw_failures_total",
        "counter",
        "Tries that failed, by kind: invalid, rejected, config, transient, policy.",
        &failures,
    );
    let q = &report.queue;
    out.one(
        "fail2pvefw_queue_pending_events",
        "gauge",
        "Events waiting to be sent to PVE.",
        q.pending as f64,
    );
    out.one(
        "fail2pvefw_queue_failed_events",
        "gauge",
        "Events PVE refused for good, kept for status.",
        q.failed as f64,
    );
    out.one(
        "fail2pvefw_queue_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest pending event; 0 when none.",
        q.oldest_pending_age_secs.unwrap_or(0.0),
    );
    out.one(
        "fail2pvefw_desired_bans",
        "gauge",
        "Bans fail2ban wants in PVE, as this instance knows them.",
        q.desired as f64,
    );
    let i = &report.ipset;
    let name: &[(&str, &str)] = &[("ipset", &i.name)];
    let readable = if i.entries.is_some() { 1.0 } else { 0.0 };
    out.family(
        "fail2pvefw_ipset_readable",
        "gauge",
        "1 when the IPSet could be read from PVE.",
        &[(name, readable)],
    );
    if let (Some(ours), Some(others), Some(not_ours)) = (i.ours, i.other_instances, i.not_ours) {
        let by_owner = [
            ("ours", ours),
            ("other_instances", others),
            ("not_ours", not_ours),
        ];
        let labels: Vec<[(&str, &str); 2]> = by_owner
            .iter()
            .map(|(o, _)| [("ipset", i.name.as_str()), ("owner", *o)])
            .collect();
        let samples: Vec<(&[(&str, &str)], f64)> = labels
            .iter()
            .zip(by_owner)
            .map(|(l, (_, n))| (&l[..], n as f64))
            .collect();
        out.family(
            "fail2pvefw_ipset_entries",
            "gauge",
            "Entries in the IPSet, by owner.",
            &samples,
        );
    }
    if let Some(bytes) = i.estimated_bytes {
        out.family(
            "fail2pvefw_cluster_fw_estimated_bytes",
            "gauge",
            "Estimated bytes the IPSet takes in cluster.fw.",
            &[(name, bytes as f64)],
        );
    }
    out.one(
        "fail2pvefw_cluster_fw_limit_bytes",
        "gauge",
        "Size limit of cluster.fw, shared by the whole datacenter firewall.",
        i.cluster_fw_limit as f64,
    );
    if let Some(cs) = &report.crowdsec {
        crowdsec_families(&mut out, cs);
    }
    out.0
}

/// The CrowdSec bouncer's families.
fn crowdsec_families(out: &mut Exposition, cs: &super::crowdsec::report::CrowdsecReport) {
    let labels: Vec<[(&str, &str); 1]> = cs
        .verdicts
        .keys()
        .map(|v| [("verdict", v.as_str())])
        .collect();
    let samples: Vec<(&[(&str, &str)], f64)> = labels
        .iter()
        .zip(cs.verdicts.values())
        .map(|(l, n)| (&l[..], *n as f64))
        .collect();
    out.family(
        "fail2pvefw_crowdsec_decisions",
        "gauge",
        "CrowdSec decisions held, by verdict: chosen, aggregated, over-entries, over-bytes, invalid, rule, new.",
        &samples,
    );
    out.one(
        "fail2pvefw_crowdsec_not_applied_decisions",
        "gauge",
        "CrowdSec decisions not in PVE: over the cap or the byte budget, refused, not yet validated.",
        cs.not_applied as f64,
    );
    out.one(
        "fail2pvefw_crowdsec_applied_entries",
        "gauge",
        "Entries chosen for CrowdSec that PVE holds.",
        cs.applied_entries as f64,
    );
    out.one(
        "fail2pvefw_crowdsec_last_pull_age_seconds",
        "gauge",
        "Seconds since the last successful pull from the LAPI; -1 when never.",
        cs.last_pull_age_secs.unwrap_or(-1.0),
    );
    out.one(
        "fail2pvefw_crowdsec_pull_failures_total",
        "counter",
        "Pulls from the LAPI that failed.",
        cs.pull_failures_total as f64,
    );
    out.one(
        "fail2pvefw_pve_writes_total",
        "counter",
        "PVE writes sent by every fail2pvefw process of this state directory.",
        cs.pve_writes_total as f64,
    );
}

/// Writes the textfile if `[metrics] textfile` is set. Never fails the
/// drain: a problem is logged.
pub fn after_drain(config: &Config, session: &mut Session, db: &Db) {
    let Some(path) = &config.metrics_textfile else {
        return;
    };
    let text = crate::state::stats::stats(db)
        .map_err(|e| e.to_string())
        .and_then(|stats| gather(session, stats, &config.ipset).map_err(|f| f.to_string()))
        .and_then(|mut report| {
            report.crowdsec =
                super::crowdsec::report::gather(db, config).map_err(|f| f.to_string())?;
            Ok(report)
        })
        .and_then(|report| {
            Ok(render(
                &report,
                &Counters::load(db).map_err(|e| e.to_string())?,
            ))
        });
    let written = text.and_then(|text| write_atomically(path, &text).map_err(|e| e.to_string()));
    if let Err(e) = written {
        log::warn(&format!(
            "cannot write the metrics textfile '{}': {e}",
            path.display()
        ));
    }
}

/// Beside it, then rename: the node exporter never reads half a file. It
/// must read it, so 0644 (it holds no secret).
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    crate::state::files::write_atomically(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_persist_and_start_at_zero() {
        let db = Db::in_memory();
        assert_eq!(Counters::load(&db).unwrap().bans_applied, 0);
        count_applied(&db, true);
        count_applied(&db, true);
        count_applied(&db, false);
        count_failure(&db, "transient");
        let c = Counters::load(&db).unwrap();
        assert_eq!((c.bans_applied, c.unbans_applied), (2, 1));
        assert!(c.failures.contains(&("transient", 1)), "{c:?}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
