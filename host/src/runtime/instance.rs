//! One instantiated policy: a sandbox on a fuel budget (a loop cannot hang
//! fail2ban) and a memory cap, its exports as calls, and a trap reported
//! with the policy's name, the call it was in and why, in words.

use crate::bindings::admission::{self, Admitted, Budget, Candidate};
use crate::bindings::{self, BanRequest, PolicyError, Refusal};
use crate::capabilities::HostState;
use crate::config::{DEFAULT_FUEL, Limits};
use crate::error::{Failure, Result};
use crate::log;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};

/// The memory and table limits of one sandbox.
fn store_limits(memory: usize) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(memory)
        .table_elements(100_000)
        .instances(10)
        .tables(10)
        .memories(4)
        .trap_on_grow_failure(true)
        .build()
}

/// One instantiated policy; each call runs on a fresh fuel budget.
pub struct Instance {
    store: Store<HostState>,
    policy: bindings::Policy,
    /// The optional `admission` export (`wit/policy.wit`).
    admission: Option<admission::Guest>,
    name: String,
    limits: Limits,
    identity: Identity,
}

/// Who the policy says it is (its `identity` export), checked: its store
/// is kept under the name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub version: String,
}

/// `admit` sorts tens of thousands of candidates: it gets this many times
/// a call's fuel.
pub const ADMIT_FUEL_FACTOR: u64 = 20;

type Outcome<T> = std::result::Result<T, PolicyError>;

impl Instance {
    /// Instantiates `component` in a fresh store holding `state`, with the
    /// memory cap and fuel of `limits`; `name` names the policy in messages.
    pub fn new(
        engine: &Engine,
        component: &Component,
        linker: &Linker<HostState>,
        mut state: HostState,
        name: String,
        limits: Limits,
    ) -> Result<Instance> {
        if let Some(why) = bindings::version_mismatch(engine, component) {
            return Err(
                Failure::config(format!("cannot load {name}: {why}")).hint(format!(
                    "Rebuild the policy against this fail2pvefw's wit/policy.wit (package {}@{}): \
                 0.2.0 gives each remedy its own error case (refused, rejected, not-ours).",
                    bindings::PACKAGE,
                    bindings::VERSION
                )),
            );
        }
        state.limits = store_limits(limits.memory);
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        // Instantiation runs the component's start code, on the same budget.
        store
            .set_fuel(limits.fuel)
            .expect("fuel is enabled in the engine config");
        let cannot = |e: wasmtime::Error| {
            Failure::config(format!("cannot instantiate {name}: {e:#}"))
                .hint("A policy must export fail2pvefw:policy/action@0.2.0 (with `identity`) and import only what wit/policy.wit offers.")
        };
        let live = linker.instantiate(&mut store, component).map_err(cannot)?;
        let policy = bindings::Policy::new(&mut store, &live).map_err(cannot)?;
        // Optional: without it, the default policy's rules choose.
        let admission = match admission::GuestIndices::new(&live.instance_pre(&store)) {
            Err(_) => None,
            Ok(indices) => Some(indices.load(&mut store, &live).map_err(|e| {
                Failure::config(format!("cannot load the admission export of {name}: {e:#}"))
                    .hint("Rebuild the policy against this fail2pvefw's wit/policy.wit (world admitting-policy).")
            })?),
        };
        let mut instance = Instance {
            store,
            policy,
            admission,
            name,
            limits,
            identity: Identity {
                name: String::new(),
                version: String::new(),
            },
        };
        instance.identity = instance.ask_identity()?;
        let key = instance.identity.name.clone();
        instance.store.data_mut().store.use_identity(&key);
        Ok(instance)
    }

