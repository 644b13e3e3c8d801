//! `fail2pvefw dns NAME… [-i IPSET] [--remove]`: keeps the addresses of
//! host names in an accept list (an IPSet a firewall rule ACCEPTs: a home
//! line on a dynamic address, an office, a monitoring host), as the old
//! script's `dns` did, through the same queue, order and guard as bans.
//!
//! One run: check the IPSet is an accept list, resolve each name (A and
//! AAAA, the system's resolver), read the IPSet once, then per name queue
//! the change with its record in one transaction (`state::dns::keep`), and
//! send at once. Each name is the holder `dns:NAME` of its entries, and an
//! entry is written by the host itself ([`Session::apply`] for a request
//! with `dns`), never by the policy: exactly the resolved address, no
//! widening, no `never_ban` or node rule (an admin's own address is the
//! point), but the width rule and, on delete, our tag.
//!
//! **An IPSet is a ban list or an accept list, never both.** `[pve] ipset`
//! is where bans go, so `dns` refuses it, also as the fallback when neither
//! `-i` nor `[dns] ipset` is given; and an IPSet this state holds bans in.
//! The other way round, `ban` and `unban` refuse an accept list, and the
//! guard lets no policy write one (`Purpose::Accept`).
//!
//! [`Session::apply`]: crate::runtime::session::Session::apply

pub mod lookup;
pub mod sandbox;

use super::cluster::Bound;
use super::context::Context;
use super::drain::{Backoff, Report, pass};
use super::errors::{db_failure, lock_failure};
use crate::cli::DnsArgs;
use crate::config::{host_name, ipset_name};
use crate::error::{Failure, Result};
use crate::log;
use crate::runtime::session::{Remedy, Session};
use crate::state::db::Db;
use crate::state::dns::{self, Kept, Lookup, Queued, Seen};
use crate::state::locks::DrainLock;
use crate::state::queue::{self, Action, EventState};
use std::time::Duration;

/// `dns`: keeps (or, with `--remove`, stops keeping) each name in the IPSet.
pub fn run(ctx: &Context, args: &DnsArgs) -> Result<String> {
    let names = names(ctx, args)?;
    let ipset = args
        .ipset
        .clone()
        .or_else(|| ctx.config.dns.ipset.clone())
        .unwrap_or_else(|| ctx.config.ipset.clone());
    ipset_name(&ipset).map_err(|e| Failure::input(format!("dns: {e}")))?;
    let (mut db, bound) = ctx.state(false)?;
    let mut session = ctx.session_for(&bound)?;
    if !args.remove {
        refuse_a_ban_list(ctx, &db, args, &ipset)?;
        // Only once it is surely no ban list: the policy's writes there
        // are denied from now on, also in this run's drain pass.
        session.mark_accept(&ipset);
    }
    let lookups: Vec<(String, Option<Lookup>)> = names
        .into_iter()
        .map(|name| {
            let lookup = (!args.remove).then(|| lookup::resolve(&name));
            (name, lookup)
        })
        .collect();
    let entries = match session.entries(&ipset)? {
        Ok(entries) => Some(entries),
        // Queue from the state alone; the events wait for PVE like bans.
        Err(reported) if reported.kind == Remedy::Retry => {
            log::warn(&format!(
                "dns: cannot read IPSet '{ipset}' ({}); the changes are queued from what the state holds",
                reported.failure.message
            ));
            None
        }
        // A person must fix something (the IPSet, the token): queue nothing.
        Err(reported) => return Err(reported.failure.context(format!("dns: IPSet '{ipset}'"))),
    };
    let now = queue::now();
    let mut done = Vec::new();
    for (name, lookup) in &lookups {
        let seen = match &entries {
            Some(entries) => {
                let found = lookup.clone().unwrap_or(Lookup::Found(Vec::new()));
                lookup::seen(entries, &session.instance_name, name, &found)
            }
            None => Seen::default(),
        };
        let kept = match lookup {
            Some(lookup) => dns::keep(&mut db, &bound.id, name, &ipset, lookup, &seen, now),
            None => dns::forget(&mut db, &bound.id, name, &ipset, &seen, now),
        }
        .map_err(db_failure)?;
        match kept {
            Kept::Done { events, .. } => done.push(events),
            Kept::Rebound => {
                return Err(Failure::config(
                    "dns: the state directory was bound to another PVE cluster meanwhile; nothing more was queued",
                )
                .hint("Give each cluster its own [state] dir."));
            }
            Kept::BanList(holders) => return Err(holds_bans(&ipset, &holders)),
        }
    }
    // What was just resolved is protected from bans in this very pass.
    session.know(&super::cluster::dns_known(&ctx.config, &db)?);
    let report = send(ctx, &mut session, &mut db, &bound)?;
    if args.names.is_empty() {
        warn_of_forgotten_names(ctx, &db)?;
    }
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for ((name, lookup), events) in lookups.iter().zip(&done) {
        let (line, failure) = outcome(&db, &report, name, &ipset, lookup.as_ref(), events)?;
        lines.push(line);
        failed.extend(failure);
    }
    finish(lines, failed)
}

