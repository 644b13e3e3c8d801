//! The real fail2ban (Debian's 1.0.2), sandboxed: a private copy of
//! `/etc/fail2ban` in a temp dir with its own socket, pidfile, database and
//! log, one jail on a log file the test writes, and a server that only this
//! guard starts and stops. The system's fail2ban (its socket, /var/run) is
//! never touched. See `shared/fail2ban-testing.md` for the measured facts.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The jail every sandbox defines.
pub const JAIL: &str = "f2btest";

const MISSING: &str = "these tests run the real fail2ban, which is not installed here.\n\
    Install it with `apt-get install fail2ban` (CI's .ci/run does); no fail2ban service needs to run.";

/// What the jail does with a ban.
pub enum Action {
    /// The project's `action.d/fail2pvefw.conf`, running the binary under
    /// test with this fail2pvefw config.
    Fail2pvefw { config: PathBuf },
    /// A do-nothing command (`true`) for ban and unban: fail2ban's own cost.
    Noop,
    /// The project's `action.d/fail2pvefw.py`, talking to `fail2pvefw
    /// serve` on `socket`, the binary under test as its fallback.
    Python { config: PathBuf, socket: PathBuf },
}

/// The jail's settings.
pub struct Jail {
    pub action: Action,
    /// fail2ban's `bantime`, e.g. "1h" or "4".
    pub bantime: String,
    pub maxretry: u32,
}

impl Jail {
    pub fn fail2pvefw(config: &Path) -> Jail {
        Jail {
            action: Action::Fail2pvefw {
                config: config.to_path_buf(),
            },
            bantime: "1h".into(),
            maxretry: 3,
        }
    }

    pub fn python(config: &Path, socket: &Path) -> Jail {
        Jail {
            action: Action::Python {
                config: config.to_path_buf(),
                socket: socket.to_path_buf(),
            },
            bantime: "1h".into(),
            maxretry: 3,
        }
    }

    pub fn noop() -> Jail {
        Jail {
            action: Action::Noop,
            bantime: "1h".into(),
            maxretry: 3,
        }
    }

    pub fn bantime(mut self, bantime: &str) -> Jail {
        self.bantime = bantime.into();
        self
    }
}

/// A sandboxed fail2ban. Dropping it stops the server it started (and only
/// that one), also when the test failed.
pub struct Fail2ban {
    dir: TempDir,
    pub conf: PathBuf,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    /// The log file the jail watches.
    pub watched: PathBuf,
    /// fail2ban's own log.
    pub log: PathBuf,
    /// The server's pid while it runs.
    pid: Option<u32>,
}

/// What one `fail2ban-client` call did.
#[derive(Debug)]
pub struct Reply {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl Fail2ban {
    /// Panics with an install hint when fail2ban is missing.
    pub fn require() {
        let found = Command::new("fail2ban-server")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found && Path::new("/etc/fail2ban/jail.conf").is_file(),
            "{MISSING}"
        );
    }