    /// Calls `identity` once and checks the name can key a store; a name it
    /// cannot use refuses the policy (exit 3).
    fn ask_identity(&mut self) -> Result<Identity> {
        let id = self.call("identity", |p, s| {
            p.fail2pvefw_policy_action().call_identity(s)
        })?;
        let shown =
            |text: &str| -> String { crate::log::sanitize(text).chars().take(80).collect() };
        let checked = fail2pvefw_sdk::identity::check_name(&id.name)
            .map_err(|why| format!("its name '{}' is not usable: {why}", shown(&id.name)))
            .and_then(|()| {
                fail2pvefw_sdk::identity::check_version(&id.version).map_err(|why| {
                    format!("its version '{}' is not usable: {why}", shown(&id.version))
                })
            });
        if let Err(why) = checked {
            return Err(Failure::config(format!(
                "{} declares an identity the host cannot use: {why}",
                self.name
            ))
            .hint("A policy's `identity` names its store: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or a digit (fail2pvefw_sdk::identity::check_name)."));
        }
        Ok(Identity {
            name: id.name,
            version: id.version,
        })
    }

    /// Who the policy is; its store is kept under `identity().name`.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The entry PVE will store. An answer that cannot be an entry (too
    /// long, spaces, control characters) is the policy's fault, not the input's.
    pub fn validate(&mut self, req: &BanRequest) -> Result<Outcome<String>> {
        self.grant_ipset(&req.ipset);
        let outcome = self.call("validate", |p, s| {
            p.fail2pvefw_policy_action().call_validate(s, req)
        })?;
        if let Ok(entry) = &outcome
            && !plausible_entry(entry)
        {
            return Err(self.nonsense("validate", entry));
        }
        Ok(tidy(outcome))
    }

    pub fn ban(&mut self, req: &BanRequest) -> Result<Outcome<String>> {
        self.grant_ipset(&req.ipset);
        let outcome = self.call("ban", |p, s| p.fail2pvefw_policy_action().call_ban(s, req))?;
        Ok(tidy(outcome))
    }

    pub fn unban(&mut self, req: &BanRequest) -> Result<Outcome<String>> {
        self.grant_ipset(&req.ipset);
        let outcome = self.call("unban", |p, s| {
            p.fail2pvefw_policy_action().call_unban(s, req)
        })?;
        Ok(tidy(outcome))
    }

    pub fn start(&mut self, ipset: &str) -> Result<Outcome<String>> {
        self.grant_ipset(ipset);
        let outcome = self.call("start", |p, s| {
            p.fail2pvefw_policy_action().call_start(s, ipset)
        })?;
        Ok(tidy(outcome))
    }

    pub fn check(&mut self, ipset: &str) -> Result<Outcome<String>> {
        self.grant_ipset(ipset);
        let outcome = self.call("check", |p, s| {
            p.fail2pvefw_policy_action().call_check(s, ipset)
        })?;
        Ok(tidy(outcome))
    }

    pub fn entries(&mut self, ipset: &str) -> Result<Outcome<Vec<bindings::Entry>>> {
        self.grant_ipset(ipset);
        self.call("entries", |p, s| {
            p.fail2pvefw_policy_action().call_entries(s, ipset)
        })
    }

    /// Whether the policy exports `admission`.
    pub fn has_admission(&self) -> bool {
        self.admission.is_some()
    }

    /// The policy's `admit` (`None` when it does not export `admission`),
    /// on [`ADMIT_FUEL_FACTOR`] times a call's fuel, with every `pve`
    /// request denied: choosing is pure.
    pub fn admit(
        &mut self,
        candidates: &[Candidate],
        budget: &Budget,
    ) -> Result<Option<Outcome<Admitted>>> {
        let Some(admission) = self.admission.clone() else {
            return Ok(None);
        };
        self.store.data_mut().pve.sealed = true;
        let fuel = self.limits.fuel.saturating_mul(ADMIT_FUEL_FACTOR);
        self.store
            .set_fuel(fuel)
            .expect("fuel is enabled in the engine config");
        let result = admission.call_admit(&mut self.store, candidates, budget);
        self.store.data_mut().pve.sealed = false;
        let output = self.store.data().take_output();
        for line in output.lines().filter(|l| !l.trim().is_empty()) {
            log::write(log::Level::Info, &self.name, line);
        }
        result
            .map(Some)
            .map_err(|trap| self.trap_failure("admit", trap, &output))
    }

    /// The IPSet the admin named for this call (config or `-i`) is granted.
    fn grant_ipset(&mut self, ipset: &str) {
        self.store.data_mut().pve.guard.allow_ipset(ipset);
    }

