//! Issue 10, the state and the queue: one test per finding, each the repro
//! of the issue, run by the real binary against the emulator. Each failed
//! on the code before the fix (the comment above it says why).

mod support;
mod wasm_build;

use pve_emulator::Fault;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{Run, Setup, options, run_config, wait_until};

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "{r:?}");
    r
}

fn status_json(s: &Setup) -> serde_json::Value {
    let r = ok(s.run(&["status", "--json"]));
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

/// POSTs PVE received (whatever it answered) that would add `cidr`.
fn posts_of(s: &Setup, cidr: &str) -> usize {
    s.emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.params.iter().any(|(k, v)| k == "cidr" && v == cidr))
        .count()
}

// See: issue 10, finding 2
// Before: the ban's back-off was its own; the unban queued after it was sent
// at once (DELETE), then the ban when its back-off ended (POST, 200).
#[test]
fn r10_2_a_backed_off_ban_then_unban_leaves_the_address_out_with_no_post() {
    let s = Setup::new();
    s.emu.pause();
    ok(s.run(&["--queue-only", "ban", "192.0.2.50", "--bantime", "86400"]));
    for _ in 0..3 {
        assert_eq!(s.run(&["sync"]).code, 1);
    }
    ok(s.run(&["--queue-only", "unban", "192.0.2.50"]));
    s.emu.resume();
    // Any background drain: the one this ban starts.
    ok(s.run(&["ban", "192.0.2.51"]));
    wait_until("the queue to drain", Duration::from_secs(40), || {
        status_json(&s)["queue"]["pending"] == 0
    });
    assert_eq!(posts_of(&s, "192.0.2.50"), 0, "{:?}", s.emu.requests());
    assert_eq!(s.cidrs(), ["192.0.2.51"]);
}

