//! `fail2pvefw sandbox …`: runs a policy against an IPSet in memory and shows
//! every PVE call it made, the IPSet afterwards and the policy's store. No
//! configuration file, no token, no network: for policy authors, and as a
//! first command.
//!
//! The policy gets the same capabilities as in a real run, behind the same
//! guard (its denials and its ownership checks show in the list of calls),
//! with two backends swapped: `pve` answers from the PVE model
//! ([`pve_model::Cluster`], a whole `cluster.fw` in memory), `store` is in
//! memory (`--store FILE` reads it before and writes it after, as JSON).
//! Several commands run one after the other in one instance, as the
//! durable queue would send them: a policy that counts shows what it does.
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
use crate::cli::{SandboxArgs, SandboxCommand, SandboxOptions, Target, script_commands};
use crate::config::{self, Limits, Rules};
use crate::error::{Failure, Result};
use crate::runtime::instance::Instance;
use crate::runtime::session::ban_request;
use crate::runtime::{Runtime, Source};
use pve_model::Cluster;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// The instance the sandbox's entries are tagged with.
const INSTANCE: &str = "sandbox";

/// Runs the sandbox's commands in order: prints the calls, the IPSet and
/// the store on stdout; returns the policy's answer (for one command) or
/// the failure of the first command that failed, with the usual exit code.
pub fn run(mut args: SandboxArgs, policy: Option<PathBuf>) -> Result<String> {
    let source = policy.map_or(Source::Embedded, Source::File);
    let mut commands = std::mem::take(&mut args.commands);
    if let Some(file) = &args.options.script {
        let defaults = args.defaults();
        for mut command in script(file)? {
            defaults.apply(&mut command);
            commands.push(command);
        }
    }
    let mut ipsets: Vec<String> = commands.iter().map(ipset_of).collect();
    ipsets.dedup();
    if ipsets.is_empty() {
        ipsets.push(ipset_of_none(&args));
    }
    let memory = seed(args.options.seed.as_deref(), &ipsets)?;
    let mut instance = instantiate(&source, memory, &args.options)?;
    if let Some(file) = &args.options.store {
        let pairs = read_store(file)?;
        instance
            .state_mut()
            .store
            .load(pairs)
            .map_err(|e| Failure::input(format!("--store '{}': {e}", file.display())))?;
    }
    let single = commands.len() == 1;
    let mut out = format!(
        "sandbox: {} against an in-memory PVE (nothing is sent anywhere)\n",
        source.describe()
    );
    let mut outcome = Ok(String::new());
    for command in &commands {
        let first = instance.state().pve.calls.len();
        outcome = call(&mut instance, command, &ipset_of(command));
        let calls = &instance.state().pve.calls[first..];
        if single {
            calls_section(&mut out, calls);
        } else {
            let _ = writeln!(out, "$ {}", crate::log::sanitize(&command.describe()));
            for call in calls {
                let _ = writeln!(out, "  {}", crate::log::sanitize(call));
            }
            let _ = match &outcome {
                Ok(words) => writeln!(out, "  = {words}"),
                Err(failure) => writeln!(out, "  ! {}", crate::log::sanitize(&failure.to_string())),
            };
        }
        if outcome.is_err() {
            break;
        }
    }
    let pve = &instance.state().pve;
    for ipset in &ipsets {
        ipset_section(&mut out, pve, ipset);
    }
    let store = instance.state_mut().store.dump();
    store_section(&mut out, &instance, &store);
    crate::output::write(&out);
    if let (Some(path), Some(cluster)) = (&args.options.save, instance.state().pve.memory()) {
        std::fs::write(path, cluster.cluster_fw()).map_err(|e| {
            Failure::input(format!("cannot write --save '{}': {e}", path.display()))
        })?;
    }
    if let Some(path) = &args.options.store {
        write_store(path, &store)?;
    }
    match outcome {
        Ok(words) if single => Ok(words),
        other => other.map(|_| String::new()),
    }
}

fn ipset_of(command: &SandboxCommand) -> String {
    command.ipset().unwrap_or(config::DEFAULT_IPSET).to_string()
}

fn ipset_of_none(args: &SandboxArgs) -> String {
    args.ipset
        .clone()
        .unwrap_or_else(|| config::DEFAULT_IPSET.to_string())
}

/// The commands of `--script FILE` (`-`: standard input).
fn script(file: &Path) -> Result<Vec<SandboxCommand>> {
    let name = file.display();
    let mut text = String::new();
    let read = if file == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    read.map_err(|e| Failure::input(format!("cannot read --script '{name}': {e}")))?;
    script_commands(&text).map_err(|e| Failure::input(format!("--script '{name}': {e}")))
}

