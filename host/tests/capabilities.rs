//! Each capability the host grants a policy, driven through its generated
//! `Host` trait by a host that holds only that capability (as Spin's factor
//! tests do): what a policy can do with it, and what it cannot.
//!
//! The whole chain (wasm component → linker → capability) is covered by
//! tests/hostile.rs and tests/cli.rs; here each capability stands alone.

use fail2pvefw::bindings::fail2pvefw::policy::pve::Host as PveHost;
use fail2pvefw::bindings::fail2pvefw::policy::settings::Host as SettingsHost;
use fail2pvefw::bindings::fail2pvefw::policy::store::Host as StoreHost;
use fail2pvefw::bindings::fail2pvefw::policy::types::Error;
use fail2pvefw::capabilities::guard::{EntryRules, Guard, Purpose};
use fail2pvefw::capabilities::pve::{Pve, WriteOutcome};
use fail2pvefw::capabilities::settings::Settings;
use fail2pvefw::capabilities::store::{QUOTA_BYTES, Store};
use fail2pvefw::config::Rules;
use pve_model::Cluster;
use std::net::IpAddr;

const INSTANCE: &str = "web01";

/// A `pve` capability over an in-memory cluster holding `entries` in the
/// IPSet `fail2ban`, granted that IPSet, with `never_ban` and one node.
fn pve_with(entries: &str) -> Pve {
    let cluster = Cluster::from_cluster_fw(format!("[IPSET fail2ban]\n\n{entries}\n").as_bytes());
    let rules = Rules {
        never_ban: vec!["192.0.2.0/28".into()],
        ..Rules::default()
    };
    let nodes: Vec<IpAddr> = vec!["198.51.100.10".parse().unwrap()];
    let guard = Guard::new(
        [("fail2ban".to_string(), Purpose::Ban)],
        &[],
        EntryRules::new(&rules, &nodes),
        INSTANCE,
    );
    Pve::in_memory(cluster, guard)
}

fn post(pve: &mut Pve, cidr: &str) -> Result<u16, Error> {
    pve.request(
        "POST".into(),
        "/cluster/firewall/ipset/fail2ban".into(),
        vec![
            ("cidr".into(), cidr.into()),
            ("comment".into(), format!("test f2p:{INSTANCE}/sshd/-")),
        ],
    )
    .map(|r| r.status)
}

fn delete(pve: &mut Pve, cidr: &str) -> Result<u16, Error> {
    let path = format!(
        "/cluster/firewall/ipset/fail2ban/{}",
        cidr.replace('/', "%2F")
    );
    pve.request("DELETE".into(), path, Vec::new())
        .map(|r| r.status)
}

fn denied(result: Result<u16, Error>) -> String {
    match result {
        Err(Error::Denied(why)) => why,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn pve_reads_the_granted_ipset_and_nothing_else() {
    let mut pve = pve_with("");
    let ok = pve.request(
        "GET".into(),
        "/cluster/firewall/ipset/fail2ban".into(),
        Vec::new(),
    );
    assert_eq!(ok.map(|r| r.status).ok(), Some(200));
    for path in ["/access/users", "/cluster/firewall/ipset/other", "/nodes"] {
        let why = denied(
            pve.request("GET".into(), path.into(), Vec::new())
                .map(|r| r.status),
        );
        assert!(why.contains(path), "{why}");
    }
}

#[test]
fn pve_adds_an_entry_and_records_the_write() {
    let mut pve = pve_with("");
    assert_eq!(post(&mut pve, "203.0.113.7").ok(), Some(200));
    let writes = pve.take_writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].cidr, "203.0.113.7");
    assert_eq!(writes[0].outcome, WriteOutcome::Added);
    let cidrs: Vec<_> = pve.memory().unwrap().entries("fail2ban").unwrap();
    assert_eq!(cidrs.len(), 1);
}

