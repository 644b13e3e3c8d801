//! Builds a policy crate for wasm32-wasip2 in a nested cargo. One place for
//! it: `host/build.rs` builds the default policy with it, and the tests
//! (`tests/wasm_build`) the hostile and the example policies.
//!
//! The nested cargo uses its own target directory (the outer cargo holds
//! the lock on `target/`), and the outer build's flags are removed: flags
//! meant for the host build (coverage, sanitizers, clippy's driver) must
//! not leak into the wasm build.
//!
//! The target's standard library is installed on the way when it is missing
//! and rustup is there (`rustup target add wasm32-wasip2`): a
//! `rust-toolchain.toml` only makes rustup add targets when it installs the
//! toolchain itself, which a machine that already has Rust (or sets
//! `RUSTUP_AUTO_INSTALL=0`) never does.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    ensure_target()?;
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

/// Installs the standard library for [`TARGET`] with rustup when it is
/// missing; `Err` says what to do when that is not possible. Returns
/// whether it installed it.
pub fn ensure_target() -> Result<bool, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run '{rustc}' to find its sysroot: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    let std_dir = sysroot.join("lib/rustlib").join(TARGET).join("lib");
    if std_dir.is_dir() {
        return Ok(false);
    }
    // rustup acts on the toolchain cargo runs with: its proxy sets
    // RUSTUP_TOOLCHAIN for everything cargo starts.
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdin(Stdio::null())
        .output();
    match added {
        Ok(out) if out.status.success() && std_dir.is_dir() => Ok(true),
        Ok(out) if out.status.success() => Err(format!(
            "the Rust target {TARGET} is not installed for the Rust at '{}', and \
             `rustup target add {TARGET}` added it to another toolchain:\n{}\n\
             Install the standard library for {TARGET} for this Rust, then build again.",
            sysroot.display(),
            String::from_utf8_lossy(&out.stderr),
        )),
        Ok(out) => Err(format!(
            "the Rust target {TARGET} is not installed (no '{}'), and `rustup target add {TARGET}` failed:\n{}{}\n\
             Run it yourself, with network access, then build again:\n  rustup target add {TARGET}",
            std_dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        )),
        Err(e) => Err(format!(
            "the Rust target {TARGET} is not installed (no '{}'), and rustup, which would add it, \
             cannot be run: {e}\n\n\
             Install the standard library for {TARGET} for the Rust at '{}' (with rustup: \
             `rustup target add {TARGET}`), then build again.",
            std_dir.display(),
            sysroot.display(),
        )),
    }
}
