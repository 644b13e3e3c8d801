//! The policy world of `wit/policy.wit`, as wasmtime's `bindgen!` makes it:
//! the `Policy` to instantiate, one `Host` trait per imported interface
//! (implemented in `capabilities`), and the types both sides share; and the
//! check that a component was built for this version of the world.

wasmtime::component::bindgen!({ path: "../wit", world: "policy" });

pub use self::exports::fail2pvefw::policy::action::{BanRequest, Entry};
pub use self::fail2pvefw::policy::types::{Error as PolicyError, Refusal, RefusalCause};
pub use admitting::exports::fail2pvefw::policy::admission;

/// The world `admitting-policy`: `policy` and the optional `admission`
/// export, which the host loads from a policy that has it. Generated on its
/// own, with the imports and types of `policy` above.
pub mod admitting {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "admitting-policy",
        with: {
            "fail2pvefw:policy/types": crate::bindings::fail2pvefw::policy::types,
            "fail2pvefw:policy/pve": crate::bindings::fail2pvefw::policy::pve,
            "fail2pvefw:policy/store": crate::bindings::fail2pvefw::policy::store,
            "fail2pvefw:policy/clock": crate::bindings::fail2pvefw::policy::clock,
            "fail2pvefw:policy/log": crate::bindings::fail2pvefw::policy::log,
            "fail2pvefw:policy/settings": crate::bindings::fail2pvefw::policy::settings,
        },
    });
}

use wasmtime::Engine;
use wasmtime::component::Component;

/// The WIT package of `wit/policy.wit`, and the version this host runs.
pub const PACKAGE: &str = "fail2pvefw:policy";
pub const VERSION: &str = "0.2.0";

/// When `component` uses the policy package at a version this host does
/// not run (`0.1.0`), words for it: `it is built for
/// fail2pvefw:policy@0.1.0; this fail2pvefw runs
/// fail2pvefw:policy/action@0.2.0`. Versions `0.2.x` are this one (WIT
/// semver: a later 0.2 only adds).
pub fn version_mismatch(engine: &Engine, component: &Component) -> Option<String> {
    let ty = component.component_type();
    let names: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_string())
        .chain(ty.exports(engine).map(|(name, _)| name.to_string()))
        .collect();
    let other = names.iter().find_map(|name| other_version(name))?;
    Some(format!(
        "it is built for {PACKAGE}@{other}; this fail2pvefw runs {PACKAGE}/action@{VERSION}"
    ))
}

/// The version of an import or export name of the policy package when it
/// is not this host's (`fail2pvefw:policy/pve@0.1.0` → `0.1.0`).
pub fn other_version(name: &str) -> Option<&str> {
    let (interface, version) = name.split_once('@')?;
    let wanted = VERSION.rsplit_once('.').map_or(VERSION, |(minor, _)| minor);
    let ours = interface.starts_with(&format!("{PACKAGE}/"));
    let same = version == wanted || version.starts_with(&format!("{wanted}."));
    (ours && !same).then_some(version)
}

#[cfg(test)]
mod tests {
    /// The SDK vendors the WIT it targets; this file is the canonical copy
    /// the host builds against.
    #[test]
    fn the_sdks_wit_is_the_hosts() {
        let host = include_str!("../../wit/policy.wit");
        let sdk = include_str!("../../sdk/wit/policy.wit");
        assert!(
            host == sdk,
            "sdk/wit/policy.wit differs from wit/policy.wit, the canonical copy; \
             after changing the WIT run: cp wit/policy.wit sdk/wit/policy.wit"
        );
    }
}
