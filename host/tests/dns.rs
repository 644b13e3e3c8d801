//! `fail2pvefw dns` (issue 13, items 1–4): the addresses of host names kept
//! in an accept-list IPSet through the same queue and guard as bans. The
//! real binary against the emulator over HTTPS, its names resolved by
//! glibc from a private hosts file in a mount namespace the test makes
//! (`support::hosts`; skipped loudly where none can be made, never in CI).

mod support;

use pve_emulator::{Fault, InitialEntry, Options};
use std::time::Duration;
use support::hosts::Hosts;
use support::{Run, Setup, options, wait_until};

const HOME: &str = "home.example.net";
const OFFICE: &str = "office.example.org";
const V4: &str = "198.51.100.7";
const V6: &str = "2001:db8::7";

/// A set-up with IPSets `fail2ban` (bans) and `trusted` (`trusted`'s
/// entries given), instance `web01`, and `extra` appended to the config.
fn setup(test: &str, trusted: Vec<InitialEntry>, extra: &str) -> Option<(Setup, Hosts)> {
    let hosts = Hosts::new(test)?;
    let s = Setup::with(Options {
        ipsets: vec![("fail2ban".into(), vec![]), ("trusted".into(), trusted)],
        ..options()
    });
    let toml = s
        .emu
        .config_toml(&s.token, "fail2ban", s.state_dir().to_str().unwrap());
    s.write_config(&format!("{toml}instance = \"web01\"\n{extra}"));
    Some((s, hosts))
}

fn dns(s: &Setup, hosts: &Hosts, args: &[&str]) -> Run {
    hosts.run(&s.config, args)
}

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "{r:?}");
    r
}

/// The entries of `ipset`, sorted, with their comments.
fn entries(s: &Setup, ipset: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = s
        .emu
        .entries(ipset)
        .unwrap()
        .into_iter()
        .map(|e| (e.cidr, e.comment.unwrap_or_default()))
        .collect();
    out.sort();
    out
}

fn cidrs(s: &Setup, ipset: &str) -> Vec<String> {
    entries(s, ipset).into_iter().map(|(c, _)| c).collect()
}

/// The writes PVE saw since the last `clear_requests`, as (method, what):
/// a POST's cidr, a DELETE's path.
fn writes(s: &Setup) -> Vec<(String, String)> {
    s.emu
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| {
            let what = match r.method.as_str() {
                "POST" => r
                    .params
                    .iter()
                    .find(|(k, _)| k == "cidr")
                    .map(|(_, v)| format!("{} {v}", r.path))
                    .unwrap_or_default(),
                _ => r.path.clone(),
            };
            (r.method, what)
        })
        .collect()
}

