//! Running a policy component: the engine, the compiled-component cache, and
//! one sandboxed instance per run.
//!
//! A policy gets the capabilities in `capabilities` and nothing else, runs on
//! a fuel budget (a loop cannot hang fail2ban) and a memory cap, and a trap is
//! reported with the policy's name and the call it was in.

use crate::bindings;
use crate::capabilities::{self, HostState};
use crate::config::{DEFAULT_FUEL, Limits};
use crate::error::{Failure, Result};
use crate::log;
use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};

pub use crate::bindings::{BanRequest, PolicyError, Refusal};

/// The default policy, built from `guest/` by `build.rs`.
pub static DEFAULT_POLICY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/policy.wasm"));

/// Which policy runs.
#[derive(Clone, Debug)]
pub enum Source {
    Embedded,
    File(PathBuf),
}

impl Source {
    /// For messages: `the default policy` or `policy '/path/x.wasm'`.
    pub fn describe(&self) -> String {
        match self {
            Source::Embedded => "the default policy".into(),
            Source::File(path) => format!("policy '{}'", path.display()),
        }
    }

    /// Whose data in the store: policies do not see each other's keys.
    pub fn namespace(&self) -> String {
        match self {
            Source::Embedded => "default".into(),
            Source::File(path) => path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "policy".into()),
        }
    }
}

pub struct Runtime {
    engine: Engine,
    component: Component,
    linker: Linker<HostState>,
    source: Source,
    limits: Limits,
}

impl Runtime {
    /// Loads and links the policy, from the compiled cache in `cache_dir`
    /// when it is there (compiling costs ~100 ms, loading ~0.1 ms).
    pub fn load(source: Source, cache_dir: Option<&Path>) -> Result<Runtime> {
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config)
            .map_err(|e| Failure::config(format!("cannot start the WebAssembly engine: {e:#}")))?;
        let bytes: Cow<[u8]> =
            match &source {
                Source::Embedded => Cow::Borrowed(DEFAULT_POLICY),
                Source::File(path) => Cow::Owned(std::fs::read(path).map_err(|e| {
                    Failure::config(format!("cannot read {}: {e}", source.describe()))
                })?),
            };
        let component = load_cached(&engine, &bytes, cache_dir).map_err(|e| {
            Failure::config(format!("{} is not a valid WebAssembly component: {e:#}", source.describe()))
                .hint("Build policies with `cargo build --target wasm32-wasip2`; `fail2pvefw policy check FILE` explains what is wrong.")
        })?;
        let mut linker = Linker::new(&engine);
        capabilities::add_to_linker(&mut linker)
            .and_then(|_| {
                capabilities::wasi::define_ungranted_as_traps(&mut linker, &component, &engine)
            })
            .map_err(|e| Failure::config(format!("cannot link {}: {e:#}", source.describe())))?;
        Ok(Runtime {
            engine,
            component,
            linker,
            source,
            limits: Limits::default(),
        })
    }

    /// Fuel and memory of each call, from `[limits]`.
    pub fn with_limits(mut self, limits: Limits) -> Runtime {
        self.limits = limits;
        self
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// A fresh sandbox with `state` as its capabilities.
    pub fn instantiate(&self, mut state: HostState) -> Result<Instance> {
        state.limits = limits(self.limits.memory);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Instantiation runs the component's start code, on the same budget.
        store
            .set_fuel(self.limits.fuel)
            .expect("fuel is enabled in the engine config");
        let policy = bindings::Policy::instantiate(&mut store, &self.component, &self.linker)
            .map_err(|e| {
                Failure::config(format!("cannot instantiate {}: {e:#}", self.source.describe()))
                    .hint("A policy must export fail2pvefw:policy/action@0.1.0 and import only what wit/policy.wit offers.")
            })?;
        Ok(Instance {
            store,
            policy,
            name: self.source.describe(),
            limits: self.limits,
        })
    }
}

/// The memory and table limits of one sandbox.
pub fn limits(memory: usize) -> StoreLimits {
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
    name: String,
    limits: Limits,
}

type Outcome<T> = std::result::Result<T, PolicyError>;

impl Instance {
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

    /// The IPSet the admin named for this call (config or `-i`) is granted.
    fn grant_ipset(&mut self, ipset: &str) {
        self.store.data_mut().pve.grant.allow_ipset(ipset);
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
        Err(PolicyError::Unreachable(m)) => Err(PolicyError::Unreachable(clean(m))),
        Err(PolicyError::Busy(m)) => Err(PolicyError::Busy(clean(m))),
        Err(PolicyError::Refused(r)) => Err(PolicyError::Refused(Refusal {
            status: r.status,
            message: clean(r.message),
        })),
    }
}

/// Loads `bytes` as a component, through a cache of compiled code.
///
/// The key is the module's SHA-256 and the engine's compatibility hash
/// (wasmtime version and settings), so a new policy or a new fail2pvefw never
/// loads stale code. The cache lives in the state directory, which is 0700:
/// compiled code is trusted, so nobody else may write it.
fn load_cached(
    engine: &Engine,
    bytes: &[u8],
    cache_dir: Option<&Path>,
) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, bytes);
    };
    let path = dir.join(format!("policy-{}.cwasm", cache_key(engine, bytes)));
    if let Some(component) = load_compiled(engine, &path) {
        return Ok(component);
    }
    // A cold cache with many processes at once (fail2ban's first bans, a
    // burst of actions): one compiles, the others wait and then load its
    // result, instead of all of them compiling at once.
    let _compiling = lock_compiling(dir);
    if let Some(component) = load_compiled(engine, &path) {
        return Ok(component);
    }
    let compiled = engine.precompile_component(bytes)?;
    // SAFETY: produced just now by this engine.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    if let Err(e) = write_atomically(dir, &path, &compiled) {
        log::debug(&format!(
            "cannot cache the compiled policy in '{}': {e}",
            dir.display()
        ));
    }
    Ok(component)
}

fn load_compiled(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: the file was written by `precompile_component` of an engine
    // with the same compatibility hash, into a directory only we can write.
    match unsafe { Component::deserialize_file(engine, path) } {
        Ok(component) => Some(component),
        Err(e) => {
            log::debug(&format!(
                "recompiling: cached '{}' unusable: {e:#}",
                path.display()
            ));
            None
        }
    }
}

/// An exclusive lock on `<cache>/compile.lock`, held while compiling;
/// `None` (compile anyway) when the directory cannot be used.
fn lock_compiling(dir: &Path) -> Option<std::fs::File> {
    crate::state::db::ensure_dir(dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("compile.lock"))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    let hex: String = digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{hex}-{:016x}", hasher.finish())
}

fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> std::io::Result<()> {
    crate::state::db::ensure_dir(dir).map_err(std::io::Error::other)?;
    crate::state::files::write_atomically(path, data, 0o600)
}
