//! What the host grants a policy: one module per WIT import, each owning its
//! state and implementing its generated `Host` trait (`pve`, with its
//! `guard`; `store`, `clock`, `guest_log`, `settings`), and [`HostState`],
//! the data of one policy's store, which holds them all.
//!
//! From WASI the policy gets only what Rust's standard library needs to run
//! and to report a panic: stdio streams (stdout and stderr are captured into
//! the log, stdin is empty), an empty environment, random numbers. No files,
//! no sockets, no clocks (time comes from our `clock`); importing those links,
//! but calling them traps (`wasi`).

pub mod clock;
pub mod guard;
pub mod guest_log;
pub mod pacer;
pub mod pve;
pub mod settings;
pub mod store;
pub mod wasi;

use crate::bindings::fail2pvefw::policy as wit;
use crate::config::Config;
use std::net::IpAddr;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Result, StoreLimits};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Bytes of a policy's stdout and stderr that are kept for the log.
const CAPTURED_OUTPUT: usize = 64 * 1024;

/// The data of one policy instance's `Store`.
pub struct HostState {
    pub pve: pve::Pve,
    pub store: store::Store,
    pub clock: clock::Clock,
    pub log: guest_log::Log,
    pub settings: settings::Settings,
    /// The memory and table caps, set by the runtime when it instantiates.
    pub limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
    output: MemoryOutputPipe,
}

impl HostState {
    pub fn new(pve: pve::Pve, store: store::Store, log: guest_log::Log) -> HostState {
        let output = MemoryOutputPipe::new(CAPTURED_OUTPUT);
        let wasi = WasiCtx::builder()
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        HostState {
            pve,
            store,
            clock: clock::Clock,
            log,
            settings: settings::Settings::default(),
            limits: StoreLimits::default(),
            wasi,
            table: ResourceTable::new(),
            output,
        }
    }

    /// The capabilities of a configured run, for the policy named `name`
    /// whose store data was kept under `namespace` (its file name; the
    /// runtime keys it by the policy's identity once it has asked): `pve` for the configured
    /// node and IPSet (and `[rules] allow_paths`), behind the guard with
    /// `[rules]` and the PVE nodes' own `node_addresses`; the store in the
    /// state directory; and `settings` from `[rules]`, `[policy_settings]`
    /// and `node_addresses`. The `-i IPSET` of a command is granted when
    /// the host hands the policy a request naming it.
    pub fn configured(
        config: &Config,
        namespace: String,
        name: String,
        node_addresses: Vec<IpAddr>,
    ) -> HostState {
        let guard = guard::Guard::new(
            [(config.ipset.clone(), guard::Purpose::Ban)],
            &config.rules.allow_paths,
            guard::EntryRules::new(&config.rules, &node_addresses),
            &config.instance,
        );
        HostState::new(
            pve::Pve::new(config.pve.clone(), config.state_dir.clone(), guard),
            store::Store::new(Some(config.state_dir.clone()), namespace),
            guest_log::Log { source: name },
        )
        .with_settings(settings::Settings::new(&config.rules, &node_addresses))
    }

    /// With the administrator's settings (none by default).
    pub fn with_settings(mut self, settings: settings::Settings) -> HostState {
        self.settings = settings;
        self
    }

    /// What the policy printed (a panic message, say), for the log.
    pub fn take_output(&self) -> String {
        String::from_utf8_lossy(&self.output.contents()).into_owned()
    }
}

/// The PVE nodes' addresses that need no lookup: every configured node
/// (`[pve] host` and `hosts`) given as an IP literal. (The state remembers
/// the resolved addresses of names; until it does, these are what the
/// guard protects.)
pub fn literal_node_addresses(config: &Config) -> Vec<IpAddr> {
    std::iter::once(&config.pve.host)
        .chain(&config.pve.fallbacks)
        .flat_map(settings::pve_host_addresses)
        .collect()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::types::Host for HostState {}

/// Links our five capabilities and the small WASI subset above.
pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    wit::types::add_to_linker::<_, HasSelf<HostState>>(linker, |s| s)?;
    wit::pve::add_to_linker::<_, HasSelf<pve::Pve>>(linker, |s| &mut s.pve)?;
    wit::store::add_to_linker::<_, HasSelf<store::Store>>(linker, |s| &mut s.store)?;
    wit::clock::add_to_linker::<_, HasSelf<clock::Clock>>(linker, |s| &mut s.clock)?;
    wit::log::add_to_linker::<_, HasSelf<guest_log::Log>>(linker, |s| &mut s.log)?;
    wit::settings::add_to_linker::<_, HasSelf<settings::Settings>>(linker, |s| &mut s.settings)?;
    wasi::add_to_linker(linker)
}
