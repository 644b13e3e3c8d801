//! The durable queue: nothing fail2ban hands us is lost, nothing is sent
//! twice, restarts cost no PVE writes, `sync` reconciles and `status` tells
//! the truth. The real binary against the emulator over HTTPS.

mod support;

use pve_emulator::Fault;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{Run, Setup, options, wait_until};

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

/// A set-up whose config names this instance `web01`, with these entries
/// in the IPSet at the start.
fn web01(entries: &[(&str, &str)]) -> Setup {
    let mut opts = options();
    opts.ipsets = vec![(
        "fail2ban".into(),
        entries
            .iter()
            .map(|(cidr, comment)| (cidr.to_string(), Some(comment.to_string())))
            .collect(),
    )];
    let s = Setup::with(opts);
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{text}instance = \"web01\"\n"));
    s
}

#[test]
fn sync_removes_expired_own_entries() {
    let s = web01(&[
        ("192.0.2.77", "[2020/01/01 00:00:00] sshd f2p:web01/sshd/1"),
        ("192.0.2.79", "[2020/01/01 00:00:00] sshd f2p:web01/sshd/-"),
    ]);
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.78",
        "--bantime",
        "3600",
        "--jail",
        "sshd",
    ]));
    let ours = s
        .emu
        .entries("fail2ban")
        .unwrap()
        .into_iter()
        .find(|e| e.cidr == "192.0.2.78")
        .unwrap();
    let comment = ours.comment.unwrap();
    assert!(comment.contains(" f2p:web01/sshd/"), "{comment}");
    let r = s.run(&["sync"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("1 expired removed"), "{r:?}");
    let mut cidrs = s.cidrs();
    cidrs.sort();
    assert_eq!(cidrs, ["192.0.2.78", "192.0.2.79"]);
}

#[test]
fn sync_keeps_an_own_expired_entry_that_covers_a_live_ban() {
    // A policy that escalated to the /24 wrote it with the tag of the ban
    // that triggered it; the /24 still enforces a live ban inside it.
    let s = web01(&[(
        "192.0.2.0/24",
        "[2020/01/01 00:00:00] sshd f2p:web01/sshd/1",
    )]);
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.5",
        "--bantime",
        "3600",
        "--jail",
        "sshd",
    ]));
    ok(s.run(&["sync"]));
    let mut cidrs = s.cidrs();
    cidrs.sort();
    assert_eq!(cidrs, ["192.0.2.0/24", "192.0.2.5"]);
    ok(s.run(&["-f", "unban", "192.0.2.5", "--jail", "sshd"]));
    ok(s.run(&["sync"]));
    assert!(s.cidrs().is_empty(), "{:?}", s.cidrs());
}

#[test]
fn sync_counts_a_ban_covered_by_a_wider_entry_and_re_adds_it_when_that_goes() {
    let s = Setup::new();
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.10",
        "--bantime",
        "3600",
        "--jail",
        "sshd",
    ]));
    s.emu
        .set_cluster_fw("[IPSET fail2ban]\n\n192.0.2.0/24 # manual\n\n");
    ok(s.run(&["sync"]));
    assert_eq!(s.cidrs(), ["192.0.2.0/24"]);
    assert_eq!(writes(&s, "POST"), 1, "{:?}", s.emu.requests());
    // The admin deletes the covering entry: the ban is enforced again.
    s.emu.set_cluster_fw("[IPSET fail2ban]\n\n");
    ok(s.run(&["sync"]));
    assert_eq!(s.cidrs(), ["192.0.2.10"]);
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

