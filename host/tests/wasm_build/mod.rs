//! Builds a policy crate for wasm32-wasip2 with `build/guest.rs`, the nested
//! cargo `build.rs` builds the default policy with, into a target folder of
//! the tests' own.

#![allow(dead_code)]

#[path = "../../build/guest.rs"]
mod guest;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One nested build at a time: two tests building the same crate would
/// only wait on each other's lock.
static BUILDING: Mutex<()> = Mutex::new(());

/// `cargo build --release --target wasm32-wasip2 --offline` of the crate in
/// `dir`; returns the component `<lib_name>.wasm`.
pub fn build(dir: &Path, lib_name: &str, extra: &[&str]) -> PathBuf {
    build_into("test-policies", dir, lib_name, extra)
}

/// [`build`] into `target/<folder>`: a build with other features of a
/// crate another test builds keeps its own `.wasm`.
pub fn build_into(folder: &str, dir: &Path, lib_name: &str, extra: &[&str]) -> PathBuf {
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target_dir = root.join("target").join(folder);
    let args: Vec<&str> = std::iter::once("--offline")
        .chain(extra.iter().copied())
        .collect();
    let wasm = guest::build(dir, "release", &args, &target_dir, lib_name)
        .unwrap_or_else(|stderr| panic!("building {} failed:\n{stderr}", dir.display()));
    assert!(wasm.exists(), "no {}", wasm.display());
    wasm
}

/// The hostile policy of `tests/hostile-policy/`, built once per test binary.
pub fn hostile_policy() -> &'static Path {
    static WASM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    WASM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile-policy");
        build(&dir, "hostile_policy", &[])
    })
}

/// The hostile policy with the feature `without-admission`: the world
/// `policy` only, plain addresses banned plainly.
pub fn policy_without_admission() -> &'static Path {
    static WASM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    WASM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile-policy");
        build_into(
            "test-policies-plain",
            &dir,
            "hostile_policy",
            &["--features", "without-admission"],
        )
    })
}

/// A policy built against `fail2pvefw:policy@0.1.0` (`tests/policy-0.1.0/`).
pub fn policy_0_1_0() -> &'static Path {
    static WASM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    WASM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/policy-0.1.0");
        build(&dir, "policy_0_1_0", &[])
    })
}

/// `examples/subnet-escalation`, on the SDK.
pub fn example_policy() -> &'static Path {
    static WASM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    WASM.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/subnet-escalation");
        build(&dir, "subnet_escalation", &[])
    })
}
