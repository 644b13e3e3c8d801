//! Hostile policies: the component in `tests/hostile-policy/`, built here for
//! wasm32-wasip2, misbehaves as the address it is asked to ban says. Each
//! misbehaviour must end the process with a clear message naming the policy
//! file and the call, exit 3, and nothing sent to PVE that was not granted.

mod support;
mod wasm_build;

use std::path::Path;
use std::time::{Duration, Instant};
use support::{Run, Setup};

fn hostile() -> &'static Path {
    wasm_build::hostile_policy()
}

/// `fail2pvefw --policy hostile.wasm -f ban MODE` against the emulator.
fn ban(s: &Setup, mode: &str) -> Run {
    s.run(&["--policy", hostile().to_str().unwrap(), "-f", "ban", mode])
}

fn assert_contained(r: &Run, call: &str, why: &str) {
    assert_eq!(r.code, 3, "{r:?}");
    let first = r
        .stderr
        .lines()
        .find(|l| l.starts_with("fail2pvefw: "))
        .unwrap_or("");
    assert!(first.contains(hostile().to_str().unwrap()), "{r:?}");
    assert!(first.contains(&format!("failed in '{call}'")), "{r:?}");
    assert!(first.contains(why), "{r:?}");
}

#[test]
fn looping_policy_is_stopped_within_its_deadline() {
    let s = Setup::new();
    let started = Instant::now();
    let r = ban(&s, "loop");
    assert_contained(&r, "ban", "ran out of fuel");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(s.cidrs().is_empty());
}

#[test]
fn lower_fuel_from_the_config_stops_a_loop_sooner() {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{text}\n[limits]\nfuel = 2000000\n"));
    let r = ban(&s, "loop");
    assert_contained(&r, "ban", "ran out of fuel (2000000 units");
}

#[test]
fn allocating_policy_hits_the_memory_limit() {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{text}\n[limits]\nmemory_mib = 16\n"));
    let r = ban(&s, "alloc");
    assert_contained(&r, "ban", "more than its 16 MiB of memory");
}

#[test]
fn path_not_granted_is_denied_before_any_request() {
    let s = Setup::new();
    let r = ban(&s, "users");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .contains("GET '/access/users' is outside what the policy is granted"),
        "{r:?}"
    );
    assert!(
        s.emu
            .requests()
            .iter()
            .all(|req| !req.path.contains("/access")),
        "{:?}",
        s.emu.requests()
    );
}

#[test]
fn nonsense_from_validate_is_refused_and_not_echoed() {
    let s = Setup::new();
    let r = ban(&s, "garbage");
    assert_contained(&r, "validate", "which is not an IPSet entry");
    assert!(
        !r.all().contains('\u{1b}'),
        "escape codes reached the terminal"
    );
    assert!(s.emu.requests().is_empty());
}

#[test]
fn panicking_policy_is_reported_with_its_message() {
    let s = Setup::new();
    let r = ban(&s, "panic");
    assert_contained(&r, "ban", "it panicked");
    assert!(r.stderr.contains("panics on purpose"), "{r:?}");
}

#[test]
fn wasi_files_clocks_and_sockets_trap_cleanly() {
    let s = Setup::new();
    for (mode, import) in [
        ("file", "wasi:filesystem/"),
        ("clock", "wasi:clocks/wall-clock"),
        ("socket", "wasi:sockets/"),
    ] {
        let r = ban(&s, mode);
        assert_contained(&r, "ban", "which the host does not grant");
        assert!(r.stderr.contains(import), "{mode}: {r:?}");
    }
}

#[test]
fn environment_is_empty_to_the_policy() {
    let s = Setup::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .args([
            "--policy",
            hostile().to_str().unwrap(),
            "sandbox",
            "ban",
            "env",
        ])
        .env("FAIL2PVEFW_TEST_SECRET", "hunter2")
        .output()
        .unwrap();
    let all = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("environment: []"), "{all}");
    assert!(!all.contains("hunter2"));
    drop(s);
}

#[test]
fn policy_check_lists_ungranted_imports() {
    let r = support::run_binary(&["policy", "check", hostile().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("wasi:filesystem/preopens"), "{r:?}");
    assert!(r.stdout.contains("NOT granted"), "{r:?}");
}

#[test]
fn an_ipset_delete_goes_through_only_when_allow_paths_names_it() {
    let s = Setup::new();
    let r = ban(&s, "delete-ipset-force");
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("deleting an IPSet itself"), "{r:?}");
    assert!(s.emu.requests().is_empty(), "{:?}", s.emu.requests());
    // A prefix of the path is not enough.
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}\n[rules]\nallow_paths = [\"/cluster/firewall\"]\n"
    ));
    assert_eq!(ban(&s, "delete-ipset-force").code, 3);
    assert!(s.emu.requests().is_empty(), "{:?}", s.emu.requests());
    // The admin names the exact path: the policy may delete the IPSet.
    s.write_config(&format!(
        "{text}\n[rules]\nallow_paths = [\"/cluster/firewall/ipset/fail2ban\"]\n"
    ));
    let r = ban(&s, "delete-ipset-force");
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!s.emu.ipsets().contains(&"fail2ban".to_string()));
}

#[test]
fn entry_rules_hold_for_a_path_allow_paths_grants() {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}\n[rules]\nallow_paths = [\"/cluster/firewall/ipset\"]\n"
    ));
    for mode in ["low-half", "nomatch", "delete-ipset"] {
        let r = ban(&s, mode);
        assert_eq!(r.code, 3, "{mode}: {r:?}");
        assert!(r.stderr.contains("denied by the host"), "{mode}: {r:?}");
    }
    assert!(s.emu.requests().is_empty(), "{:?}", s.emu.requests());
}
