//! `fail2pvefw sandbox …`: runs a policy against an IPSet in memory and shows
//! every PVE call it made and the IPSet afterwards. No configuration file,
//! no token, no network: for policy authors, and as a first command.
//!
//! The policy gets the same capabilities as in a real run, behind the same
//! guard (its denials and its ownership checks show in the list of calls),
//! with two backends swapped: `pve` answers from the PVE model
//! ([`pve_model::Cluster`], a whole `cluster.fw` in memory), `store` is in
//! memory.
//!
//! Hook for the durable queue's `sync`: a `SandboxCommand::Sync` would call
//! the policy's `entries` export here and print what the reconciliation would
//! add or remove, using the same in-memory backend.

use super::context::request_from;
use crate::bindings::{BanRequest, PolicyError};
use crate::capabilities::guard::{EntryRules, Guard, Purpose};
use crate::capabilities::pve::Pve;
use crate::capabilities::settings::Settings;
use crate::capabilities::{self, HostState};
use crate::cli::{SandboxArgs, SandboxCommand, Target};
use crate::config::{self, Limits, Rules};
use crate::error::{Failure, Result};
use crate::runtime::instance::Instance;
use crate::runtime::session::ban_request;
use crate::runtime::{Runtime, Source};
use pve_model::Cluster;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The instance the sandbox's entries are tagged with.
const INSTANCE: &str = "sandbox";

/// Runs one sandboxed command: prints the calls and the IPSet on stdout,
/// returns the policy's answer (or its failure, with the usual exit code).
pub fn run(args: SandboxArgs, policy: Option<PathBuf>) -> Result<String> {
    let source = policy.map_or(Source::Embedded, Source::File);
    let ipset = match &args.command {
        SandboxCommand::Ban(t) | SandboxCommand::Unban(t) => t.ipset.clone(),
        SandboxCommand::Start(i) | SandboxCommand::Check(i) => i.ipset.clone(),
    }
    .unwrap_or_else(|| config::DEFAULT_IPSET.to_string());
    let memory = seed(args.seed.as_deref(), &ipset)?;
    let mut instance = instantiate(&source, memory, &args)?;
    let outcome = call(&mut instance, &args.command, &ipset);
    let pve = &instance.state().pve;
    crate::output::write(&report(&source, pve, &ipset));
    if let (Some(path), Some(cluster)) = (&args.save, pve.memory()) {
        std::fs::write(path, cluster.cluster_fw()).map_err(|e| {
            Failure::input(format!("cannot write --save '{}': {e}", path.display()))
        })?;
    }
    outcome
}

/// The cluster of `--seed` (its whole `cluster.fw`, as PVE reads it), or
/// one empty IPSet.
fn seed(file: Option<&Path>, ipset: &str) -> Result<Cluster> {
    let Some(file) = file else {
        return Ok(Cluster::with_ipsets([ipset]));
    };
    if !file.exists() {
        // A --seed that does not exist yet is an empty cluster (with --save,
        // the first run of a series).
        return Ok(Cluster::with_ipsets([ipset]));
    }
    let text = std::fs::read(file)
        .map_err(|e| Failure::input(format!("cannot read --seed '{}': {e}", file.display())))?;
    Ok(Cluster::from_cluster_fw(text))
}

fn instantiate(source: &Source, cluster: Cluster, args: &SandboxArgs) -> Result<Instance> {
    for net in &args.never_ban {
        config::check_network(net).map_err(|e| Failure::input(format!("--never-ban: {e}")))?;
    }
    let rules = Rules {
        never_ban: args.never_ban.clone(),
        ipv6_prefix: args.ipv6_prefix,
        ..Rules::default()
    };
    let limits = Limits::default();
    // Every IPSet of the sandbox is granted: they are all the user's. The
    // guard is a real run's, with `--never-ban` and `--pve-host`.
    let guard = Guard::new(
        cluster.ipsets().into_iter().map(|n| (n, Purpose::Ban)),
        &[],
        EntryRules::new(&rules, &args.pve_host),
        INSTANCE,
    );
    let state = HostState::new(
        Pve::in_memory(cluster, guard),
        capabilities::store::Store::new(None, source.legacy_namespace()),
        capabilities::guest_log::Log {
            source: source.describe(),
        },
    )
    .with_settings(Settings::new(&rules, &args.pve_host));
    // No cache: the sandbox writes nothing to disk but --save.
    Runtime::load(source.clone(), None)?
        .with_limits(limits)
        .instantiate(state)
}

