//! The durable queue: nothing fail2ban hands us is lost, nothing is sent
//! twice, restarts cost no PVE writes, `sync` reconciles and `status` tells
//! the truth. The real binary against the emulator over HTTPS.

mod support;

use pve_emulator::Fault;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{Run, Setup, options};

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn writes(s: &Setup, method: &str) -> usize {
    s.emu
        .requests()
        .iter()
        .filter(|r| r.method == method && r.status == 200)
        .count()
}

fn status_json(s: &Setup) -> serde_json::Value {
    let r = s.run(&["status", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn ok(r: Run) {
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn background_ban_returns_at_once_and_lands() {
    let s = Setup::new();
    let r = s.run(&["ban", "192.0.2.10", "--jail", "sshd"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    wait_until("the ban to land", Duration::from_secs(20), || {
        s.cidrs() == ["192.0.2.10"]
    });
    ok(s.run(&["unban", "192.0.2.10"]));
    wait_until("the unban to land", Duration::from_secs(20), || {
        s.cidrs().is_empty()
    });
}

#[test]
fn pve_down_during_200_bans_loses_nothing() {
    let s = Setup::new();
    s.emu.pause();
    for i in 0..200 {
        let ip = format!("198.51.100.{}", i % 250 + 1);
        ok(s.run(&["ban", &ip, "--jail", "sshd", "--bantime", "600"]));
    }
    let status = status_json(&s);
    assert_eq!(status["queue"]["pending"], 200, "{status}");
    assert!(status["ipset"]["error"].is_string(), "{status}");
    s.emu.resume();
    ok(s.run(&["sync"]));
    assert_eq!(s.cidrs().len(), 200);
    assert_eq!(writes(&s, "POST"), 200);
    let status = status_json(&s);
    assert_eq!(status["queue"]["pending"], 0, "{status}");
    assert_eq!(status["ipset"]["ours"], 200, "{status}");
}

#[test]
fn foreground_ban_with_pve_down_fails_but_stays_queued() {
    let s = Setup::new();
    s.emu.pause();
    let r = s.run(&["-f", "ban", "192.0.2.20"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cannot connect"), "{r:?}");
    assert_eq!(status_json(&s)["queue"]["pending"], 1);
    s.emu.resume();
    ok(s.run(&["sync"]));
    assert_eq!(s.cidrs(), ["192.0.2.20"]);
}

#[test]
fn ban_then_unban_before_sending_sends_nothing() {
    let s = Setup::new();
    ok(s.run(&["--queue-only", "ban", "192.0.2.30"]));
    ok(s.run(&["--queue-only", "ban", "192.0.2.30"]));
    ok(s.run(&["--queue-only", "unban", "192.0.2.30"]));
    ok(s.run(&["--queue-only", "ban", "192.0.2.31"]));
    ok(s.run(&["--queue-only", "ban", "192.0.2.31"]));
    ok(s.run(&["sync"]));
    assert_eq!(writes(&s, "DELETE"), 0);
    assert_eq!(writes(&s, "POST"), 1, "{:?}", s.emu.requests());
    assert_eq!(s.cidrs(), ["192.0.2.31"]);
}

#[test]
fn killed_drainer_loses_and_doubles_nothing() {
    let s = Setup::new();
    let ips: Vec<String> = (1..=30).map(|i| format!("203.0.113.{i}")).collect();
    for ip in &ips {
        ok(s.run(&["--queue-only", "ban", ip]));
    }
    // Slow writes, so the drainer is mid-queue when it dies.
    s.emu
        .fail_next_writes(30, Fault::Stall(Duration::from_millis(100)));
    let mut drainer = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .args(["--config", s.config.to_str().unwrap(), "sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("some bans to land", Duration::from_secs(20), || {
        s.cidrs().len() >= 5
    });
    drainer.kill().unwrap(); // SIGKILL
    drainer.wait().unwrap();
    let landed = s.cidrs().len();
    assert!(landed < 30, "the drainer finished before it was killed");
    ok(s.run(&["sync"]));
    let mut cidrs = s.cidrs();
    cidrs.sort();
    let mut want = ips.clone();
    want.sort();
    assert_eq!(cidrs, want);
    assert_eq!(writes(&s, "POST"), 30, "a ban was written twice");
}

#[test]
fn concurrent_bans_land_exactly_once() {
    let s = Setup::new();
    let children: Vec<_> = (1..=64)
        .map(|i| {
            Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
                .args([
                    "--config",
                    s.config.to_str().unwrap(),
                    "ban",
                    &format!("198.51.100.{i}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    wait_until("64 bans to land", Duration::from_secs(60), || {
        s.cidrs().len() == 64
    });
    ok(s.run(&["sync"]));
    assert_eq!(s.cidrs().len(), 64);
    assert_eq!(writes(&s, "POST"), 64);
}

#[test]
fn fail2ban_restart_costs_no_pve_writes() {
    let s = Setup::new();
    let ips: Vec<String> = (1..=20).map(|i| format!("192.0.2.{i}")).collect();
    for ip in &ips {
        ok(s.run(&[
            "--queue-only",
            "ban",
            ip,
            "--jail",
            "sshd",
            "--bantime",
            "3600",
        ]));
    }
    ok(s.run(&["sync"]));
    let before = s.emu.write_count();
    // Stop: actionflush keeps the bans in PVE.
    ok(s.run(&["flush", "--jail", "sshd"]));
    // Start: with norestored = 0 fail2ban would re-ban every stored ticket.
    for ip in &ips {
        ok(s.run(&[
            "-f",
            "ban",
            ip,
            "--jail",
            "sshd",
            "--bantime",
            "3600",
            "--restored",
            "1",
        ]));
    }
    ok(s.run(&["sync"]));
    assert_eq!(s.emu.write_count(), before, "{:?}", s.emu.requests());
    assert_eq!(s.cidrs().len(), 20);
}

#[test]
fn flush_remove_takes_only_this_jails_entries() {
    let s = Setup::new();
    ok(s.run(&["-f", "ban", "192.0.2.40", "--jail", "sshd"]));
    ok(s.run(&["-f", "ban", "192.0.2.41", "--jail", "nginx"]));
    ok(s.run(&["-f", "flush", "--jail", "sshd", "--remove"]));
    assert_eq!(s.cidrs(), ["192.0.2.41"]);
}

#[test]
fn sync_removes_expired_own_entries() {
    let s = Setup::new();
    let long_ago = (support_now() - 1000).to_string();
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.77",
        "-t",
        &long_ago,
        "--bantime",
        "100",
        "--jail",
        "sshd",
    ]));
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.78",
        "--bantime",
        "3600",
        "--jail",
        "sshd",
    ]));
    let comment = s.emu.entries("fail2ban").unwrap()[0]
        .comment
        .clone()
        .unwrap();
    assert!(comment.contains(" f2p:"), "{comment}");
    let r = s.run(&["sync"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs(), ["192.0.2.78"]);
}

#[test]
fn sync_re_adds_what_pve_lost() {
    let s = Setup::new();
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.90",
        "--bantime",
        "3600",
        "--jail",
        "sshd",
    ]));
    s.emu.set_cluster_fw("[IPSET fail2ban]\n\n");
    assert!(s.cidrs().is_empty());
    ok(s.run(&["sync"]));
    assert_eq!(s.cidrs(), ["192.0.2.90"]);
}

#[test]
fn manual_and_foreign_entries_survive_every_command() {
    let mut opts = options();
    opts.ipsets = vec![(
        "fail2ban".into(),
        vec![
            ("192.0.2.200".into(), Some("added by hand".into())),
            (
                "192.0.2.201".into(),
                Some("[2020/01/01 00:00:00] sshd f2p:otherhost/sshd/1".into()),
            ),
        ],
    )];
    let s = Setup::with(opts);
    let long_ago = (support_now() - 1000).to_string();
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.202",
        "-t",
        &long_ago,
        "--bantime",
        "10",
        "--jail",
        "sshd",
    ]));
    ok(s.run(&["sync"]));
    ok(s.run(&["-f", "ban", "192.0.2.203", "--jail", "sshd"]));
    ok(s.run(&["-f", "unban", "192.0.2.203"]));
    ok(s.run(&["-f", "flush", "--remove"]));
    ok(s.run(&["sync"]));
    ok(s.run(&["status"]));
    let mut cidrs = s.cidrs();
    cidrs.sort();
    assert_eq!(cidrs, ["192.0.2.200", "192.0.2.201"]);
    let status = status_json(&s);
    assert_eq!(status["ipset"]["not_ours"], 1, "{status}");
    assert_eq!(status["ipset"]["other_instances"], 1, "{status}");
}

