//! From the decisions the LAPI holds to queued bans and unbans, through the
//! same policy and rules as fail2ban's bans:
//!
//! 1. **validate**: each new value goes through the policy's `validate`
//!    and the host's rules (never_ban, the PVE nodes, widest_ipv4/6), as a
//!    `ban` does before it queues; a refused one keeps its words for
//!    `status`;
//! 2. **admit**: the policy's `admission` (or the default policy's)
//!    chooses what gets in under the cap and the byte budget, and the host
//!    holds the answer to its own rules;
//! 3. **queue**: the chosen set becomes the `desired` rows of the holder
//!    `crowdsec`; what left it is unbanned, what came is banned, in one
//!    transaction, in the CrowdSec lanes (fail2ban's bans go first).

use super::accept::{self, Cand};
use super::budget::Budget;
use crate::bindings::admission::{self, Candidate, LeftReason};
use crate::capabilities::guard::EntryRules;
use crate::capabilities::guard::entry::network;
use crate::commands::cluster::Bound;
use crate::commands::errors::db_failure;
use crate::config::{Config, CrowdSec};
use crate::error::{Failure, Result};
use crate::runtime::session::{Remedy, Session};
use crate::state::crowdsec::{self as table, CHOSEN, HOLDER, INVALID, JAIL, RULE};
use crate::state::db::Db;
use crate::state::desired::{self, Desired};
use crate::state::queue::{self, Action, LANE_CROWDSEC_COMMUNITY, LANE_CROWDSEC_LOCAL, Request};
use rusqlite::TransactionBehavior;
use std::collections::{HashMap, HashSet};

pub use super::validate::validate;

/// What a plan did.
#[derive(Debug, Default)]
pub struct Planned {
    /// Nothing changed since the last plan: nothing was chosen anew.
    pub unchanged: bool,
    /// Entries chosen for PVE.
    pub chosen: usize,
    /// Decisions left out (over the cap or the bytes, or refused).
    pub left_out: usize,
    pub bans: usize,
    pub unbans: usize,
}

