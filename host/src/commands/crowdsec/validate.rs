//! The first step of a plan: each decision's value through the policy's
//! `validate` and the host's rules (never_ban, the PVE nodes,
//! widest_ipv4/6), as a `ban` goes before it queues. A refused value keeps
//! its words for `status`, and is logged once, in one line for all.

use crate::capabilities::guard::{EntryRules, Purpose};
use crate::commands::cluster::Bound;
use crate::commands::errors::db_failure;
use crate::config::{Config, CrowdSec};
use crate::error::Result;
use crate::log;
use crate::runtime::session::Session;
use crate::state::crowdsec::{self as table, INVALID, JAIL, RULE, Row};
use crate::state::db::Db;
use crate::state::queue::Request;
use rusqlite::TransactionBehavior;

/// Validates the rows not validated yet (`all`: every row, after a full
/// pull: the rules may have changed). Logs one line for the newly refused.
pub fn validate(
    session: &mut Session,
    db: &mut Db,
    config: &Config,
    cs: &CrowdSec,
    bound: &Bound,
    all: bool,
) -> Result<usize> {
    let rows = table::rows(db.conn(), !all).map_err(db_failure)?;
    let rules = EntryRules::new(&config.rules, &bound.node_addresses);
    let mut results = Vec::with_capacity(rows.len());
    let mut refused = Vec::new();
    for row in &rows {
        let (entry, verdict, why) = judge(session, cs, &rules, row)?;
        if verdict != table::NEW && why != row.why && matches!(verdict, INVALID | RULE) {
            refused.push(format!("'{}': {}", row.value, why.as_deref().unwrap_or("")));
        }
        results.push((row.rowid, entry, verdict, why));
    }
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_failure)?;
    for (rowid, entry, verdict, why) in &results {
        // A chosen row stays chosen until the next plan says otherwise.
        let keep = rows
            .iter()
            .find(|r| r.rowid == *rowid)
            .filter(|r| r.entry.as_deref() == entry.as_deref() && *verdict == table::NEW)
            .map(|r| r.verdict.as_str())
            .filter(|v| *v != INVALID && *v != RULE);
        let verdict = keep.unwrap_or(verdict);
        table::set(&tx, *rowid, entry.as_deref(), verdict, why.as_deref()).map_err(db_failure)?;
    }
    tx.commit().map_err(db_failure)?;
    if let Some(first) = refused.first() {
        let more = match refused.len() {
            1 => String::new(),
            n => format!(" (and {} more; `fail2pvefw status` counts them)", n - 1),
        };
        log::info(&format!("crowdsec: not applicable: {first}{more}"));
    }
    Ok(results.len())
}

/// What the policy and the rules make of one decision's value: the entry,
/// `new` (valid, not planned yet), `invalid` or `rule`, and words.
fn judge(
    session: &mut Session,
    cs: &CrowdSec,
    rules: &EntryRules,
    row: &Row,
) -> Result<(Option<String>, &'static str, Option<String>)> {
    let scope = row.scope.to_ascii_lowercase();
    if scope != "ip" && scope != "range" {
        return Ok((
            None,
            INVALID,
            Some(format!(
                "scope '{}' is not an address or a network",
                row.scope
            )),
        ));
    }
    let req = Request {
        ip: row.value.clone(),
        ipset: cs.ipset.clone(),
        jail: Some(JAIL.into()),
        ..Request::default()
    };
    let entry = match session.validate(&req)? {
        Ok(entry) => entry,
        Err(reported) => {
            let why = reported.failure.message;
            return Ok((None, INVALID, Some(why)));
        }
    };
    if let Err(why) = rules.check(&entry, Purpose::Ban) {
        return Ok((Some(entry), RULE, Some(why)));
    }
    Ok((Some(entry), table::NEW, None))
}
