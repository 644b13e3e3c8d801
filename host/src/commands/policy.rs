//! `fail2pvefw policy check FILE.wasm`: is this a policy the runner can use?
//! Compiles it, lists what it imports and exports, says which imports the
//! host grants, and links it against the world as a real run would.

use crate::bindings;
use crate::capabilities::guard::{EntryRules, Guard};
use crate::capabilities::pve::Pve;
use crate::capabilities::wasi::{is_granted, unversioned};
use crate::capabilities::{self, HostState};
use crate::cli::{PolicyArgs, PolicyCommand};
use crate::config::Limits;
use crate::error::{Failure, Result};
use crate::runtime::instance::{Identity, Instance};
use std::fmt::Write as _;
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// The export every policy must have.
const ACTION: &str = "fail2pvefw:policy/action";
/// The optional export that chooses what gets in under a budget.
const ADMISSION: &str = "fail2pvefw:policy/admission";

pub fn run(args: PolicyArgs) -> Result<String> {
    match args.command {
        PolicyCommand::Check { file } => check(&file),
        PolicyCommand::New { name, dir, sdk } => {
            super::policy_new::run(&name, dir.as_deref(), sdk.as_deref())
        }
    }
}

fn check(file: &Path) -> Result<String> {
    let name = format!("policy '{}'", file.display());
    let bytes =
        std::fs::read(file).map_err(|e| Failure::config(format!("cannot read {name}: {e}")))?;
    let mut config = wasmtime::Config::new();
    config.consume_fuel(true);
    let engine = Engine::new(&config)
        .map_err(|e| Failure::config(format!("cannot start the WebAssembly engine: {e:#}")))?;
    let component = Component::new(&engine, &bytes).map_err(|e| {
        let why = format!("{e:#}").split_whitespace().collect::<Vec<_>>().join(" ");
        Failure::config(format!("{name} is not a WebAssembly component: {why}")).hint(
            "Build a policy with `cargo build --target wasm32-wasip2 --release` and wit-bindgen for wit/policy.wit; a core module (wasm32-unknown-unknown) is not enough.",
        )
    })?;
    let ty = component.component_type();
    let mut out = format!("{name}: {} bytes\nimports:\n", bytes.len());
    for (import, _) in ty.imports(&engine) {
        let _ = writeln!(out, "  {import:<40} {}", grant_of(import));
    }
    out.push_str("exports:\n");
    let mut has_action = false;
    let mut has_admission = false;
    for (export, _) in ty.exports(&engine) {
        has_action |= unversioned(export) == ACTION;
        has_admission |= unversioned(export) == ADMISSION;
        let _ = writeln!(out, "  {export}");
    }
    out.push_str(if has_admission {
        "admission: its own (it chooses what gets in under [crowdsec]'s budget)\n"
    } else {
        "admission: not exported (the default policy's rules choose what gets in under [crowdsec]'s budget)\n"
    });
    if let Some(why) = bindings::version_mismatch(&engine, &component) {
        return Err(
            Failure::config(format!("{name} cannot be used: {why}\n\n{out}")).hint(format!(
                "Rebuild it against this fail2pvefw's wit/policy.wit (package {}@{}).",
                bindings::PACKAGE,
                bindings::VERSION
            )),
        );
    }
    if !has_action {
        return Err(Failure::config(format!(
            "{name} does not export '{ACTION}': it is not a fail2pvefw policy\n\n{out}"
        ))
        .hint(
            "Implement the `policy` world of wit/policy.wit (wit_bindgen::generate! and export!).",
        ));
    }
    let linker = link(&engine, &component).map_err(|e| {
        Failure::config(format!(
            "{name} does not fit the policy world: {e:#}\n\n{out}"
        ))
        .hint("Rebuild it against this fail2pvefw's wit/policy.wit.")
    })?;
    let identity = identity(&engine, &component, &linker, &name).map_err(|mut f| {
        f.message = format!("{}\n\n{out}", f.message);
        f
    })?;
    let _ = writeln!(
        out,
        "identity: {} {} (its store is kept under '{}')",
        identity.name,
        if identity.version.is_empty() {
            "(no version)"
        } else {
            &identity.version
        },
        identity.name
    );
    out.push_str("ok: it links against fail2pvefw:policy/policy and can be used with --policy");
    Ok(out)
}

