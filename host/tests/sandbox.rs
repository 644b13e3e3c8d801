//! `fail2pvefw sandbox …`: the policy against an in-memory IPSet, with no
//! configuration file, no token and no PVE.

mod support;

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
    let r = run_binary(&["sandbox", "--seed", fw, "--save", fw, "ban", "10.0.0.1/8"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_binary(&["sandbox", "--seed", fw, "--save", fw, "ban", "10.0.0.9/8"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("-> 400 Parameter verification failed."),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("10.0.0.0/8 was already in IPSet"),
        "{r:?}"
    );
    let r = run_binary(&["sandbox", "--seed", fw, "--save", fw, "unban", "10.1.2.3/8"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout
            .contains("DELETE /cluster/firewall/ipset/fail2ban/10.0.0.0%2F8"),
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