    /// Writes the private configuration; the server is not started yet.
    pub fn new(jail: Jail) -> Fail2ban {
        Fail2ban::require();
        let dir = tempfile::Builder::new().prefix("f2b").tempdir().unwrap();
        let w = dir.path().to_path_buf();
        let conf = w.join("conf");
        copy_config(Path::new("/etc/fail2ban"), &conf);
        std::fs::create_dir_all(w.join("run")).unwrap();
        let f2b = Fail2ban {
            conf: conf.clone(),
            socket: w.join("run/f2b.sock"),
            pidfile: w.join("run/f2b.pid"),
            watched: w.join("watched.log"),
            log: w.join("fail2ban.log"),
            dir,
            pid: None,
        };
        std::fs::write(&f2b.watched, "").unwrap();
        let p = |path: &Path| path.display().to_string();
        write(
            &conf.join("fail2ban.local"),
            &format!(
                "[DEFAULT]\nloglevel = INFO\nlogtarget = {}\nsocket = {}\npidfile = {}\n\
                 dbfile = {}\ndbpurgeage = 1d\nallowipv6 = auto\n",
                p(&f2b.log),
                p(&f2b.socket),
                p(&f2b.pidfile),
                p(&w.join("f2b.sqlite3")),
            ),
        );
        // The date is cut out of the line before failregex runs, which
        // leaves a leading space; `%` must be doubled.
        write(
            &conf.join("filter.d/f2btest.conf"),
            "[Definition]\ndatepattern = {^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S\n\
             failregex = ^\\s*auth failure from <HOST>\\s*$\n",
        );
        let action = match &jail.action {
            Action::Fail2pvefw { config } => {
                let project =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../action.d/fail2pvefw.conf");
                std::fs::copy(&project, conf.join("action.d/fail2pvefw.conf"))
                    .unwrap_or_else(|e| panic!("copy {}: {e}", project.display()));
                format!(
                    "fail2pvefw[bin=\"{}\", config=\"{}\"]",
                    env!("CARGO_BIN_EXE_fail2pvefw"),
                    config.display()
                )
            }
            Action::Python { config, socket } => {
                let project =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../action.d/fail2pvefw.py");
                std::fs::copy(&project, conf.join("action.d/fail2pvefw.py"))
                    .unwrap_or_else(|e| panic!("copy {}: {e}", project.display()));
                format!(
                    "fail2pvefw.py[bin=\"{}\", config=\"{}\", socket=\"{}\"]",
                    env!("CARGO_BIN_EXE_fail2pvefw"),
                    config.display(),
                    socket.display()
                )
            }
            Action::Noop => {
                write(
                    &conf.join("action.d/f2b-noop.conf"),
                    "[Definition]\nactionstart =\nactionstop =\nactioncheck =\n\
                     actionban = true\nactionunban = true\n",
                );
                "f2b-noop".to_string()
            }
        };
        write(
            &conf.join("jail.local"),
            &format!(
                "[DEFAULT]\nusedns = no\nignoreself = false\nignoreip =\n\n\
                 [{JAIL}]\nenabled = true\nfilter = f2btest\nlogpath = {}\nbackend = polling\n\
                 maxretry = {}\nfindtime = 10m\nbantime = {}\naction = {action}\n",
                p(&f2b.watched),
                jail.maxretry,
                jail.bantime,
            ),
        );
        f2b
    }

