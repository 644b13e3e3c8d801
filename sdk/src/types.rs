//! The WIT world's records as plain Rust types, with no bindings behind
//! them: what the policy's exports take and return, and what the imports
//! answer. The `guest` feature converts them to and from the generated ones.

use std::fmt;

use crate::tag::Owner;

/// Why a call failed: the WIT `error` variant, one case per remedy. The
/// host decides from the case alone whether to keep, retry or drop an
/// event, and which exit code to give; it never reads the words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The input is not acceptable; nothing was sent. (exit 2)
    InvalidInput(String),
    /// The host refused: a write its guard rails forbid, a path not granted,
    /// the store's quota, or a setting the policy cannot work with. That
    /// event is dropped. (exit 3)
    Denied(String),
    /// PVE refused and a person must fix something first (token,
    /// privileges, a missing IPSet, a full `cluster.fw`): every event is
    /// kept and sending stops. (exit 1)
    Refused {
        status: u16,
        message: String,
        cause: Cause,
    },
    /// PVE will never accept this request as it was sent (a 400 other than
    /// "already exists"): that event is dropped. (exit 1)
    Rejected {
        status: u16,
        message: String,
        cause: Cause,
    },
    /// Someone else's entry, left alone by the host: the right outcome, the
    /// event is done. (exit 0)
    NotOurs(String),
    /// No answer from PVE: retried later. (exit 1)
    Unreachable(String),
    /// PVE could not do it now (the cluster lock, a 5xx): retried later
    /// with backoff. (exit 1)
    Busy(String),
}

/// What a refusal is about (the WIT `refusal-cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// 401: the token id or secret is wrong, or the token expired.
    Authentication,
    /// 403: the token lacks Sys.Audit or Sys.Modify on `/`.
    Permission,
    /// 500 `no such IPSet`.
    NoSuchIpset,
    /// 500 `File too large`: `cluster.fw` would exceed its 1 MiB.
    Capacity,
    /// A parameter PVE rejected (400).
    Parameter,
    /// Anything else.
    Other,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Denied(m) => write!(f, "denied by the host: {m}"),
            Error::Refused {
                status, message, ..
            }
            | Error::Rejected {
                status, message, ..
            } => write!(f, "PVE refused: {status} {message}"),
            Error::NotOurs(m) => write!(f, "left alone: {m}"),
            Error::Unreachable(m) => write!(f, "PVE unreachable: {m}"),
            Error::Busy(m) => write!(f, "PVE busy: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// An HTTP response from PVE, whatever its status (the `pve` import's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The status line's reason phrase, where PVE puts its error text.
    pub reason: String,
    /// `{"data":...}` JSON, a plain text error, or empty (401).
    pub body: String,
}

impl Response {
    /// A 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The `data` of a JSON body, if the body is one.
    pub fn data(&self) -> Option<serde_json::Value> {
        let mut body: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        Some(body.get_mut("data")?.take())
    }
}

/// One ban or unban, as fail2ban handed it to the action (the WIT
/// `ban-request`).
#[derive(Debug, Clone, PartialEq)]
pub struct BanRequest {
    /// The address or network fail2ban gave (`<ip>`), unchecked.
    pub ip: String,
    /// The datacenter IPSet to use.
    pub ipset: String,
    /// The jail's name (`<name>`).
    pub jail: Option<String>,
    /// Free text for the entry's comment (`-c`); `None` when `-c` was not
    /// given, and the policy words the comment itself.
    pub comment: Option<String>,
    /// When fail2ban banned it (`<time>`, Unix seconds); now if absent.
    pub time: Option<f64>,
    /// The ban's length in seconds (`<bantime>`); negative means forever.
    pub bantime: Option<i64>,
    /// How many failures led to the ban (`<failures>`).
    pub failures: Option<u32>,
    /// fail2ban re-applies a ban it had stored (`<restored>`).
    pub restored: bool,
    /// This fail2pvefw instance (`[state] instance`): what the ownership
    /// tag of every entry the policy writes names.
    pub instance: String,
}

impl BanRequest {
    /// A request for `ip` in `ipset` from `instance`, nothing else given.
    pub fn new(ip: &str, ipset: &str, instance: &str) -> BanRequest {
        BanRequest {
            ip: ip.to_string(),
            ipset: ipset.to_string(),
            jail: None,
            comment: None,
            time: None,
            bantime: None,
            failures: None,
            restored: false,
            instance: instance.to_string(),
        }
    }

    /// The owner of the entries this ban writes, for a ban made at
    /// `banned_at` (see [`crate::comment::ban_time`]): this instance, the
    /// jail, and the end of the ban (`bantime` < 0 or none: permanent).
    pub fn owner(&self, banned_at: i64) -> Owner {
        Owner::for_ban(
            &self.instance,
            self.jail.as_deref(),
            banned_at,
            self.bantime,
        )
    }
}

/// One entry of a PVE IPSet, as stored there (the WIT `entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The exact string PVE stores; delete by exactly this.
    pub cidr: String,
    pub comment: Option<String>,
    /// Set when the comment carries an ownership tag.
    pub owner: Option<Owner>,
}

impl Entry {
    /// An entry as PVE lists it, its owner read from the comment's tag.
    pub fn new(cidr: &str, comment: Option<&str>) -> Entry {
        Entry {
            cidr: cidr.to_string(),
            comment: comment.map(str::to_string),
            owner: comment.and_then(Owner::parse),
        }
    }
}

/// How important a log line is (the WIT `log.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}