fn status_json(s: &Setup) -> serde_json::Value {
    let r = ok(s.run(&["status", "--json"]));
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

// See: issue 13, item 4 (a name with two addresses adds both) and the Done
// when: `fail2pvefw -i trusted dns home.example.net` works unchanged.
#[test]
fn r13_a_name_with_two_addresses_adds_both_and_again_writes_nothing() {
    let Some((s, hosts)) = setup("r13_two_addresses", vec![], "") else {
        return;
    };
    hosts.set(&[(V4, HOME), (V6, HOME)]);
    let r = ok(dns(&s, &hosts, &["-i", "trusted", "dns", HOME]));
    assert!(
        r.stdout
            .contains(&format!("dns '{HOME}': {V4}, {V6} in IPSet 'trusted'")),
        "{r:?}"
    );
    let got = entries(&s, "trusted");
    assert_eq!(got.len(), 2, "{got:?}");
    for (cidr, comment) in &got {
        assert!(cidr == V4 || cidr == V6, "{got:?}");
        assert!(
            comment.ends_with(&format!("] {HOME} f2p:web01/dns/-")),
            "{comment}"
        );
        assert!(comment.starts_with('['), "{comment}");
    }
    let posts: Vec<_> = writes(&s)
        .into_iter()
        .filter(|(m, _)| m == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert!(cidrs(&s, "fail2ban").is_empty());

    // Idempotent: nothing changed, nothing written; sync does not fight it.
    s.emu.clear_requests();
    let r = ok(dns(&s, &hosts, &["-i", "trusted", "dns", HOME]));
    assert!(r.stdout.contains("nothing to change"), "{r:?}");
    ok(s.run(&["sync"]));
    assert_eq!(writes(&s), Vec::<(String, String)>::new());
    assert_eq!(entries(&s, "trusted"), got);
    // The options may follow the command, and -f is the old script's too.
    ok(dns(&s, &hosts, &["-f", "dns", HOME, "-i", "trusted"]));
    assert_eq!(writes(&s), Vec::<(String, String)>::new());
}

// See: issue 13, item 4 (one address changes: exactly one DELETE and one POST)
#[test]
fn r13_one_changed_address_is_one_delete_and_one_post() {
    let Some((s, hosts)) = setup("r13_one_changed", vec![], "\n[dns]\nipset = \"trusted\"\n")
    else {
        return;
    };
    hosts.set(&[(V4, HOME), (V6, HOME)]);
    ok(dns(&s, &hosts, &["dns", HOME]));
    s.emu.clear_requests();
    hosts.set(&[("198.51.100.8", HOME), (V6, HOME)]);
    let r = ok(dns(&s, &hosts, &["dns", HOME]));
    assert!(r.stdout.contains("added 198.51.100.8"), "{r:?}");
    assert!(r.stdout.contains(&format!("removed {V4}")), "{r:?}");
    let w = writes(&s);
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w.iter().filter(|(m, _)| m == "DELETE").count(), 1, "{w:?}");
    // The new address first, so the name is never without one.
    assert!(
        w[0].0 == "POST" && w[0].1.ends_with("trusted 198.51.100.8"),
        "{w:?}"
    );
    assert!(
        w[1].0 == "DELETE" && w[1].1.contains(&format!("/trusted/{V4}?digest=")),
        "{w:?}"
    );
    assert_eq!(cidrs(&s, "trusted"), ["198.51.100.8", V6]);
}

// See: issue 13, item 4 (an unresolvable name gives exit 1 and keeps its entries)
#[test]
fn r13_an_unresolvable_name_exits_1_naming_it_and_keeps_its_entries() {
    let Some((s, hosts)) = setup("r13_unresolvable", vec![], "\n[dns]\nipset = \"trusted\"\n")
    else {
        return;
    };
    hosts.set(&[(V4, HOME), (V6, HOME), ("203.0.113.9", OFFICE)]);
    ok(dns(&s, &hosts, &["dns", HOME, OFFICE]));
    let before = entries(&s, "trusted");
    assert_eq!(before.len(), 3);
    s.emu.clear_requests();
    // A passing DNS failure: home is gone from the resolver, office moved.
    hosts.set(&[("203.0.113.10", OFFICE)]);
    let r = dns(&s, &hosts, &["dns", HOME, OFFICE]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("dns '{HOME}': it does not resolve")),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("its 2 entries stay in IPSet 'trusted'"),
        "{r:?}"
    );
    assert!(
        !r.stderr.contains(OFFICE),
        "only the failing name is named: {r:?}"
    );
    assert!(
        r.stdout.contains("added 203.0.113.10"),
        "the other name goes on: {r:?}"
    );
    let now = cidrs(&s, "trusted");
    assert_eq!(
        now,
        ["198.51.100.7", "2001:db8::7", "203.0.113.10"],
        "{r:?}"
    );
    assert!(
        writes(&s)
            .iter()
            .all(|(_, p)| !p.contains(V4) && !p.contains("2001:db8")),
        "{:?}",
        writes(&s)
    );
    let status = ok(s.run(&["status"]));
    assert!(status.stdout.contains("the lookup failed"), "{status:?}");
    // Its addresses are still never banned.
    let r = s.run(&["-f", "ban", V4]);
    assert_eq!(r.code, 2, "{r:?}");
}