/// The cluster of `--seed` (its whole `cluster.fw`, as PVE reads it), or
/// the empty IPSets the commands name.
pub(super) fn seed(file: Option<&Path>, ipsets: &[String]) -> Result<Cluster> {
    let empty = || Cluster::with_ipsets(ipsets.iter().map(String::as_str));
    let Some(file) = file else {
        return Ok(empty());
    };
    if !file.exists() {
        // A --seed that does not exist yet is an empty cluster (with --save,
        // the first run of a series).
        return Ok(empty());
    }
    let text = std::fs::read(file)
        .map_err(|e| Failure::input(format!("cannot read --seed '{}': {e}", file.display())))?;
    Ok(Cluster::from_cluster_fw(text))
}

/// The store of `--store FILE`: a JSON object of strings; nothing when the
/// file does not exist yet.
fn read_store(file: &Path) -> Result<Vec<(String, String)>> {
    let name = file.display();
    if !file.exists() {
        return Ok(Vec::new());
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::input(format!("cannot read --store '{name}': {e}")))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Failure::input(format!("--store '{name}' is not JSON: {e}")))?;
    let object = value.as_object().ok_or_else(|| {
        Failure::input(format!(
            "--store '{name}' is not a JSON object of keys and values"
        ))
    })?;
    object
        .iter()
        .map(|(key, value)| match value.as_str() {
            Some(text) => Ok((key.clone(), text.to_string())),
            None => Err(Failure::input(format!(
                "--store '{name}': the value of '{key}' is not a string"
            ))),
        })
        .collect()
}

fn write_store(file: &Path, store: &[(String, String)]) -> Result<()> {
    let object: serde_json::Map<String, serde_json::Value> = store
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let text = serde_json::to_string_pretty(&object).expect("a map of strings serialises");
    std::fs::write(file, format!("{text}\n"))
        .map_err(|e| Failure::input(format!("cannot write --store '{}': {e}", file.display())))
}

fn instantiate(source: &Source, cluster: Cluster, options: &SandboxOptions) -> Result<Instance> {
    for net in &options.never_ban {
        config::check_network(net).map_err(|e| Failure::input(format!("--never-ban: {e}")))?;
    }
    let rules = Rules {
        never_ban: options.never_ban.clone(),
        ipv6_prefix: options.ipv6_prefix,
        policy_settings: options.settings.iter().cloned().collect(),
        ..Rules::default()
    };
    let limits = Limits::default();
    // Every IPSet of the sandbox is granted: they are all the user's. The
    // guard is a real run's, with `--never-ban` and `--pve-host`.
    let guard = Guard::new(
        cluster.ipsets().into_iter().map(|n| (n, Purpose::Ban)),
        &[],
        EntryRules::new(&rules, &options.pve_host),
        INSTANCE,
    );
    let state = HostState::new(
        Pve::in_memory(cluster, guard),
        capabilities::store::Store::new(None, source.legacy_namespace()),
        capabilities::guest_log::Log {
            source: source.describe(),
        },
    )
    .with_settings(Settings::new(&rules, &options.pve_host));
    // No cache: the sandbox writes nothing to disk but --save and --store.
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
        SandboxCommand::Dns(_) => unreachable!("commands::run hands it to dns::sandbox"),
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

/// The calls of one command, for stdout.
pub(super) fn calls_section(out: &mut String, calls: &[String]) {
    if calls.is_empty() {
        out.push_str("PVE calls: none\n");
    } else {
        out.push_str("PVE calls:\n");
        for call in calls {
            let _ = writeln!(out, "  {}", crate::log::sanitize(call));
        }
    }
}

/// The IPSet afterwards, for stdout.
pub(super) fn ipset_section(out: &mut String, pve: &Pve, ipset: &str) {
    let entries = pve.memory().and_then(|m| m.entries(ipset));
    match entries {
        None => {
            let _ = writeln!(out, "IPSet '{ipset}': does not exist");
        }
        Some(entries) => {
            let n = entries.len();
            let _ = writeln!(
                out,
                "IPSet '{ipset}' ({n} {}):",
                plural(n, "entry", "entries")
            );
            for e in entries {
                let _ = writeln!(
                    out,
                    "  {}",
                    crate::log::sanitize(&line(e.cidr_str(), e.nomatch, e.comment.as_deref()))
                );
            }
        }
    }
}

/// The policy's store afterwards, when it holds anything.
fn store_section(out: &mut String, instance: &Instance, store: &[(String, String)]) {
    if store.is_empty() {
        return;
    }
    let n = store.len();
    let _ = writeln!(
        out,
        "store of '{}' ({n} {}):",
        instance.identity().name,
        plural(n, "key", "keys")
    );
    for (key, value) in store {
        let _ = writeln!(
            out,
            "  {} = {}",
            crate::log::sanitize(key),
            crate::log::sanitize(value)
        );
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn line(cidr: &str, nomatch: bool, comment: Option<&str>) -> String {
    let mut line = format!("{}{cidr}", if nomatch { "!" } else { "" });
    if let Some(c) = comment {
        let _ = write!(line, " # {c}");
    }
    line
}
