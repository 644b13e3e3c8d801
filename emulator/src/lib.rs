//! An emulator of the Proxmox VE datacenter-IPSet API over real HTTPS on
//! loopback, built from `shared/pve-ipset-api.md` (section numbers in the
//! comments refer to it). fail2pvefw's tests run against it because no real
//! PVE is available; the `pve-emulator` binary lets a newcomer try the tool.
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

mod api;
mod auth;
mod clock;
mod firewall;
mod http;
mod ipset;
mod params;
pub mod recorder;
mod routes;
mod rules;
mod server;
mod tls;

/// PVE's cidr validation and normalisation (§3), public so that other
/// crates can compare their own normalisation against it in tests.
pub mod cidr;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Secret of the token in [`Options::default`] (a fixed UUID, as PVE issues).
pub const DEMO_SECRET: &str = "5eca1f2b-0d1e-4c7a-9b3f-2a6d8e4f0c11";
/// Id of the token in [`Options::default`].
pub const DEMO_TOKEN_ID: &str = "fail2ban@pve!fail2ban";

/// An API token the emulator accepts (§9, §10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// `user@realm!name`, compared exactly.
    pub id: String,
    pub secret: String,
    /// Holds `Sys.Audit` on `/`: needed by every GET except `/version`.
    pub audit: bool,
    /// Holds `Sys.Modify` on `/`: needed by every POST, PUT and DELETE.
    pub modify: bool,
}

impl Token {
    /// A token with both privileges.
    pub fn new(id: &str, secret: &str) -> Token {
        Token {
            id: id.into(),
            secret: secret.into(),
            audit: true,
            modify: true,
        }
    }

    /// The value of the `Authorization` header that authenticates as it.
    pub fn header_value(&self) -> String {
        format!("PVEAPIToken={}={}", self.id, self.secret)
    }
}

/// Which certificate the server presents (§12.1). Only the leaf is sent.
#[derive(Debug, Clone, Default)]
pub enum Tls {
    /// A leaf signed by a throw-away "PVE Cluster Manager CA", as PVE ships.
    #[default]
    CaSigned,
    /// A self-signed leaf with the same subject.
    SelfSigned,
    /// A CA-signed leaf whose validity ended in 2021.
    Expired,
    /// Your own chain (leaf first, DER) and PKCS#8/PKCS#1/SEC1 key (DER).
    Custom {
        cert_chain_der: Vec<Vec<u8>>,
        key_der: Vec<u8>,
    },
}

/// A failure injected into the next write requests that reach their handler
/// (after authentication, privilege and schema checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 500 `cfs-lock 'firewall-cluster' error: got lock request timeout` (§8.2),
    /// answered at once rather than after PVE's 10 s.
    LockTimeout,
    /// This status with this message (reason phrase and JSON `message`).
    Status(u16, String),
    /// Hold the cluster lock this long, then run the write normally: a slow
    /// PVE. Other writes wait behind it, as they would for the cfs lock.
    Stall(Duration),
}

/// An ipset entry as a re-read of `cluster.fw` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub cidr: String,
    pub comment: Option<String>,
    pub nomatch: bool,
}

/// One request that got past the TLS handshake and was parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    /// The request target as sent, query string included, not decoded.
    pub path: String,
    /// Query and body parameters, decoded, in the order sent (query last);
    /// empty when the request was refused before they were read.
    pub params: Vec<(String, String)>,
    /// Whether an `Authorization` header was present at all.
    pub authorization: bool,
    pub status: u16,
}

/// An initial ipset entry: (cidr, comment); a leading `!` marks `nomatch`.
pub type InitialEntry = (String, Option<String>);