// See: issue 13, item 1 (manual entries are never touched)
#[test]
fn r13_a_manual_entry_with_the_same_address_survives() {
    let manual = vec![(V4.to_string(), Some("manual-by-admin".to_string()))];
    let Some((s, hosts)) = setup("r13_manual", manual, "\n[dns]\nipset = \"trusted\"\n") else {
        return;
    };
    hosts.set(&[(V4, HOME), (V6, HOME)]);
    ok(dns(&s, &hosts, &["dns", HOME]));
    let got = entries(&s, "trusted");
    assert_eq!(got[0], (V4.to_string(), "manual-by-admin".to_string()));
    assert!(got[1].1.ends_with("f2p:web01/dns/-"), "{got:?}");
    // The name moves away from it, then is not kept at all: the manual
    // entry stays each time, and no DELETE of it is sent.
    hosts.set(&[("198.51.100.8", HOME), (V6, HOME)]);
    s.emu.clear_requests();
    let r = ok(dns(&s, &hosts, &["dns", HOME]));
    assert!(
        r.stdout.contains(&format!(
            "released {V4} (someone else's entry: left as it is)"
        )),
        "{r:?}"
    );
    ok(dns(&s, &hosts, &["dns", "--remove", HOME]));
    assert_eq!(
        entries(&s, "trusted"),
        [(V4.to_string(), "manual-by-admin".to_string())]
    );
    assert!(
        writes(&s)
            .iter()
            .all(|(m, p)| m != "DELETE" || !p.ends_with(V4)),
        "{:?}",
        writes(&s)
    );
    let status = status_json(&s);
    assert!(status.get("dns").is_none(), "{status}");
}

// See: issue 13, item 4 (a resolved address given to `ban` is refused with
// exit 2 when never_ban_resolved is on) and item 2 (checked at submit time
// and by the guard, with no lookup on a ban).
#[test]
fn r13_a_resolved_address_is_never_banned() {
    let Some((s, hosts)) = setup("r13_never_banned", vec![], "\n[dns]\nipset = \"trusted\"\n")
    else {
        return;
    };
    // Queued before the name resolves to it: the guard denies it when sent.
    ok(s.run(&["--queue-only", "ban", "203.0.113.50", "--jail", "sshd"]));
    hosts.set(&[(V4, HOME), ("203.0.113.50", HOME)]);
    ok(dns(&s, &hosts, &["dns", HOME]));
    assert_eq!(cidrs(&s, "trusted"), ["198.51.100.7", "203.0.113.50"]);
    assert!(cidrs(&s, "fail2ban").is_empty());
    let status = status_json(&s);
    assert_eq!(status["queue"]["failed"], 1, "{status}");
    // The ban command refuses it at once, outside the namespace (no lookup).
    for target in [V4, "198.51.100.0/24"] {
        let r = s.run(&["-f", "ban", target, "--jail", "sshd"]);
        assert_eq!(r.code, 2, "{target}: {r:?}");
        assert!(
            r.stderr.contains(&format!("an address of '{HOME}'")),
            "{r:?}"
        );
        assert!(r.stderr.contains("never_ban_resolved"), "{r:?}");
    }
    assert!(cidrs(&s, "fail2ban").is_empty());
    // Turned off, the same ban goes through.
    let toml = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{toml}never_ban_resolved = false\n"));
    ok(s.run(&["-f", "ban", V4, "--jail", "sshd"]));
    assert_eq!(cidrs(&s, "fail2ban"), [V4]);
}

