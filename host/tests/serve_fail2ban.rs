//! The real fail2ban with the Python action (`action.d/fail2pvefw.py`)
//! and `fail2pvefw serve`, against the PVE emulator: bursts of bans land,
//! a restart costs no PVE write, and no ban is lost or doubled when the
//! service is stopped or killed mid-burst (the action falls back to the
//! program). Timings are printed, never asserted: the goals belong to
//! `benches/run.sh`.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::Setup;
use support::fail2ban::{Fail2ban, Jail, wait_until};
use support::serve::{Service, serve_table};

const LAND: Duration = Duration::from_secs(120);

fn context(s: &Setup, f2b: &Fail2ban, svc: Option<&Service>) -> String {
    let requests = s.emu.requests();
    let tail = &requests[requests.len().saturating_sub(5)..];
    format!(
        "{} entries\nlast requests: {tail:#?}\n--- serve ---\n{}\n--- drain.log ---\n{}\n{}",
        s.cidrs().len(),
        svc.map(Service::log_text).unwrap_or_default(),
        std::fs::read_to_string(s.state_dir().join("drain.log")).unwrap_or_default(),
        f2b.log_text()
    )
}

/// A set-up with `[serve] socket` in its temp dir.
fn setup() -> (Setup, PathBuf) {
    let s = Setup::new();
    let socket = s.dir.path().join("run/f2p.sock");
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{text}{}", serve_table(&socket)));
    (s, socket)
}

