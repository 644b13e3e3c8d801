//! `examples/subnet-escalation`, built here for wasm32-wasip2, changes what
//! `ban` does when loaded with `--policy` by the same `fail2pvefw` binary:
//! the binary is byte-identical before the example is built and after it ran.

mod support;
mod wasm_build;

use support::Setup;

fn binary_digest() -> Vec<u8> {
    let bytes = std::fs::read(env!("CARGO_BIN_EXE_fail2pvefw")).unwrap();
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .to_vec()
}

#[test]
fn example_policy_escalates_to_the_subnet_with_the_same_binary() {
    let before = binary_digest();
    let policy = wasm_build::example_policy().to_str().unwrap();

    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}\n[policy_settings]\nthreshold = 3\nwindow = 600\n"
    ));

    // The built-in policy: three bans, three entries.
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        let r = s.run(&["-f", "ban", ip]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    assert_eq!(s.cidrs().len(), 3);

    // The example: the third ban in 203.0.113.0/24 becomes the subnet.
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let r = s.run(&["--policy", policy, "-f", "ban", ip]);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let ours: Vec<String> = s
        .cidrs()
        .into_iter()
        .filter(|c| c.starts_with("203."))
        .collect();
    assert_eq!(ours, ["203.0.113.0/24"]);

    // Unbans stay consistent: the subnet goes with its last member.
    for (ip, left) in [("203.0.113.1", 1), ("203.0.113.2", 1), ("203.0.113.3", 0)] {
        let r = s.run(&["--policy", policy, "-f", "unban", ip]);
        assert_eq!(r.code, 0, "{r:?}");
        let n = s.cidrs().iter().filter(|c| c.starts_with("203.")).count();
        assert_eq!(n, left, "after unban {ip}: {:?}", s.cidrs());
    }

    let check = support::run_binary(&["policy", "check", policy]);
    assert_eq!(check.code, 0, "{check:?}");
    assert_eq!(binary_digest(), before, "the fail2pvefw binary changed");
}

/// A set-up whose instance is `web01`, with the example's settings, and the
/// example copied to `NAME.wasm` for each name.
fn escalating(names: &[&str]) -> (Setup, Vec<String>) {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}instance = \"web01\"\n[policy_settings]\nthreshold = 3\nwindow = 600\n"
    ));
    let copies = names
        .iter()
        .map(|name| {
            let copy = s.dir.path().join(format!("{name}.wasm"));
            std::fs::copy(wasm_build::example_policy(), &copy).unwrap();
            copy.to_str().unwrap().to_string()
        })
        .collect();
    (s, copies)
}

fn ok(r: support::Run) -> support::Run {
    assert_eq!(r.code, 0, "{r:?}");
    r
}

// Issue 15, deliverable 5: a policy that rewrites entries (three bans
// become their /24) lives with sync: nothing is re-added, the /24 is ours,
// and it goes when its last member's ban is over, with fail2ban gone.
#[test]
fn after_an_escalation_sync_sends_no_write_status_counts_the_subnet_ours_and_it_expires() {
    let (s, policies) = escalating(&["subnet24"]);
    let policy = policies[0].as_str();
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        ok(s.run(&[
            "--policy",
            policy,
            "-f",
            "ban",
            ip,
            "--jail",
            "sshd",
            "--bantime",
            "4",
        ]));
    }
    assert_eq!(s.cidrs(), ["203.0.113.0/24"]);
    let comment = s.emu.entries("fail2ban").unwrap()[0]
        .comment
        .clone()
        .unwrap();
    assert!(comment.contains(" f2p:web01/sshd/"), "{comment}");

    s.emu.clear_requests();
    let r = ok(s.run(&["--policy", policy, "sync"]));
    assert!(
        r.stdout
            .contains("IPSet 'fail2ban': 1 entries, 0 re-added, 0 expired removed"),
        "{r:?}"
    );
    let writes: Vec<String> = s
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
        .collect();
    assert!(writes.is_empty(), "sync wrote: {writes:?}");
    let r = ok(s.run(&["--policy", policy, "status"]));
    assert!(
        r.stdout
            .contains("1 entries: 1 ours, 0 of other instances, 0 not from fail2pvefw"),
        "{r:?}"
    );

    // The members' bans end within 4 s; the /24's tag says the latest.
    support::wait_until(
        "the bans to expire",
        std::time::Duration::from_secs(10),
        || support::unix_now() > tag_expiry(&comment),
    );
    let r = ok(s.run(&["--policy", policy, "sync"]));
    assert!(r.stdout.contains("0 re-added, 1 expired removed"), "{r:?}");
    assert!(s.cidrs().is_empty(), "{:?}", s.cidrs());
}

fn tag_expiry(comment: &str) -> i64 {
    comment.rsplit('/').next().unwrap().parse().unwrap()
}

// Issue 15, deliverable 4: the store is keyed by the policy's identity,
// not by the file's name.
#[test]
fn a_renamed_wasm_keeps_its_state() {
    let (s, policies) = escalating(&["subnet24", "subnet24-v2"]);
    for ip in ["203.0.113.1", "203.0.113.2"] {
        ok(s.run(&["--policy", &policies[0], "-f", "ban", ip]));
    }
    let r = ok(s.run(&["-v", "--policy", &policies[1], "-f", "ban", "203.0.113.3"]));
    assert!(r.stderr.contains("escalated to 203.0.113.0/24"), "{r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.0/24"]);
    // The upgraded file unbans the subnet with its last member.
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        ok(s.run(&["--policy", &policies[1], "-f", "unban", ip]));
    }
    assert!(s.cidrs().is_empty(), "{:?}", s.cidrs());
    let check = ok(support::run_binary(&["policy", "check", &policies[1]]));
    assert!(
        check.stdout.contains("identity: subnet-escalation 0.2.0"),
        "{check:?}"
    );
}

// Issue 15, deliverable 4: what a policy kept under its file's name before
// it declared an identity moves to the identity, once.
#[test]
fn a_store_kept_under_the_file_name_moves_to_the_identity() {
    let (s, policies) = escalating(&["subnet24"]);
    ok(s.run(&["--policy", &policies[0], "-f", "ban", "203.0.113.1"]));
    let db = s.state_db();
    let now = support::unix_now();
    db.execute(
        "UPDATE policy_store SET namespace = 'subnet24' WHERE namespace = 'subnet-escalation'",
        [],
    )
    .unwrap();
    db.execute(
        "INSERT INTO policy_store VALUES ('subnet24', 'hits/198.51.100.0/24', ?1)",
        [format!("198.51.100.1@{now}@- 198.51.100.2@{now}@-")],
    )
    .unwrap();
    drop(db);
    let r = ok(s.run(&["-v", "--policy", &policies[0], "-f", "ban", "198.51.100.3"]));
    assert!(r.stderr.contains("escalated to 198.51.100.0/24"), "{r:?}");
    assert!(
        r.stderr
            .contains("moved the policy's store (2 keys) from 'subnet24'"),
        "{r:?}"
    );
    let namespaces: Vec<String> = s
        .state_db()
        .prepare("SELECT DISTINCT namespace FROM policy_store")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(namespaces, ["subnet-escalation"]);
}
