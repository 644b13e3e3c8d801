//! `fail2pvefw crowdsec` against the real CrowdSec LAPI (Debian's 1.4.6 on
//! loopback, no Central API) and the PVE emulator over HTTPS: decisions
//! land and leave, ranges become networks, restarts and new databases lose
//! and duplicate nothing, both engines share one entry, a large import
//! stays within the cap and the write rate, and the key is never shown.
//!
//! Needs `scripts/install-crowdsec`; without it the tests skip loudly, and
//! fail under CI (the fixture, `support/crowdsec.rs`).

#[path = "support/crowdsec.rs"]
mod lapi;
mod support;
mod wasm_build;

use lapi::{Decision, Lapi};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{Run, Setup, wait_until};

const INSTANCE: &str = "web01";

/// The emulator, the LAPI and a config with `[crowdsec]` pointing at both.
struct Bed {
    s: Setup,
    lapi: Lapi,
    key: String,
    key_file: PathBuf,
}

impl Bed {
    fn start() -> Option<Bed> {
        Bed::with("ipset = \"fail2ban\"\n", 50.0)
    }

    /// `crowdsec` is more of `[crowdsec]`; `rate` is `[pve] writes_per_second`.
    fn with(crowdsec: &str, rate: f64) -> Option<Bed> {
        let lapi = Lapi::start_or_skip()?;
        let key = lapi.bouncer_key("fail2pvefw");
        let s = Setup::new();
        let key_file = s.dir.path().join("crowdsec.key");
        support::write_private(&key_file, &format!("{key}\n"));
        let bed = Bed {
            s,
            lapi,
            key,
            key_file,
        };
        bed.configure(crowdsec, rate);
        Some(bed)
    }

    fn configure(&self, crowdsec: &str, rate: f64) {
        let state = self.s.state_dir();
        let base = self
            .s
            .emu
            .config_toml(&self.s.token, "fail2ban", state.to_str().unwrap())
            .replace(
                "\n\n[state]",
                &format!("\nwrites_per_second = {rate}\n\n[state]"),
            );
        let text = format!(
            "{base}instance = \"{INSTANCE}\"\n\n[crowdsec]\nurl = \"{}\"\napi_key_file = \"{}\"\n{crowdsec}",
            self.lapi.url,
            self.key_file.display()
        );
        self.s.write_config(&text);
    }

    fn run(&self, args: &[&str]) -> Run {
        self.s.run(args)
    }

    /// `crowdsec --once`, which must succeed.
    fn once(&self) -> Run {
        let r = self.run(&["-v", "crowdsec", "--once"]);
        assert_eq!(r.code, 0, "{r:?}");
        r
    }

    fn cidrs(&self) -> Vec<String> {
        let mut c = self.s.cidrs();
        c.sort();
        c
    }

    fn status(&self) -> Value {
        let r = self.run(&["status", "--json"]);
        assert_eq!(r.code, 0, "{r:?}");
        serde_json::from_str(&r.stdout).unwrap()
    }

    /// Starts the long-lived bouncer; the guard kills it (only it).
    fn service(&self) -> Service {
        let log = self.s.dir.path().join("service.log");
        let child = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
            .args([
                "--config",
                self.s.config.to_str().unwrap(),
                "-v",
                "crowdsec",
            ])
            .env("TZ", "UTC")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Service { child, log }
    }
}

struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn addresses(range: std::ops::RangeInclusive<u32>) -> Vec<String> {
    range
        .map(|i| format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255))
        .collect()
}

/// When the emulator answered each write.
fn write_times(s: &Setup) -> Vec<Instant> {
    s.emu
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.at)
        .collect()
}

