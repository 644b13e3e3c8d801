//! End to end with the real fail2ban: a sandboxed `fail2ban-server` (its own
//! config copy, socket, pidfile and database in a temp dir) runs the
//! project's `action.d/fail2pvefw.conf` with the binary under test, against
//! the PVE emulator over HTTPS on 127.0.0.1. Needs Debian's fail2ban
//! (`apt-get install fail2ban`); no fail2ban service needs to run, and the
//! system's one is never touched.
//!
//! Timings are printed (`cargo test --test fail2ban -- --nocapture`), never
//! asserted: the goals belong to `benches/run.sh`.

mod support;

use std::time::{Duration, Instant};
use support::Setup;
use support::fail2ban::{Fail2ban, JAIL, Jail, wait_until};

const LAND: Duration = Duration::from_secs(30);

/// What to show when a wait times out.
fn context(s: &Setup, f2b: &Fail2ban) -> String {
    let requests = s.emu.requests();
    let tail = &requests[requests.len().saturating_sub(10)..];
    format!(
        "ipset: {:?}\nlast requests: {tail:#?}\n--- drain.log ---\n{}\n{}",
        s.emu.entries("fail2ban"),
        std::fs::read_to_string(s.dir.path().join("state/drain.log")).unwrap_or_default(),
        f2b.log_text()
    )
}

fn started(jail: Jail) -> Fail2ban {
    let mut f2b = Fail2ban::new(jail);
    f2b.start();
    f2b
}

fn sorted_entries(s: &Setup) -> Vec<(String, Option<String>)> {
    let mut entries: Vec<_> = s
        .emu
        .entries("fail2ban")
        .unwrap()
        .into_iter()
        .map(|e| (e.cidr, e.comment))
        .collect();
    entries.sort();
    entries
}

fn comment_of(s: &Setup, cidr: &str) -> String {
    s.emu
        .entries("fail2ban")
        .unwrap()
        .into_iter()
        .find(|e| e.cidr == cidr)
        .and_then(|e| e.comment)
        .unwrap_or_else(|| panic!("no comment on {cidr}"))
}

