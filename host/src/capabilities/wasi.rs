//! The WASI a policy gets: only what Rust's standard library needs to run
//! and to report a panic (stdio streams, an empty environment, random
//! numbers), linked by [`add_to_linker`].
//!
//! Everything a policy imports but is not granted (WASI files, sockets,
//! clocks, or anything else) is linked to a function that traps when called,
//! so such a policy still loads and fails only if it really uses it.
//!
//! Not `Linker::define_unknown_imports_as_traps`: it matches names exactly,
//! so a policy importing `wasi:cli/stdout@0.2.6` would get a trap instead of
//! the host's `@0.2.12`, which the linker would otherwise find by semver.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, LinkerInstance, ResourceTable, ResourceType};
use wasmtime::{Engine, Result};
use wasmtime_wasi::WasiView;

/// WASI interfaces the host links ([`add_to_linker`]), without versions.
pub const WASI_GRANTED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/exit",
    "wasi:cli/environment",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
];

/// Links the WASI subset above ([`WASI_GRANTED`]), for any store data that
/// is a [`WasiView`].
pub fn add_to_linker<T: WasiView + 'static>(l: &mut Linker<T>) -> Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::p2::bindings::sync::io;
    use wasmtime_wasi::p2::bindings::{cli, random};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};

    struct Io;
    impl wasmtime::component::HasData for Io {
        type Data<'a> = &'a mut ResourceTable;
    }
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<_, Io>(l, table::<T>)?;
    io::poll::add_to_linker::<_, Io>(l, table::<T>)?;
    io::streams::add_to_linker::<_, Io>(l, table::<T>)?;
    cli::exit::add_to_linker::<_, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, T::cli)?;
    random::random::add_to_linker::<_, WasiRandom>(l, T::random)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, T::random)?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, T::random)?;
    Ok(())
}

/// The resource table, which `wasi:io` works on.
fn table<T: WasiView>(s: &mut T) -> &mut ResourceTable {
    s.ctx().table
}

/// Whether the host links this import (`wasi:cli/stdout@0.2.6`).
pub fn is_granted(import: &str) -> bool {
    let bare = unversioned(import);
    bare.starts_with("fail2pvefw:policy/") || WASI_GRANTED.contains(&bare)
}

/// `wasi:cli/stdout@0.2.6` → `wasi:cli/stdout`.
pub fn unversioned(name: &str) -> &str {
    name.split('@').next().unwrap_or(name)
}

/// A resource of an interface the policy may not use; never created.
struct Ungranted;

/// The host's type for a resource of a granted WASI interface, which an
/// ungranted interface may use too (`wasi:clocks` returns `wasi:io` pollables).
fn host_resource(interface: &str, name: &str) -> Option<ResourceType> {
    use wasmtime_wasi_io::{poll, streams};
    Some(match (unversioned(interface), name) {
        ("wasi:io/poll", "pollable") => ResourceType::host::<poll::DynPollable>(),
        ("wasi:io/error", "error") => ResourceType::host::<streams::Error>(),
        ("wasi:io/streams", "input-stream") => ResourceType::host::<streams::DynInputStream>(),
        ("wasi:io/streams", "output-stream") => ResourceType::host::<streams::DynOutputStream>(),
        _ => return None,
    })
}

/// Links every import of `component` that is not granted to a trap.
pub fn define_ungranted_as_traps<T: 'static>(
    linker: &mut Linker<T>,
    component: &Component,
    engine: &Engine,
) -> Result<()> {
    let ty = component.component_type();
    let imports: Vec<_> = ty.imports(engine).collect();
    // The policy's view of the granted resources, and the host's type for each.
    let mut shared = Vec::new();
    for (name, item) in &imports {
        if let ComponentItem::ComponentInstance(instance) = &item.ty {
            for (export, item) in instance.exports(engine) {
                if let (ComponentItem::Resource(seen), Some(host)) =
                    (&item.ty, host_resource(name, export))
                {
                    shared.push((*seen, host));
                }
            }
        }
    }
    for (name, item) in imports {
        if is_granted(name) {
            continue;
        }
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                let mut inner = linker.instance(name)?;
                for (export, item) in instance.exports(engine) {
                    stub(&mut inner, name, export, &item.ty, &shared)?;
                }
            }
            other => stub(&mut linker.root(), "", name, &other, &shared)?,
        }
    }
    Ok(())
}

fn stub<T: 'static>(
    linker: &mut LinkerInstance<'_, T>,
    parent: &str,
    name: &str,
    item: &ComponentItem,
    shared: &[(ResourceType, ResourceType)],
) -> Result<()> {
    match item {
        ComponentItem::ComponentFunc(_) => {
            let full = format!("{parent}#{name}");
            // The words `runtime::instance` recognises to name the import.
            linker.func_new(name, move |_, _, _, _| {
                wasmtime::bail!("unknown import: `{full}` has not been defined")
            })
        }
        ComponentItem::Resource(seen) => {
            let host = shared
                .iter()
                .find(|(s, _)| s == seen)
                .map_or(ResourceType::host::<Ungranted>(), |(_, h)| *h);
            linker.resource(name, host, |_, _| Ok(()))
        }
        // Types need no definition; nested instances and modules do not occur
        // in WASI or wit-bindgen components.
        _ => Ok(()),
    }
}