#[test]
fn once_applies_50_decisions_and_removes_10_deleted() {
    let Some(bed) = Bed::start() else { return };
    let all = addresses(1..=50);
    bed.lapi
        .import(all.iter().map(|a| format!("4h,ip,{a},lists,my-list")));
    let r = bed.once();
    assert!(
        r.stdout
            .contains("full pull (the first pull): 50 decisions, +50"),
        "{r:?}"
    );
    let mut want = all.clone();
    want.sort();
    assert_eq!(bed.cidrs(), want);
    // The compact comment: who, why, the tag; no timestamp.
    let entries = bed.s.emu.entries("fail2ban").unwrap();
    let comment = entries[0].comment.as_deref().unwrap();
    assert!(
        comment.starts_with("cs cscli-import my-list f2p:web01/crowdsec/"),
        "{comment}"
    );
    for a in &all[..10] {
        assert_eq!(bed.lapi.delete_decision(a), 1);
    }
    let r = bed.once();
    assert!(r.stdout.contains("delta: +0 −10"), "{r:?}");
    let mut left = all[10..].to_vec();
    left.sort();
    assert_eq!(bed.cidrs(), left);
    // Nothing left to do: no write.
    let before = bed.s.emu.write_count();
    let r = bed.once();
    assert!(r.stdout.contains("delta: +0 −0"), "{r:?}");
    assert_eq!(bed.s.emu.write_count(), before);
    let st = bed.status();
    assert_eq!(st["crowdsec"]["decisions"], 40, "{st:#}");
    assert_eq!(st["crowdsec"]["applied_entries"], 40, "{st:#}");
    assert_eq!(st["crowdsec"]["not_applied"], 0, "{st:#}");
}

#[test]
fn a_decision_that_runs_out_leaves() {
    let Some(bed) = Bed::start() else { return };
    bed.lapi.add_decision("192.0.2.31", "4s", "short");
    bed.lapi.add_decision("192.0.2.32", "4h", "long");
    bed.once();
    assert_eq!(bed.cidrs(), ["192.0.2.31", "192.0.2.32"]);
    let entry = bed.s.emu.entries("fail2ban").unwrap();
    let short = entry.iter().find(|e| e.cidr == "192.0.2.31").unwrap();
    // Its tag carries its expiry, so `sync` could remove it without us.
    let tag = short
        .comment
        .as_deref()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let expires: i64 = tag.parse().unwrap();
    assert!((expires - support::unix_now()).abs() <= 5, "{short:?}");
    std::thread::sleep(Duration::from_secs(5));
    let r = bed.once();
    assert!(r.stdout.contains("queued 0 bans, 1 unbans"), "{r:?}");
    assert_eq!(bed.cidrs(), ["192.0.2.32"]);
}

#[test]
fn a_range_decision_becomes_the_network() {
    let Some(bed) = Bed::start() else { return };
    bed.lapi.add_decision("198.51.100.77/24", "1h", "range");
    bed.lapi
        .add_decision("2001:DB8:0:0:1::/64", "1h", "v6 range");
    // An address inside the /24 goes in with it.
    bed.lapi.add_decision("198.51.100.9", "1h", "inside");
    bed.once();
    // Host bits cleared, IPv6 lower case and compressed, as PVE stores it.
    assert_eq!(bed.cidrs(), ["198.51.100.0/24", "2001:db8::/64"]);
    let st = bed.status();
    assert_eq!(st["crowdsec"]["verdicts"]["aggregated"], 1, "{st:#}");
}

