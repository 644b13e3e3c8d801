//! Everything the runner embeds or the Debian package ships that is made
//! from sources, so a plain `cargo build`, `cargo test` or `cargo deb` on a
//! fresh clone works with no separate step:
//!
//! 1. The default policy (`guest/`), built for wasm32-wasip2 by a nested
//!    cargo (`build/guest.rs`, shared with the tests; it adds the target
//!    with rustup when it is missing), into `OUT_DIR/policy.wasm`. Set
//!    FAIL2PVEFW_POLICY_WASM to a prebuilt component to skip the build.
//! 2. Its native code, precompiled by wasmtime with the engine settings the
//!    runtime uses (`build/engine.rs`) for this target's baseline CPU, into
//!    `OUT_DIR/policy.cwasm`: the first ban on a fresh state directory
//!    compiles nothing. When precompiling is impossible (a cross build
//!    wasmtime has no backend for), the file is empty and the runtime
//!    compiles the .wasm instead.
//! 3. The man pages (gzip-compressed) and shell completions from the CLI
//!    definition (`src/cli/`, clap and std only), into
//!    `<target dir>/<profile>/assets/`, where the assets of
//!    `[package.metadata.deb]` find them.

#[allow(dead_code, unused_imports)]
#[path = "src/cli/mod.rs"]
mod cli;
#[path = "build/docs.rs"]
mod docs;
#[path = "build/engine.rs"]
mod engine;
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

    let wasm = out_dir.join("policy.wasm");
    build_policy(&root, &out_dir, &wasm);

    let target = env::var("TARGET").unwrap();
    println!("cargo:rustc-env=FAIL2PVEFW_ENGINE_TARGET={target}");
    let bytes = std::fs::read(&wasm).unwrap();
    let native = precompile(&bytes, &target).unwrap_or_else(|e| {
        println!(
            "cargo:warning=the default policy is not precompiled for {target} ({e}); \
             fail2pvefw compiles it when it starts (about 0.2 s each run)"
        );
        Vec::new()
    });
    std::fs::write(out_dir.join("policy.cwasm"), native).unwrap();

    let assets = profile_dir(&out_dir).join("assets");
    docs::write(<cli::Cli as clap::CommandFactory>::command(), &assets)
        .unwrap_or_else(|e| panic!("writing the man pages and completions failed: {e}"));
}

/// The default policy's component into `dest`.
fn build_policy(root: &Path, out_dir: &Path, dest: &Path) {
    println!("cargo:rerun-if-env-changed=FAIL2PVEFW_POLICY_WASM");
    if let Ok(prebuilt) = env::var("FAIL2PVEFW_POLICY_WASM") {
        println!("cargo:rerun-if-changed={prebuilt}");
        std::fs::copy(&prebuilt, dest)
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
    if let Ok(true) = guest::ensure_target() {
        println!("cargo:warning=installed the Rust target {TARGET} (rustup target add {TARGET})");
    }
    let target_dir = profile_dir(out_dir)
        .parent()
        .map(|target| target.join("guest-build"))
        .unwrap_or_else(|| out_dir.join("guest-build"));
    let built = guest::build(
        root,
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
    std::fs::copy(&built, dest)
        .unwrap_or_else(|e| panic!("cannot copy '{}': {e}", built.display()));
}

/// The component's native code for `target`, as the runtime's engine
/// would compile it.
fn precompile(wasm: &[u8], target: &str) -> Result<Vec<u8>, String> {
    let config = engine::config(target).map_err(|e| format!("{e:#}"))?;
    let engine = wasmtime::Engine::new(&config).map_err(|e| format!("{e:#}"))?;
    engine
        .precompile_component(wasm)
        .map_err(|e| format!("{e:#}"))
}

/// `<target dir>/<profile>` (with `--target`, `<target dir>/<triple>/<profile>`),
/// the folder of the binaries: OUT_DIR is `<that>/build/<pkg>-<hash>/out`.
fn profile_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.to_path_buf())
}