/// Links as a real run does and checks the exports' types.
fn link(engine: &Engine, component: &Component) -> wasmtime::Result<Linker<HostState>> {
    let mut linker: Linker<HostState> = Linker::new(engine);
    capabilities::add_to_linker(&mut linker)?;
    capabilities::wasi::define_ungranted_as_traps(&mut linker, component, engine)?;
    let pre = linker.instantiate_pre(component)?;
    if component
        .get_export_index(None, format!("{ADMISSION}@{}", bindings::VERSION).as_str())
        .is_some()
    {
        bindings::admission::GuestIndices::new(&pre)?;
    }
    bindings::PolicyPre::new(pre)?;
    Ok(linker)
}

/// Instantiates the policy in a sandbox with nothing granted (an empty
/// in-memory PVE, an in-memory store) and asks who it is.
fn identity(
    engine: &Engine,
    component: &Component,
    linker: &Linker<HostState>,
    name: &str,
) -> Result<Identity> {
    let guard = Guard::new([], &[], EntryRules::default(), "policy-check");
    let state = HostState::new(
        Pve::in_memory(pve_model::Cluster::default(), guard),
        capabilities::store::Store::new(None, "policy-check".into()),
        capabilities::guest_log::Log {
            source: name.to_string(),
        },
    );
    let instance = Instance::new(
        engine,
        component,
        linker,
        state,
        name.to_string(),
        Limits::default(),
    )?;
    Ok(instance.identity().clone())
}

fn grant_of(import: &str) -> &'static str {
    let bare = unversioned(import);
    if bindings::other_version(import).is_some() {
        "NOT provided: another version of fail2pvefw:policy than this host's"
    } else if !is_granted(import) {
        "NOT granted: links, but traps if called"
    } else if bare == "fail2pvefw:policy/pve" {
        "granted: the configured IPSets, GET /version, [rules] allow_paths"
    } else if bare.starts_with("fail2pvefw:policy/") {
        "granted"
    } else {
        "granted (WASI subset: captured output, empty environment, random)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_passes_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("default.wasm");
        std::fs::write(&file, crate::runtime::DEFAULT_POLICY).unwrap();
        let out = check(&file).unwrap();
        assert!(out.contains("fail2pvefw:policy/settings@0.2.0"), "{out}");
        assert!(out.contains("fail2pvefw:policy/action@0.2.0"), "{out}");
        assert!(out.contains("admission: its own"), "{out}");
        assert!(
            out.contains(
                "identity: fail2pvefw-default 0.1.0 (its store is kept under 'fail2pvefw-default')"
            ),
            "{out}"
        );
        assert!(out.ends_with("can be used with --policy"), "{out}");
    }

    #[test]
    fn a_core_module_is_refused_with_how_to_build() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("core.wasm");
        std::fs::write(&file, b"\0asm\x01\0\0\0").unwrap();
        let err = check(&file).unwrap_err();
        assert_eq!(err.kind, crate::error::Kind::Config);
        assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
    }

    #[test]
    fn wasi_files_are_listed_as_not_granted() {
        assert!(grant_of("wasi:filesystem/preopens@0.2.6").starts_with("NOT granted"));
        assert!(grant_of("fail2pvefw:policy/pve@0.1.0").starts_with("NOT provided"));
        assert!(grant_of("fail2pvefw:policy/pve@0.2.0").starts_with("granted"));
        assert!(grant_of("wasi:cli/stdout@0.2.6").starts_with("granted"));
    }
}
