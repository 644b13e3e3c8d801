//! How to start an [`crate::Emulator`]: the tokens it accepts, its
//! certificate, the initial `cluster.fw`, and the faults to inject.

use std::net::SocketAddr;
use std::path::PathBuf;
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

/// An initial ipset entry: (cidr, comment); a leading `!` marks `nomatch`.
pub type InitialEntry = (String, Option<String>);

/// How to start an [`Emulator`](crate::Emulator). Build it with `..Options::default()`.
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
    /// If set, the initial `cluster.fw` text verbatim (`ipsets`, `aliases`,
    /// `rules` and `firewall_enable` are then ignored): for hand-edited or
    /// corrupted files.
    pub cluster_fw: Option<String>,
    /// Keep `cluster.fw` in this file, as a node keeps it in pmxcfs: read
    /// at start (if it does not exist, it is created from the other
    /// options), rewritten whole after every write (a temporary file, then
    /// a rename), removed when PVE would delete it. Default: in memory.
    pub cluster_fw_file: Option<PathBuf>,
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
            cluster_fw_file: None,
            max_file_size: pve_model::MAX_FILE_SIZE,
            version: "9.0.3".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_requests: false,
        }
    }
}
