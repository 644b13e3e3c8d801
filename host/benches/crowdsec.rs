//! CrowdSec at scale: `cargo bench -p fail2pvefw --bench crowdsec`
//! (needs `scripts/install-crowdsec`; `benches/run.sh` runs it too).
//!
//! 1. One PVE write when the IPSet already holds 15,000 entries: in
//!    process (the PVE model's POST and DELETE, which parse and rewrite the
//!    whole `cluster.fw` as PVE does), and a whole `fail2pvefw -f ban`
//!    against the emulator over HTTPS, next to the same against an empty
//!    IPSet.
//! 2. 20,000 decisions from the first pull until the capped set is in PVE
//!    (`CAP`, default 5,000; `[pve] writes_per_second = 1000`, so PVE sets
//!    the pace), counting PVE writes; then a run with nothing new.
//!
//! Prints figures; asserts only what must hold (the cap, the writes).

#[path = "../tests/support/crowdsec.rs"]
mod lapi;

use pve_emulator::{Emulator, Options, Token};
use pve_model::{Caller, Cluster};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SECRET: &str = "6043ef45-632a-428b-8777-4b1eb5587d58";
/// 41 characters, as DESIGN.md's size figures assume.
const COMMENT: &str = "[2026/11/26 10:00:00] sshd f2p:web01/sshd/";

fn main() {
    let cap: usize = std::env::var("CAP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let dir = tempfile::tempdir().unwrap();
    one_write(dir.path());
    twenty_thousand(dir.path(), cap);
}

fn address(i: usize) -> String {
    format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255)
}

