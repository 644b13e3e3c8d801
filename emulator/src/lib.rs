//! An emulator of the Proxmox VE datacenter-IPSet API over real HTTPS on
//! loopback, built from `shared/pve-ipset-api.md` (section numbers in the
//! comments refer to it). fail2pvefw's tests run against it because no real
//! PVE is available; the `pve-emulator` binary lets a newcomer try the tool.
//!
//! What PVE answers and how it keeps `cluster.fw` is the I/O-free model's,
//! [`pve_model`]; this crate adds what a node adds around it: TLS, the web
//! server's own checks, authentication, the cluster lock, injected faults,
//! a record of the requests, and optionally the file on disk
//! ([`Options::cluster_fw_file`], the binary's `--cluster-fw FILE`), read at
//! start and rewritten whole after every write, as a node does.
//!
//! ```no_run
//! use pve_emulator::{Emulator, Options, Token};
//! use std::time::Duration;
//!
//! let emu = Emulator::start(Options {
//!     tokens: vec![Token::new("fail2ban@pve!f2b", "s3cret")],
//!     auth_delay: Duration::from_millis(50),
//!     ..Options::default()
//! });
//! // Point the client at emu.host_port(), pin emu.fingerprint(), send
//! // "Authorization: PVEAPIToken=fail2ban@pve!f2b=s3cret", then inspect:
//! let stored = emu.entries("fail2ban").unwrap();
//! # let _ = stored;
//! ```
//!
//! Everything is synchronous: one thread accepts, one thread serves each
//! connection, and the state sits behind mutexes. Dropping the [`Emulator`]
//! closes the listener and every open connection.

mod auth;
mod clock;
mod http;
mod options;
mod pipeline;
pub mod recorder;
mod server;
mod state;
mod tls;
mod wire;

pub use options::{DEMO_SECRET, DEMO_TOKEN_ID, Fault, InitialEntry, Options, Tls, Token};
pub use wire::Recorded;

/// PVE's cidr validation and normalisation (§3), public so that other
/// crates can compare their own normalisation against it in tests.
pub use pve_model::cidr;

use std::net::SocketAddr;
use std::sync::Arc;

/// An ipset entry as a re-read of `cluster.fw` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cidr: String,
    pub comment: Option<String>,
    pub nomatch: bool,
}

/// A running emulator. Dropping it stops the server: the listener is closed,
/// open connections are shut down and the accept thread is joined.
pub struct Emulator {
    server: server::Server,
    shared: Arc<state::Shared>,
}

impl Emulator {
    /// Generates certificates, binds the listener and starts serving.
    /// Panics if the address cannot be bound or `cluster_fw_file` cannot
    /// be read (a test set-up failure).
    pub fn start(opts: Options) -> Emulator {
        Emulator::try_start(opts).unwrap_or_else(|e| panic!("pve-emulator: {e}"))
    }

    /// [`Emulator::start`], with the set-up failure as an error.
    pub fn try_start(opts: Options) -> Result<Emulator, String> {
        let shared = Arc::new(state::Shared::new(&opts)?);
        let server = server::Server::start(opts.listen, shared.clone())
            .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
        Ok(Emulator { server, shared })
    }

    /// The bound address (always loopback in tests).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// `"127.0.0.1:PORT"`, the `host` of a fail2pvefw config.
    pub fn host_port(&self) -> String {
        self.addr().to_string()
    }

    /// `https://127.0.0.1:PORT/api2/json`.
    pub fn base_url(&self) -> String {
        format!("https://{}/api2/json", self.host_port())
    }

    /// SHA-256 of the leaf certificate's DER as upper-case `AA:BB:…` (95
    /// characters), as the PVE GUI and `openssl x509 -fingerprint` show it.
    pub fn fingerprint(&self) -> String {
        tls::fingerprint(&self.shared.identity.leaf_der)
    }

    /// The issuing CA in PEM (the leaf itself for `SelfSigned`, the last
    /// certificate of the chain for `Custom`).
    pub fn ca_pem(&self) -> String {
        self.shared.identity.ca_pem.clone()
    }