// See: issue 10, finding 2
// Before: a drainer killed while its POST was in flight left the ban
// unrecorded; the later unban then "cancelled" it (ban + unban, not
// applied: nothing sent) and the address stayed in PVE.
#[test]
fn r10_2_a_drainer_killed_mid_ban_then_unban_leaves_the_address_out() {
    let s = Setup::new();
    ok(s.run(&["--queue-only", "ban", "192.0.2.52", "--jail", "sshd"]));
    s.emu
        .fail_next_writes(1, Fault::Stall(Duration::from_secs(3)));
    let mut drainer = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .args(["--config", s.config.to_str().unwrap(), "drain"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    drainer.kill().unwrap(); // SIGKILL, mid-request
    drainer.wait().unwrap();
    // PVE finishes the write it had taken.
    wait_until("the stalled POST to land", Duration::from_secs(10), || {
        s.cidrs() == ["192.0.2.52"]
    });
    ok(s.run(&["--queue-only", "unban", "192.0.2.52", "--jail", "sshd"]));
    ok(s.run(&["sync"]));
    assert!(s.cidrs().is_empty(), "{:?}", s.cidrs());
}

// See: issue 10, finding 7
// Before: the state directory had no idea which cluster it served; config B
// queued into it and B's drainer sent config A's events to cluster B.
#[test]
fn r10_7_two_clusters_one_state_directory_never_share_events() {
    let s = Setup::new();
    let (b, b_config) = s.other_cluster("b");
    ok(s.run(&["--queue-only", "ban", "192.0.2.60", "--jail", "sshd"]));

    for args in [
        &["ban", "192.0.2.61"][..],
        &["-f", "ban", "192.0.2.61"],
        &["unban", "192.0.2.60"],
        &["sync"],
        &["status"],
        &["flush", "--remove"],
        &["drain"],
    ] {
        let r = run_config(&b_config, args);
        assert_eq!(r.code, 3, "{args:?}: {r:?}");
        assert!(r.stderr.contains("serves another PVE cluster"), "{r:?}");
        assert!(r.stderr.contains(&s.emu.host_port()), "{r:?}");
        assert!(r.stderr.contains(&b.host_port()), "{r:?}");
        assert!(r.stderr.contains("[state] dir"), "{r:?}");
    }
    assert!(b.requests().is_empty(), "{:?}", b.requests());
    assert_eq!(status_json(&s)["queue"]["pending"], 1);
    ok(s.run(&["sync"]));
    assert_eq!(s.cidrs(), ["192.0.2.60"]);
    assert!(b.entries("fail2ban").unwrap().is_empty());

    // Once the state holds nothing of A, B may take it over.
    ok(s.run(&["-f", "unban", "192.0.2.60"]));
    ok(run_config(&b_config, &["-f", "ban", "192.0.2.62"]));
    assert_eq!(b.entries("fail2ban").unwrap()[0].cidr, "192.0.2.62");
    assert_eq!(s.run(&["ban", "192.0.2.63"]).code, 3);
}

// See: issue 10, finding 8
// Before: `-f` printed only "queued; not sent yet" when an earlier event's
// 401 stopped the pass.
#[test]
fn r10_8_foreground_names_the_failure_that_holds_the_queue() {
    let s = Setup::new();
    ok(s.run(&["--queue-only", "ban", "192.0.2.70"]));
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&text.replace(support::SECRET, "00000000-0000-0000-0000-000000000000"));
    let r = s.run(&["-f", "ban", "192.0.2.71"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(
            "ban '192.0.2.71': queued, not sent: earlier events are held: PVE refused: 401"
        ),
        "{r:?}"
    );
    assert!(r.stderr.contains("check the token id"), "the fix: {r:?}");
    assert_eq!(status_json(&s)["queue"]["pending"], 2);
}

// See: issue 10, finding 6
// Before: a node given by name was never resolved, so nothing stopped a ban
// of its address (the README told the admin to copy it into never_ban).
#[test]
fn r10_6_a_node_named_by_host_name_is_never_banned() {
    let s = Setup::new();
    let port = s.emu.addr().port();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&text.replace(&s.emu.host_port(), &format!("localhost:{port}")));
    let r = s.run(&["-f", "ban", "127.0.0.1"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("PVE node"), "{r:?}");
    assert_eq!(posts_of(&s, "127.0.0.1"), 0);
    ok(s.run(&["-f", "ban", "192.0.2.80"]));

    // The addresses are remembered: a ban does not look them up again (the
    // name still resolves to 127.0.0.1, the record now says otherwise).
    let record: String = s
        .state_db()
        .query_row("SELECT value FROM meta WHERE key = 'cluster'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(record.contains("127.0.0.1"), "{record}");
    let forged = record.replace("\"127.0.0.1\"", "\"192.0.2.99\"");
    s.state_db()
        .execute(
            "UPDATE meta SET value = ?1 WHERE key = 'cluster'",
            [&forged],
        )
        .unwrap();
    assert_eq!(s.run(&["-f", "ban", "192.0.2.99"]).code, 2);
    // `sync` resolves them again.
    ok(s.run(&["sync"]));
    ok(s.run(&["-f", "ban", "192.0.2.99"]));
    assert_eq!(s.run(&["-f", "ban", "127.0.0.1"]).code, 2);
}

// See: issue 10, finding 3
// Before: the host queued whatever a policy's `validate` accepted; a policy
// that ignores never_ban got a never_ban network queued and sent.
#[test]
fn r10_3_never_ban_is_checked_before_the_queue_whatever_the_policy() {
    // A policy that reads no rules: its `validate` answers 192.0.2.1 for
    // any input that is not all digits and dots (those it keeps, for the
    // CrowdSec tests). (The example policy, on the SDK, now refuses a
    // never-ban address itself, so the host's check would not be reached.)
    let policy = wasm_build::hostile_policy().to_str().unwrap();
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}\n[rules]\nnever_ban = [\"192.0.2.0/24\"]\n"
    ));
    for args in [
        &["--policy", policy, "-f", "ban", "host-10.1.2.3"][..],
        &["--policy", policy, "ban", "host-10.200.0.1"],
    ] {
        let r = s.run(args);
        assert_eq!(r.code, 2, "{r:?}");
        assert!(r.stderr.contains("[rules] never_ban"), "{r:?}");
        assert!(r.stderr.contains("nothing was queued"), "{r:?}");
    }
    assert_eq!(status_json(&s)["queue"]["pending"], 0);
    assert!(
        s.emu.requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        s.emu.requests()
    );
}

// See: issue 10, finding 1
// The queue's part: `flush --remove` and `sync` touch only what this state
// asked for and entries with our tag. With the guard (part B), an unban of
// an entry someone else wrote is left alone as well.
#[test]
fn r10_1_flush_and_sync_leave_a_manual_entry_a_ban_found_there() {
    let mut opts = options();
    opts.ipsets = vec![(
        "fail2ban".into(),
        vec![
            ("192.0.2.90".into(), Some("manual-by-admin".into())),
            (
                "192.0.2.91".into(),
                Some("[2020/01/01 00:00:00] sshd f2p:otherhost/sshd/1".into()),
            ),
        ],
    )];
    let s = Setup::with(opts);
    for ip in ["192.0.2.90", "192.0.2.91"] {
        ok(s.run(&["-f", "ban", ip, "--jail", "sshd", "--bantime", "1"]));
    }
    ok(s.run(&["-f", "flush", "--jail", "sshd", "--remove"]));
    std::thread::sleep(Duration::from_millis(1100));
    ok(s.run(&["sync"]));
    let mut cidrs = s.cidrs();
    cidrs.sort();
    assert_eq!(cidrs, ["192.0.2.90", "192.0.2.91"]);
    assert!(
        s.emu
            .requests()
            .iter()
            .all(|r| r.method != "DELETE" || r.status != 200)
    );
}
