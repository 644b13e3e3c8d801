//! Host names resolved from a private hosts file: each run of the binary
//! gets a mount namespace of its own (`unshare --mount`) in which a
//! temporary file is bind-mounted over `/etc/hosts`, and one saying
//! `hosts: files` over `/etc/nsswitch.conf`, so no DNS server is asked and
//! a name missing from the file does not resolve. The binary is the real
//! one and resolves through glibc as in production.
//!
//! CI runs as root. Elsewhere a user namespace (`--map-root-user`) may do;
//! where neither works the tests say so loudly and skip, except under CI
//! (`CI` set), where they fail.

use super::Run;
use std::path::Path;
use std::process::{Command, Stdio};
use tempfile::TempDir;

/// Mounts the two files, then runs the rest of the command line.
const SCRIPT: &str = r#"mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && shift 2 && exec "$@""#;

pub struct Hosts {
    dir: TempDir,
    /// `unshare` and its flags.
    unshare: Vec<&'static str>,
}

impl Hosts {
    /// A private resolver with no names yet; `None` (after saying so on
    /// stderr) when no mount namespace can be made here and CI is not set.
    pub fn new(test: &str) -> Option<Hosts> {
        let mut tried = Vec::new();
        for unshare in [
            vec!["unshare", "--mount"],
            vec!["unshare", "--mount", "--map-root-user"],
        ] {
            let hosts = Hosts {
                dir: tempfile::tempdir().unwrap(),
                unshare,
            };
            hosts.set(&[]);
            let probe = hosts.wrap(&["true"]).stderr(Stdio::piped()).output();
            match probe {
                Ok(out) if out.status.success() => return Some(hosts),
                Ok(out) => tried.push(format!(
                    "`{}`: {}",
                    hosts.unshare.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => tried.push(format!("`{}`: {e}", hosts.unshare.join(" "))),
            }
        }
        let why = format!(
            "{test}: cannot make a mount namespace for a private /etc/hosts here ({})",
            tried.join("; ")
        );
        if required() {
            panic!("{why}; CI runs these tests as root");
        }
        eprintln!("SKIPPED (loudly): {why}. Run as root (CI does) to run it.");
        None
    }

    /// The hosts file: `(address, name)` lines, and localhost.
    pub fn set(&self, lines: &[(&str, &str)]) {
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (addr, name) in lines {
            text.push_str(&format!("{addr} {name}\n"));
        }
        std::fs::write(self.dir.path().join("hosts"), text).unwrap();
        std::fs::write(self.dir.path().join("nsswitch.conf"), "hosts: files\n").unwrap();
    }

    /// `program args…` inside a fresh namespace with the private files.
    pub fn wrap(&self, program: &[&str]) -> Command {
        let mut cmd = Command::new(self.unshare[0]);
        cmd.args(&self.unshare[1..])
            .args(["--", "sh", "-c", SCRIPT, "sh"])
            .arg(self.dir.path().join("hosts"))
            .arg(self.dir.path().join("nsswitch.conf"))
            .args(program);
        cmd
    }

    /// `fail2pvefw --config CONFIG ARGS…` inside, in UTC.
    pub fn command(&self, config: &Path, args: &[&str]) -> Command {
        let mut all = vec![
            env!("CARGO_BIN_EXE_fail2pvefw"),
            "--config",
            config.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let mut cmd = self.wrap(&all);
        cmd.env("TZ", "UTC").env_remove("FAIL2PVEFW_CONFIG");
        cmd
    }

    /// Runs [`Hosts::command`] to its end.
    pub fn run(&self, config: &Path, args: &[&str]) -> Run {
        let out = self.command(config, args).output().expect("run fail2pvefw");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Whether a test that cannot run here must fail instead of skipping.
fn required() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}