    /// The sandbox's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the server (`fail2ban-server -b`, which returns once the
    /// daemon is configured) and returns how long that took.
    pub fn start(&mut self) -> Duration {
        assert!(self.pid.is_none(), "fail2ban already runs");
        let out = self.dir().join("server.out");
        let file = std::fs::File::create(&out).unwrap();
        let started = Instant::now();
        // Output to a file, not a pipe: the daemon must not hold our pipe.
        let status = Command::new("fail2ban-server")
            .arg("-c")
            .arg(&self.conf)
            .arg("-s")
            .arg(&self.socket)
            .arg("-p")
            .arg(&self.pidfile)
            .args(["-x", "-b"])
            .env("TZ", "UTC")
            .env_remove("FAIL2PVEFW_CONFIG")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .status()
            .unwrap_or_else(|e| panic!("{MISSING}\n(fail2ban-server: {e})"));
        let took = started.elapsed();
        assert!(
            status.success(),
            "fail2ban-server failed ({status}):\n{}\n{}",
            std::fs::read_to_string(&out).unwrap_or_default(),
            self.log_text()
        );
        let pid = std::fs::read_to_string(&self.pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or_else(|| panic!("no pid in {}", self.pidfile.display()));
        assert!(self.is_ours(pid), "pid {pid} is not our fail2ban-server");
        self.pid = Some(pid);
        took
    }

    /// Whether `pid` is a live fail2ban server on our socket.
    fn is_ours(&self, pid: u32) -> bool {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        });
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        alive
            && cmdline.contains("fail2ban-server")
            && cmdline.contains(self.socket.to_str().unwrap())
    }

    /// Runs `fail2ban-client -c CONF -s SOCKET ARGS…`.
    pub fn client(&self, args: &[&str]) -> Reply {
        let started = Instant::now();
        let out = Command::new("fail2ban-client")
            .arg("-c")
            .arg(&self.conf)
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{MISSING}\n(fail2ban-client: {e})"));
        Reply {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            took: started.elapsed(),
        }
    }

    /// Like [`client`](Self::client), but the call must succeed.
    pub fn ok(&self, args: &[&str]) -> Reply {
        let reply = self.client(args);
        assert_eq!(
            reply.code,
            0,
            "fail2ban-client {args:?}: {reply:?}\n{}",
            self.log_text()
        );
        reply
    }

    /// `set JAIL banip IP…`: returns once every actionban has run.
    pub fn banip(&self, ips: &[String]) -> Reply {
        let mut args = vec!["set", JAIL, "banip"];
        args.extend(ips.iter().map(String::as_str));
        self.ok(&args)
    }

    /// The number of addresses the jail has banned now.
    pub fn currently_banned(&self) -> usize {
        let reply = self.ok(&["status", JAIL]);
        reply
            .stdout
            .lines()
            .find_map(|l| l.split_once("Currently banned:"))
            .and_then(|(_, n)| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ban count in {reply:?}"))
    }

    /// Appends `n` failure lines for `ip`, stamped now (older lines than
    /// `findtime` are ignored).
    pub fn fail(&self, ip: &str, n: usize) {
        let now = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S");
        let mut lines = String::new();
        for _ in 0..n {
            writeln!(lines, "{now} auth failure from {ip}").unwrap();
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.watched)
            .unwrap();
        f.write_all(lines.as_bytes()).unwrap();
    }

    /// fail2ban's own log, for failure messages.
    pub fn log_text(&self) -> String {
        format!(
            "--- fail2ban.log ---\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    /// `fail2ban-client stop`, then waits until the server is gone; returns
    /// how long it took.
    pub fn stop(&mut self) -> Duration {
        let Some(pid) = self.pid else {
            return Duration::ZERO;
        };
        let started = Instant::now();
        let reply = self.client(&["stop"]);
        let gone = self.wait_gone(pid, Duration::from_secs(30));
        let took = started.elapsed();
        if !gone {
            self.kill(pid);
        }
        self.pid = None;
        assert!(
            gone && reply.code == 0,
            "stop: {reply:?}\n{}",
            self.log_text()
        );
        took
    }

    fn wait_gone(&self, pid: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_ours(pid) {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// SIGTERM, then SIGKILL, to our server only (checked by its command line).
    fn kill(&self, pid: u32) {
        for signal in ["-TERM", "-KILL"] {
            if !self.is_ours(pid) {
                return;
            }
            let _ = Command::new("kill")
                .arg(signal)
                .arg(pid.to_string())
                .status();
            self.wait_gone(pid, Duration::from_secs(3));
        }
    }
}

impl Drop for Fail2ban {
    fn drop(&mut self) {
        let Some(pid) = self.pid.take() else { return };
        if !self.is_ours(pid) {
            return;
        }
        let _ = self.client(&["--timeout", "10", "stop"]);
        if !self.wait_gone(pid, Duration::from_secs(10)) {
            self.kill(pid);
        }
    }
}

/// Copies `/etc/fail2ban` without `jail.d/*`, `fail2ban.d/*` and `*.local`.
fn copy_config(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("{MISSING}\n({}: {e})", from.display()))
    {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let (src, dst) = (entry.path(), to.join(&*name));
        if src.is_dir() {
            if from == Path::new("/etc/fail2ban") && (name == "jail.d" || name == "fail2ban.d") {
                std::fs::create_dir_all(&dst).unwrap();
            } else {
                copy_config(&src, &dst);
            }
        } else if !name.ends_with(".local") {
            std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Polls until `done`, or panics naming `what` and adding `context()`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    context: impl Fn() -> String,
) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}