    fn nonsense(&self, what: &str, answer: &str) -> Failure {
        let shown: String = crate::log::sanitize(answer).chars().take(80).collect();
        Failure::config(format!(
            "{} failed in '{what}': it answered '{shown}', which is not an IPSet entry",
            self.name
        ))
        .hint("The policy module is broken; nothing was sent to PVE for this event.")
    }

    pub fn state(&self) -> &HostState {
        self.store.data()
    }

    pub fn state_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    fn call<T>(
        &mut self,
        what: &str,
        f: impl FnOnce(&bindings::Policy, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T> {
        self.store
            .set_fuel(self.limits.fuel)
            .expect("fuel is enabled in the engine config");
        let result = f(&self.policy, &mut self.store);
        let output = self.store.data().take_output();
        if !output.trim().is_empty() {
            for line in output.lines() {
                log::write(log::Level::Info, &self.name, line);
            }
        }
        result.map_err(|trap| self.trap_failure(what, trap, &output))
    }

    fn trap_failure(&self, what: &str, trap: wasmtime::Error, output: &str) -> Failure {
        let why = match trap.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::OutOfFuel) => {
                let fuel = self.limits.fuel;
                format!(
                    "it ran out of fuel ({fuel} units, [limits] fuel; {DEFAULT_FUEL} is about a second): a loop that does not end?"
                )
            }
            Some(wasmtime::Trap::UnreachableCodeReached) if !output.trim().is_empty() => {
                // Rust's panic output, on one line, without its backtrace tip.
                let said: String = output
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with("note: run with"))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .chars()
                    .take(500)
                    .collect();
                format!("it panicked: {said}")
            }
            _ => trap_reason(&trap, self.limits.memory),
        };
        Failure::config(format!("{} failed in '{what}': {why}", self.name)).hint(
            "The policy module is broken or over its limits; nothing more was done for this event.",
        )
    }
}

/// Words for a trap that is not fuel or a panic: the memory cap, a WASI
/// function the host does not grant, or wasmtime's own words.
fn trap_reason(trap: &wasmtime::Error, memory: usize) -> String {
    let text = format!("{trap:#}");
    if text.contains("forcing trap when growing memory") {
        return format!(
            "it tried to use more than its {} MiB of memory ([limits] memory_mib)",
            memory >> 20
        );
    }
    if let Some(start) = text.find("unknown import: `") {
        let name = text[start + 17..].split('`').next().unwrap_or_default();
        return format!(
            "it called '{name}', which the host does not grant (policies get no files, sockets, clocks or environment)"
        );
    }
    crate::log::sanitize(&text).chars().take(1000).collect()
}

/// An entry is an address with an optional prefix (or, for a custom policy,
/// an alias name): short, no spaces, no control characters. Anything else
/// did not come from a working policy.
fn plausible_entry(entry: &str) -> bool {
    !entry.is_empty()
        && entry.len() <= 64
        && entry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:/_-!".contains(c))
}

/// The policy's words go to fail2ban's log and the terminal: one line, cut
/// to a sane length, whatever the policy returned.
fn tidy(outcome: Outcome<String>) -> Outcome<String> {
    let clean =
        |text: String| -> String { crate::log::sanitize(&text).chars().take(2000).collect() };
    match outcome {
        Ok(text) => Ok(clean(text)),
        Err(PolicyError::InvalidInput(m)) => Err(PolicyError::InvalidInput(clean(m))),
        Err(PolicyError::Denied(m)) => Err(PolicyError::Denied(clean(m))),
        Err(PolicyError::NotOurs(m)) => Err(PolicyError::NotOurs(clean(m))),
        Err(PolicyError::Unreachable(m)) => Err(PolicyError::Unreachable(clean(m))),
        Err(PolicyError::Busy(m)) => Err(PolicyError::Busy(clean(m))),
        Err(PolicyError::Refused(r)) => Err(PolicyError::Refused(Refusal {
            message: clean(r.message),
            ..r
        })),
        Err(PolicyError::Rejected(r)) => Err(PolicyError::Rejected(Refusal {
            message: clean(r.message),
            ..r
        })),
    }
}