    /// The leaf certificate in PEM.
    pub fn leaf_pem(&self) -> String {
        tls::pem("CERTIFICATE", &self.shared.identity.leaf_der)
    }

    /// The leaf certificate in DER.
    pub fn leaf_der(&self) -> Vec<u8> {
        self.shared.identity.leaf_der.clone()
    }

    /// The entries of an ipset as a fresh read of `cluster.fw` shows them
    /// (file order, names lower-cased by the parser); `None` if no such ipset.
    /// An entry PVE keeps without a cidr (a line it cannot read) has an
    /// empty `cidr` here.
    pub fn entries(&self, ipset: &str) -> Option<Vec<Entry>> {
        let entries = self.shared.cluster().entries(ipset)?;
        let entry = |e: pve_model::clusterfw::Entry| Entry {
            cidr: e.cidr.unwrap_or_default(),
            comment: e.comment,
            nomatch: e.nomatch,
        };
        Some(entries.into_iter().map(entry).collect())
    }

    /// The ipset names as `GET /cluster/firewall/ipset` would list them.
    pub fn ipsets(&self) -> Vec<String> {
        self.shared.cluster().ipsets()
    }

    /// The current `cluster.fw` text (§7.1), bytes that are not UTF-8
    /// replaced; empty when the file is absent.
    pub fn cluster_fw(&self) -> String {
        String::from_utf8_lossy(&self.cluster_fw_bytes()).into_owned()
    }

    /// The current `cluster.fw`, byte for byte.
    pub fn cluster_fw_bytes(&self) -> Vec<u8> {
        self.shared.cluster().cluster_fw().to_vec()
    }

    /// Replaces `cluster.fw`, as an administrator's hand edit would (and
    /// writes the file, with [`Options::cluster_fw_file`]).
    pub fn set_cluster_fw(&self, text: &str) {
        let _cfs_lock = self.shared.write_lock.lock().unwrap();
        self.shared.cluster().set_cluster_fw(text);
        self.shared.persist(text.as_bytes());
    }

    /// Every request that got past TLS, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Forgets the recorded requests (not the write count).
    pub fn clear_requests(&self) {
        self.shared.requests.lock().unwrap().clear();
    }

    /// Number of POST/PUT/DELETE requests answered 200.
    pub fn write_count(&self) -> usize {
        self.shared.writes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Makes the next `n` write requests that reach a handler fail with `fault`.
    pub fn fail_next_writes(&self, n: usize, fault: Fault) {
        let mut faults = self.shared.faults.lock().unwrap();
        faults.extend(std::iter::repeat_n(fault, n));
    }

    /// "PVE is down": closes the listener (connects are refused) and every
    /// open connection. Idempotent.
    pub fn pause(&self) {
        self.server.pause();
    }

    /// Listens again on the same port. Panics if the port was taken meanwhile.
    pub fn resume(&self) {
        self.server.resume();
    }

    /// Grants or revokes a token's privileges; unknown ids are ignored.
    pub fn set_privileges(&self, token_id: &str, audit: bool, modify: bool) {
        let mut tokens = self.shared.tokens.lock().unwrap();
        for t in tokens.iter_mut().filter(|t| t.id == token_id) {
            t.audit = audit;
            t.modify = modify;
        }
    }

    /// A fail2pvefw TOML config for this emulator (§ "Binary" of the brief):
    /// `[pve]` host, token, fingerprint, ipset and `[state]` dir.
    pub fn config_toml(&self, token: &Token, ipset: &str, state_dir: &str) -> String {
        let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        format!(
            "[pve]\nhost = {}\ntoken = {}\nfingerprint = {}\nipset = {}\n\n[state]\ndir = {}\n",
            q(&self.host_port()),
            q(&format!("{}={}", token.id, token.secret)),
            q(&self.fingerprint()),
            q(ipset),
            q(state_dir),
        )
    }
}
