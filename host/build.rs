//! Builds the default policy (`guest/`) for wasm32-wasip2 so the runner can
//! embed it with `include_bytes!`: a plain `cargo build` or `cargo test` on a
//! fresh clone works, with no separate step.
//!
//! The nested cargo (`build/guest.rs`, shared with the tests) uses its own
//! target directory (the outer one is locked) and the `guest` profile
//! (small, no unwinding). Set FAIL2PVEFW_POLICY_WASM to a prebuilt component
//! to skip it.

#[path = "build/guest.rs"]
mod guest;

use guest::TARGET;
use std::env;
use std::path::{Path, PathBuf};

const GUEST_PACKAGE: &str = "fail2pvefw-policy";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let dest = out_dir.join("policy.wasm");

    println!("cargo:rerun-if-env-changed=FAIL2PVEFW_POLICY_WASM");
    if let Ok(prebuilt) = env::var("FAIL2PVEFW_POLICY_WASM") {
        println!("cargo:rerun-if-changed={prebuilt}");
        std::fs::copy(&prebuilt, &dest)
            .unwrap_or_else(|e| panic!("cannot copy FAIL2PVEFW_POLICY_WASM '{prebuilt}': {e}"));
        return;
    }
    // The default policy is built on the SDK (`sdk/`).
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        "sdk/src",
        "sdk/Cargo.toml",
        "sdk/wit",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let target_dir = guest_target_dir(&out_dir);
    let built = guest::build(
        &root,
        "guest",
        &["--package", GUEST_PACKAGE],
        &target_dir,
        "fail2pvefw_policy",
    )
    .unwrap_or_else(|stderr| {
        if stderr.contains("may not be installed")
            || stderr.contains("can't find crate for `core`")
            || stderr.contains("can't find crate for `std`")
        {
            panic!(
                "\n\nThe Rust target {TARGET} is not installed; the default policy is built for it.\n\
                 Run:  rustup target add {TARGET}\n\n{stderr}"
            );
        }
        panic!("\n\nbuilding the default policy (guest/) for {TARGET} failed:\n\n{stderr}");
    });
    std::fs::copy(&built, &dest)
        .unwrap_or_else(|e| panic!("cannot copy '{}': {e}", built.display()));
}

/// `<target>/guest-build`, beside the outer build: OUT_DIR is
/// `<target>/<profile>/build/<pkg>-<hash>/out`, and a stable folder keeps the
/// nested build incremental.
fn guest_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(|target| target.join("guest-build"))
        .unwrap_or_else(|| out_dir.join("guest-build"))
}
