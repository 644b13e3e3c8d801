//! A real CrowdSec Local API (Debian 12's 1.4.6) for the tests: a private
//! directory with its own `config.yaml`, SQLite database and credentials, a
//! LAPI on 127.0.0.1 and a free port, no agent (`-no-cs`), no Central API.
//! `cscli` drives it with the same config. Dropping the guard kills the LAPI
//! it started (only that one).
//!
//! The binaries come from `scripts/install-crowdsec` (Debian's package,
//! extracted without its postinst into `target/crowdsec/`), or from the
//! folder named by `FAIL2PVEFW_CROWDSEC_DIR`. Use
//! [`Lapi::start_or_skip`]: it skips with a loud message when they are
//! missing, and fails instead under CI (`CI` set) or with
//! `FAIL2PVEFW_REQUIRE_CROWDSEC=1`.
//!
//! Include it with `#[path = "support/crowdsec.rs"] mod crowdsec;` (or as
//! `support::crowdsec`). It needs only std, tempfile and serde_json.
//! Measured LAPI facts: /work/notes/crowdsec-facts.md.

#![allow(dead_code)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The variable naming the folder `scripts/install-crowdsec` filled.
pub const DIR_VAR: &str = "FAIL2PVEFW_CROWDSEC_DIR";
/// Set to 1 to fail, not skip, when the binaries are missing.
pub const REQUIRE_VAR: &str = "FAIL2PVEFW_REQUIRE_CROWDSEC";

/// How long the LAPI may take to answer `/health` (it takes ~60 ms).
const START: Duration = Duration::from_secs(20);

/// The two binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub crowdsec: PathBuf,
    pub cscli: PathBuf,
}

impl Binaries {
    /// `$FAIL2PVEFW_CROWDSEC_DIR` (its `root/usr/bin/`, or the folder
    /// itself), else the repository's `target/crowdsec/root/usr/bin/`.
    /// The error says which command installs them.
    pub fn find() -> Result<Binaries, String> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let repo = std::fs::canonicalize(&repo).unwrap_or(repo);
        let mut tried = Vec::new();
        let mut candidates = Vec::new();
        if let Some(dir) = std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()) {
            let dir = PathBuf::from(dir);
            candidates.push(dir.join("root/usr/bin"));
            candidates.push(dir);
        } else {
            candidates.push(repo.join("target/crowdsec/root/usr/bin"));
        }
        for bin in candidates {
            let found = Binaries {
                crowdsec: bin.join("crowdsec"),
                cscli: bin.join("cscli"),
            };
            if found.crowdsec.is_file() && found.cscli.is_file() {
                return Ok(found);
            }
            tried.push(bin.display().to_string());
        }
        let script = repo.join("scripts/install-crowdsec");
        let into = match std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()) {
            Some(dir) => format!("{DIR_VAR}={} ", Path::new(&dir).display()),
            None => String::new(),
        };
        Err(format!(
            "these tests run a real CrowdSec LAPI (Debian's crowdsec 1.4.6), which is not \
             installed here: no crowdsec and cscli in {}.\n\n\
             Install it with `{into}{}` (no root needed when apt's lists are fresh; \
             nothing is installed system-wide), or point {DIR_VAR} at a folder that \
             script filled.",
            tried.join(", "),
            script.display()
        ))
    }
}

