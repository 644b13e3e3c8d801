//! The local API of `fail2pvefw serve`: line-delimited JSON on a Unix
//! stream socket (`[serve] socket`), one request a line, one answer a line,
//! in order, on a connection that may stay open (fail2ban's Python action
//! keeps one). This module is the wire format and the CLI's client; the
//! server is `serve`.
//!
//! A request names its operation in `op` and, optionally, the
//! configuration file it was meant for (`config`): a service running
//! another configuration answers `other-config` and the client does the
//! work itself.
//!
//! ```text
//! {"op":"ban","ip":"203.0.113.7","ipset":"fail2ban","jail":"sshd","time":1767225600,"bantime":3600,"failures":3,"restored":false,"comment":"sshd, 3 failures"}
//! {"ok":true,"code":0,"kind":"done","message":"","entry":"203.0.113.7","event":12}
//! {"op":"ban","ip":"not-an-ip"}
//! {"ok":false,"code":2,"kind":"invalid-input","message":"ban: 'not-an-ip' is …","hint":null}
//! ```
//!
//! `code` is the CLI's exit code for the same outcome (0 done, 1 PVE, 2 bad
//! input, 3 configuration). `kind` is `done`, `pve`, `invalid-input`,
//! `config`, `denied` (the peer may not use the socket) or `other-config`.
//! The token never crosses the socket: no request carries it, no answer
//! holds it.

use crate::config::Config;
use crate::error::{Failure, Kind, Result};
use crate::state::queue::{Action, Request};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest request line the service reads; a longer one is refused and
/// the connection closed.
pub const MAX_LINE: usize = 64 * 1024;

/// How long the CLI waits for the service's answer before doing the work
/// itself (a commit takes milliseconds; a late answer's event, if it was
/// committed, is committed twice, which the queue reduces to one call).
const ANSWER_PATIENCE: Duration = Duration::from_secs(5);

/// One request on the socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiRequest {
    #[serde(flatten)]
    pub op: Op,
    /// The configuration file the client was given; a service running
    /// another one answers `other-config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    Ban(Event),
    Unban(Event),
    Flush {
        #[serde(default)]
        jail: Option<String>,
        #[serde(default)]
        remove: bool,
        /// CrowdSec's entries instead of a jail's.
        #[serde(default)]
        crowdsec: bool,
    },
    Start {
        #[serde(default)]
        ipset: Option<String>,
    },
    Check {
        #[serde(default)]
        ipset: Option<String>,
    },
    Status {
        #[serde(default)]
        ipset: Option<String>,
        #[serde(default)]
        json: bool,
        #[serde(default)]
        prometheus: bool,
    },
    /// Whether the service is up; answers `done` with its version.
    Ping,
}

/// A ban or unban as fail2ban gives it (the CLI's `ban`/`unban` options).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub ip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bantime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failures: Option<u32>,
    #[serde(default)]
    pub restored: bool,
}

impl Op {
    /// The request of a `ban`/`unban` command line.
    pub fn event(action: Action, req: &Request) -> Op {
        let event = Event {
            ip: req.ip.clone(),
            ipset: Some(req.ipset.clone()),
            jail: req.jail.clone(),
            comment: req.comment.clone(),
            time: req.time,
            bantime: req.bantime,
            failures: req.failures,
            restored: req.restored,
        };
        match action {
            Action::Ban => Op::Ban(event),
            Action::Unban => Op::Unban(event),
        }
    }
}

impl Event {
    /// The queue's request, in `default_ipset` unless the event names one.
    pub fn request(&self, default_ipset: &str) -> Request {
        Request {
            ip: self.ip.clone(),
            ipset: self
                .ipset
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| default_ipset.to_string()),
            jail: self.jail.clone().filter(|s| !s.is_empty()),
            comment: self.comment.clone(),
            time: self.time,
            bantime: self.bantime,
            failures: self.failures,
            restored: self.restored,
            dns: None,
        }
    }
}

/// One answer on the socket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    /// The CLI's exit code for the same outcome.
    pub code: u8,
    pub kind: String,
    pub message: String,
    #[serde(default)]
    pub hint: Option<String>,
    /// The validated entry of a ban or unban.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// The committed event's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<i64>,
}

pub const DENIED: &str = "denied";
pub const OTHER_CONFIG: &str = "other-config";

impl Answer {
    pub fn done(message: impl Into<String>) -> Answer {
        Answer {
            ok: true,
            code: 0,
            kind: "done".into(),
            message: message.into(),
            hint: None,
            entry: None,
            event: None,
        }
    }

    pub fn failed(failure: &Failure) -> Answer {
        Answer {
            ok: false,
            code: failure.kind.exit_code(),
            kind: match failure.kind {
                Kind::Pve => "pve",
                Kind::Input => "invalid-input",
                Kind::Config => "config",
            }
            .into(),
            message: failure.message.clone(),
            hint: failure.hint.clone(),
            entry: None,
            event: None,
        }
    }