/// `cluster.fw` with one IPSet of `n` entries.
fn cluster_fw(n: usize) -> String {
    let mut text = String::from("[IPSET fail2ban]\n\n");
    let mut lines: Vec<String> = (0..n)
        .map(|i| format!("{} # {COMMENT}{}", address(i + 1), 1_764_151_200 + i))
        .collect();
    lines.sort();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    text.push('\n');
    text
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn one_write(dir: &Path) {
    let text = cluster_fw(15_000);
    println!(
        "cluster.fw with 15,000 entries (41-character comments): {} bytes",
        text.len()
    );
    // In process: the model's POST and DELETE, each a parse and a rewrite.
    let mut cluster = Cluster::from_cluster_fw(text.as_str());
    let path = "/cluster/firewall/ipset/fail2ban";
    let mut posts = Vec::new();
    let mut deletes = Vec::new();
    for i in 0..21 {
        let cidr = format!("192.0.2.{i}");
        let t = Instant::now();
        let r = cluster.handle(
            "POST",
            path,
            &[
                ("cidr".into(), cidr.clone()),
                ("comment".into(), COMMENT.into()),
            ],
            &Caller::FULL,
        );
        posts.push(t.elapsed());
        assert_eq!(r.status, 200, "{r:?}");
        let t = Instant::now();
        let r = cluster.handle("DELETE", &format!("{path}/{cidr}"), &[], &Caller::FULL);
        deletes.push(t.elapsed());
        assert_eq!(r.status, 200, "{r:?}");
    }
    println!(
        "one write at 15,000 entries, in process (the PVE model): POST median {}, DELETE median {}",
        ms(median(posts)),
        ms(median(deletes))
    );
    // Whole process, over HTTPS, against 15,000 entries and against none.
    for (label, fw) in [("15,000 entries", Some(text)), ("an empty IPSet", None)] {
        let emu = Emulator::start(Options {
            tokens: vec![Token::new("fail2ban@pve!fail2ban", SECRET)],
            auth_delay: Duration::from_millis(10),
            cluster_fw: fw,
            ..Options::default()
        });
        let config = write_config(dir, &emu, label.len(), 1000.0, "");
        let mut runs = Vec::new();
        for i in 0..11 {
            let ip = format!("198.51.100.{i}");
            let t = Instant::now();
            let out = fail2pvefw(&config, &["-f", "ban", &ip]);
            runs.push(t.elapsed());
            assert!(out.status.success(), "{out:?}");
        }
        println!(
            "one `fail2pvefw -f ban` (whole process, HTTPS) against {label}: median {}",
            ms(median(runs))
        );
    }
}

fn twenty_thousand(dir: &Path, cap: usize) {
    let mut lapi = lapi::Lapi::start();
    let key = lapi.bouncer_key("fail2pvefw-bench");
    let rows: Vec<String> = (1..=20_000)
        .map(|i| format!("24h,ip,{},x,bench", address(i)))
        .collect();
    let took = lapi.import(&rows);
    println!(
        "cscli decisions import of 20,000: {:.1} s",
        took.as_secs_f64()
    );
    let emu = Emulator::start(Options {
        tokens: vec![Token::new("fail2ban@pve!fail2ban", SECRET)],
        auth_delay: Duration::from_millis(10),
        ..Options::default()
    });
    let key_file = dir.join("crowdsec.key");
    std::fs::write(&key_file, &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let crowdsec = format!(
        "\n[crowdsec]\nurl = \"{}\"\napi_key_file = \"{}\"\nmax_entries = {cap}\nmax_bytes = 1048576\n",
        lapi.url,
        key_file.display()
    );
    let config = write_config(dir, &emu, 99, 1000.0, &crowdsec);
    let started = Instant::now();
    let out = fail2pvefw(&config, &["crowdsec", "--once", "--drain-for", "3600"]);
    let wall = started.elapsed();
    assert!(out.status.success(), "{out:?}");
    let writes: Vec<Instant> = emu
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| r.at)
        .collect();
    let first = writes
        .first()
        .map(|t| t.duration_since(started))
        .unwrap_or_default();
    let entries = emu.entries("fail2ban").unwrap().len();
    println!("{}", String::from_utf8_lossy(&out.stdout).trim());
    println!(
        "20,000 decisions, max_entries = {cap}: first pull to capped set applied {:.1} s \
         (pull, validate, admit and queue until the first write {:.2} s; then {} writes in {:.1} s, {:.2} ms each); \
         PVE writes {} for {entries} entries; cluster.fw {} bytes",
        wall.as_secs_f64(),
        first.as_secs_f64(),
        writes.len(),
        (wall - first).as_secs_f64(),
        (wall - first).as_secs_f64() * 1000.0 / writes.len().max(1) as f64,
        emu.write_count(),
        emu.cluster_fw_bytes().len()
    );
    assert_eq!(entries, cap.min(20_000));
    assert_eq!(
        emu.write_count(),
        entries,
        "one write per entry, no rewrite"
    );
    let t = Instant::now();
    let out = fail2pvefw(&config, &["crowdsec", "--once"]);
    assert!(out.status.success(), "{out:?}");
    println!(
        "the next run, nothing new: {:.2} s, {} PVE writes",
        t.elapsed().as_secs_f64(),
        emu.write_count() - entries
    );
    println!(
        "at the default [pve] writes_per_second = {}, the same {entries} writes take {:.0} s",
        fail2pvefw::config::DEFAULT_WRITES_PER_SECOND,
        entries as f64 / fail2pvefw::config::DEFAULT_WRITES_PER_SECOND
    );
    lapi.stop();
}

fn write_config(
    dir: &Path,
    emu: &Emulator,
    n: usize,
    rate: f64,
    extra: &str,
) -> std::path::PathBuf {
    let state = dir.join(format!("state-{n}-{}", emu.host_port().replace(':', "-")));
    let token = Token::new("fail2ban@pve!fail2ban", SECRET);
    let text = emu
        .config_toml(&token, "fail2ban", state.to_str().unwrap())
        .replace(
            "\n\n[state]",
            &format!("\nwrites_per_second = {rate}\n\n[state]"),
        );
    let path = dir.join(format!("config-{n}.toml"));
    std::fs::write(&path, format!("{text}instance = \"bench\"\n{extra}")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn fail2pvefw(config: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}