/// The names to keep: the command line's, else `[dns] names`.
fn names(ctx: &Context, args: &DnsArgs) -> Result<Vec<String>> {
    if args.names.is_empty() {
        if args.remove {
            return Err(Failure::input(
                "dns --remove: give the names to stop keeping",
            ));
        }
        if ctx.config.dns.names.is_empty() {
            return Err(Failure::input("dns: no host names to keep")
                .hint("Give them (`fail2pvefw -i trusted dns home.example.net`) or set names = [...] in [dns] of the configuration."));
        }
        return Ok(ctx.config.dns.names.clone());
    }
    let mut names = Vec::new();
    for name in &args.names {
        let name = host_name(name).map_err(|e| Failure::input(format!("dns: {e}")))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// `[pve] ipset` and an IPSet with bans are ban lists: a host name's
/// address there would be dropped, not let in.
fn refuse_a_ban_list(ctx: &Context, db: &Db, args: &DnsArgs, ipset: &str) -> Result<()> {
    if ipset == ctx.config.ipset {
        let how = if args.ipset.is_some() {
            "-i names it"
        } else if ctx.config.dns.ipset.is_some() {
            "[dns] ipset names it"
        } else {
            "neither -i nor [dns] ipset is given, so it is the fallback"
        };
        return Err(Failure::input(format!(
            "dns: IPSet '{ipset}' is where bans go ([pve] ipset; {how}): the names' addresses \
             would be dropped, not let in; nothing was written"
        ))
        .hint(
            "Keep host names in an IPSet of their own that a firewall rule ACCEPTs: \
             `fail2pvefw -i trusted dns NAME`, or ipset = \"trusted\" in [dns].",
        ));
    }
    let holders = dns::ban_holders(db.conn(), ipset).map_err(db_failure)?;
    if holders.is_empty() {
        return Ok(());
    }
    Err(holds_bans(ipset, &holders))
}

fn holds_bans(ipset: &str, holders: &[String]) -> Failure {
    let who: Vec<String> = holders
        .iter()
        .take(3)
        .map(|h| crate::state::desired::describe(h))
        .collect();
    Failure::input(format!(
        "dns: IPSet '{ipset}' holds bans ({}): an IPSet is a ban list or an accept list, \
         not both; nothing was written",
        who.join(", ")
    ))
    .hint("Keep host names in an IPSet of their own that a firewall rule ACCEPTs: -i trusted.")
}

/// Sends what is queued now, as `sync` does (unless `--queue-only`).
fn send(ctx: &Context, session: &mut Session, db: &mut Db, bound: &Bound) -> Result<Report> {
    let mut report = Report::default();
    if ctx.queue_only {
        return Ok(report);
    }
    let patience = ctx.config.pve.timeout * 3 + Duration::from_secs(5);
    let lock = DrainLock::take(&ctx.config.state_dir, patience).map_err(lock_failure)?;
    if let Some(lock) = lock {
        pass(session, db, bound, Backoff::Ignore, &mut report)?;
        drop(lock);
        db.checkpoint();
    }
    Ok(report)
}

/// One line for a name, and its failure if it has one.
fn outcome(
    db: &Db,
    report: &Report,
    name: &str,
    ipset: &str,
    lookup: Option<&Lookup>,
    events: &[Queued],
) -> Result<(String, Option<Failure>)> {
    let mut changed = Vec::new();
    let mut unsent = None;
    for event in events {
        let verb = match (event.action, event.ipset == ipset) {
            (Action::Ban, _) => "added",
            (Action::Unban, true) => "removed",
            (Action::Unban, false) => "moved from IPSet",
        };
        let word = if event.ipset == ipset {
            format!("{verb} {}", event.entry)
        } else {
            format!("{verb} '{}': {}", event.ipset, event.entry)
        };
        match queue::event_state(db, event.id).map_err(db_failure)? {
            EventState::Done => match (report.left_alone.get(&event.id), event.action) {
                (Some(_), Action::Unban) => changed.push(format!(
                    "released {} (someone else's entry: left as it is)",
                    event.entry
                )),
                (Some(_), Action::Ban) => changed.push(format!(
                    "found {} there already as someone else's entry (left as it is)",
                    event.entry
                )),
                (None, _) => changed.push(word),
            },
            EventState::Pending(error) => {
                let why = report
                    .failures
                    .get(&event.id)
                    .map(Failure::to_string)
                    .or(error)
                    .unwrap_or_else(|| "not sent yet".into());
                unsent.get_or_insert(why);
                changed.push(format!("{word} queued"));
            }
            EventState::Failed(error) => {
                unsent.get_or_insert(error);
                changed.push(format!("{word} failed"));
            }
        }
    }
    let what = match lookup {
        None => format!("dns --remove '{name}' in IPSet '{ipset}'"),
        Some(Lookup::Found(entries)) => {
            format!("dns '{name}': {} in IPSet '{ipset}'", entries.join(", "))
        }
        Some(Lookup::Failed(why)) => {
            let kept = dns::records(db.conn())
                .map_err(db_failure)?
                .into_iter()
                .find(|(n, _)| n == name)
                .map_or(0, |(_, r)| r.addresses.len());
            let kept = match kept {
                0 => "it has no entries yet".to_string(),
                1 => format!("its entry stays in IPSet '{ipset}'"),
                n => format!("its {n} entries stay in IPSet '{ipset}'"),
            };
            let failure = Failure::pve(format!("dns '{name}': {why}; {kept}"));
            return Ok((
                format!("dns '{name}': does not resolve; {kept}"),
                Some(failure),
            ));
        }
    };
    let line = if changed.is_empty() {
        format!("{what}: nothing to change")
    } else {
        format!("{what}: {}", changed.join(", "))
    };
    let failure = unsent.map(|why| {
        Failure::pve(format!("{what}: not all sent: {why}")).hint(
            "The changes stay queued: the next `fail2pvefw dns`, `sync` or the timer sends them; \
             `fail2pvefw status` shows the queue.",
        )
    });
    Ok((line, failure))
}

/// Ok with every line, or the lines on stdout and the failures as one.
fn finish(lines: Vec<String>, failed: Vec<Failure>) -> Result<String> {
    if failed.is_empty() {
        return Ok(lines.join("\n"));
    }
    crate::output::line(&lines.join("\n"));
    let hint = failed.iter().find_map(|f| f.hint.clone());
    let message: Vec<String> = failed.into_iter().map(|f| f.message).collect();
    let failure = Failure::pve(message.join("\n"));
    Err(match hint {
        Some(hint) => failure.hint(hint),
        None => failure,
    })
}

/// Names the state keeps that `[dns] names` no longer lists: their
/// entries stay (let in) until `dns --remove`.
fn warn_of_forgotten_names(ctx: &Context, db: &Db) -> Result<()> {
    for (name, record) in dns::records(db.conn()).map_err(db_failure)? {
        if !ctx.config.dns.names.contains(&name) {
            log::warn(&format!(
                "dns: '{name}' is not in [dns] names, but its {} entr{} stay in IPSet '{}': \
                 `fail2pvefw dns --remove {name}` removes them",
                record.addresses.len(),
                if record.addresses.len() == 1 {
                    "y"
                } else {
                    "ies"
                },
                record.ipset
            ));
        }
    }
    Ok(())
}