/// How to start an [`Emulator`]. Build it with `..Options::default()`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Accepted tokens. Default: [`DEMO_TOKEN_ID`] with [`DEMO_SECRET`].
    pub tokens: Vec<Token>,
    /// Delay before every 401 (§9): 3 s like PVE; tests shorten it.
    pub auth_delay: Duration,
    /// Omit `message` from JSON error bodies, like http-server < 5.2.0 (§6).
    pub legacy_errors: bool,
    pub tls: Tls,
    /// Initial ipsets: name → entries (cidr, comment). The strings are
    /// written to `cluster.fw` as given (not normalised); a leading `!` in
    /// the cidr marks `nomatch`. Default: one empty ipset `fail2ban`.
    pub ipsets: Vec<(String, Vec<InitialEntry>)>,
    /// Datacenter aliases (name, cidr) for alias entries (§2).
    pub aliases: Vec<(String, String)>,
    /// `[RULES]` lines of `cluster.fw` as PVE writes them, e.g.
    /// `"IN DROP -source +dc/fail2ban -log nolog"`; a leading `|` disables
    /// one. Read by `GET /cluster/firewall/rules`. Default: none.
    pub rules: Vec<String>,
    /// `[OPTIONS] enable` of `cluster.fw`, read by `GET
    /// /cluster/firewall/options`. `None` leaves it unset, which PVE takes
    /// as off (the datacenter firewall is disabled by default).
    pub firewall_enable: Option<bool>,
    /// If set, the initial `cluster.fw` text verbatim (`ipsets` and `aliases`
    /// are then ignored): for hand-edited or corrupted files.
    pub cluster_fw: Option<String>,
    /// Cap on the serialised `cluster.fw` in bytes (§8.3): 1 MiB.
    pub max_file_size: usize,
    /// What `GET /version` reports, e.g. "9.0.3"; `release` is derived.
    pub version: String,
    /// Where to listen. Default `127.0.0.1:0` (a free port). Loopback only.
    pub listen: SocketAddr,
    /// Print one line per request (method, path, status) to stderr.
    pub log_requests: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tokens: vec![Token::new(DEMO_TOKEN_ID, DEMO_SECRET)],
            auth_delay: Duration::from_secs(3),
            legacy_errors: false,
            tls: Tls::CaSigned,
            ipsets: vec![("fail2ban".into(), Vec::new())],
            aliases: Vec::new(),
            rules: Vec::new(),
            firewall_enable: None,
            cluster_fw: None,
            max_file_size: 1024 * 1024,
            version: "9.0.3".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_requests: false,
        }
    }
}

/// A running emulator. Dropping it stops the server: the listener is closed,
/// open connections are shut down and the accept thread is joined.
pub struct Emulator {
    server: server::Server,
    shared: Arc<server::Shared>,
}

impl Emulator {
    /// Generates certificates, binds the listener and starts serving.
    /// Panics if the address cannot be bound (a test set-up failure).
    pub fn start(opts: Options) -> Emulator {
        let shared = Arc::new(server::Shared::new(&opts));
        let server = server::Server::start(opts.listen, shared.clone());
        Emulator { server, shared }
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
    pub fn entries(&self, ipset: &str) -> Option<Vec<Entry>> {
        let conf = self.shared.conf();
        let set = conf.ipsets.get(ipset)?;
        let entry = |e: &firewall::FileEntry| Entry {
            cidr: e.cidr.clone(),
            comment: e.comment.clone(),
            nomatch: e.nomatch,
        };
        Some(set.entries.iter().map(entry).collect())
    }

    /// The ipset names as `GET /cluster/firewall/ipset` would list them.
    pub fn ipsets(&self) -> Vec<String> {
        self.shared.conf().ipsets.keys().cloned().collect()
    }

    /// The current `cluster.fw` text (§7.1); empty when the file is absent.
    pub fn cluster_fw(&self) -> String {
        self.shared.file.lock().unwrap().clone()
    }

    /// Replaces `cluster.fw`, as an administrator's hand edit would.
    pub fn set_cluster_fw(&self, text: &str) {
        let _write = self.shared.write_lock.lock().unwrap();
        *self.shared.file.lock().unwrap() = text.to_string();
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
