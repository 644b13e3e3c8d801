//! `fail2pvefw sandbox …`: the policy against an in-memory IPSet, with no
//! configuration file, no token and no PVE.

mod support;
mod wasm_build;

use support::run_binary;

#[test]
fn sandbox_ban_works_without_config_and_shows_the_call_and_the_ipset() {
    let r = run_binary(&[
        "--config",
        "/nonexistent/config.toml",
        "sandbox",
        "ban",
        "203.0.113.7",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("POST /cluster/firewall/ipset/fail2ban cidr=\"203.0.113.7\""),
        "{r:?}"
    );
    assert!(r.stdout.contains("-> 200 OK"), "{r:?}");
    assert!(
        r.stdout
            .contains("IPSet 'fail2ban' (1 entry):\n  203.0.113.7 # ["),
        "{r:?}"
    );
}

#[test]
fn sandbox_state_carries_over_with_seed_and_save() {
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("cluster.fw");
    let fw = fw.to_str().unwrap();
    let r = run_binary(&["sandbox", "--seed", fw, "--save", fw, "ban", "10.0.0.1/16"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_binary(&["sandbox", "--seed", fw, "--save", fw, "ban", "10.0.9.9/16"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("-> 400 Parameter verification failed."),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("10.0.0.0/16 was already in IPSet 'fail2ban' (our entry)"),
        "{r:?}"
    );
    let r = run_binary(&[
        "sandbox",
        "--seed",
        fw,
        "--save",
        fw,
        "unban",
        "10.0.2.3/16",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("DELETE /cluster/firewall/ipset/fail2ban/10.0.0.0%2F16"),
        "{r:?}"
    );
    assert!(r.stdout.contains("IPSet 'fail2ban' (0 entries)"), "{r:?}");
}

#[test]
fn sandbox_refuses_never_ban_and_pve_host_with_exit_2() {
    let r = run_binary(&["sandbox", "--never-ban", "192.0.2.0/24", "ban", "192.0.2.7"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("never_ban"), "{r:?}");
    assert!(r.stdout.contains("PVE calls: none"), "{r:?}");
    let r = run_binary(&[
        "sandbox",
        "--pve-host",
        "198.51.100.5",
        "ban",
        "198.51.100.0/24",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("lock the administrator out"), "{r:?}");
}

#[test]
fn sandbox_widens_ipv6_and_unban_deletes_the_same_entry() {
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("cluster.fw");
    let fw = fw.to_str().unwrap();
    let args = ["sandbox", "--ipv6-prefix", "64", "--seed", fw, "--save", fw];
    let r = run_binary(&[&args[..], &["ban", "2001:db8:1:2::7"]].concat());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("  2001:db8:1:2::/64 #"), "{r:?}");
    let r = run_binary(&[&args[..], &["unban", "2001:db8:1:2::99"]].concat());
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("(0 entries)"), "{r:?}");
}

#[test]
fn sandbox_start_of_a_missing_ipset_is_refused_like_pve() {
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("cluster.fw");
    std::fs::write(&fw, "[IPSET other]\n\n192.0.2.1\n").unwrap();
    let r = run_binary(&["sandbox", "--seed", fw.to_str().unwrap(), "start"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no such IPSet 'fail2ban'"), "{r:?}");
}

#[test]
fn sandbox_refuses_a_ban_wider_than_the_hosts_limit_before_any_call() {
    let r = run_binary(&["sandbox", "ban", "198.51.100.0/8"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr.contains("wider than /16 ([rules] widest_ipv4)"),
        "{r:?}"
    );
    assert!(r.stdout.contains("PVE calls: none"), "{r:?}");
}

#[test]
fn sandbox_shows_the_hosts_denials_in_the_list_of_calls() {
    let policy = wasm_build::hostile_policy().to_str().unwrap();
    let r = run_binary(&["--policy", policy, "sandbox", "ban", "low-half"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stdout.contains(
            "POST /cluster/firewall/ipset/fail2ban cidr=\"0.0.0.0/1\" -> denied by the host: \
             POST of '0.0.0.0/1' to IPSet 'fail2ban': wider than /16 ([rules] widest_ipv4)"
        ),
        "{r:?}"
    );
    let r = run_binary(&["--policy", policy, "sandbox", "ban", "delete-ipset-force"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stdout.contains(
            "DELETE /cluster/firewall/ipset/fail2ban force=\"1\" -> denied by the host: "
        ),
        "{r:?}"
    );
    assert!(r.stdout.contains("IPSet 'fail2ban' (0 entries)"), "{r:?}");
}

#[test]
fn sandbox_shows_someone_elses_entry_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("cluster.fw");
    let text = "[OPTIONS]\n\nenable: 1\n\n[IPSET fail2ban]\n\n192.0.2.50 # manual-by-admin\n\n\
                [RULES]\n\nIN DROP -source +dc/fail2ban\n\n";
    std::fs::write(&fw, text).unwrap();
    let fw = fw.to_str().unwrap();
    let r = run_binary(&["sandbox", "--seed", fw, "--save", fw, "ban", "192.0.2.50"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("as someone else's entry"), "{r:?}");
    let r = run_binary(&["sandbox", "--seed", fw, "--save", fw, "unban", "192.0.2.50"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "DELETE /cluster/firewall/ipset/fail2ban/192.0.2.50 -> left alone by the host: \
             not ours (comment 'manual-by-admin' carries no tag f2p:sandbox/…)"
        ),
        "{r:?}"
    );
    assert!(r.stdout.contains("  192.0.2.50 # manual-by-admin"), "{r:?}");
    // --save writes the whole cluster.fw, not only its IPSets.
    let saved = std::fs::read_to_string(fw).unwrap();
    assert!(saved.contains("enable: 1"), "{saved}");
    assert!(saved.contains("IN DROP -source +dc/fail2ban"), "{saved}");
}

// See: issue 15, deliverable 6
#[test]
fn sandbox_shows_the_escalation_in_one_run() {
    let policy = wasm_build::example_policy().to_str().unwrap();
    let r = run_binary(&[
        "--policy",
        policy,
        "sandbox",
        "ban",
        "203.0.113.1",
        "ban",
        "203.0.113.2",
        "ban",
        "203.0.113.3",
        "--bantime",
        "600",
        "unban",
        "203.0.113.1",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    for expected in [
        "$ ban 203.0.113.1\n",
        "  = added 203.0.113.1 (1 of 3 in 203.0.113.0/24)\n",
        "$ ban 203.0.113.3\n",
        "  = escalated to 203.0.113.0/24: banned the subnet, removed 3 member entries\n",
        "  = 203.0.113.0/24 stays banned for 2 more members\n",
        "IPSet 'fail2ban' (1 entry):\n  203.0.113.0/24 # [",
        "store of 'subnet-escalation' (1 key):\n  escalated/203.0.113.0/24 = ",
    ] {
        assert!(r.stdout.contains(expected), "{expected:?} in {r:?}");
    }
    // The words were in the transcript; nothing more after the store.
    let last = r.stdout.lines().last().unwrap();
    assert!(last.starts_with("  escalated/203.0.113.0/24 = "), "{r:?}");
}

// See: issue 15, deliverable 6
#[test]
fn sandbox_store_settings_and_script_carry_a_policys_state() {
    let policy = wasm_build::example_policy().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (fw, store) = (path("cluster.fw"), path("store.json"));
    let files = ["--seed", &fw, "--save", &fw, "--store", &store];
    // Options before the command, as in the main CLI: -i and --setting.
    let first = [
        &[
            "--policy",
            policy,
            "sandbox",
            "-i",
            "blocklist",
            "--setting",
            "threshold=2",
        ][..],
        &files,
        &["ban", "198.51.100.1"],
    ]
    .concat();
    let r = run_binary(&first);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("added 198.51.100.1 (1 of 2 in 198.51.100.0/24)"),
        "{r:?}"
    );
    let saved = std::fs::read_to_string(&store).unwrap();
    assert!(saved.contains("\"hits/198.51.100.0/24\""), "{saved}");
    // The next run goes on from the store: the second ban escalates. The
    // commands come from a script on stdin, the options after them.
    let second = [
        &["--policy", policy, "sandbox", "--script", "-"][..],
        &files,
        &["-i", "blocklist", "--setting", "policy.threshold=2"],
    ]
    .concat();
    let script = "# one per line\nban 198.51.100.2 -c 'second one'\ncheck\n";
    let r = support::run_binary_with_stdin(&second, script);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains(
            "  = escalated to 198.51.100.0/24: banned the subnet, removed 2 member entries"
        ),
        "{r:?}"
    );
    assert!(r.stdout.contains("$ check\n"), "{r:?}");
    assert!(
        r.stdout
            .contains("IPSet 'blocklist' (1 entry):\n  198.51.100.0/24 #"),
        "{r:?}"
    );
    let saved = std::fs::read_to_string(&store).unwrap();
    assert!(saved.contains("\"escalated/198.51.100.0/24\""), "{saved}");
    assert!(!saved.contains("hits/"), "{saved}");
}

// See: issue 15, deliverable 6
#[test]
fn sandbox_stops_at_the_first_failing_command_with_its_exit_code() {
    let r = run_binary(&[
        "sandbox",
        "ban",
        "192.0.2.1",
        "ban",
        "010.0.0.1",
        "ban",
        "192.0.2.3",
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout
            .contains("  ! ban '010.0.0.1': '010.0.0.1' is not an IP address"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("$ ban 192.0.2.3"), "{r:?}");
    assert!(
        r.stdout
            .contains("IPSet 'fail2ban' (1 entry):\n  192.0.2.1 #"),
        "{r:?}"
    );
    let r = run_binary(&["sandbox", "frobnicate"]);
    assert_eq!(r.code, 2, "{r:?}");
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("script");
    std::fs::write(&script, "ban 192.0.2.1\nunban\n").unwrap();
    let r = run_binary(&["sandbox", "--script", script.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("line 2"), "{r:?}");
}