    /// A refusal of the service's own (`denied`, `other-config`).
    pub fn refused(kind: &str, message: impl Into<String>) -> Answer {
        Answer {
            ok: false,
            code: 3,
            kind: kind.into(),
            message: message.into(),
            hint: None,
            entry: None,
            event: None,
        }
    }

    pub fn of(result: Result<String>) -> Answer {
        match result {
            Ok(message) => Answer::done(message),
            Err(failure) => Answer::failed(&failure),
        }
    }

    /// The outcome as the CLI reports it.
    pub fn into_result(self) -> Result<String> {
        if self.ok {
            return Ok(self.message);
        }
        let kind = match self.code {
            1 => Kind::Pve,
            2 => Kind::Input,
            _ => Kind::Config,
        };
        let failure = Failure::new(kind, self.message);
        Err(match self.hint {
            Some(hint) => failure.hint(hint),
            None => failure,
        })
    }

    /// One JSON line.
    pub fn line(&self) -> String {
        let mut text = serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"ok":false,"code":3,"kind":"config","message":"unprintable answer"}"#.into()
        });
        text.push('\n');
        text
    }
}

/// The path `config` is known by to the service (`other-config` compares
/// these).
pub fn config_key(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Hands `op` to a running `fail2pvefw serve` of this configuration and
/// returns its answer; `None` when it is not there, is another
/// configuration's, refuses us or does not answer in time: the caller then
/// does the work itself, so no ban is lost.
pub fn hand_off(config: &Config, op: &Op) -> Option<Answer> {
    let request = ApiRequest {
        op: op.clone(),
        config: Some(config_key(&config.path)),
    };
    match ask(&config.serve.socket, &request, ANSWER_PATIENCE) {
        Ok(answer) if answer.kind == DENIED || answer.kind == OTHER_CONFIG => {
            crate::log::debug(&format!(
                "fail2pvefw serve did not take the event ({}): {}",
                answer.kind, answer.message
            ));
            None
        }
        Ok(answer) => Some(answer),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound
                && e.kind() != std::io::ErrorKind::ConnectionRefused
            {
                crate::log::debug(&format!(
                    "fail2pvefw serve at '{}' did not answer ({e}); doing the work here",
                    config.serve.socket.display()
                ));
            }
            None
        }
    }
}

/// One request, one answer, on a new connection.
pub fn ask(socket: &Path, request: &ApiRequest, patience: Duration) -> std::io::Result<Answer> {
    let stream = UnixStream::connect(socket)?;
    stream.set_write_timeout(Some(patience))?;
    stream.set_read_timeout(Some(patience))?;
    let mut line = serde_json::to_string(request).map_err(std::io::Error::other)?;
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut reader = BufReader::new(&stream);
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the service closed the connection without an answer",
        ));
    }
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ban_request_reads_as_the_python_action_writes_it() {
        let line = r#"{"op":"ban","ip":"203.0.113.7","ipset":"f2b","jail":"sshd","time":1767225600.5,"bantime":3600,"failures":3,"restored":true,"comment":"c","config":"/etc/fail2pvefw/config.toml"}"#;
        let req: ApiRequest = serde_json::from_str(line).unwrap();
        let Op::Ban(event) = &req.op else {
            panic!("{req:?}")
        };
        let r = event.request("fail2ban");
        assert_eq!(
            (r.ip.as_str(), r.ipset.as_str(), r.jail.as_deref()),
            ("203.0.113.7", "f2b", Some("sshd"))
        );
        assert_eq!(
            (r.bantime, r.failures, r.restored),
            (Some(3600), Some(3), true)
        );
        assert_eq!(
            req.config.as_deref(),
            Some(Path::new("/etc/fail2pvefw/config.toml"))
        );
        let back: ApiRequest = serde_json::from_str(&serde_json::to_string(&req).unwrap()).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn unknown_ops_are_refused() {
        assert!(serde_json::from_str::<ApiRequest>(r#"{"op":"explode"}"#).is_err());
        assert!(serde_json::from_str::<ApiRequest>(r#"{"ip":"1.2.3.4"}"#).is_err());
        assert!(serde_json::from_str::<ApiRequest>(r#"{"op":"ping"}"#).is_ok());
    }

    #[test]
    fn an_answer_carries_the_exit_code_meaning() {
        let a = Answer::failed(&Failure::input("bad").hint("fix it"));
        assert_eq!((a.code, a.kind.as_str()), (2, "invalid-input"));
        let f = a.into_result().unwrap_err();
        assert_eq!((f.kind, f.hint.as_deref()), (Kind::Input, Some("fix it")));
        assert_eq!(Answer::done("x").into_result().unwrap(), "x");
    }
}