fn pending(s: &Setup) -> u64 {
    let r = s.run(&["status", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let status: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    status["queue"]["pending"].as_u64().unwrap()
}

#[test]
fn failures_in_the_log_land_with_jail_and_failure_count() {
    let s = Setup::new();
    let f2b = started(Jail::fail2pvefw(&s.config));
    let t = Instant::now();
    f2b.fail("203.0.113.7", 3);
    wait_until(
        "the ban to land",
        LAND,
        || s.cidrs() == ["203.0.113.7"],
        || context(&s, &f2b),
    );
    println!(
        "3 failures in the log -> entry in PVE: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let comment = comment_of(&s, "203.0.113.7");
    assert!(
        comment.contains(&format!("{JAIL}, 3 failures")),
        "{comment}"
    );
    assert!(
        comment.contains(&format!("/{JAIL}/")),
        "ownership tag names the jail: {comment}"
    );
    assert_eq!(f2b.currently_banned(), 1);
}

#[test]
fn bantime_expiry_removes_the_entry() {
    let s = Setup::new();
    let f2b = started(Jail::fail2pvefw(&s.config).bantime("4"));
    let ip = "203.0.113.9".to_string();
    f2b.banip(std::slice::from_ref(&ip));
    let t = Instant::now();
    wait_until(
        "the ban to land",
        LAND,
        || s.cidrs() == [ip.as_str()],
        || context(&s, &f2b),
    );
    wait_until(
        "the expired ban to leave",
        LAND,
        || s.cidrs().is_empty(),
        || context(&s, &f2b),
    );
    println!(
        "bantime 4 s: entry removed {:.2} s after the ban",
        t.elapsed().as_secs_f64()
    );
    let deletes: Vec<_> = s
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert_eq!(deletes[0].status, 200, "{deletes:?}");
    assert_eq!(f2b.currently_banned(), 0);
}

#[test]
fn banip_cidr_and_ipv6_land_as_pve_stores_them() {
    let s = Setup::new();
    let f2b = started(Jail::fail2pvefw(&s.config));
    let reply = f2b.banip(&["192.0.2.0/24".into()]);
    assert_eq!(reply.stdout.trim(), "1", "{reply:?}");
    f2b.fail("2001:db8::42", 3);
    wait_until(
        "the CIDR and the IPv6 ban to land",
        LAND,
        || {
            let mut c = s.cidrs();
            c.sort();
            c == ["192.0.2.0/24", "2001:db8::42"]
        },
        || context(&s, &f2b),
    );
    let comment = comment_of(&s, "192.0.2.0/24");
    assert!(
        comment.contains(&format!("{JAIL}, 0 failures")),
        "{comment}"
    );
    let comment = comment_of(&s, "2001:db8::42");
    assert!(
        comment.contains(&format!("{JAIL}, 3 failures")),
        "{comment}"
    );
    // unbanip removes exactly what banip stored.
    f2b.ok(&["set", JAIL, "unbanip", "192.0.2.0/24"]);
    wait_until(
        "the CIDR to leave",
        LAND,
        || s.cidrs() == ["2001:db8::42"],
        || context(&s, &f2b),
    );
}

#[test]
fn two_hundred_bans_land_and_fail2ban_waits_as_for_a_do_nothing_action() {
    let ips: Vec<String> = (1..=200).map(|i| format!("198.51.100.{i}")).collect();

    // The baseline: the same call with a command that does nothing.
    let mut noop = Fail2ban::new(Jail::noop());
    noop.start();
    let baseline = noop.banip(&ips);
    assert_eq!(baseline.stdout.trim(), "200", "{baseline:?}");
    noop.stop();
    drop(noop);

    let s = Setup::new();
    let f2b = started(Jail::fail2pvefw(&s.config));
    let reply = f2b.banip(&ips);
    assert_eq!(reply.stdout.trim(), "200", "{reply:?}");
    let landed = wait_until(
        "200 bans to land",
        Duration::from_secs(60),
        || s.cidrs().len() == 200,
        || context(&s, &f2b),
    );
    let mut cidrs = s.cidrs();
    cidrs.sort();
    let mut want = ips.clone();
    want.sort();
    assert_eq!(cidrs, want);
    assert_eq!(s.emu.write_count(), 200, "one POST per ban");
    assert_eq!(pending(&s), 0);
    assert_eq!(f2b.currently_banned(), 200);

    let per = |d: Duration| d.as_secs_f64() * 1000.0 / 200.0;
    println!(
        "fail2ban-client set {JAIL} banip <200 addresses> (figures, not asserted; run alone for clean ones):\n  \
         do-nothing action: {:.2} s ({:.1} ms/ban)\n  fail2pvefw:        {:.2} s ({:.1} ms/ban), ratio {:.2}\n  \
         all 200 in PVE {:.2} s after the call returned",
        baseline.took.as_secs_f64(),
        per(baseline.took),
        reply.took.as_secs_f64(),
        per(reply.took),
        reply.took.as_secs_f64() / baseline.took.as_secs_f64(),
        landed.as_secs_f64(),
    );
}

#[test]
fn restart_with_the_same_database_costs_no_pve_writes() {
    let s = Setup::new();
    let mut f2b = started(Jail::fail2pvefw(&s.config));
    f2b.fail("203.0.113.50", 3);
    let mut ips: Vec<String> = (1..=40).map(|i| format!("203.0.113.{i}")).collect();
    ips.extend(["192.0.2.0/24".to_string(), "2001:db8::9".to_string()]);
    f2b.banip(&ips);
    let total = ips.len() + 1;
    wait_until(
        "the bans to land",
        LAND,
        || s.cidrs().len() == total,
        || context(&s, &f2b),
    );
    wait_until(
        "the queue to drain",
        LAND,
        || pending(&s) == 0,
        || context(&s, &f2b),
    );
    assert_eq!(f2b.currently_banned(), total);
    let writes = s.emu.write_count();
    let before = sorted_entries(&s);

    let stopped = f2b.stop();
    let t = Instant::now();
    f2b.start();
    wait_until(
        "fail2ban to restore the bans",
        LAND,
        || f2b.currently_banned() == total,
        || context(&s, &f2b),
    );
    let restored = t.elapsed();
    assert_eq!(pending(&s), 0, "a restored ban was queued");
    let sync = s.run(&["sync"]);
    assert_eq!(sync.code, 0, "{sync:?}");
    assert!(
        sync.stdout.contains("0 re-added, 0 expired removed"),
        "{sync:?}"
    );
    let changes: Vec<_> = s
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert_eq!(
        s.emu.write_count(),
        writes,
        "PVE writes at restart; all writes: {changes:#?}"
    );
    assert_eq!(sorted_entries(&s), before);
    println!(
        "restart with {total} bans: stop {:.2} s, start until all restored {:.2} s, 0 PVE writes",
        stopped.as_secs_f64(),
        restored.as_secs_f64()
    );
}