#[test]
fn bad_input_is_refused_before_the_queue() {
    let s = Setup::new();
    let r = s.run(&["ban", "010.0.0.1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(status_json(&s)["queue"]["pending"], 0);
}

#[test]
fn status_reports_cluster_fw_budget() {
    let s = Setup::new();
    ok(s.run(&["-f", "ban", "192.0.2.1", "-c", "x"]));
    let status = status_json(&s);
    let bytes = status["ipset"]["estimated_bytes"].as_u64().unwrap();
    assert!(bytes > 20 && bytes < 200, "{status}");
    assert_eq!(status["ipset"]["cluster_fw_limit"], 1_048_576);
    let human = s.run(&["status"]);
    assert!(human.stdout.contains("1 entries: 1 ours"), "{human:?}");
}

fn support_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn drainer_log_is_rotated_before_it_grows_large() {
    let s = Setup::new();
    let state = s.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("drain.log"), vec![b'x'; 1024 * 1024 + 1]).unwrap();
    ok(s.run(&["ban", "192.0.2.60"]));
    let old = std::fs::metadata(state.join("drain.log.1")).unwrap();
    assert_eq!(old.len(), 1024 * 1024 + 1);
    assert!(std::fs::metadata(state.join("drain.log")).unwrap().len() < 1024 * 1024);
    wait_until("the ban to land", Duration::from_secs(20), || {
        s.cidrs() == ["192.0.2.60"]
    });
}
