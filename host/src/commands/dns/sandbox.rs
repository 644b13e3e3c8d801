//! `fail2pvefw sandbox dns NAME… -i IPSET [--resolve NAME=ADDR,…]`: what
//! `dns` would do to an in-memory PVE (`--seed`/`--save` as for the other
//! sandbox commands). No policy runs: these are the host's own writes,
//! through a real run's guard, with the IPSet an accept list.
//!
//! The sandbox has no state, so a name's entries are the ones its comment
//! names (our tag, jail slot `dns`, instance `sandbox`); a real run also
//! has the state's holders. Lookups are real unless `--resolve` answers
//! them, so a test or a first try needs no resolver.

use super::lookup;
use crate::capabilities::guard::{EntryRules, Guard, Purpose, named};
use crate::capabilities::pve::{Added, Pve, WriteOutcome};
use crate::cli::{SandboxArgs, SandboxDns};
use crate::commands::sandbox::{calls_section, ipset_section, seed};
use crate::config::{self, Rules, host_name, ipset_name};
use crate::error::{Failure, Result};
use crate::state::dns::{Lookup, diff};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The instance the sandbox's entries are tagged with.
const INSTANCE: &str = "sandbox";

pub fn run(args: &SandboxArgs, dns: &SandboxDns) -> Result<String> {
    let d = &dns.dns;
    if d.names.is_empty() {
        return Err(Failure::input("sandbox dns: give the host names"));
    }
    let names = d
        .names
        .iter()
        .map(|n| host_name(n).map_err(|e| Failure::input(format!("sandbox dns: {e}"))))
        .collect::<Result<Vec<_>>>()?;
    let ipset = d
        .ipset
        .clone()
        .unwrap_or_else(|| config::DEFAULT_IPSET.to_string());
    ipset_name(&ipset).map_err(|e| Failure::input(format!("sandbox dns: {e}")))?;
    if ipset == config::DEFAULT_IPSET {
        return Err(Failure::input(format!(
            "sandbox dns: IPSet '{ipset}' is where bans go by default: the names' addresses would \
             be dropped, not let in (a real run refuses [pve] ipset too)"
        ))
        .hint("Name the accept list: `fail2pvefw sandbox -i trusted dns NAME`."));
    }
    let answers = answers(&dns.resolve)?;
    let mut guard = Guard::new(
        [(ipset.clone(), Purpose::Ban)],
        &[],
        EntryRules::new(&Rules::default(), &args.options.pve_host),
        INSTANCE,
    );
    guard.mark_accept(&ipset);
    let mut pve = Pve::in_memory(
        seed(args.options.seed.as_deref(), std::slice::from_ref(&ipset))?,
        guard,
    );
    let now = crate::state::queue::now();
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for name in &names {
        let lookup = match answers.get(name) {
            Some(addrs) => lookup::found(addrs.iter().copied()),
            None if d.remove => Lookup::Found(Vec::new()),
            None => lookup::resolve(name),
        };
        let entries = pve
            .memory()
            .and_then(|m| m.entries(&ipset))
            .unwrap_or_default()
            .into_iter()
            .map(|e| crate::bindings::Entry {
                cidr: e.cidr_str().to_string(),
                comment: e.comment.clone(),
                owner: None,
            })
            .collect::<Vec<_>>();
        let seen = lookup::seen(&entries, INSTANCE, name, &lookup);
        let resolved = match (&lookup, d.remove) {
            (_, true) => Vec::new(),
            (Lookup::Found(r), false) => r.clone(),
            (Lookup::Failed(why), false) => {
                failed.push(format!("sandbox dns '{name}': {why}; its entries stay"));
                continue;
            }
        };
        let change = diff(&resolved, &BTreeSet::new(), &seen);
        let mut words = Vec::new();
        for entry in &change.add {
            let comment = named::comment(name, now, INSTANCE);
            words.push(match pve.add_own_entry(&ipset, entry, &comment) {
                Ok(Added::New) => format!("added {entry}"),
                Ok(Added::Present { .. }) => format!("{entry} was there already"),
                Ok(Added::Refused(r)) => format!("{entry}: PVE refused: {} {}", r.status, r.reason),
                Err(e) => format!("{entry}: {e:?}"),
            });
        }
        for entry in &change.remove {
            let _ = pve.delete_own_entry(&ipset, entry);
            let outcome = pve.writes().last().map(|w| w.outcome);
            words.push(match outcome {
                Some(WriteOutcome::Deleted) => format!("removed {entry}"),
                _ => format!("left {entry}"),
            });
        }
        let what = if d.remove {
            format!("sandbox dns --remove '{name}'")
        } else {
            format!("sandbox dns '{name}': {}", resolved.join(", "))
        };
        lines.push(if words.is_empty() {
            format!("{what}: nothing to change")
        } else {
            format!("{what}: {}", words.join(", "))
        });
    }
    let mut out = format!(
        "sandbox: the host's own writes of `dns` (no policy runs) against an in-memory PVE, \
         IPSet '{ipset}' an accept list (nothing is sent anywhere)\n"
    );
    calls_section(&mut out, &pve.calls);
    ipset_section(&mut out, &pve, &ipset);
    crate::output::write(&out);
    if let (Some(path), Some(cluster)) = (&args.options.save, pve.memory()) {
        std::fs::write(path, cluster.cluster_fw()).map_err(|e| {
            Failure::input(format!("cannot write --save '{}': {e}", path.display()))
        })?;
    }
    if failed.is_empty() {
        return Ok(lines.join("\n"));
    }
    crate::output::line(&lines.join("\n"));
    Err(Failure::pve(failed.join("\n")))
}

/// `--resolve NAME=ADDR,…`, by name; `NAME=` resolves to nothing.
fn answers(given: &[String]) -> Result<BTreeMap<String, Vec<IpAddr>>> {
    let mut out = BTreeMap::new();
    for item in given {
        let bad = |why: String| Failure::input(format!("--resolve '{item}': {why}"));
        let (name, addrs) = item
            .split_once('=')
            .ok_or_else(|| bad("give NAME=ADDR[,ADDR…]".into()))?;
        let name = host_name(name).map_err(bad)?;
        let addrs = addrs
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| bad(format!("'{a}' is not an IP address")))
            })
            .collect::<Result<Vec<_>>>()?;
        out.entry(name).or_insert_with(Vec::new).extend(addrs);
    }
    Ok(out)
}