#[test]
fn an_unban_of_one_jail_leaves_another_jails_ban() {
    let s = Setup::new();
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.5",
        "--jail",
        "sshd",
        "--bantime",
        "600",
    ]));
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.5",
        "--jail",
        "recidive",
        "--bantime",
        "604800",
    ]));
    let status = status_json(&s);
    assert_eq!(status["queue"]["desired"], 1, "{status}");
    assert_eq!(status["queue"]["holders"]["jail:recidive"], 1, "{status}");
    let r = ok_run(s.run(&["-f", "unban", "192.0.2.5", "--jail", "sshd"]));
    assert!(
        r.stdout
            .contains("unban '192.0.2.5': still held by jail recidive until "),
        "{r:?}"
    );
    assert!(r.stdout.contains("left in PVE"), "{r:?}");
    assert_eq!(s.cidrs(), ["192.0.2.5"]);
    assert_eq!(writes(&s, "DELETE"), 0);
    let human = ok_run(s.run(&["status"]));
    assert!(
        human.stdout.contains("held by jail recidive 1"),
        "{human:?}"
    );

    // flush --remove of sshd leaves recidive's ban; of recidive, removes it.
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.6",
        "--jail",
        "sshd",
        "--bantime",
        "600",
    ]));
    let r = ok_run(s.run(&["-f", "flush", "--jail", "sshd", "--remove"]));
    assert!(
        r.stdout.contains("queued removal of 1 ban(s) of jail sshd"),
        "{r:?}"
    );
    assert_eq!(s.cidrs(), ["192.0.2.5"]);
    let r = ok_run(s.run(&["-f", "flush", "--jail", "recidive", "--remove"]));
    assert!(r.stdout.contains("1 ban(s)"), "{r:?}");
    assert!(s.cidrs().is_empty(), "{:?}", s.cidrs());

    // An unban without --jail (an admin at the shell) releases every jail.
    ok(s.run(&["-f", "ban", "192.0.2.7", "--jail", "sshd"]));
    ok(s.run(&["-f", "ban", "192.0.2.7", "--jail", "recidive"]));
    let r = ok_run(s.run(&["-f", "unban", "192.0.2.7"]));
    assert!(!r.stdout.contains("still held"), "{r:?}");
    assert!(s.cidrs().is_empty(), "{:?}", s.cidrs());
}

fn ok_run(r: Run) -> Run {
    assert_eq!(r.code, 0, "{r:?}");
    r
}

#[test]
fn later_events_of_a_backed_off_entry_wait_their_turn_and_others_do_not() {
    let s = Setup::new();
    s.emu.pause();
    ok(s.run(&["--queue-only", "ban", "192.0.2.20"]));
    for _ in 0..3 {
        assert_eq!(s.run(&["sync"]).code, 1);
    }
    // 192.0.2.20 now backs off for 4 s; more of its events, then another entry.
    ok(s.run(&["--queue-only", "unban", "192.0.2.20"]));
    ok(s.run(&["--queue-only", "ban", "192.0.2.20"]));
    s.emu.resume();
    ok(s.run(&["ban", "192.0.2.21"]));
    wait_until("the other entry", Duration::from_secs(20), || {
        s.cidrs().contains(&"192.0.2.21".to_string())
    });
    assert!(
        !s.cidrs().contains(&"192.0.2.20".to_string()),
        "sent while held"
    );
    assert_eq!(status_json(&s)["queue"]["held_entries"], 1);
    wait_until("the held entry", Duration::from_secs(30), || {
        status_json(&s)["queue"]["pending"] == 0
    });
    let mut cidrs = s.cidrs();
    cidrs.sort();
    assert_eq!(cidrs, ["192.0.2.20", "192.0.2.21"]);
    assert_eq!(writes(&s, "POST"), 2, "{:?}", s.emu.requests());
    assert_eq!(writes(&s, "DELETE"), 0, "{:?}", s.emu.requests());
}