/// Whether a missing CrowdSec must fail the test instead of skipping it.
pub fn required() -> bool {
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    set(REQUIRE_VAR) || set("CI")
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One `GET /v1/decisions/stream` answer; `null` lists become empty.
#[derive(Debug)]
pub struct Stream {
    pub new: Vec<Value>,
    pub deleted: Vec<Value>,
    pub took: Duration,
}

impl Stream {
    /// The `value`s of `new`, sorted.
    pub fn new_values(&self) -> Vec<String> {
        values(&self.new)
    }

    /// The `value`s of `deleted`, sorted.
    pub fn deleted_values(&self) -> Vec<String> {
        values(&self.deleted)
    }
}

fn values(list: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .map(|d| d["value"].as_str().unwrap_or_default().to_string())
        .collect();
    v.sort();
    v
}

/// A decision to create through the LAPI's own API (`POST /v1/alerts`, as a
/// machine), where the origin can be chosen (`crowdsec`, `CAPI`, `lists`…),
/// which `cscli` cannot do.
#[derive(Clone, Debug)]
pub struct Decision {
    pub value: String,
    /// `Ip` or `Range` (or any other scope).
    pub scope: String,
    /// `ban`, `captcha`…
    pub kind: String,
    /// Go syntax: `4h`, `90s`, `1h30m`.
    pub duration: String,
    pub origin: String,
    pub scenario: String,
}

impl Decision {
    /// A ban of an address (or, with a `/`, a range) from `origin`.
    pub fn ban(value: &str, duration: &str, origin: &str, scenario: &str) -> Decision {
        Decision {
            value: value.into(),
            scope: if value.contains('/') { "Range" } else { "Ip" }.into(),
            kind: "ban".into(),
            duration: duration.into(),
            origin: origin.into(),
            scenario: scenario.into(),
        }
    }
}

/// What one `cscli` run did.
#[derive(Debug)]
pub struct Cli {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A private LAPI. Dropping it kills the process it started.
pub struct Lapi {
    dir: TempDir,
    bin: Binaries,
    /// Its `config.yaml`.
    pub config: PathBuf,
    /// `cscli`'s machine credentials.
    pub creds: PathBuf,
    pub port: u16,
    /// `http://127.0.0.1:PORT/`, as a bouncer's `url`.
    pub url: String,
    /// The LAPI's own output (all its runs, appended).
    pub log: PathBuf,
    child: Option<Child>,
    /// How long the last start took until `/health` answered.
    pub started_in: Duration,
}

impl Lapi {
    /// Starts a LAPI, or returns None after printing why when the binaries
    /// are missing and [`required`] is false (panics when it is true).
    pub fn start_or_skip() -> Option<Lapi> {
        match Binaries::find() {
            Ok(bin) => Some(Lapi::start_with(bin)),
            Err(why) if required() => panic!("{why}"),
            Err(why) => {
                eprintln!(
                    "\n==================== SKIPPED: no CrowdSec ====================\n\
                     {why}\n\
                     (CI and {REQUIRE_VAR}=1 turn this skip into a failure.)\n\
                     ==============================================================\n"
                );
                None
            }
        }
    }

    /// Starts a LAPI; panics with the install hint when the binaries are missing.
    pub fn start() -> Lapi {
        Lapi::start_with(Binaries::find().unwrap_or_else(|why| panic!("{why}")))
    }

    pub fn start_with(bin: Binaries) -> Lapi {
        let dir = tempfile::Builder::new().prefix("lapi").tempdir().unwrap();
        let w = dir.path().to_path_buf();
        for sub in ["data", "hub", "notifications", "plugins"] {
            std::fs::create_dir_all(w.join(sub)).unwrap();
        }
        write(&w.join("hub/.index.json"), "{}\n");
        write(&w.join("simulation.yaml"), "simulation: off\n");
        // Debian's default profile.
        write(
            &w.join("profiles.yaml"),
            "name: default_ip_remediation\n\
             filters:\n - Alert.Remediation == true && Alert.GetScope() == \"Ip\"\n\
             decisions:\n - type: ban\n   duration: 4h\n\
             on_success: break\n",
        );
        let mut lapi = Lapi {
            config: w.join("config.yaml"),
            creds: w.join("creds.yaml"),
            log: w.join("lapi.log"),
            port: 0,
            url: String::new(),
            bin,
            dir,
            child: None,
            started_in: Duration::ZERO,
        };
        // A free port can be taken between our probe and the LAPI's bind:
        // try a few.
        let mut last = String::new();
        for _ in 0..5 {
            lapi.port = free_port();
            lapi.url = format!("http://127.0.0.1:{}/", lapi.port);
            lapi.write_config();
            match lapi.spawn() {
                Ok(()) => {
                    lapi.add_machine();
                    return lapi;
                }
                Err(why) => last = why,
            }
        }
        panic!("the LAPI did not start: {last}\n{}", lapi.log_text());
    }

    /// The private directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.dir().join("data/crowdsec.db")
    }

    /// The LAPI process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The LAPI's resident memory now, from /proc (kB).
    pub fn rss_kb(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    fn write_config(&self) {
        let d = self.dir().display().to_string();
        write(
            &self.config,
            &format!(
                "common:\n  daemonize: false\n  log_media: stdout\n  log_level: info\n  working_dir: {d}\n\
                 config_paths:\n  config_dir: {d}/\n  data_dir: {d}/data/\n\
                 \x20 simulation_path: {d}/simulation.yaml\n  hub_dir: {d}/hub/\n\
                 \x20 index_path: {d}/hub/.index.json\n  notification_dir: {d}/notifications/\n\
                 \x20 plugin_dir: {d}/plugins/\n\
                 crowdsec_service:\n  enable: false\n\
                 cscli:\n  output: human\n  color: \"no\"\n\
                 db_config:\n  log_level: info\n  type: sqlite\n  db_path: {d}/data/crowdsec.db\n\
                 \x20 use_wal: false\n\
                 api:\n  client:\n    insecure_skip_verify: false\n    credentials_path: {d}/creds.yaml\n\
                 \x20 server:\n    log_level: info\n    listen_uri: 127.0.0.1:{port}\n\
                 \x20   profiles_path: {d}/profiles.yaml\n\
                 prometheus:\n  enabled: false\n  level: full\n  listen_addr: 127.0.0.1\n  listen_port: 0\n",
                port = self.port
            ),
        );
    }

    /// Starts the process and waits for `/health`.
    fn spawn(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "the LAPI already runs");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let started = Instant::now();
        let mut child = Command::new(&self.bin.crowdsec)
            .arg("-c")
            .arg(&self.config)
            .arg("-no-cs")
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.crowdsec.display()))?;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Err(format!("crowdsec exited ({status})"));
            }
            if self.get("/health", None).is_ok_and(|r| r.status == 200) {
                break;
            }
            if started.elapsed() > START {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer on {} after {START:?}", self.url));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.started_in = started.elapsed();
        self.child = Some(child);
        Ok(())
    }

    /// `cscli machines add local -a -f creds.yaml` (again after a new database).
    fn add_machine(&self) {
        let creds = self.creds.to_str().unwrap().to_string();
        self.cscli_ok(&["machines", "add", "local", "-a", "-f", &creds, "--force"]);
    }

    /// Stops the LAPI (SIGTERM, then SIGKILL after 10 s). The directory and
    /// database stay.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.wait();
    }

    /// Starts it again after [`stop`](Self::stop) (same port, same database).
    pub fn start_again(&mut self) {
        if let Err(why) = self.spawn() {
            panic!("the LAPI did not start again: {why}\n{}", self.log_text());
        }
    }

    /// Stop, then start on the same port with the same database.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Stop, remove the database, start on the same port: every decision,
    /// bouncer key and machine is gone (the keys then answer 403; ids start
    /// at 1 again). cscli's machine is registered again.
    pub fn restart_with_new_database(&mut self) {
        self.stop();
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let path = PathBuf::from(format!("{}{suffix}", self.database().display()));
            if path.exists() {
                std::fs::remove_file(&path).unwrap();
            }
        }
        self.start_again();
        self.add_machine();
    }

    /// Runs `cscli -c CONFIG ARGS…`.
    pub fn cscli(&self, args: &[&str]) -> Cli {
        let out = Command::new(&self.bin.cscli)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.bin.cscli.display()));
        Cli {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Like [`cscli`](Self::cscli); the run must succeed.
    pub fn cscli_ok(&self, args: &[&str]) -> Cli {
        let cli = self.cscli(args);
        assert_eq!(cli.code, 0, "cscli {args:?}: {cli:?}\n{}", self.log_text());
        cli
    }

    /// `cscli bouncers add NAME -o raw`: a new bouncer and its key.
    pub fn bouncer_key(&self, name: &str) -> String {
        let key = self
            .cscli_ok(&["bouncers", "add", name, "-o", "raw"])
            .stdout
            .trim()
            .to_string();
        assert!(!key.is_empty(), "cscli printed no key for bouncer {name}");
        key
    }

    /// `cscli bouncers add NAME -k KEY`: a bouncer with a chosen key (the
    /// admin who re-creates the key a bouncer already has).
    pub fn bouncer_with_key(&self, name: &str, key: &str) {
        self.cscli_ok(&["bouncers", "add", name, "-k", key]);
    }

    /// `cscli bouncers delete NAME`: its key answers 403 from now on.
    pub fn revoke(&self, name: &str) {
        self.cscli_ok(&["bouncers", "delete", name]);
    }

    /// `cscli decisions add --ip|--range TARGET --duration D --reason R`
    /// (origin `cscli`, type ban). A `/` in the target makes it a range.
    pub fn add_decision(&self, target: &str, duration: &str, reason: &str) {
        self.add_decision_of_type(target, duration, reason, "ban");
    }

    /// Like [`add_decision`](Self::add_decision) with `--type KIND`.
    pub fn add_decision_of_type(&self, target: &str, duration: &str, reason: &str, kind: &str) {
        let flag = if target.contains('/') {
            "--range"
        } else {
            "--ip"
        };
        self.cscli_ok(&[
            "decisions",
            "add",
            flag,
            target,
            "--duration",
            duration,
            "--reason",
            reason,
            "--type",
            kind,
        ]);
    }

    /// `cscli decisions delete --ip|--range TARGET`; returns how many the
    /// LAPI says it deleted.
    pub fn delete_decision(&self, target: &str) -> usize {
        let flag = if target.contains('/') {
            "--range"
        } else {
            "--ip"
        };
        let cli = self.cscli_ok(&["decisions", "delete", flag, target]);
        deleted_count(&cli)
    }

    /// `cscli decisions delete --id ID`.
    pub fn delete_decision_id(&self, id: u64) -> usize {
        let cli = self.cscli_ok(&["decisions", "delete", "--id", &id.to_string()]);
        deleted_count(&cli)
    }

    /// `cscli decisions import -i FILE.csv` with the header
    /// `duration,scope,value,origin,reason` and these rows (e.g.
    /// `24h,ip,192.0.2.7,lists,my-list`); returns how long it took.
    /// 1.4.6 ignores the origin column: imported decisions have origin
    /// `cscli-import` (use [`push`](Self::push) for other origins).
    pub fn import<I, S>(&self, rows: I) -> Duration
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut csv = String::from("duration,scope,value,origin,reason\n");
        let mut n = 0;
        for row in rows {
            csv.push_str(row.as_ref());
            csv.push('\n');
            n += 1;
        }
        let file = self.dir().join(format!("import-{n}.csv"));
        write(&file, &csv);
        let started = Instant::now();
        self.cscli_ok(&["decisions", "import", "-i", file.to_str().unwrap()]);
        started.elapsed()
    }

    /// Creates decisions through `POST /v1/alerts` as cscli's machine, one
    /// alert per call, with the origins and scopes given.
    pub fn push(&self, decisions: &[Decision]) {
        let now = chrono_free_now();
        let decisions: Vec<Value> = decisions
            .iter()
            .map(|d| {
                json!({
                    "duration": d.duration, "origin": d.origin, "scenario": d.scenario,
                    "scope": d.scope, "type": d.kind, "value": d.value,
                })
            })
            .collect();
        let source = decisions.first().cloned().unwrap_or(json!({}));
        let alert = json!([{
            "scenario": "fail2pvefw-test", "scenario_hash": "", "scenario_version": "",
            "message": "pushed by the test fixture", "events_count": 1,
            "start_at": now, "stop_at": now, "capacity": 0, "leakspeed": "0",
            "simulated": false, "events": [],
            "source": {"scope": source["scope"], "value": source["value"]},
            "decisions": decisions,
        }]);
        let token = self.machine_token();
        let reply = self
            .request(
                "POST",
                "/v1/alerts",
                &[("Authorization", &format!("Bearer {token}"))],
                Some(&alert.to_string()),
            )
            .unwrap_or_else(|e| panic!("POST /v1/alerts: {e}"));
        assert_eq!(reply.status, 201, "POST /v1/alerts: {reply:?}");
    }

    /// A JWT for cscli's machine (`POST /v1/watchers/login`).
    fn machine_token(&self) -> String {
        let creds = std::fs::read_to_string(&self.creds).unwrap();
        let field = |name: &str| {
            creds
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in {}", self.creds.display()))
        };
        let body =
            json!({"machine_id": field("login"), "password": field("password"), "scenarios": []});
        let reply = self
            .request("POST", "/v1/watchers/login", &[], Some(&body.to_string()))
            .unwrap_or_else(|e| panic!("POST /v1/watchers/login: {e}"));
        assert_eq!(reply.status, 200, "login: {reply:?}");
        reply.json()["token"].as_str().unwrap().to_string()
    }

    /// `GET PATH`, with `X-Api-Key` when a key is given.
    pub fn get(&self, path: &str, key: Option<&str>) -> std::io::Result<Reply> {
        match key {
            Some(key) => self.request("GET", path, &[("X-Api-Key", key)], None),
            None => self.request("GET", path, &[], None),
        }
    }

    /// `GET /v1/decisions/stream?startup=…` with the key; panics unless 200.
    pub fn pull(&self, key: &str, startup: bool) -> Stream {
        self.pull_with(key, startup, "")
    }

    /// Like [`pull`](Self::pull) with more query parameters
    /// (`"&scopes=ip&origins=cscli"`).
    pub fn pull_with(&self, key: &str, startup: bool, query: &str) -> Stream {
        let path = format!("/v1/decisions/stream?startup={startup}{query}");
        let started = Instant::now();
        let reply = self
            .get(&path, Some(key))
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log_text()));
        let took = started.elapsed();
        assert_eq!(reply.status, 200, "GET {path}: {reply:?}");
        let v = reply.json();
        let list = |name: &str| match &v[name] {
            Value::Null => Vec::new(),
            Value::Array(a) => a.clone(),
            other => panic!("{name} is {other}"),
        };
        Stream {
            new: list("new"),
            deleted: list("deleted"),
            took,
        }
    }

    /// One HTTP/1.1 request over a fresh connection (`Connection: close`),
    /// `User-Agent: fail2pvefw-test/0`. Reads Content-Length and chunked
    /// bodies.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Reply> {
        http(self.port, method, path, headers, body)
    }

    /// The LAPI's output, for failure messages.
    pub fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(40)..];
        format!(
            "--- lapi.log (last {} lines) ---\n{}",
            tail.len(),
            tail.join("\n")
        )
    }
}

