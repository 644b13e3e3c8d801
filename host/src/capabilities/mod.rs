//! What the host grants a policy: one module per WIT import, each owning its
//! state and implementing its generated `Host` trait.
//!
//! From WASI the policy gets only what Rust's standard library needs to run
//! and to report a panic: stdio streams (stdout and stderr are captured into
//! the log, stdin is empty), an empty environment, random numbers. No files,
//! no sockets, no clocks (time comes from our `clock`); importing those links,
//! but calling them traps.

pub mod clock;
pub mod log;
pub mod pve;
pub mod pve_memory;
pub mod settings;
pub mod store;
pub mod traps;

use crate::bindings::fail2pvefw::policy as wit;
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
    pub log: log::Log,
    pub settings: settings::Settings,
    pub limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
    output: MemoryOutputPipe,
}

impl HostState {
    pub fn new(
        pve: pve::Pve,
        store: store::Store,
        log: log::Log,
        limits: StoreLimits,
    ) -> HostState {
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
            limits,
            wasi,
            table: ResourceTable::new(),
            output,
        }
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
    wit::log::add_to_linker::<_, HasSelf<log::Log>>(linker, |s| &mut s.log)?;
    wit::settings::add_to_linker::<_, HasSelf<settings::Settings>>(linker, |s| &mut s.settings)?;
    add_wasi_subset(linker)
}

fn add_wasi_subset(l: &mut Linker<HostState>) -> Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::p2::bindings::sync::io;
    use wasmtime_wasi::p2::bindings::{cli, random};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

    struct Io;
    impl wasmtime::component::HasData for Io {
        type Data<'a> = &'a mut ResourceTable;
    }
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<_, Io>(l, |s| &mut s.table)?;
    io::poll::add_to_linker::<_, Io>(l, |s| &mut s.table)?;
    io::streams::add_to_linker::<_, Io>(l, |s| &mut s.table)?;
    cli::exit::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    random::random::add_to_linker::<_, WasiRandom>(l, HostState::random)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, HostState::random)?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, HostState::random)?;
    Ok(())
}
