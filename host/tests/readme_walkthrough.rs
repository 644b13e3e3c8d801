//! The README's "Writing a policy" walkthrough, run as it is written: the
//! block between the walkthrough marker and the end of its code fence runs
//! in `sh`, in a folder under `target/policy-new/`, with `fail2pvefw` and
//! `pve-emulator` on the PATH. Issue 15, deliverables 3 and 7.
//!
//! The new crate's builds go to `target/policy-new/target` (its `target`
//! is a link there), so they stay incremental; the first run takes a few
//! minutes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

const MARKER: &str = "<!-- walkthrough: run by host/tests/readme_walkthrough.rs -->";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The commands of the walkthrough, as the README has them.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let after = readme
        .split_once(MARKER)
        .expect("the README has the walkthrough")
        .1;
    let block = after
        .trim_start()
        .strip_prefix("```sh\n")
        .expect("a ```sh block follows the marker");
    block
        .split_once("\n```")
        .expect("the block ends")
        .0
        .to_string()
}

/// `program` in `dir`, without what the outer build set for itself: flags
/// meant for the host build must not leak into the nested ones.
fn nested(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir);
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
    cmd
}

#[test]
fn the_readmes_policy_walkthrough_runs_from_policy_new_to_the_emulator() {
    let base = root().join("target/policy-new");
    let shared = base.join("target");
    let work = base.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&shared).unwrap();

    // pve-emulator, built from the workspace into the same target folder
    // (the outer cargo holds the lock on target/).
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = nested(&cargo, &root())
        .args([
            "build",
            "--offline",
            "-q",
            "-p",
            "pve-emulator",
            "--bin",
            "pve-emulator",
        ])
        .arg("--target-dir")
        .arg(&shared)
        .status()
        .unwrap();
    assert!(built.success(), "building pve-emulator failed");

    let script = walkthrough();
    assert!(
        script.contains("fail2pvefw policy new subnet24"),
        "{script}"
    );
    // The one line added: the crate's builds go to the shared folder.
    let script = script.replacen(
        "cd subnet24\n",
        "cd subnet24\nln -s \"$POLICY_NEW_TARGET\" target\n",
        1,
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}:{}",
        bin.display(),
        shared.join("debug").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = std::time::Instant::now();
    let out = nested("sh", &work)
        .arg("-c")
        .arg(format!(
            "set -eu\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}\n"
        ))
        .env("PATH", path)
        .env("POLICY_NEW_TARGET", &shared)
        // Resolve from the local registry cache: the workspace's own
        // dependencies are the new crate's.
        .env("CARGO_NET_OFFLINE", "true")
        .env("TZ", "UTC")
        .env_remove("FAIL2PVEFW_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "walkthrough: {:.1} s\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "the walkthrough failed: {:?}",
        out.status
    );
    for expected in [
        "wrote the policy crate 'subnet24'",
        "test result: ok. 3 passed",
        "identity: subnet24 0.1.0",
        "ok: it links against fail2pvefw:policy/policy and can be used with --policy",
        "  = added 203.0.113.1 to IPSet 'fail2ban'",
        "  = 203.0.113.1 is not in IPSet 'fail2ban' any more",
        "ban of 203.0.113.1 in IPSet 'fail2ban' done",
        "IPSet 'fail2ban':  1 entries: 1 ours, 0 of other instances, 0 not from fail2pvefw",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} not in the walkthrough's output"
        );
    }
    assert!(
        work.join("subnet24/target/wasm32-wasip2/release/subnet24.wasm")
            .exists()
    );
}