fn pending(s: &Setup) -> u64 {
    let r = s.run(&["status", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let status: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    status["queue"]["pending"].as_u64().unwrap()
}

fn ips(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("198.18.{}.{}", i / 250, i % 250 + 1))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn bans_land_and_a_restart_costs_no_writes(n: usize) {
    let ips = ips(n);
    let mut noop = Fail2ban::new(Jail::noop());
    noop.start();
    let baseline = noop.banip(&ips);
    assert_eq!(baseline.stdout.trim(), n.to_string(), "{baseline:?}");
    noop.stop();
    drop(noop);

    let (s, socket) = setup();
    let svc = Service::start(&s.config, &socket);
    let mut f2b = Fail2ban::new(Jail::python(&s.config, &socket));
    f2b.start();
    let reply = f2b.banip(&ips);
    assert_eq!(reply.stdout.trim(), n.to_string(), "{reply:?}");
    let landed = wait_until(
        "every ban to land",
        LAND,
        || s.cidrs().len() == n,
        || context(&s, &f2b, Some(&svc)),
    );
    assert_eq!(sorted(s.cidrs()), sorted(ips.clone()));
    assert_eq!(s.emu.write_count(), n, "one POST per ban");
    wait_until(
        "the queue to settle",
        LAND,
        || pending(&s) == 0,
        || context(&s, &f2b, Some(&svc)),
    );
    assert_eq!(f2b.currently_banned(), n);
    assert!(
        !s.state_dir().join("drain.log").exists(),
        "every ban went through the service, none through the fallback"
    );
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
    println!(
        "fail2ban-client set JAIL banip <{n} addresses> (figures, not asserted):\n  \
         do-nothing shell action: {:.2} s ({:.2} ms/ban)\n  \
         fail2pvefw.py + serve:   {:.2} s ({:.2} ms/ban), ratio {:.2}\n  \
         all {n} in PVE {:.2} s after the call returned",
        baseline.took.as_secs_f64(),
        per(baseline.took),
        reply.took.as_secs_f64(),
        per(reply.took),
        reply.took.as_secs_f64() / baseline.took.as_secs_f64(),
        landed.as_secs_f64(),
    );

    // A restart of fail2ban: flush keeps the bans, restored ones are not
    // re-sent (norestored).
    let writes = s.emu.write_count();
    f2b.stop();
    let t = Instant::now();
    f2b.start();
    wait_until(
        "fail2ban to restore the bans",
        LAND,
        || f2b.currently_banned() == n,
        || context(&s, &f2b, Some(&svc)),
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pending(&s), 0, "a restored ban was queued");
    assert_eq!(s.emu.write_count(), writes, "PVE writes at restart");
    println!(
        "restart with {n} bans: all restored after {:.2} s, 0 PVE writes",
        t.elapsed().as_secs_f64()
    );
}

#[test]
fn two_hundred_bans_through_the_python_action_land_and_a_restart_costs_no_writes() {
    bans_land_and_a_restart_costs_no_writes(200);
}

#[test]
fn a_thousand_bans_through_the_python_action_land_and_a_restart_costs_no_writes() {
    bans_land_and_a_restart_costs_no_writes(1000);
}

#[test]
fn with_the_service_stopped_mid_burst_every_ban_lands_through_the_fallback() {
    let (s, socket) = setup();
    let mut svc = Service::start(&s.config, &socket);
    let mut f2b = Fail2ban::new(Jail::python(&s.config, &socket));
    f2b.start();
    let ips = ips(200);
    let burst = {
        let (conf, sock) = (f2b.conf.clone(), f2b.socket.clone());
        let ips = ips.clone();
        std::thread::spawn(move || {
            let mut cmd = std::process::Command::new("fail2ban-client");
            cmd.arg("-c").arg(conf).arg("-s").arg(sock);
            cmd.args(["set", support::fail2ban::JAIL, "banip"])
                .args(&ips);
            cmd.output().unwrap()
        })
    };
    wait_until(
        "some bans through the service",
        LAND,
        || s.emu.write_count() >= 20,
        || context(&s, &f2b, Some(&svc)),
    );
    assert_eq!(svc.stop(), 0);
    let out = burst.join().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "200",
        "{out:?}"
    );
    wait_until(
        "every ban to land",
        LAND,
        || s.cidrs().len() == 200,
        || context(&s, &f2b, None),
    );
    assert_eq!(sorted(s.cidrs()), sorted(ips));
    assert!(
        s.state_dir().join("drain.log").exists(),
        "the fallback's background drainer sent the rest"
    );
    wait_until(
        "the queue to settle",
        LAND,
        || pending(&s) == 0,
        || context(&s, &f2b, None),
    );
    assert_eq!(s.emu.write_count(), 200, "no ban sent twice");
    f2b.stop();
}

#[test]
fn with_the_service_killed_mid_drain_nothing_is_lost_or_doubled_once_it_is_back() {
    let (s, socket) = setup();
    let mut svc = Service::start(&s.config, &socket);
    let mut f2b = Fail2ban::new(Jail::python(&s.config, &socket));
    f2b.start();
    let ips = ips(200);
    s.emu.pause();
    let reply = f2b.banip(&ips);
    assert_eq!(reply.stdout.trim(), "200", "{reply:?}");
    // The sender waits for PVE's answer to its first call: kill it there.
    std::thread::sleep(Duration::from_millis(300));
    svc.kill();
    s.emu.resume();
    let before = s.emu.write_count();
    let svc = Service::start(&s.config, &socket);
    wait_until(
        "every ban to land",
        LAND,
        || s.cidrs().len() == 200,
        || context(&s, &f2b, Some(&svc)),
    );
    assert_eq!(sorted(s.cidrs()), sorted(ips));
    wait_until(
        "the queue to settle",
        LAND,
        || pending(&s) == 0,
        || context(&s, &f2b, Some(&svc)),
    );
    let writes = s.emu.write_count();
    // At most the call in flight at the kill is made again.
    assert!(
        writes <= 201,
        "{writes} writes ({before} before the restart)"
    );
    let sync = s.run(&["sync"]);
    assert_eq!(sync.code, 0, "{sync:?}");
    assert!(
        sync.stdout.contains("0 re-added, 0 expired removed"),
        "{sync:?}"
    );
    f2b.stop();
}