#[test]
fn a_lapi_restart_loses_and_duplicates_nothing() {
    let Some(mut bed) = Bed::start() else { return };
    let all = addresses(1..=20);
    bed.lapi
        .import(all.iter().map(|a| format!("4h,ip,{a},x,x")));
    bed.once();
    let writes = bed.s.emu.write_count();
    assert_eq!(writes, 20);
    // Restarted between two runs: the delta goes on, nothing is sent.
    bed.lapi.restart();
    let r = bed.once();
    assert!(r.stdout.contains("delta: +0 −0"), "{r:?}");
    // Down for one run: exit 1, nothing removed; the run after it is a
    // full pull that changes nothing.
    bed.lapi.stop();
    let r = bed.run(&["crowdsec", "--once"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("unreachable"), "{r:?}");
    assert_eq!(bed.cidrs().len(), 20);
    bed.lapi.start_again();
    bed.lapi.add_decision("192.0.2.99", "1h", "after");
    let r = bed.once();
    assert!(
        r.stdout
            .contains("full pull (after a failed pull): 21 decisions, +1 −0"),
        "{r:?}"
    );
    assert_eq!(bed.s.emu.write_count(), writes + 1);
    assert_eq!(bed.cidrs().len(), 21);
    let entries = bed.s.emu.entries("fail2ban").unwrap();
    assert_eq!(entries.len(), 21, "no duplicate: {entries:?}");
}

#[test]
fn a_new_lapi_database_keeps_entries_until_the_key_works_again() {
    let Some(mut bed) = Bed::start() else { return };
    bed.lapi.add_decision("192.0.2.41", "4h", "a");
    bed.lapi.add_decision("192.0.2.42", "4h", "b");
    bed.once();
    bed.lapi.restart_with_new_database();
    let r = bed.run(&["crowdsec", "--once"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("refused the bouncer key (403)"), "{r:?}");
    assert!(r.stderr.contains("cscli bouncers add"), "{r:?}");
    assert_eq!(bed.cidrs(), ["192.0.2.41", "192.0.2.42"]);
    // The admin re-creates the same key; the new database holds one
    // decision, also held before, and one new.
    bed.lapi.bouncer_with_key("fail2pvefw", &bed.key);
    bed.lapi.add_decision("192.0.2.42", "4h", "b again");
    bed.lapi.add_decision("192.0.2.43", "4h", "c");
    let r = bed.once();
    assert!(
        r.stdout.contains("full pull (after a failed pull)"),
        "{r:?}"
    );
    assert_eq!(bed.cidrs(), ["192.0.2.42", "192.0.2.43"]);
}

#[test]
fn an_address_both_engines_ban_is_one_entry_and_leaves_when_neither_wants_it() {
    let Some(bed) = Bed::start() else { return };
    let ok = |r: Run| assert_eq!(r.code, 0, "{r:?}");
    ok(bed.run(&[
        "-f",
        "ban",
        "192.0.2.77",
        "--jail",
        "sshd",
        "--bantime",
        "3600",
    ]));
    bed.lapi.add_decision("192.0.2.77", "4h", "both");
    let before = bed.s.emu.write_count();
    bed.once();
    assert_eq!(bed.cidrs(), ["192.0.2.77"]);
    assert_eq!(
        bed.s.emu.write_count(),
        before,
        "it is there already: no write"
    );
    // fail2ban lets go: CrowdSec still holds it.
    let r = bed.run(&["-f", "unban", "192.0.2.77", "--jail", "sshd"]);
    assert!(r.stdout.contains("still held by crowdsec"), "{r:?}");
    assert_eq!(bed.cidrs(), ["192.0.2.77"]);
    // And the other way round: a CrowdSec decision first, then fail2ban.
    bed.lapi.add_decision("192.0.2.78", "4h", "first");
    bed.once();
    ok(bed.run(&[
        "-f",
        "ban",
        "192.0.2.78",
        "--jail",
        "sshd",
        "--bantime",
        "3600",
    ]));
    bed.lapi.delete_decision("192.0.2.78");
    bed.lapi.delete_decision("192.0.2.77");
    bed.once();
    // 77: neither wants it; 78: sshd still does.
    assert_eq!(bed.cidrs(), ["192.0.2.78"]);
    ok(bed.run(&["-f", "unban", "192.0.2.78", "--jail", "sshd"]));
    assert!(bed.cidrs().is_empty());
}

#[test]
fn twenty_thousand_decisions_stay_within_the_cap_and_the_write_rate() {
    let Some(bed) = Bed::with("max_entries = 500\n", 20.0) else {
        return;
    };
    let took = bed.lapi.import(
        addresses(1..=20_000)
            .iter()
            .map(|a| format!("24h,ip,{a},x,imported")),
    );
    eprintln!("imported 20000 decisions in {took:?}");
    // Local decisions of an agent, longer: first in. Community ones, longer
    // still: after every local one, so out.
    let agent: Vec<String> = (1..=10).map(|i| format!("203.0.113.{i}")).collect();
    let community: Vec<String> = (1..=10).map(|i| format!("198.51.100.{i}")).collect();
    for a in &agent {
        bed.lapi
            .push(&[Decision::ban(a, "48h", "crowdsec", "crowdsecurity/ssh-bf")]);
    }
    for a in &community {
        bed.lapi.push(&[Decision::ban(
            a,
            "96h",
            "CAPI",
            "crowdsecurity/http-probing",
        )]);
    }
    let started = Instant::now();
    let config = bed.s.config.clone();
    let bouncer =
        std::thread::spawn(move || support::run_config(&config, &["-v", "crowdsec", "--once"]));
    // While the bouncer sends, fail2ban's ban goes first.
    wait_until(
        "the bouncer's first writes",
        Duration::from_secs(60),
        || bed.s.emu.write_count() >= 20,
    );
    let ban = Instant::now();
    let r = bed.run(&["-f", "ban", "192.0.2.200", "--jail", "sshd"]);
    let ban_took = ban.elapsed();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        ban_took < Duration::from_secs(5),
        "fail2ban's ban waited {ban_took:?}"
    );
    let r = bouncer.join().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(r.code, 0, "{r:?}");
    eprintln!(
        "{}\n20k decisions to a capped set in {elapsed:?}; fail2ban's ban took {ban_took:?}",
        r.stdout
    );
    let cidrs = bed.cidrs();
    assert_eq!(cidrs.len(), 501, "the cap and fail2ban's ban");
    for a in &agent {
        assert!(cidrs.contains(a), "local decision {a} is in");
    }
    for a in &community {
        assert!(!cidrs.contains(a), "community decision {a} is out");
    }
    // The write rate: at most a second's worth at once, then 20 a second.
    let writes = write_times(&bed.s);
    assert_eq!(writes.len(), 501);
    for (i, w) in writes.iter().enumerate() {
        let within = writes[i..]
            .iter()
            .take_while(|x| x.duration_since(*w) < Duration::from_secs(1))
            .count();
        assert!(within <= 41, "{within} writes within a second of write {i}");
    }
    let span = writes.last().unwrap().duration_since(writes[0]);
    assert!(
        span >= Duration::from_secs(23),
        "501 writes at 20/s in {span:?}"
    );
    assert!(bed.s.emu.cluster_fw_bytes().len() < 1024 * 1024);
    let st = bed.status();
    let cs = &st["crowdsec"];
    assert_eq!(cs["decisions"], 20_020, "{cs:#}");
    assert_eq!(cs["not_applied"], 19_520, "{cs:#}");
    assert_eq!(cs["verdicts"]["over-entries"], 19_520, "{cs:#}");
    assert_eq!(cs["applied_entries"], 500, "{cs:#}");
    let text = bed.run(&["status"]).stdout;
    assert!(
        text.contains("not applied: 19520: 19520 over max_entries"),
        "{text}"
    );
    // A second run with nothing new sends nothing.
    let before = bed.s.emu.write_count();
    bed.once();
    assert_eq!(bed.s.emu.write_count(), before);
}

#[test]
fn the_service_follows_new_decisions_and_rides_out_a_lapi_outage() {
    let Some(mut bed) = Bed::with("update_frequency = 1\n", 50.0) else {
        return;
    };
    bed.lapi.add_decision("192.0.2.51", "1h", "first");
    let service = bed.service();
    let within = Duration::from_secs(10);
    wait_until("the first decision", within, || {
        bed.cidrs() == ["192.0.2.51"]
    });
    let t = Instant::now();
    bed.lapi.add_decision("192.0.2.52", "1h", "second");
    wait_until("a new decision", within, || bed.cidrs().len() == 2);
    let followed = t.elapsed();
    assert!(
        followed < Duration::from_secs(4),
        "followed in {followed:?}"
    );
    bed.lapi.delete_decision("192.0.2.51");
    wait_until("a deleted decision", within, || {
        bed.cidrs() == ["192.0.2.52"]
    });
    // One bouncer per state directory: two would take each other's deltas.
    let r = bed.run(&["crowdsec", "--once"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("another `fail2pvefw crowdsec` runs"),
        "{r:?}"
    );
    // The LAPI goes away: entries stay, one warning, not one per second.
    bed.lapi.stop();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(bed.cidrs(), ["192.0.2.52"]);
    let log = service.log();
    let warnings = log.matches("unreachable").count();
    assert_eq!(warnings, 1, "{log}");
    bed.lapi.start_again();
    bed.lapi
        .add_decision("192.0.2.53", "1h", "after the outage");
    wait_until("the bouncer back", Duration::from_secs(20), || {
        bed.cidrs().len() == 2 && bed.cidrs().contains(&"192.0.2.53".to_string())
    });
    assert!(service.log().contains("answers again"), "{}", service.log());
    drop(service);
    // No flush on stop.
    assert_eq!(bed.cidrs().len(), 2);
}

/// The key, or any 16-character piece of it, in `text`.
fn leaks(text: &str, key: &str) -> Option<String> {
    let chars: Vec<char> = key.chars().collect();
    chars
        .windows(16.min(chars.len()))
        .map(|w| w.iter().collect::<String>())
        .find(|piece| text.contains(piece.as_str()))
}

#[test]
fn the_bouncer_key_never_appears_in_any_output() {
    let Some(mut bed) = Bed::start() else { return };
    bed.lapi.add_decision("192.0.2.61", "1h", "k");
    let mut outputs = Vec::new();
    let commands: &[&[&str]] = &[
        &["-vv", "crowdsec", "--once"],
        &["-vv", "--log-format", "json", "crowdsec", "--once"],
        &["status"],
        &["status", "--json"],
        &["status", "--prometheus"],
        &["doctor"],
        &["-vv", "sync"],
        &["-vv", "flush", "--crowdsec"],
    ];
    let run_all = |bed: &Bed, outputs: &mut Vec<String>| {
        for args in commands {
            let r = bed.run(args);
            outputs.push(format!("{args:?}: {}", r.all()));
        }
    };
    run_all(&bed, &mut outputs);
    // A key the LAPI refuses, and a LAPI that is down.
    bed.lapi.revoke("fail2pvefw");
    run_all(&bed, &mut outputs);
    bed.lapi.stop();
    run_all(&bed, &mut outputs);
    // The key in the file itself, then broken ways of giving it.
    let key = bed.key.clone();
    let good = std::fs::read_to_string(&bed.s.config).unwrap();
    let inline = good.replace(
        &format!("api_key_file = \"{}\"", bed.key_file.display()),
        &format!("api_key = \"{key}\""),
    );
    for text in [
        inline.clone(),
        inline.replace(&format!("\"{key}\""), &format!("\"{key}")),
        inline.replace(&format!("\"{key}\""), &format!("[\"{key}\"]")),
        inline.replace("[crowdsec]\n", &format!("[crowdsec]\nurl2 = \"{key}\"\n")),
        inline.replace(
            &format!("api_key = \"{key}\""),
            &format!("api_key = \"{key} x\""),
        ),
        format!("{inline}api_key_file = \"{}\"\n", bed.key_file.display()),
        inline.replace(&bed.lapi.url, &format!("http://{key}@127.0.0.1:1/")),
    ] {
        bed.s.write_config(&text);
        run_all(&bed, &mut outputs);
    }
    // The key of the file pasted into the URL.
    bed.s
        .write_config(&good.replace(&bed.lapi.url, &format!("http://{key}@127.0.0.1:1/")));
    run_all(&bed, &mut outputs);
    // A key file others may read.
    bed.s.write_config(&good);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bed.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    run_all(&bed, &mut outputs);
    let drain_log =
        std::fs::read_to_string(bed.s.state_dir().join("drain.log")).unwrap_or_default();
    outputs.push(drain_log);
    for out in &outputs {
        if let Some(piece) = leaks(out, &key) {
            panic!("'{piece}' of the key shows in:\n{out}");
        }
    }
    assert!(outputs.len() >= 80, "{}", outputs.len());
}

#[test]
fn doctor_checks_the_lapi_and_the_key_without_the_stream() {
    let Some(mut bed) = Bed::start() else { return };
    let r = bed.run(&["doctor"]);
    assert!(r.stdout.contains("✔ crowdsec LAPI reachable"), "{r:?}");
    assert!(r.stdout.contains("✔ crowdsec key accepted"), "{r:?}");
    bed.lapi.revoke("fail2pvefw");
    let r = bed.run(&["doctor"]);
    assert!(r.stdout.contains("✘ crowdsec key accepted"), "{r:?}");
    assert!(r.stdout.contains("cscli bouncers add fail2pvefw"), "{r:?}");
    bed.lapi.stop();
    let r = bed.run(&["doctor"]);
    assert!(r.stdout.contains("✘ crowdsec LAPI reachable"), "{r:?}");
    assert_ne!(r.code, 0);
}

/// The `desired` rows of the holder `crowdsec`: entry and comment.
fn wanted(bed: &Bed) -> Vec<(String, String)> {
    let db = bed.s.state_db();
    let mut stmt = db
        .prepare("SELECT entry, request FROM desired WHERE holder = 'crowdsec' ORDER BY entry")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
        .map(|row| {
            let (entry, request) = row.unwrap();
            let request: Value = serde_json::from_str(&request).unwrap();
            (entry, request["comment"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

#[test]
fn a_custom_policy_chooses_and_the_host_holds_it_to_its_rules() {
    let Some(bed) = Bed::with("max_entries = 3\n", 50.0) else {
        return;
    };
    let hostile = wasm_build::hostile_policy().to_str().unwrap().to_string();
    for i in 1..=5 {
        bed.lapi
            .add_decision(&format!("203.0.113.{i}"), "1h", "invent");
    }
    let r = bed.run(&["--policy", &hostile, "-v", "crowdsec", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr
            .contains("no decision asks for and no allowed network holds (e.g. '10.0.0.0/8')"),
        "{r:?}"
    );
    assert!(r.stderr.contains("beyond the budget"), "{r:?}");
    let wanted = wanted(&bed);
    let entries: Vec<&str> = wanted.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(entries, ["203.0.113.0/24", "203.0.113.4", "203.0.113.5"]);
    for (_, comment) in &wanted {
        assert_eq!(comment, "evil line", "one line, no owner claimed");
    }
    let st = bed.status();
    assert_eq!(st["crowdsec"]["verdicts"]["chosen"], 2, "{st:#}");
    assert_eq!(st["crowdsec"]["verdicts"]["aggregated"], 3, "{st:#}");
    // A policy that loops in admit is stopped; one that asks PVE is denied.
    bed.lapi.delete_decision("203.0.113.1");
    for (mode, says) in [
        ("loop", "failed in 'admit': it ran out of fuel"),
        ("pve", "no PVE request while the policy chooses"),
    ] {
        for i in 1..=5 {
            bed.lapi.delete_decision(&format!("203.0.113.{i}"));
        }
        bed.lapi.add_decision("203.0.113.1", "1h", mode);
        let r = bed.run(&["--policy", &hostile, "crowdsec", "--once"]);
        assert_eq!(r.code, 3, "{mode}: {r:?}");
        assert!(r.stderr.contains(says), "{mode}: {r:?}");
        bed.lapi.delete_decision("203.0.113.1");
    }
}

#[test]
fn a_policy_without_admission_gets_the_default_rules() {
    let Some(bed) = Bed::with("max_entries = 2\n", 50.0) else {
        return;
    };
    // Every policy on the SDK exports `admission`; this one does not, and
    // bans a plain address plainly.
    let wasm = wasm_build::policy_without_admission();
    let r = support::run_binary(&["policy", "check", wasm.to_str().unwrap()]);
    assert!(r.stdout.contains("admission: not exported"), "{r:?}");
    bed.lapi.add_decision("192.0.2.1", "1h", "a");
    bed.lapi.add_decision("192.0.2.2", "3h", "b");
    bed.lapi.add_decision("192.0.2.3", "2h", "c");
    let r = bed.run(&["--policy", wasm.to_str().unwrap(), "crowdsec", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    // The longer ones.
    assert_eq!(bed.cidrs(), ["192.0.2.2", "192.0.2.3"]);
}

#[test]
fn sync_puts_back_a_crowdsec_entry_pve_lost() {
    let Some(bed) = Bed::start() else { return };
    bed.lapi.add_decision("192.0.2.91", "1h", "s");
    bed.lapi.add_decision("192.0.2.92", "1h", "s");
    bed.once();
    let fw = bed.s.emu.cluster_fw();
    let kept: Vec<&str> = fw
        .lines()
        .filter(|l| !l.starts_with("192.0.2.91"))
        .collect();
    bed.s.emu.set_cluster_fw(&(kept.join("\n") + "\n"));
    assert_eq!(bed.cidrs(), ["192.0.2.92"]);
    let r = bed.run(&["sync"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("1 re-added"), "{r:?}");
    assert_eq!(bed.cidrs(), ["192.0.2.91", "192.0.2.92"]);
    let e = bed.s.emu.entries("fail2ban").unwrap();
    assert!(
        e.iter().all(|e| e
            .comment
            .as_deref()
            .unwrap()
            .contains("f2p:web01/crowdsec/")),
        "{e:?}"
    );
}

#[test]
fn a_full_cluster_fw_lowers_the_cap_and_the_rest_is_reported() {
    let Some(bed) = Bed::start() else { return };
    let all = addresses(1..=40);
    bed.lapi
        .import(all.iter().map(|a| format!("4h,ip,{a},x,x")));
    // A cluster.fw with room for about 20 entries, not 40.
    let max = bed.s.emu.cluster_fw_bytes().len() + 20 * 70;
    let s = Setup::with(pve_emulator::Options {
        max_file_size: max,
        ..support::options()
    });
    let bed = Bed { s, ..bed };
    bed.configure("", 50.0);
    let r = bed.run(&["crowdsec", "--once"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cluster.fw is full"), "{r:?}");
    let held = bed.cidrs().len();
    assert!(held > 0 && held < 40, "{held}");
    // The next run keeps CrowdSec below what it holds: no write is refused,
    // and fail2ban's ban gets in.
    let r = bed.run(&["crowdsec", "--once"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = bed.run(&["-f", "ban", "192.0.2.250", "--jail", "sshd"]);
    assert_eq!(r.code, 0, "{r:?}");
    let st = bed.status();
    let cs = &st["crowdsec"];
    assert_eq!(cs["applied_entries"], (held * 95 / 100) as u64, "{cs:#}");
    assert_eq!(cs["not_applied"], 40 - (held * 95 / 100) as u64, "{cs:#}");
    let text = bed.run(&["status"]).stdout;
    assert!(text.contains("PVE's File too large"), "{text}");
}
