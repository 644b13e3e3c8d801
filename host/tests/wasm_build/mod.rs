//! Builds a policy crate for wasm32-wasip2 in a nested cargo, as `build.rs`
//! builds the default policy: its own target directory (the outer cargo
//! holds the lock on `target/`), the outer build's flags removed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One nested build at a time: two tests building the same crate would
/// only wait on each other's lock.
static BUILDING: Mutex<()> = Mutex::new(());

/// `cargo build --release --target wasm32-wasip2` of the crate in `dir`;
/// returns the component `<lib_name>.wasm`.
pub fn build(dir: &Path, lib_name: &str, extra: &[&str]) -> PathBuf {
    let _one = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let target_dir = root.join("target").join("test-policies");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--offline",
        ])
        .args(extra)
        .arg("--target-dir")
        .arg(&target_dir);
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
    let out = cmd.output().expect("run cargo");
    assert!(
        out.status.success(),
        "building {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = target_dir
        .join("wasm32-wasip2")
        .join("release")
        .join(format!("{lib_name}.wasm"));
    assert!(wasm.exists(), "no {}", wasm.display());
    wasm
}
