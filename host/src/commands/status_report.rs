//! What `status` and the metrics report: the queue, the last error, the
//! IPSet as PVE holds it, with the share of `cluster.fw`'s 1 MiB it uses,
//! and the host names `fail2pvefw dns` keeps.

use crate::error::Result;
use crate::runtime::session::Session;
use crate::state::dns::Record;
use crate::state::stats::Stats;
use serde::Serialize;

/// pmxcfs refuses to write a file over 1 MiB; `cluster.fw` holds the whole
/// datacenter firewall (options, aliases, every IPSet, rules).
pub const CLUSTER_FW_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, Serialize)]
pub struct Report {
    pub instance: String,
    pub queue: Stats,
    pub ipset: IpsetReport,
    /// The CrowdSec bouncer, when configured or it has run here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crowdsec: Option<super::crowdsec::report::CrowdsecReport>,
    /// The host names `fail2pvefw dns` keeps, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<NameReport>,
}

/// One host name: its accept list, the addresses it last resolved to and
/// when (Unix seconds), and its last failed lookup.
#[derive(Debug, Serialize)]
pub struct NameReport {
    pub name: String,
    #[serde(flatten)]
    pub record: Record,
}

#[derive(Debug, Default, Serialize)]
pub struct IpsetReport {
    pub name: String,
    /// `None` when PVE could not be read; `error` says why.
    pub entries: Option<u64>,
    pub ours: Option<u64>,
    pub other_instances: Option<u64>,
    pub not_ours: Option<u64>,
    /// Bytes this IPSet takes in `cluster.fw`, as PVE writes it (the PVE
    /// model's own layout, `pve_model::ipset_section_bytes`).
    pub estimated_bytes: Option<u64>,
    pub cluster_fw_limit: u64,
    pub error: Option<String>,
}

pub fn gather(session: &mut Session, queue: Stats, ipset: &str) -> Result<Report> {
    let mut report = IpsetReport {
        name: ipset.to_string(),
        cluster_fw_limit: CLUSTER_FW_LIMIT,
        ..IpsetReport::default()
    };
    match session.entries(ipset)? {
        Ok(entries) => {
            let mine = |e: &&crate::bindings::Entry| {
                e.owner
                    .as_ref()
                    .is_some_and(|o| o.instance == session.instance_name)
            };
            let ours = entries.iter().filter(mine).count() as u64;
            let tagged = entries.iter().filter(|e| e.owner.is_some()).count() as u64;
            report.entries = Some(entries.len() as u64);
            report.ours = Some(ours);
            report.other_instances = Some(tagged - ours);
            report.not_ours = Some(entries.len() as u64 - tagged);
            report.estimated_bytes = Some(pve_model::ipset_section_bytes(
                ipset,
                entries
                    .iter()
                    .map(|e| (e.cidr.as_str(), e.comment.as_deref(), false)),
            ));
        }
        Err(reported) => report.error = Some(reported.failure.to_string()),
    }
    Ok(Report {
        instance: session.instance_name.clone(),
        queue,
        ipset: report,
        crowdsec: None,
        dns: Vec::new(),
    })
}

impl Report {
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }

    pub fn human(&self) -> String {
        let q = &self.queue;
        let mut out = vec![format!("instance:      {}", self.instance)];
        out.push(format!(
            "queue:         {} pending, {} failed{}",
            q.pending,
            q.failed,
            q.oldest_pending_age_secs
                .map(|a| format!(", oldest {a:.0} s old"))
                .unwrap_or_default()
        ));
        let holders: Vec<String> = q
            .holders
            .iter()
            .map(|(holder, n)| format!("{} {n}", crate::state::desired::describe(holder)))
            .collect();
        out.push(if holders.is_empty() {
            format!("desired bans:  {}", q.desired)
        } else {
            format!(
                "desired bans:  {} (held by {})",
                q.desired,
                holders.join(", ")
            )
        });
        if q.held_entries > 0 {
            out.push(format!(
                "backing off:   {} entr{} (PVE failed; retried later, `sync` retries now)",
                q.held_entries,
                if q.held_entries == 1 { "y" } else { "ies" }
            ));
        }
        if let Some(error) = &q.last_error {
            out.push(format!(
                "last error:    {}",
                error.lines().next().unwrap_or("")
            ));
        }
        let i = &self.ipset;
        match (i.entries, &i.error) {
            (Some(n), _) => {
                out.push(format!(
                    "IPSet '{}':  {n} entries: {} ours, {} of other instances, {} not from fail2pvefw",
                    i.name,
                    i.ours.unwrap_or(0),
                    i.other_instances.unwrap_or(0),
                    i.not_ours.unwrap_or(0)
                ));
                let bytes = i.estimated_bytes.unwrap_or(0);
                out.push(format!(
                    "cluster.fw:    ~{bytes} bytes for this IPSet, {:.1}% of the {} byte limit",
                    bytes as f64 * 100.0 / i.cluster_fw_limit as f64,
                    i.cluster_fw_limit
                ));
            }
            (None, Some(error)) => out.push(format!(
                "IPSet '{}':  unreadable: {}",
                i.name,
                error.lines().next().unwrap_or("")
            )),
            (None, None) => {}
        }
        if let Some(cs) = &self.crowdsec {
            out.extend(cs.human());
        }
        for (i, name) in self.dns.iter().enumerate() {
            let label = if i == 0 { "dns:" } else { "" };
            out.push(format!("{label:<15}{}", name.human()));
        }
        out.join("\n")
    }
}

impl NameReport {
    /// `home.test in IPSet 'trusted': 198.51.100.7, 2001:db8::7 (resolved
    /// 2026-11-26 10:00:03 +00:00, 42 s ago)`, and a failed lookup after.
    fn human(&self) -> String {
        let r = &self.record;
        let addresses = if r.addresses.is_empty() {
            "no address".to_string()
        } else {
            r.addresses.join(", ")
        };
        let mut line = format!("{} in IPSet '{}': {addresses}", self.name, r.ipset);
        if let Some(t) = r.resolved {
            line.push_str(&format!(" (resolved {})", when(t)));
        }
        if let (Some(t), Some(error)) = (r.failed, &r.error) {
            line.push_str(&format!(
                "; the lookup failed {}: {error}; its entries stay",
                when(t)
            ));
        }
        line
    }
}

/// `2026-11-26 10:00:03 +00:00, 42 s ago`, in local time.
fn when(t: f64) -> String {
    let ago = (crate::state::queue::now() - t).max(0.0);
    let at = chrono::DateTime::from_timestamp(t as i64, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S %:z")
                .to_string()
        })
        .unwrap_or_else(|| t.to_string());
    format!("{at}, {ago:.0} s ago")
}
