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

use super::budget::Budget;
use crate::bindings::admission::{self, Candidate, LeftReason};
use crate::capabilities::guard::entry::network;
use crate::capabilities::guard::{EntryRules, Purpose};
use crate::commands::cluster::Bound;
use crate::commands::errors::db_failure;
use crate::config::{Config, CrowdSec};
use crate::error::{Failure, Result};
use crate::log;
use crate::runtime::session::{Remedy, Session};
use crate::state::crowdsec::{self as table, CHOSEN, HOLDER, INVALID, RULE, Row};
use crate::state::db::Db;
use crate::state::desired::{self, Desired};
use crate::state::queue::{self, Action, LANE_CROWDSEC_COMMUNITY, LANE_CROWDSEC_LOCAL, Request};
use ipnet::IpNet;
use rusqlite::TransactionBehavior;
use std::collections::{BTreeMap, HashMap, HashSet};

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

/// The jail the requests for CrowdSec's entries name (see `admission` in
/// the WIT): the tag reads `f2p:INSTANCE/crowdsec/EXPIRY`.
pub const JAIL: &str = "crowdsec";

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

/// One candidate as the host keeps it.
struct Cand<'a> {
    row: &'a Row,
    entry: &'a str,
    net: Option<IpNet>,
    local: bool,
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
                local: is_local(&r.origin),
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
    let chosen = hold_to_rules(
        &answer.chosen,
        &cands,
        &rules,
        budget,
        &shared_set,
        &config.instance,
    );

    // Each candidate's verdict.
    let chosen_nets = NetIndex::new(chosen.iter().map(|c| c.entry.as_str()));
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

/// Local decisions: a local agent's and the admin's (`cscli`).
pub fn is_local(origin: &str) -> bool {
    matches!(origin, "crowdsec" | "cscli" | "cscli-import")
}

/// A chosen entry the host accepted.
pub struct Accepted {
    pub entry: String,
    pub comment: String,
    /// The latest expiry among the decisions it covers.
    pub expires: i64,
    /// Whether it covers a local decision (its lane).
    pub local: bool,
}

