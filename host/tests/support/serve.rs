//! `fail2pvefw serve` as a child of the test: started on a set-up's
//! config with its socket in the set-up's temp dir, stopped (SIGTERM) or
//! killed (SIGKILL) by its pid only, and killed when dropped.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Service {
    child: Option<Child>,
    pub config: PathBuf,
    pub socket: PathBuf,
    /// The service's stderr.
    pub log: PathBuf,
}

/// The `[serve]` table that puts the socket at `socket`.
pub fn serve_table(socket: &Path) -> String {
    format!("\n[serve]\nsocket = \"{}\"\n", socket.display())
}

impl Service {
    /// Starts `fail2pvefw -v --config CONFIG serve` and waits until it
    /// answers a ping on `socket`.
    pub fn start(config: &Path, socket: &Path) -> Service {
        let log = config.with_file_name("serve.log");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
            .arg("-v")
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env("TZ", "UTC")
            .env_remove("FAIL2PVEFW_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start fail2pvefw serve");
        let mut service = Service {
            child: Some(child),
            config: config.to_path_buf(),
            socket: socket.to_path_buf(),
            log,
        };
        let started = Instant::now();
        loop {
            if let Ok(answer) = service.try_ask(&serde_json::json!({"op": "ping"})) {
                assert_eq!(answer["ok"], true, "{answer}");
                break;
            }
            if let Some(status) = service.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("serve exited ({status}):\n{}", service.log_text());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "serve did not come up:\n{}",
                service.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        service
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One request on a new connection.
    pub fn try_ask(&self, request: &Value) -> std::io::Result<Value> {
        let mut conn = Conn::open(&self.socket)?;
        conn.ask(request)
    }

    pub fn ask(&self, request: &Value) -> Value {
        self.try_ask(request)
            .unwrap_or_else(|e| panic!("ask {request}: {e}\n{}", self.log_text()))
    }

    pub fn signal(&self, signal: i32) {
        let pid = self.pid() as i32;
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// SIGTERM, then waits for the exit; returns the exit code.
    pub fn stop(&mut self) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(30))
    }

    /// SIGKILL, then waits.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(10));
    }

    fn wait(&mut self, timeout: Duration) -> i32 {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve did not stop:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A connection kept open, as fail2ban's Python action keeps one.
pub struct Conn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Conn {
    pub fn open(socket: &Path) -> std::io::Result<Conn> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn { stream, reader })
    }

    /// Sends one raw line (a newline is added), reads one answer.
    pub fn raw(&mut self, line: &str) -> std::io::Result<Value> {
        self.stream.write_all(format!("{line}\n").as_bytes())?;
        let mut answer = String::new();
        if self.reader.read_line(&mut answer)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed without an answer",
            ));
        }
        serde_json::from_str(&answer).map_err(std::io::Error::other)
    }

    pub fn ask(&mut self, request: &Value) -> std::io::Result<Value> {
        self.raw(&request.to_string())
    }

    /// Whether the service closed the connection.
    pub fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(self.reader.read_line(&mut rest), Ok(0) | Err(_))
    }
}