// See: issue 13, item 1 (an accept list skips never_ban and the node rule,
// also when sync re-adds; the ban list keeps them; sync does not fight).
#[test]
fn r13_never_ban_and_nodes_do_not_deny_the_accept_list_and_sync_re_adds() {
    let extra = "\n[rules]\nnever_ban = [\"198.51.100.0/24\"]\n\n[dns]\nipset = \"trusted\"\n";
    let Some((s, hosts)) = setup("r13_accept_rules", vec![], extra) else {
        return;
    };
    // 127.0.0.1 is the emulator's, the PVE node's, address.
    hosts.set(&[(V4, HOME), ("127.0.0.1", OFFICE)]);
    ok(dns(&s, &hosts, &["dns", HOME, OFFICE]));
    assert_eq!(cidrs(&s, "trusted"), ["127.0.0.1", V4]);
    s.emu.clear_requests();
    ok(s.run(&["sync"]));
    ok(s.run(&["-f", "flush", "--remove"]));
    assert_eq!(
        writes(&s),
        Vec::<(String, String)>::new(),
        "sync fights dns"
    );
    // Lost by hand: sync puts them back through the host's accept-list write.
    let fw = s.emu.cluster_fw();
    let kept: Vec<&str> = fw
        .lines()
        .filter(|l| !l.contains("f2p:web01/dns/-"))
        .collect();
    s.emu.set_cluster_fw(&(kept.join("\n") + "\n"));
    assert!(cidrs(&s, "trusted").is_empty());
    let r = ok(s.run(&["sync"]));
    assert!(
        r.stdout.contains("IPSet 'trusted': 0 entries, 2 re-added"),
        "{r:?}"
    );
    assert_eq!(cidrs(&s, "trusted"), ["127.0.0.1", V4]);
    s.emu.clear_requests();
    ok(s.run(&["sync"]));
    assert_eq!(writes(&s), Vec::<(String, String)>::new());
    // The ban list keeps both rules.
    for target in [V4, "127.0.0.1"] {
        let r = s.run(&["-f", "ban", target]);
        assert_eq!(r.code, 2, "{target}: {r:?}");
    }
}

// See: issue 13, item 1 (the default falls back to [pve] ipset: an IPSet
// is a ban list or an accept list, never both)
#[test]
fn r13_dns_refuses_a_ban_list_and_ban_refuses_an_accept_list() {
    let Some((s, hosts)) = setup("r13_ban_or_accept", vec![], "") else {
        return;
    };
    hosts.set(&[(V4, HOME)]);
    let r = dns(&s, &hosts, &["dns", HOME]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stderr
            .contains("IPSet 'fail2ban' is where bans go ([pve] ipset"),
        "{r:?}"
    );
    assert!(r.stderr.contains("fallback"), "{r:?}");
    assert!(r.stderr.contains("-i trusted"), "{r:?}");
    let r = dns(&s, &hosts, &["-i", "fail2ban", "dns", HOME]);
    assert_eq!(r.code, 2, "{r:?}");
    // An IPSet that holds bans is a ban list too.
    ok(s.run(&[
        "--queue-only",
        "ban",
        "-i",
        "trusted",
        "192.0.2.5",
        "--jail",
        "sshd",
    ]));
    let r = dns(&s, &hosts, &["-i", "trusted", "dns", HOME]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("holds bans (jail sshd)"), "{r:?}");
    assert!(s.emu.requests().iter().all(|r| r.method == "GET"));
    assert!(cidrs(&s, "fail2ban").is_empty() && cidrs(&s, "trusted").is_empty());
    ok(s.run(&["--queue-only", "unban", "-i", "trusted", "192.0.2.5"]));
    ok(s.run(&["sync"]));

    // Named as the accept list, bans and unbans there are refused.
    let toml = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{toml}\n[dns]\nipset = \"trusted\"\n"));
    ok(dns(&s, &hosts, &["dns", HOME]));
    for cmd in ["ban", "unban"] {
        let r = s.run(&["-f", cmd, "-i", "trusted", "192.0.2.6"]);
        assert_eq!(r.code, 2, "{cmd}: {r:?}");
        assert!(
            r.stderr.contains("IPSet 'trusted' is an accept list"),
            "{r:?}"
        );
    }
    assert_eq!(cidrs(&s, "trusted"), [V4]);
    // Removing a name with -i naming the ban list leaves that a ban list:
    // a ban queued meanwhile lands in this run's own pass.
    ok(s.run(&["--queue-only", "ban", "192.0.2.77", "--jail", "sshd"]));
    ok(dns(
        &s,
        &hosts,
        &["-i", "fail2ban", "dns", "--remove", HOME],
    ));
    assert_eq!(cidrs(&s, "fail2ban"), ["192.0.2.77"]);
    assert!(cidrs(&s, "trusted").is_empty());
}

