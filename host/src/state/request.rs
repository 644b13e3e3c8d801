//! A ban or unban request as the queue keeps it (a host name's address for
//! `dns`, too), and the clock the state keeps time by.

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// A ban or unban as fail2ban gave it; kept as JSON in the queue so a later
/// process can replay it exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub ip: String,
    pub ipset: String,
    pub jail: Option<String>,
    pub comment: Option<String>,
    pub time: Option<f64>,
    pub bantime: Option<i64>,
    pub failures: Option<u32>,
    pub restored: bool,
    /// `fail2pvefw dns`: the host name whose address this entry is (holder
    /// `dns:NAME`). Such an entry goes into an accept list and is written
    /// by the host itself, never by the policy (see `state::dns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<String>,
}

impl Request {
    /// When the ban ends, from its start and length; `None` is permanent.
    pub fn expires(&self, now: f64) -> Option<i64> {
        let bantime = self.bantime.filter(|&t| t >= 0)?;
        let start = self
            .time
            .filter(|t| t.is_finite() && *t > 0.0)
            .unwrap_or(now);
        Some((start as i64).saturating_add(bantime))
    }
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
