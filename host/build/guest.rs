//! Builds a policy crate for wasm32-wasip2 in a nested cargo. One place for
//! it: `host/build.rs` builds the default policy with it, and the tests
//! (`tests/wasm_build`) the hostile and the example policies.
//!
//! The nested cargo uses its own target directory (the outer cargo holds
//! the lock on `target/`), and the outer build's flags are removed: flags
//! meant for the host build (coverage, sanitizers, clippy's driver) must
//! not leak into the wasm build.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every policy is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// `cargo build --target wasm32-wasip2 --profile PROFILE EXTRA…` in `dir`,
/// into `target_dir`; returns where the component `<lib_name>.wasm` is, or
/// cargo's stderr when the build failed.
pub fn build(
    dir: &Path,
    profile: &str,
    extra: &[&str],
    target_dir: &Path,
    lib_name: &str,
) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args(["build", "--target", TARGET, "--profile", profile])
        .args(extra)
        .arg("--target-dir")
        .arg(target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run cargo to build '{}': {e}", dir.display()))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(target_dir
        .join(TARGET)
        .join(profile)
        .join(format!("{lib_name}.wasm")))
}