// See: issue 13, item 1 (the same queue: a kill -9 mid-reconcile loses nothing)
#[test]
fn r13_kill_9_mid_reconcile_loses_nothing_and_doubles_nothing() {
    let Some((s, hosts)) = setup("r13_kill_9", vec![], "\n[dns]\nipset = \"trusted\"\n") else {
        return;
    };
    let addrs: Vec<String> = (1..=5).map(|i| format!("203.0.113.{i}")).collect();
    let lines: Vec<(&str, &str)> = addrs.iter().map(|a| (a.as_str(), HOME)).collect();
    hosts.set(&lines);
    s.emu
        .fail_next_writes(5, Fault::Stall(Duration::from_millis(700)));
    let mut child = hosts
        .command(&s.config, &["dns", HOME])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the first entry to land", Duration::from_secs(30), || {
        !cidrs(&s, "trusted").is_empty()
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let landed = cidrs(&s, "trusted").len();
    assert!(landed < 5, "the run finished before it was killed");
    // The state still holds the rest; the next run (or sync) sends it.
    let status = status_json(&s);
    assert!(
        status["queue"]["pending"].as_u64().unwrap() >= 1,
        "{status}"
    );
    ok(dns(&s, &hosts, &["dns", HOME]));
    assert_eq!(cidrs(&s, "trusted"), addrs);
    let posts = s
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.status == 200)
        .count();
    assert_eq!(posts, 5, "each address added once");
    let status = status_json(&s);
    assert_eq!(status["queue"]["pending"], 0, "{status}");
    s.emu.clear_requests();
    ok(s.run(&["sync"]));
    ok(dns(&s, &hosts, &["dns", HOME]));
    assert_eq!(writes(&s), Vec::<(String, String)>::new());
}

// See: issue 13, item 3 (status shows each name, its addresses, the last lookup)
#[test]
fn r13_status_shows_each_name_its_addresses_and_the_last_lookup() {
    let extra = format!("\n[dns]\nnames = [\"{HOME}\", \"{OFFICE}\"]\nipset = \"trusted\"\n");
    let Some((s, hosts)) = setup("r13_status", vec![], &extra) else {
        return;
    };
    hosts.set(&[(V4, HOME), (V6, HOME)]);
    // Without names, `dns` keeps [dns] names (as the timer runs it).
    let r = dns(&s, &hosts, &["dns"]);
    assert_eq!(r.code, 1, "office does not resolve yet: {r:?}");
    hosts.set(&[(V4, HOME), (V6, HOME), ("203.0.113.9", OFFICE)]);
    ok(dns(&s, &hosts, &["dns"]));
    assert_eq!(cidrs(&s, "trusted"), [V4, V6, "203.0.113.9"]);
    let r = ok(s.run(&["status"]));
    assert!(
        r.stdout.contains(&format!(
            "dns:           {HOME} in IPSet 'trusted': {V4}, {V6} (resolved 20"
        )),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains(&format!("{OFFICE} in IPSet 'trusted': 203.0.113.9")),
        "{r:?}"
    );
    assert!(r.stdout.contains("s ago)"), "{r:?}");
    let status = status_json(&s);
    let names = status["dns"].as_array().unwrap();
    assert_eq!(names.len(), 2, "{status}");
    assert_eq!(names[0]["name"], HOME);
    assert_eq!(names[0]["ipset"], "trusted");
    assert_eq!(names[0]["addresses"], serde_json::json!([V4, V6]));
    assert!(names[0]["resolved"].as_f64().unwrap() > 1.7e9, "{status}");
    // Its entries are no bans.
    assert_eq!(status["queue"]["desired"], 0, "{status}");
}