/// The host's own rules over the policy's answer: an entry that is no
/// candidate's, and no network that passes the guard and contains one, is
/// dropped; past the cap or the bytes (as PVE writes the lines), in the
/// answer's order, the rest is left out.
fn hold_to_rules(
    chosen: &[admission::Chosen],
    cands: &[Cand],
    rules: &EntryRules,
    budget: &Budget,
    shared: &HashSet<&str>,
    instance: &str,
) -> Vec<Accepted> {
    let mut by_entry: HashMap<&str, Vec<&Cand>> = HashMap::new();
    for c in cands {
        by_entry.entry(c.entry).or_default().push(c);
    }
    let mut out: Vec<Accepted> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let (mut count, mut bytes) = (0u64, 0u64);
    let (mut invented, mut over) = (Vec::new(), 0usize);
    for ch in chosen {
        if !seen.insert(ch.entry.as_str()) {
            continue;
        }
        let covered = by_entry.get(ch.entry.as_str());
        if covered.is_none() {
            // An aggregate: a network the guard allows, holding a candidate.
            let holds = network(&ch.entry).is_some_and(|n| {
                rules.check(&ch.entry, Purpose::Ban).is_ok()
                    && cands.iter().any(|c| c.net.is_some_and(|m| n.contains(&m)))
            });
            if !holds {
                invented.push(ch.entry.clone());
                continue;
            }
        }
        let comment = tidy(&ch.comment);
        let expires = covered
            .and_then(|cs| cs.iter().map(|c| c.row.expires).max())
            .unwrap_or(0);
        if !shared.contains(ch.entry.as_str()) {
            // Expiries of a time to come all have as many digits.
            let at = expires.max(budget.now + 1);
            let line = super::budget::line_bytes(&ch.entry, &comment, instance, at);
            if budget.max_entries.is_some_and(|m| count >= u64::from(m))
                || bytes + line > budget.max_bytes
            {
                over += 1;
                continue;
            }
            count += 1;
            bytes += line;
        }
        out.push(Accepted {
            entry: ch.entry.clone(),
            comment,
            expires,
            local: covered.is_some_and(|cs| cs.iter().any(|c| c.local)),
        });
    }
    // A network holds the decisions inside it: its expiry is the latest of
    // theirs, its lane the best. One lookup per candidate and prefix length.
    let mut nets: BTreeMap<(bool, u8), HashMap<IpNet, usize>> = BTreeMap::new();
    for (i, a) in out.iter().enumerate() {
        if let Some(n) = network(&a.entry).filter(|n| n.prefix_len() < n.max_prefix_len()) {
            let v4 = matches!(n, IpNet::V4(_));
            nets.entry((v4, n.prefix_len())).or_default().insert(n, i);
        }
    }
    if !nets.is_empty() {
        for c in cands {
            let Some(m) = c.net else { continue };
            let v4 = matches!(m, IpNet::V4(_));
            for ((family, len), by_net) in &nets {
                if *family != v4 || *len > m.prefix_len() {
                    continue;
                }
                let Ok(wide) = IpNet::new(m.addr(), *len) else {
                    continue;
                };
                if let Some(&i) = by_net.get(&wide.trunc()) {
                    out[i].expires = out[i].expires.max(c.row.expires);
                    out[i].local |= c.local;
                }
            }
        }
    }
    if let Some(first) = invented.first() {
        log::warn(&format!(
            "crowdsec: the policy chose {} entr{} that no decision asks for and no allowed network holds (e.g. '{first}'); the host left {} out",
            invented.len(),
            if invented.len() == 1 { "y" } else { "ies" },
            if invented.len() == 1 { "it" } else { "them" },
        ));
    }
    if over > 0 {
        log::warn(&format!(
            "crowdsec: the policy chose {over} entr{} beyond the budget ({}); the host left {} out",
            if over == 1 { "y" } else { "ies" },
            budget.entries_words(),
            if over == 1 { "it" } else { "them" },
        ));
    }
    out.into_iter().filter(|a| a.expires > budget.now).collect()
}

/// Networks by family and prefix length: which one holds a network, with
/// one lookup per prefix length.
struct NetIndex<'a> {
    by_len: BTreeMap<(bool, u8), HashMap<IpNet, &'a str>>,
}

impl<'a> NetIndex<'a> {
    fn new(entries: impl Iterator<Item = &'a str>) -> NetIndex<'a> {
        let mut by_len: BTreeMap<(bool, u8), HashMap<IpNet, &'a str>> = BTreeMap::new();
        for entry in entries {
            if let Some(n) = network(entry).filter(|n| n.prefix_len() < n.max_prefix_len()) {
                let v4 = matches!(n, IpNet::V4(_));
                by_len
                    .entry((v4, n.prefix_len()))
                    .or_default()
                    .insert(n, entry);
            }
        }
        NetIndex { by_len }
    }

    /// The widest network strictly around `net`.
    fn widest_around(&self, net: IpNet) -> Option<&'a str> {
        let v4 = matches!(net, IpNet::V4(_));
        self.by_len
            .iter()
            .filter(|((family, len), _)| *family == v4 && *len < net.prefix_len())
            .find_map(|((_, len), by_net)| {
                let wide = IpNet::new(net.addr(), *len).ok()?.trunc();
                by_net.get(&wide).copied()
            })
    }
}

/// A comment fit for `cluster.fw`: one line, short, claiming no owner.
fn tidy(comment: &str) -> String {
    let text: String = log::sanitize(comment)
        .split(' ')
        .filter(|w| !w.starts_with("f2p:"))
        .collect::<Vec<_>>()
        .join(" ");
    text.trim().chars().take(100).collect()
}