#[test]
fn pve_down_mid_drain_loses_and_doubles_nothing() {
    let s = Setup::new();
    let ips: Vec<String> = (1..=30).map(|i| format!("198.51.100.{i}")).collect();
    for ip in &ips {
        ok(s.run(&["--queue-only", "ban", ip]));
    }
    s.emu
        .fail_next_writes(30, Fault::Stall(Duration::from_millis(100)));
    let sync = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .args(["--config", s.config.to_str().unwrap(), "sync"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("some bans to land", Duration::from_secs(20), || {
        s.cidrs().len() >= 5
    });
    s.emu.pause(); // mid-request: the answer of one POST never comes back
    let out = sync.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(s.cidrs().len() < 30);
    s.emu.resume();
    ok(s.run(&["sync"]));
    let mut cidrs = s.cidrs();
    cidrs.sort();
    let mut want = ips.clone();
    want.sort();
    assert_eq!(cidrs, want);
    assert_eq!(writes(&s, "POST"), 30, "a ban was written twice");
    assert_eq!(status_json(&s)["queue"]["pending"], 0);
}

/// Version 1 of `state.db` exactly as fail2pvefw 0.1 created it.
const SCHEMA_V1: &str = "
CREATE TABLE IF NOT EXISTS policy_store (
    namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL CHECK (action IN ('ban', 'unban')),
    ipset TEXT NOT NULL,
    entry TEXT NOT NULL,
    request TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS events_by_entry ON events (ipset, entry);
CREATE TABLE IF NOT EXISTS desired (
    ipset TEXT NOT NULL, entry TEXT NOT NULL, request TEXT NOT NULL, jail TEXT, expires INTEGER,
    PRIMARY KEY (ipset, entry)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS applied (
    ipset TEXT NOT NULL, entry TEXT NOT NULL, PRIMARY KEY (ipset, entry)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
PRAGMA journal_mode = WAL;
PRAGMA user_version = 1;
";

#[test]
fn a_version_1_state_keeps_its_queue_wishes_and_pins() {
    let s = Setup::new();
    // Trust by the pin `fail2pvefw trust` stored, not by the config.
    let text = std::fs::read_to_string(&s.config).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("fingerprint"))
        .map(|l| format!("{l}\n"))
        .collect();
    s.write_config(&text);
    let state = s.state_dir();
    std::fs::create_dir_all(&state).unwrap();
    support::write_private(
        &state.join("trusted-fingerprints"),
        &format!("{} {}\n", s.emu.host_port(), s.emu.fingerprint()),
    );
    let later = support::unix_now() + 3600;
    let db = rusqlite::Connection::open(state.join("state.db")).unwrap();
    db.execute_batch(SCHEMA_V1).unwrap();
    let ban = |ip: &str, jail: &str| {
        format!(
            r#"{{"ip":"{ip}","ipset":"fail2ban","jail":"{jail}","comment":null,"time":null,"bantime":3600,"failures":3,"restored":false}}"#
        )
    };
    db.execute(
        "INSERT INTO events (action, ipset, entry, request, created, attempts, next_try, last_error)
         VALUES ('ban', 'fail2ban', '192.0.2.30', ?1, 1, 4, 9e12, 'PVE unreachable')",
        [ban("192.0.2.30", "sshd")],
    )
    .unwrap();
    db.execute(
        "INSERT INTO desired VALUES ('fail2ban', '192.0.2.30', ?1, 'sshd', ?2),
                                    ('fail2ban', '192.0.2.31', ?3, 'nginx', ?2)",
        rusqlite::params![ban("192.0.2.30", "sshd"), later, ban("192.0.2.31", "nginx")],
    )
    .unwrap();
    db.execute("INSERT INTO policy_store VALUES ('default', 'k', 'v')", [])
        .unwrap();
    drop(db);

    let status = status_json(&s);
    assert_eq!(status["queue"]["pending"], 1, "{status}");
    assert_eq!(status["queue"]["desired"], 2, "{status}");
    assert_eq!(status["queue"]["holders"]["jail:sshd"], 1, "{status}");
    assert_eq!(status["queue"]["held_entries"], 1, "{status}");
    // The pin still admits the node; sync sends the event and re-adds the
    // wish PVE lacks.
    ok(s.run(&["sync"]));
    let mut cidrs = s.cidrs();
    cidrs.sort();
    assert_eq!(cidrs, ["192.0.2.30", "192.0.2.31"]);
    let kept: String = s
        .state_db()
        .query_row("SELECT value FROM policy_store WHERE key = 'k'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kept, "v");
    let version: i64 = s
        .state_db()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
}

#[test]
fn garbage_in_the_state_is_dropped_or_refused_never_sent() {
    let s = Setup::new();
    ok(s.run(&["--queue-only", "ban", "192.0.2.40"]));
    ok(s.run(&["--queue-only", "ban", "192.0.2.41"]));
    let db = s.state_db();
    db.execute(
        "UPDATE events SET request = '{\"ip\": 7' WHERE entry = '192.0.2.40'",
        [],
    )
    .unwrap();
    db.execute(
        "UPDATE desired SET request = 'garbage' WHERE entry = '192.0.2.40'",
        [],
    )
    .unwrap();
    db.execute(
        "UPDATE desired SET expires = 'soon' WHERE entry = '192.0.2.41'",
        [],
    )
    .unwrap();
    db.execute("UPDATE meta SET value = '{nope' WHERE key = 'cluster'", [])
        .unwrap();
    drop(db);
    // The unreadable event is dropped (kept as failed), but the wish stands
    // (its request rebuilt from the entry) and sync re-adds it; a garbled
    // expiry does not lift a ban.
    let r = s.run(&["sync"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("unreadable"), "the cluster record: {r:?}");
    assert!(r.stdout.contains("1 re-added"), "{r:?}");
    let mut cidrs = s.cidrs();
    cidrs.sort();
    assert_eq!(cidrs, ["192.0.2.40", "192.0.2.41"]);
    let status = status_json(&s);
    assert_eq!(status["queue"]["failed"], 1, "{status}");
    assert_eq!(status["queue"]["pending"], 0, "{status}");

    // A database of a newer fail2pvefw is refused, not misread.
    s.state_db()
        .execute_batch("PRAGMA user_version = 9")
        .unwrap();
    let r = s.run(&["ban", "192.0.2.42"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("newer fail2pvefw"), "{r:?}");
}
