//! What CrowdSec's entries may cost in PVE now: `[crowdsec] max_entries`,
//! and bytes of `cluster.fw`, the smaller of `[crowdsec] max_bytes` and the
//! room the rest of the datacenter firewall leaves.
//!
//! `cluster.fw` holds the whole datacenter firewall in 1 MiB: options,
//! aliases, rules, security groups and every IPSet. At each full pull the
//! bouncer reads the IPSets it may read (its own and `[pve] ipset`) and
//! counts what others hold there, as PVE writes it; a fixed allowance of
//! [`RESERVE`] stands for what it cannot read. When PVE answers `File too
//! large` anyway, the queue holds (a person must act), and the next plan
//! keeps CrowdSec to a little less than it holds now, so fail2ban's bans
//! get room back.

use crate::commands::errors::db_failure;
use crate::commands::status_report::CLUSTER_FW_LIMIT;
use crate::config::{Config, CrowdSec};
use crate::error::Result;
use crate::log;
use crate::runtime::session::Session;
use crate::state::crowdsec::{self as table, HOLDER, JAIL};
use crate::state::db::Db;
use crate::state::{desired, meta};
use std::collections::HashSet;

/// Bytes of `cluster.fw` kept for what the bouncer cannot read: options,
/// aliases, rules, groups, other IPSets.
pub const RESERVE: u64 = 128 * 1024;
/// After `File too large`: at most this many entries, until the next full pull.
pub const CAPACITY_CAP: &str = "crowdsec.capacity_cap";

/// The budget of one plan.
#[derive(Clone, Debug)]
pub struct Budget {
    pub now: i64,
    pub max_entries: Option<u32>,
    pub max_bytes: u64,
    /// Which limit set `max_bytes`, for `status`.
    bytes_from: &'static str,
    entries_from: &'static str,
}

impl Budget {
    /// The configured limits, lowered by the room measured at the last
    /// full pull and by a `File too large`.
    pub fn now(db: &Db, cs: &CrowdSec, now: i64) -> Result<Budget> {
        let room = table::get_f64(db.conn(), table::ROOM)
            .map_err(db_failure)?
            .map(|r| r.max(0.0) as u64);
        let cap = table::get_f64(db.conn(), CAPACITY_CAP)
            .map_err(db_failure)?
            .map(|c| c.max(0.0) as u32);
        let (max_bytes, bytes_from) = match room {
            Some(room) if room < cs.max_bytes => (room, "the room cluster.fw has left"),
            _ => (cs.max_bytes, "[crowdsec] max_bytes"),
        };
        let (max_entries, entries_from) = match (cs.max_entries, cap) {
            (Some(max), Some(cap)) if cap < max => (Some(cap), "PVE's File too large"),
            (None, Some(cap)) => (Some(cap), "PVE's File too large"),
            (max, _) => (max, "[crowdsec] max_entries"),
        };
        Ok(Budget {
            now,
            max_entries,
            max_bytes,
            bytes_from,
            entries_from,
        })
    }

    pub fn entries_words(&self) -> String {
        match self.max_entries {
            Some(n) => format!("over {}, {n}", self.entries_from),
            None => "over the budget".to_string(),
        }
    }

    pub fn bytes_words(&self) -> String {
        format!("over {}, {} bytes", self.bytes_from, self.max_bytes)
    }
}

/// The bytes of one entry's line in `cluster.fw`, as PVE writes it:
/// `CIDR # COMMENT f2p:INSTANCE/crowdsec/EXPIRY` and a newline.
pub fn line_bytes(entry: &str, comment: &str, instance: &str, expires: i64) -> u64 {
    let comment = format!("{comment} f2p:{instance}/{JAIL}/{expires}");
    pve_model::ipset_section_bytes("x", [(entry, Some(comment.as_str()), false)])
        - pve_model::ipset_section_bytes("x", [])
}

/// Measures the room the rest of the datacenter firewall leaves (a full
/// pull): what others hold in CrowdSec's IPSet and in `[pve] ipset`, plus
/// [`RESERVE`]. An IPSet that cannot be read keeps the last measure.
pub fn measure_room(session: &mut Session, db: &Db, config: &Config, cs: &CrowdSec) -> Result<()> {
    // CrowdSec's own entries, but not those another holder keeps too:
    // those stay whatever CrowdSec does.
    let mut ours: HashSet<String> = HashSet::new();
    let mut kept: HashSet<String> = HashSet::new();
    for d in desired::all(db.conn()).map_err(db_failure)? {
        if d.ipset != cs.ipset {
            continue;
        }
        if d.holder == HOLDER {
            ours.insert(d.entry);
        } else {
            kept.insert(d.entry);
        }
    }
    let ours: HashSet<String> = ours.difference(&kept).cloned().collect();
    let mut others = 0u64;
    let mut ipsets = vec![cs.ipset.clone()];
    if config.ipset != cs.ipset {
        ipsets.push(config.ipset.clone());
    }
    for ipset in ipsets {
        match session.entries(&ipset)? {
            Ok(entries) => {
                let theirs = entries
                    .iter()
                    .filter(|e| ipset != cs.ipset || !ours.contains(&e.cidr))
                    .map(|e| (e.cidr.as_str(), e.comment.as_deref(), false));
                others += pve_model::ipset_section_bytes(&ipset, theirs);
            }
            Err(reported) => {
                log::debug(&format!(
                    "crowdsec: cannot measure IPSet '{ipset}' ({}); keeping the last measure",
                    reported.failure.message
                ));
                return Ok(());
            }
        }
    }
    let room = CLUSTER_FW_LIMIT.saturating_sub(RESERVE + others);
    meta::set(db.conn(), table::ROOM, &room.to_string()).map_err(db_failure)?;
    meta::delete(db.conn(), CAPACITY_CAP).map_err(db_failure)?;
    Ok(())
}

/// PVE refused a write with `File too large`: keep CrowdSec to 95 % of
/// what it holds now, until the next full pull measures again.
pub fn capacity_reached(db: &Db, cs: &CrowdSec) -> Result<()> {
    let (chosen, applied) = table::chosen_applied(db.conn(), &cs.ipset).map_err(db_failure)?;
    let cap = applied * 95 / 100;
    log::warn(&format!(
        "crowdsec: PVE refused a write: cluster.fw is full; CrowdSec keeps to {cap} entries (of {chosen} chosen) until the next full pull"
    ));
    meta::set(db.conn(), CAPACITY_CAP, &cap.to_string()).map_err(db_failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_costs_what_pve_writes() {
        assert_eq!(
            line_bytes("192.0.2.1", "cs CAPI ssh", "web01", 1_764_151_200) as usize,
            "192.0.2.1 # cs CAPI ssh f2p:web01/crowdsec/1764151200\n".len()
        );
    }
}