#[test]
fn pve_denies_the_admins_rules_before_any_write() {
    let mut pve = pve_with("");
    assert!(denied(post(&mut pve, "192.0.2.5")).contains("never_ban"));
    assert!(denied(post(&mut pve, "198.51.100.0/24")).contains("PVE node"));
    assert!(denied(post(&mut pve, "0.0.0.0/1")).contains("widest_ipv4"));
    let why = denied(
        pve.request(
            "DELETE".into(),
            "/cluster/firewall/ipset/fail2ban".into(),
            vec![("force".into(), "1".into())],
        )
        .map(|r| r.status),
    );
    assert!(!why.is_empty());
    assert!(pve.take_writes().is_empty());
    assert_eq!(pve.memory().unwrap().saves(), 0, "nothing was written");
}

#[test]
fn pve_leaves_someone_elses_entry_and_deletes_its_own() {
    let mut pve = pve_with(
        "203.0.113.1 # manual-by-admin\n203.0.113.2 # [2026/01/01 00:00:00] x f2p:web01/sshd/-\n",
    );
    match delete(&mut pve, "203.0.113.1") {
        Err(Error::NotOurs(why)) => assert!(why.contains("manual-by-admin"), "{why}"),
        other => panic!("expected not-ours, got {other:?}"),
    }
    assert_eq!(delete(&mut pve, "203.0.113.2").ok(), Some(200));
    assert_eq!(
        delete(&mut pve, "203.0.113.9").ok(),
        Some(200),
        "a missing entry"
    );
    let outcomes: Vec<_> = pve.take_writes().into_iter().map(|w| w.outcome).collect();
    assert_eq!(
        outcomes,
        [
            WriteOutcome::NotOurs,
            WriteOutcome::Deleted,
            WriteOutcome::Absent
        ]
    );
    let left: Vec<String> = pve
        .memory()
        .unwrap()
        .entries("fail2ban")
        .unwrap()
        .into_iter()
        .filter_map(|e| e.cidr)
        .collect();
    assert_eq!(left, ["203.0.113.1"]);
}

#[test]
fn store_keeps_each_policys_keys_apart_and_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Store::new(Some(dir.path().to_path_buf()), "a".into());
    let mut b = Store::new(Some(dir.path().to_path_buf()), "b".into());
    a.set("k".into(), "1".into()).unwrap();
    assert_eq!(b.get("k".into()), None);
    let mut again = Store::new(Some(dir.path().to_path_buf()), "a".into());
    assert_eq!(again.get("k".into()).as_deref(), Some("1"));
    again.delete("k".into());
    again.delete("k".into());
    assert_eq!(again.keys(String::new()), Vec::<String>::new());
}

#[test]
fn store_over_its_quota_is_denied_and_keeps_what_it_had() {
    let mut store = Store::new(None, "p".into());
    store.set("small".into(), "x".into()).unwrap();
    let big = "y".repeat(QUOTA_BYTES as usize);
    match store.set("big".into(), big) {
        Err(Error::Denied(why)) => assert!(why.contains("limited to"), "{why}"),
        other => panic!("expected a denial, got {other:?}"),
    }
    assert_eq!(store.get("small".into()).as_deref(), Some("x"));
    assert_eq!(store.get("big".into()), None);
}

#[test]
fn settings_tell_the_admins_rules_and_nothing_else() {
    let mut rules = Rules {
        never_ban: vec!["10.0.0.0/8".into(), "192.0.2.1".into()],
        ipv6_prefix: Some(64),
        ..Rules::default()
    };
    rules.policy_settings.insert("threshold".into(), "3".into());
    let nodes: Vec<IpAddr> = vec!["198.51.100.10".parse().unwrap()];
    let mut settings = Settings::new(&rules, &nodes);
    assert_eq!(
        SettingsHost::get(&mut settings, "never-ban".into()).as_deref(),
        Some("10.0.0.0/8 192.0.2.1")
    );
    assert_eq!(
        SettingsHost::get(&mut settings, "pve-hosts".into()).as_deref(),
        Some("198.51.100.10")
    );
    assert_eq!(
        SettingsHost::get(&mut settings, "ipv6-prefix".into()).as_deref(),
        Some("64")
    );
    assert_eq!(
        SettingsHost::get(&mut settings, "policy.threshold".into()).as_deref(),
        Some("3")
    );
    // Nothing of the host's own configuration leaks through.
    for name in ["token", "pve.token", "host", "state.dir", "policy.token"] {
        assert_eq!(
            SettingsHost::get(&mut settings, name.into()),
            None,
            "{name}"
        );
    }
}
