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