fn call(instance: &mut Instance, command: &SandboxCommand, ipset: &str) -> Result<String> {
    let (what, outcome) = match command {
        SandboxCommand::Ban(t) => {
            let req = request(t, ipset);
            let what = format!("ban '{}'", t.ip);
            let outcome = match instance.validate(&req)? {
                Ok(entry) => {
                    // The host's own rules before anything is sent, as a
                    // real run checks them before it queues the ban.
                    let guard = &instance.state().pve.guard;
                    if let Err(why) = guard.check_entry(ipset, &entry) {
                        let refused = format!("'{entry}' is refused by the host: {why}");
                        return Err(Failure::input(refused).context(what));
                    }
                    instance.ban(&req)?
                }
                Err(e) => Err(e),
            };
            (what, outcome)
        }
        SandboxCommand::Unban(t) => {
            let req = request(t, ipset);
            let outcome = match instance.validate(&req)? {
                Ok(_) => instance.unban(&req)?,
                Err(e) => Err(e),
            };
            (format!("unban '{}'", t.ip), outcome)
        }
        SandboxCommand::Start(_) => ("start".to_string(), instance.start(ipset)?),
        SandboxCommand::Check(_) => ("check".to_string(), instance.check(ipset)?),
    };
    match outcome {
        // Someone else's entry, left alone: an answer, as in a real run.
        Err(PolicyError::NotOurs(why)) => Ok(format!("{what}: left alone: {why}")),
        other => other.map_err(|e| failure(e).context(what)),
    }
}

/// The command line as the policy sees it, from the instance `sandbox`.
fn request(target: &Target, ipset: &str) -> BanRequest {
    ban_request(&request_from(target, ipset), INSTANCE)
}

/// The exit code a real run would give: 2 bad input, 3 denied, 1 PVE.
/// (`not-ours` is an answer, not a failure: see `call`.)
fn failure(error: PolicyError) -> Failure {
    match error {
        PolicyError::InvalidInput(m) => Failure::input(m),
        PolicyError::Denied(m) => Failure::config(format!("the policy was denied: {m}")),
        PolicyError::Refused(r) | PolicyError::Rejected(r) => {
            Failure::pve(format!("PVE refused: {} {}", r.status, r.message))
        }
        PolicyError::NotOurs(m) => Failure::pve(format!("left alone: {m}")),
        PolicyError::Unreachable(m) => Failure::pve(format!("PVE unreachable: {m}")),
        PolicyError::Busy(m) => Failure::pve(format!("PVE is busy: {m}")),
    }
}

/// The calls and the resulting IPSet, for stdout.
fn report(source: &Source, pve: &Pve, ipset: &str) -> String {
    let mut out = format!(
        "sandbox: {} against an in-memory PVE (nothing is sent anywhere)\n",
        source.describe()
    );
    if pve.calls.is_empty() {
        out.push_str("PVE calls: none\n");
    } else {
        out.push_str("PVE calls:\n");
        for call in &pve.calls {
            let _ = writeln!(out, "  {}", crate::log::sanitize(call));
        }
    }
    let entries = pve.memory().and_then(|m| m.entries(ipset));
    match entries {
        None => {
            let _ = writeln!(out, "IPSet '{ipset}': does not exist");
        }
        Some(entries) => {
            let n = entries.len();
            let _ = writeln!(out, "IPSet '{ipset}' ({n} {}):", plural(n));
            for e in entries {
                let _ = writeln!(
                    out,
                    "  {}",
                    crate::log::sanitize(&line(e.cidr_str(), e.nomatch, e.comment.as_deref()))
                );
            }
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "entry" } else { "entries" }
}

fn line(cidr: &str, nomatch: bool, comment: Option<&str>) -> String {
    let mut line = format!("{}{cidr}", if nomatch { "!" } else { "" });
    if let Some(c) = comment {
        let _ = write!(line, " # {c}");
    }
    line
}