// See: issue 13, item 3 (`sandbox dns NAME` shows what it would do)
#[test]
fn r13_sandbox_dns_shows_what_it_would_do() {
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("cluster.fw");
    let fw = fw.to_str().unwrap();
    let resolve = format!("{HOME}={V4},{V6}");
    let r = support::run_binary(&[
        "sandbox",
        "--seed",
        fw,
        "--save",
        fw,
        "dns",
        HOME,
        "-i",
        "trusted",
        "--resolve",
        &resolve,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("no policy runs"), "{r:?}");
    assert!(
        r.stdout.contains(&format!(
            "POST /cluster/firewall/ipset/trusted cidr=\"{V4}\""
        )),
        "{r:?}"
    );
    assert!(r.stdout.contains("IPSet 'trusted' (2 entries)"), "{r:?}");
    assert!(
        r.stdout.contains(&format!("{HOME} f2p:sandbox/dns/-")),
        "{r:?}"
    );
    // Next time one address changed: one DELETE, one POST.
    let resolve = format!("{HOME}=198.51.100.8,{V6}");
    let r = support::run_binary(&[
        "sandbox",
        "--seed",
        fw,
        "--save",
        fw,
        "dns",
        HOME,
        "-i",
        "trusted",
        "--resolve",
        &resolve,
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let calls: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("POST") || l.trim_start().starts_with("DELETE"))
        .collect();
    assert_eq!(calls.len(), 2, "{r:?}");
    assert!(
        r.stdout
            .contains("added 198.51.100.8, removed 198.51.100.7"),
        "{r:?}"
    );
    // A lookup that fails: exit 1, the entries stay.
    let r = support::run_binary(&[
        "sandbox",
        "--seed",
        fw,
        "dns",
        HOME,
        "-i",
        "trusted",
        "--resolve",
        &format!("{HOME}="),
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("IPSet 'trusted' (2 entries)"), "{r:?}");
    // The ban list is refused as a real run refuses it.
    let r = support::run_binary(&["sandbox", "dns", HOME, "--resolve", &resolve]);
    assert_eq!(r.code, 2, "{r:?}");
}

// See: issue 13, item 2 (a timer in the package runs `dns` every 5 minutes,
// not enabled by default)
#[test]
fn r13_the_package_has_a_dns_timer_that_is_not_enabled() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../packaging");
    let timer = std::fs::read_to_string(format!("{dir}/fail2pvefw-dns.timer")).unwrap();
    assert!(timer.contains("OnUnitActiveSec=5min"), "{timer}");
    let service = std::fs::read_to_string(format!("{dir}/fail2pvefw-dns.service")).unwrap();
    assert!(
        service.contains("ExecStart=/usr/bin/fail2pvefw dns\n"),
        "{service}"
    );
    let manifest = include_str!("../Cargo.toml");
    assert!(manifest.contains("\"../packaging/fail2pvefw-dns.timer\""));
    // cargo-deb enables units only with a systemd-units table: there is none.
    assert!(
        !manifest.contains("systemd-units"),
        "units must not be enabled"
    );
}

// See: issue 13, item 1 (the same queue: PVE down loses nothing; a missing
// IPSet queues nothing, so it cannot hold the bans' queue)
#[test]
fn r13_pve_down_queues_the_change_and_a_missing_ipset_queues_nothing() {
    let Some((s, hosts)) = setup("r13_pve_down", vec![], "\n[dns]\nipset = \"trusted\"\n") else {
        return;
    };
    hosts.set(&[(V4, HOME), (V6, HOME)]);
    let r = dns(&s, &hosts, &["-i", "nosuch", "dns", HOME]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no such IPSet"), "{r:?}");
    assert!(
        r.stderr
            .contains("pvesh create /cluster/firewall/ipset --name nosuch"),
        "{r:?}"
    );
    assert_eq!(status_json(&s)["queue"]["pending"], 0);
    s.emu.pause();
    let r = dns(&s, &hosts, &["dns", HOME]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains(&format!("added {V4} queued")), "{r:?}");
    assert!(r.stderr.contains("not all sent"), "{r:?}");
    s.emu.resume();
    assert!(cidrs(&s, "trusted").is_empty());
    ok(s.run(&["sync"]));
    assert_eq!(cidrs(&s, "trusted"), [V4, V6]);
    s.emu.clear_requests();
    ok(dns(&s, &hosts, &["dns", HOME]));
    assert_eq!(writes(&s), Vec::<(String, String)>::new());
}
