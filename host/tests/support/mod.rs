//! A PVE emulator on loopback HTTPS and a config pointing the real
//! `fail2pvefw` binary at it.

#![allow(dead_code)]

/// The real fail2ban, sandboxed (used by tests/fail2ban.rs).
pub mod fail2ban;

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
        let toml = emu.config_toml(&token(), "fail2ban", state.to_str().unwrap());
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

    pub fn cidrs(&self) -> Vec<String> {
        self.emu
            .entries("fail2ban")
            .unwrap()
            .into_iter()
            .map(|e| e.cidr)
            .collect()
    }
}

pub fn run_binary(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .args(args)
        .env("TZ", "UTC")
        .env_remove("FAIL2PVEFW_CONFIG")
        .output()
        .expect("run fail2pvefw");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
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
