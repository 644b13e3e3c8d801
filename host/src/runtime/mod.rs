//! Running a policy component: the engine, the embedded default policy, the
//! configured instantiation, and one sandboxed instance per run.
//!
//! A policy gets the capabilities in `capabilities` and nothing else;
//! `instance` runs it within its limits, `compiled` holds its machine code
//! (the default policy's precompiled at build time, custom policies' in a
//! verified cache), `session` turns its answers into words and remedies for the commands.

pub mod compiled;
pub mod instance;
pub mod session;

use crate::capabilities::{self, HostState};
use crate::config::{Config, Limits};
use crate::error::{Failure, Result};
use instance::Instance;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

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

    /// Where the store kept a policy's data before policies declared an
    /// identity (the module's file name, `default` for the built-in one):
    /// what the store moves to the identity's name on first use. The store
    /// is keyed by the identity ([`Instance::identity`]).
    pub fn legacy_namespace(&self) -> String {
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
    /// Loads and links the policy. The default policy's native code is
    /// built in; a custom policy's comes from the verified cache in
    /// `state_dir` when it is there (compiling costs 0.1–0.3 s, loading
    /// well under a millisecond), else it is compiled (and cached).
    pub fn load(source: Source, state_dir: Option<&Path>) -> Result<Runtime> {
        let engine = compiled::engine()
            .map_err(|e| Failure::config(format!("cannot start the WebAssembly engine: {e:#}")))?;
        let component = match &source {
            Source::Embedded => compiled::embedded(&engine, DEFAULT_POLICY),
            Source::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    Failure::config(format!("cannot read {}: {e}", source.describe()))
                })?;
                let cache = state_dir.map(compiled::Cache::in_state_dir);
                compiled::load_cached(&engine, &bytes, cache.as_ref(), &source.describe())
            }
        }
        .map_err(|e| {
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
    pub fn instantiate(&self, state: HostState) -> Result<Instance> {
        Instance::new(
            &self.engine,
            &self.component,
            &self.linker,
            state,
            self.source.describe(),
            self.limits,
        )
    }
}

/// Loads `source` (a custom policy through the compiled cache in the state
/// directory) and instantiates it with what `config` grants; `node_addresses`
/// are the PVE nodes' own addresses.
pub fn instantiate(
    config: &Config,
    source: &Source,
    node_addresses: Vec<std::net::IpAddr>,
) -> Result<Instance> {
    let runtime =
        Runtime::load(source.clone(), Some(&config.state_dir))?.with_limits(config.limits);
    runtime.instantiate(HostState::configured(
        config,
        source.legacy_namespace(),
        source.describe(),
        node_addresses,
    ))
}