impl Drop for Lapi {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Seconds in a Go duration as the LAPI prints it: the host's own parser,
/// which `crowdsec_lapi.rs` holds against the real LAPI's strings.
#[allow(unused_imports)] // support is shared; not every test uses it
pub use fail2pvefw::transport::lapi::go_duration_secs;

fn deleted_count(cli: &Cli) -> usize {
    let all = format!("{}{}", cli.stdout, cli.stderr);
    let before = all
        .split(" decision(s) deleted")
        .next()
        .filter(|b| b.len() < all.len())
        .unwrap_or_else(|| panic!("no count in {cli:?}"));
    let digits = before.len() - before.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    before[before.len() - digits..]
        .parse()
        .unwrap_or_else(|_| panic!("no count in {cli:?}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Now as RFC 3339 UTC, without a date crate.
fn chrono_free_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: fail2pvefw-test/0\r\n\
         Accept: application/json\r\nConnection: close\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(body) = body {
        req.push_str(body);
    }
    stream.write_all(req.as_bytes())?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut raw = Vec::new();
    let bodiless = method == "HEAD" || status == 204 || status == 304;
    if bodiless {
        // No body follows.
    } else if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| std::io::Error::other(format!("chunk size {line:?}: {e}")))?;
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size];
            r.read_exact(&mut chunk)?;
            raw.extend_from_slice(&chunk);
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = header("Content-Length").and_then(|v| v.parse::<usize>().ok()) {
        raw.resize(n, 0);
        r.read_exact(&mut raw)?;
    } else {
        r.read_to_end(&mut raw)?;
    }
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&raw).into_owned(),
    })
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
