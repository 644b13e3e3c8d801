//! A PVE emulator on loopback HTTPS and a config pointing the real
//! `fail2pvefw` binary at it.

#![allow(dead_code)]

/// The real fail2ban, sandboxed (used by tests/fail2ban.rs).
pub mod fail2ban;
/// Host names from a private hosts file (used by tests/dns.rs).
pub mod hosts;
/// `fail2pvefw serve` as a child (used by tests/serve.rs, tests/serve_fail2ban.rs).
pub mod serve;

use pve_emulator::{Emulator, Options, Token};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

pub const SECRET: &str = "6043ef45-632a-428b-8777-4b1eb5587d58";
pub const TOKEN_ID: &str = "fail2ban@pve!fail2ban";

pub struct Setup {
    pub emu: Emulator,
    pub dir: TempDir,
    pub config: PathBuf,
    pub token: Token,
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything it printed.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

pub fn token() -> Token {
    Token::new(TOKEN_ID, SECRET)
}

pub fn options() -> Options {
    Options {
        tokens: vec![token()],
        auth_delay: Duration::from_millis(50),
        ..Options::default()
    }
}

impl Setup {
    pub fn new() -> Setup {
        Setup::with(options())
    }

    pub fn with(opts: Options) -> Setup {
        let emu = Emulator::start(opts);
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let toml = unpaced(emu.config_toml(&token(), "fail2ban", state.to_str().unwrap()));
        let setup = Setup {
            config: dir.path().join("config.toml"),
            emu,
            dir,
            token: token(),
        };
        setup.write_config(&toml);
        setup
    }

    pub fn write_config(&self, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(&self.config, text).unwrap();
        std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    /// Runs `fail2pvefw --config <ours> ARGS…` in UTC.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        run_binary(&all)
    }

    /// The state directory of this set-up's config.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The state database, opened beside the binary (it must have run once).
    pub fn state_db(&self) -> rusqlite::Connection {
        let db = rusqlite::Connection::open(self.state_dir().join("state.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db
    }

    /// A second PVE cluster (its own emulator) and a config `NAME.toml` for
    /// it that shares this set-up's state directory.
    pub fn other_cluster(&self, name: &str) -> (Emulator, PathBuf) {
        let emu = Emulator::start(options());
        let toml =
            unpaced(emu.config_toml(&token(), "fail2ban", self.state_dir().to_str().unwrap()));
        let path = self.dir.path().join(format!("{name}.toml"));
        write_private(&path, &toml);
        (emu, path)
    }

    pub fn cidrs(&self) -> Vec<String> {
        self.emu
            .entries("fail2ban")
            .unwrap()
            .into_iter()
            .map(|e| e.cidr)
            .collect()
    }
}

/// The emulator's config with `[pve] writes_per_second = 1000`: tests of
/// the queue send hundreds of writes, and pace themselves where they test
/// the pacing (`crowdsec.rs`).
pub fn unpaced(toml: String) -> String {
    toml.replace("\n\n[state]", "\nwrites_per_second = 1000\n\n[state]")
}

/// Writes a config file, mode 0600.
pub fn write_private(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Runs `fail2pvefw --config CONFIG ARGS…` in UTC.
pub fn run_config(config: &std::path::Path, args: &[&str]) -> Run {
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run_binary(&all)
}

/// Polls `done` every 50 ms until it holds; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn run_binary(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .args(args)
        .env("TZ", "UTC")
        .env_remove("FAIL2PVEFW_CONFIG")
        .output()
        .expect("run fail2pvefw");
    Run::of(out)
}

/// Runs `fail2pvefw ARGS…` in UTC with `stdin` as its standard input.
pub fn run_binary_with_stdin(args: &[&str], stdin: &str) -> Run {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .args(args)
        .env("TZ", "UTC")
        .env_remove("FAIL2PVEFW_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run fail2pvefw");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Run::of(child.wait_with_output().unwrap())
}

impl Run {
    fn of(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The inputs of a `testdata/*-inputs.txt` table: one a line, in double
/// quotes; `#` lines and blank lines are comments.
pub fn inputs(text: &'static str) -> Vec<&'static str> {
    let inputs: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            line.strip_prefix('"')
                .and_then(|l| l.strip_suffix('"'))
                .unwrap_or_else(|| panic!("not a quoted input: {line}"))
        })
        .collect();
    assert!(!inputs.is_empty(), "an empty table tests nothing");
    inputs
}