/// Chooses and queues. `budget` says what CrowdSec's entries may cost now.
pub fn plan(
    session: &mut Session,
    db: &mut Db,
    config: &Config,
    cs: &CrowdSec,
    bound: &Bound,
    budget: &Budget,
    now: i64,
) -> Result<Planned> {
    let rows = table::rows(db.conn(), false).map_err(db_failure)?;
    let old: Vec<Desired> = desired::of_holder(db.conn(), HOLDER).map_err(db_failure)?;
    // In PVE for CrowdSec already: keeping it costs no write.
    let applied: HashSet<String> = crate::state::applied::entries(db.conn(), &cs.ipset)
        .map_err(db_failure)?
        .into_iter()
        .collect();
    let admitted: HashSet<&str> = old
        .iter()
        .filter(|d| d.ipset == cs.ipset && applied.contains(&d.entry))
        .map(|d| d.entry.as_str())
        .collect();
    let cands: Vec<Cand> = rows
        .iter()
        .filter(|r| r.expires > now && !matches!(r.verdict.as_str(), INVALID | RULE))
        .filter_map(|r| {
            let entry = r.entry.as_deref()?;
            Some(Cand {
                row: r,
                entry,
                net: network(entry),
                local: accept::is_local(&r.origin),
            })
        })
        .collect();
    let shared: Vec<String> = desired::all(db.conn())
        .map_err(db_failure)?
        .into_iter()
        .filter(|d| d.ipset == cs.ipset && d.holder != HOLDER && d.is_live(now))
        .map(|d| d.entry)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let wit_cands: Vec<Candidate> = cands
        .iter()
        .map(|c| Candidate {
            key: c.row.rowid.to_string(),
            entry: c.entry.to_string(),
            origin: c.row.origin.clone(),
            scenario: c.row.scenario.clone(),
            expires: c.row.expires,
            seen: c.row.seen,
            admitted: admitted.contains(c.entry),
        })
        .collect();
    let shared_set: HashSet<&str> = shared.iter().map(String::as_str).collect();
    let wit_budget = admission::Budget {
        ipset: cs.ipset.clone(),
        instance: config.instance.clone(),
        now,
        max_entries: budget.max_entries,
        max_bytes: budget.max_bytes,
        shared: shared.clone(),
        aggregate_ipv4: cs.aggregate_ipv4,
        aggregate_ipv6: cs.aggregate_ipv6,
        aggregate_min: cs.aggregate_min,
    };
    let answer = session
        .admit(config, &wit_cands, &wit_budget)?
        .map_err(|r| match r.kind {
            Remedy::Drop => r
                .failure
                .context("crowdsec: the policy's admit refused the budget"),
            _ => r.failure,
        })?;
    let rules = EntryRules::new(&config.rules, &bound.node_addresses);
    let chosen = accept::hold_to_rules(
        &answer.chosen,
        &cands,
        &rules,
        budget,
        &shared_set,
        &config.instance,
    );

    // Each candidate's verdict.
    let chosen_nets = accept::NetIndex::new(chosen.iter().map(|c| c.entry.as_str()));
    let chosen_entries: HashSet<&str> = chosen.iter().map(|c| c.entry.as_str()).collect();
    let reasons: HashMap<&str, &admission::LeftOut> = answer
        .left_out
        .iter()
        .map(|l| (l.key.as_str(), l))
        .collect();
    let mut verdicts: Vec<(i64, &'static str, Option<String>)> = Vec::with_capacity(cands.len());
    for c in &cands {
        let key = c.row.rowid.to_string();
        if chosen_entries.contains(c.entry) {
            verdicts.push((c.row.rowid, CHOSEN, None));
            continue;
        }
        if let Some(net) = c.net.and_then(|n| chosen_nets.widest_around(n)) {
            verdicts.push((c.row.rowid, "aggregated", Some(format!("in {net}"))));
            continue;
        }
        let (verdict, why) = match reasons.get(key.as_str()).map(|l| l.reason) {
            Some(LeftReason::OverBytes) => ("over-bytes", budget.bytes_words()),
            _ => ("over-entries", budget.entries_words()),
        };
        verdicts.push((c.row.rowid, verdict, Some(why)));
    }

    // The diff against what CrowdSec holds now, queued in one transaction.
    let by_entry: HashMap<&str, &Desired> = old
        .iter()
        .filter(|d| d.ipset == cs.ipset)
        .map(|d| (d.entry.as_str(), d))
        .collect();
    let now_f = now as f64;
    let mut planned = Planned {
        chosen: chosen.len(),
        left_out: verdicts.iter().filter(|v| v.1 != CHOSEN).count(),
        ..Planned::default()
    };
    let tx = db
        .conn_mut()
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_failure)?;
    if !queue::still_bound(&tx, &bound.id).map_err(db_failure)? {
        return Err(Failure::config(
            "crowdsec: the state directory was bound to another PVE cluster meanwhile; nothing was queued",
        )
        .hint("Give each cluster its own [state] dir."));
    }
    // Unbans first: they free room.
    for d in &old {
        let stays = d.ipset == cs.ipset && chosen_entries.contains(d.entry.as_str());
        if stays {
            continue;
        }
        let req = Request {
            restored: false,
            ..d.request.clone()
        };
        queue::insert(
            &tx,
            Action::Unban,
            &d.entry,
            HOLDER,
            &req,
            LANE_CROWDSEC_LOCAL,
            now_f,
        )
        .map_err(db_failure)?;
        planned.unbans += 1;
    }
    for c in &chosen {
        let req = Request {
            ip: c.entry.clone(),
            ipset: cs.ipset.clone(),
            jail: Some(JAIL.into()),
            comment: Some(c.comment.clone()),
            time: Some(now_f),
            bantime: Some((c.expires - now).max(1)),
            failures: None,
            restored: true,
            dns: None,
        };
        match by_entry.get(c.entry.as_str()) {
            Some(d) if d.expires == Some(c.expires) && d.request.comment == req.comment => {}
            Some(_) => {
                // Still wanted, until another time: the wish changes, PVE
                // needs no write.
                let json = serde_json::to_string(&req).expect("a request serialises");
                desired::add(&tx, &cs.ipset, &c.entry, HOLDER, &json, Some(c.expires))
                    .map_err(db_failure)?;
            }
            None => {
                let lane = if c.local {
                    LANE_CROWDSEC_LOCAL
                } else {
                    LANE_CROWDSEC_COMMUNITY
                };
                queue::insert(&tx, Action::Ban, &c.entry, HOLDER, &req, lane, now_f)
                    .map_err(db_failure)?;
                planned.bans += 1;
            }
        }
    }
    let before: HashMap<i64, (&str, Option<&str>)> = rows
        .iter()
        .map(|r| (r.rowid, (r.verdict.as_str(), r.why.as_deref())))
        .collect();
    for (rowid, verdict, why) in &verdicts {
        if before.get(rowid) != Some(&(*verdict, why.as_deref())) {
            table::set_verdict(&tx, *rowid, verdict, why.as_deref()).map_err(db_failure)?;
        }
    }
    tx.commit().map_err(db_failure)?;
    Ok(planned)
}

/// What a plan depends on, in short: the decisions (how many, the newest,
/// their expiries, how many await validation), what other holders keep in
/// the IPSet, the budget and the policy. A cycle whose key is the last
/// plan's has nothing to choose anew (a quiet delta every 10 s costs a few
/// queries, not 20,000 candidates through the policy).
pub fn key(
    db: &Db,
    config: &Config,
    cs: &CrowdSec,
    budget: &Budget,
    own_admission: bool,
) -> Result<String> {
    let c = db.conn();
    let decisions: (i64, i64, i64, i64) = c
        .query_row(
            "SELECT COUNT(*), COALESCE(MAX(rowid), 0), COALESCE(SUM(expires), 0),
                    COALESCE(SUM(verdict = 'new'), 0) FROM crowdsec_decisions",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(db_failure)?;
    let others: (i64, i64) = c
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(length(entry) * 31 + unicode(entry)), 0) FROM desired
             WHERE ipset = ?1 AND holder <> ?2",
            rusqlite::params![cs.ipset, HOLDER],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db_failure)?;
    let mine: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM desired WHERE holder = ?1",
            rusqlite::params![HOLDER],
            |r| r.get(0),
        )
        .map_err(db_failure)?;
    Ok(format!(
        "{decisions:?} {others:?} {mine} {:?} {} {} {:?} {:?} {} {} {:?} {own_admission}",
        budget.max_entries,
        budget.max_bytes,
        cs.ipset,
        cs.aggregate_ipv4,
        cs.aggregate_ipv6.unwrap_or(0),
        cs.aggregate_min,
        config.instance,
        config.policy,
    ))
}
