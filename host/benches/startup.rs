//! How fast a policy starts: `cargo bench -p fail2pvefw --bench startup`.
//!
//! 1. In process: load the default policy's built-in native code,
//!    instantiate it and make one `validate` call (goal: at most 1 ms); and
//!    what compiling it costs (what the first ban on a fresh state directory
//!    paid before the code was built in, and what a custom policy's first
//!    run still pays).
//! 2. Whole process: one `fail2pvefw -f ban` against the PVE emulator over
//!    HTTPS, the first on a fresh state directory against the later ones.

use fail2pvefw::bindings::BanRequest;
use fail2pvefw::capabilities::guard::{EntryRules, Guard, Purpose};
use fail2pvefw::capabilities::pve::Pve;
use fail2pvefw::capabilities::{self, HostState};
use fail2pvefw::runtime::{Runtime, Source};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    in_process(dir.path());
    whole_process(dir.path());
}

fn state() -> HostState {
    let guard = Guard::new(
        [("fail2ban".to_string(), Purpose::Ban)],
        &[],
        EntryRules::default(),
        "bench",
    );
    let pve = Pve::in_memory(pve_model::Cluster::with_ipsets(["fail2ban"]), guard);
    HostState::new(
        pve,
        capabilities::store::Store::new(None, "default".into()),
        capabilities::guest_log::Log {
            source: "bench".into(),
        },
    )
}

fn request() -> BanRequest {
    BanRequest {
        ip: "203.0.113.7".into(),
        ipset: "fail2ban".into(),
        jail: Some("sshd".into()),
        comment: None,
        time: None,
        bantime: Some(600),
        failures: Some(3),
        restored: false,
        instance: "bench".into(),
    }
}

fn in_process(dir: &std::path::Path) {
    let req = request();
    let mut times = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        let runtime = Runtime::load(Source::Embedded, None).unwrap();
        let mut instance = runtime.instantiate(state()).unwrap();
        let entry = instance.validate(&req).unwrap().unwrap();
        times.push(started.elapsed());
        assert_eq!(entry, "203.0.113.7");
    }
    // The same component as a file with no cache: compiled each time.
    let file = dir.join("default.wasm");
    std::fs::write(&file, fail2pvefw::runtime::DEFAULT_POLICY).unwrap();
    let mut compiles: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            Runtime::load(Source::File(file.clone()), None).unwrap();
            started.elapsed()
        })
        .collect();
    println!(
        "built-in native code + instantiate + validate: {} (goal <= 1 ms)",
        summary(&mut times)
    );
    println!(
        "compile the default policy (what a first run paid before): {}",
        summary(&mut compiles)
    );
}

fn whole_process(dir: &std::path::Path) {
    let emu = pve_emulator::Emulator::start(pve_emulator::Options {
        auth_delay: Duration::from_millis(50),
        ..Default::default()
    });
    let token = pve_emulator::Token::new(pve_emulator::DEMO_TOKEN_ID, pve_emulator::DEMO_SECRET);
    let exe = env!("CARGO_BIN_EXE_fail2pvefw");
    let mut n = 0u32;
    // A config (and so a state directory) of its own per `fresh` run.
    let mut run = |fresh: bool| {
        n += 1;
        let name = if fresh {
            format!("fresh-{n}")
        } else {
            "kept".into()
        };
        let state = dir.join(&name).join("state");
        let config = dir.join(&name).join("config.toml");
        if !config.exists() {
            std::fs::create_dir_all(config.parent().unwrap()).unwrap();
            std::fs::write(
                &config,
                // A write rate that never waits (the default, 2 a second, would
                // pace every ban after the first two to 0.5 s).
                emu.config_toml(&token, "fail2ban", state.to_str().unwrap())
                    .replace("[pve]\n", "[pve]\nwrites_per_second = 1000\n"),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let ip = format!("10.{}.{}.1", n / 256, n % 256);
        let started = Instant::now();
        let out = Command::new(exe)
            .args(["--config", config.to_str().unwrap(), "-f", "ban", &ip])
            .output()
            .unwrap();
        let took = started.elapsed();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !state.join("cache").exists(),
            "no cache for the default policy"
        );
        took
    };
    run(false); // warm the page cache
    let mut first: Vec<Duration> = (0..15).map(|_| run(true)).collect();
    let mut later: Vec<Duration> = (0..30).map(|_| run(false)).collect();
    println!(
        "whole process `-f ban`, first on a fresh state directory: {}",
        summary(&mut first)
    );
    println!(
        "whole process `-f ban`, later ones:                       {}",
        summary(&mut later)
    );
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn summary(times: &mut [Duration]) -> String {
    times.sort();
    let median = times[times.len() / 2];
    let p90 = times[times.len() * 9 / 10];
    format!("median {} (p90 {}, n={})", ms(median), ms(p90), times.len())
}
