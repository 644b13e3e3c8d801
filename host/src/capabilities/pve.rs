//! `pve`: HTTPS to the configured Proxmox VE node, on the policy's behalf.
//!
//! The policy names a method, a path and parameters; the [`Guard`] checks
//! them before any I/O, then this capability adds what the policy must never
//! see (the API token and the TLS trust) and records every entry write it
//! let through ([`Write`]).
//!
//! A PUT or DELETE of an entry is sent only for an entry of ours: the host
//! first reads the entry (`GET …/NAME/CIDR`) and checks that its comment
//! ends with this instance's tag. A missing entry is answered `200` without
//! a DELETE (PVE would answer the same and rewrite `cluster.fw` for
//! nothing); someone else's is `not-ours`. Ours is sent with the `digest`
//! of that read. PVE's digest covers the whole IPSet, so a change between
//! our read and our delete makes PVE refuse the delete (a 500), and we read
//! again: at most [`CHANGE_TRIES`] reads and writes, then the last answer
//! goes to the policy.

use super::guard::{self, Actor, Checked, Guard, IPSET_API};
use super::pacer::Pacer;
use crate::bindings::fail2pvefw::policy::pve::{self, Response};
use crate::bindings::fail2pvefw::policy::types::Error;
use crate::config;
use crate::error::Failure;
use crate::log;
use crate::transport::client::{Client, Outcome};
use pve_model::{Caller, Cluster};
use serde_json::Value;
use std::path::PathBuf;

/// How often a PUT or DELETE of an entry is read and sent while PVE answers
/// 500 (the IPSet changed since the read).
pub const CHANGE_TRIES: usize = 3;

/// Where requests go.
pub enum Backend {
    /// The configured PVE node over HTTPS. The client is built on the first
    /// request: `validate` and denied requests cost no TLS setup.
    Remote {
        config: Box<config::Pve>,
        /// Where the pins `fail2pvefw trust` stored are read from.
        state_dir: PathBuf,
        client: Option<Client>,
    },
    /// A `cluster.fw` in memory, answered by the PVE model as PVE would
    /// (`fail2pvefw sandbox`): no network, no token.
    Memory(Box<Cluster>),
}

pub struct Pve {
    backend: Backend,
    /// What the policy may ask for; checked before any I/O.
    pub guard: Guard,
    /// The last transport failure with its remedy, for the runner's message.
    pub last_failure: Option<Failure>,
    /// Every request, `METHOD path params -> status`, and every denial,
    /// for the sandbox's list and the logs.
    pub calls: Vec<String>,
    /// The entry writes let through since the last `take_writes`: what a
    /// call actually put into or took out of PVE, for the queue.
    writes: Vec<Write>,
    /// `[pve] writes_per_second`, for writes to the real PVE.
    pacer: Option<Pacer>,
    /// Set while the policy chooses what gets in (`admit`): every request
    /// is denied, since choosing is pure.
    pub sealed: bool,
}

/// One entry write the guard let through, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub ipset: String,
    /// The entry as PVE stores it.
    pub cidr: String,
    /// The comment a POST or PUT sent; for a DELETE (or a `NotOurs`) the
    /// comment the entry had when the host read it.
    pub comment: Option<String>,
    pub outcome: WriteOutcome,
}

/// How an entry write ended, from the status alone (the host never reads
/// PVE's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A POST (or a PUT of our entry) answered 2xx: the entry is in PVE
    /// with the write's comment.
    Added,
    /// A DELETE answered 2xx.
    Deleted,
    /// The entry was not there; nothing was sent.
    Absent,
    /// The entry carries no tag of ours; nothing was sent.
    NotOurs,
    /// PVE answered with this error status (to the write, or to the host's
    /// read before it).
    Refused(u16),
    /// No answer came back: it may or may not have landed.
    Unreachable,
}

impl Pve {
    /// The configured PVE node, for what `guard` allows.
    pub fn new(config: config::Pve, state_dir: PathBuf, guard: Guard) -> Pve {
        let pacer = Pacer::new(config.writes_per_second, state_dir.clone());
        let mut pve = Pve::with_backend(
            Backend::Remote {
                config: Box::new(config),
                state_dir,
                client: None,
            },
            guard,
        );
        pve.pacer = Some(pacer);
        pve
    }

    /// A cluster in memory (the sandbox's, a benchmark's).
    pub fn in_memory(cluster: Cluster, guard: Guard) -> Pve {
        Pve::with_backend(Backend::Memory(Box::new(cluster)), guard)
    }

    pub fn with_backend(backend: Backend, guard: Guard) -> Pve {
        Pve {
            backend,
            guard,
            last_failure: None,
            calls: Vec::new(),
            writes: Vec::new(),
            pacer: None,
            sealed: false,
        }
    }

    /// The entry writes since the last call of this, oldest first.
    pub fn take_writes(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.writes)
    }

    /// The entry writes since the last `take_writes`, without taking them.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// The in-memory cluster, when this is the sandbox's.
    pub fn memory(&self) -> Option<&Cluster> {
        match &self.backend {
            Backend::Memory(cluster) => Some(cluster),
            Backend::Remote { .. } => None,
        }
    }

    /// One request, through the guard: the policy's, or the host's own.
    fn guarded(
        &mut self,
        actor: Actor,
        method: &str,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Response, Error> {
        if self.sealed {
            let why = "no PVE request while the policy chooses what gets in (admit is pure)";
            self.calls
                .push(format!("{method} {path} -> denied by the host: {why}"));
            return Err(Error::Denied(why.into()));
        }
        let verdict = match actor {
            Actor::Policy => self.guard.check(method, path, params),
            Actor::Host => self.guard.check_host(method, path, params),
        };
        let checked = match verdict {
            Ok(checked) => checked,
            Err(why) => {
                let whose = match actor {
                    Actor::Policy => "the policy's request",
                    Actor::Host => "a write of the host's own",
                };
                log::warn(&format!("refused {whose}: {why}"));
                self.calls.push(format!(
                    "{method} {path}{} -> denied by the host: {why}",
                    shown(params)
                ));
                return Err(Error::Denied(why));
            }
        };
        match checked {
            Checked::Pass => self.send(method, path, params, false),
            Checked::Add {
                ipset,
                cidr,
                comment,
            } => {
                let answer = self.send(method, path, params, false);
                let outcome = match &answer {
                    Ok(r) if is_success(r) => WriteOutcome::Added,
                    Ok(r) => WriteOutcome::Refused(r.status),
                    Err(_) => WriteOutcome::Unreachable,
                };
                self.record(ipset, cidr, comment, outcome);
                answer
            }
            Checked::Change { ipset, cidr } => self.change(method, path, params, ipset, cidr),
        }
    }

    /// A PUT or DELETE of one entry: read it, send it only if it is ours,
    /// with the read's digest (see the module's comment).
    fn change(
        &mut self,
        method: &str,
        path: &str,
        params: &[(String, String)],
        ipset: String,
        cidr: String,
    ) -> Result<Response, Error> {
        let delete = method == "DELETE";
        let mut last = None;
        for _ in 0..CHANGE_TRIES {
            let read = match self.send("GET", path, &[], true) {
                Ok(read) => read,
                Err(e) => {
                    self.record(ipset, cidr, None, WriteOutcome::Unreachable);
                    return Err(e);
                }
            };
            if read.status == 400 && delete {
                self.calls.push(format!(
                    "{method} {path} -> not sent: no such entry (the host answers 200 OK, as PVE would)"
                ));
                self.record(ipset, cidr, None, WriteOutcome::Absent);
                return Ok(Response {
                    status: 200,
                    reason: "OK".into(),
                    body: r#"{"data":null}"#.into(),
                });
            }
            if !is_success(&read) {
                // A PUT of a missing entry, a token PVE refuses, a missing
                // IPSet: PVE's answer goes to the policy, which judges it.
                self.record(ipset, cidr, None, WriteOutcome::Refused(read.status));
                return Ok(read);
            }
            let Some((comment, digest)) = entry_of(&read.body) else {
                self.calls
                    .push(format!("{method} {path} -> not sent: the read is no entry"));
                return Err(Error::Busy(format!(
                    "PVE answered GET {path} with a body that is not an entry; nothing was sent"
                )));
            };
            let instance = self.guard.instance().to_string();
            if !fail2pvefw_sdk::tag::is_ours(comment.as_deref(), &instance) {
                let why = guard::not_ours(comment.as_deref(), &instance);
                log::info(&format!(
                    "the host sent no {method} of {cidr} in IPSet '{ipset}': {why}"
                ));
                self.calls
                    .push(format!("{method} {path} -> left alone by the host: {why}"));
                self.record(ipset, cidr, comment, WriteOutcome::NotOurs);
                return Err(Error::NotOurs(why));
            }
            let mut sent = params.to_vec();
            if let Some(digest) = digest {
                sent.push(("digest".into(), digest));
            }
            let written = if delete {
                comment
            } else {
                params
                    .iter()
                    .find(|(k, _)| k == "comment")
                    .map(|(_, v)| v.clone())
            };
            let answer = match self.send(method, path, &sent, false) {
                Ok(answer) => answer,
                Err(e) => {
                    self.record(ipset, cidr, written, WriteOutcome::Unreachable);
                    return Err(e);
                }
            };
            if answer.status == 500 {
                last = Some((answer, written));
                continue;
            }
            let outcome = match (is_success(&answer), delete) {
                (true, true) => WriteOutcome::Deleted,
                (true, false) => WriteOutcome::Added,
                (false, _) => WriteOutcome::Refused(answer.status),
            };
            self.record(ipset, cidr, written, outcome);
            return Ok(answer);
        }
        let (answer, written) = last.expect("CHANGE_TRIES is not zero");
        self.record(ipset, cidr, written, WriteOutcome::Refused(answer.status));
        Ok(answer)
    }

    /// Sends one request as it is; `by_host` marks the host's own reads in
    /// the list of calls.
    fn send(
        &mut self,
        method: &str,
        path: &str,
        params: &[(String, String)],
        by_host: bool,
    ) -> Result<Response, Error> {
        let note = if by_host {
            " (the host reads the entry's owner)"
        } else {
            ""
        };
        let shown = shown(params);
        let (config, state_dir, client) = match &mut self.backend {
            Backend::Memory(cluster) => {
                let r = cluster.handle(method, path, params, &Caller::FULL);
                self.calls.push(format!(
                    "{method} {path}{shown} -> {} {}{note}",
                    r.status, r.reason
                ));
                return Ok(Response {
                    status: r.status,
                    reason: r.reason,
                    body: r.body,
                });
            }
            Backend::Remote {
                config,
                state_dir,
                client,
            } => (config, state_dir, client),
        };
        if client.is_none() {
            match Client::new(config, state_dir) {
                Ok(built) => *client = Some(built),
                Err(failure) => {
                    let short = failure.message.clone();
                    self.last_failure = Some(failure);
                    return Err(Error::Unreachable(short));
                }
            }
        }
        let client = client.as_mut().expect("built above");
        if method != "GET"
            && let Some(pacer) = &mut self.pacer
        {
            pacer.wait();
        }
        match client.request(method, path, params) {
            Outcome::Response(r) => {
                let line = format!("{method} {path}{shown} -> {} {}{note}", r.status, r.reason);
                log::debug(&line);
                self.calls.push(line);
                Ok(Response {
                    status: r.status,
                    reason: r.reason,
                    body: r.body,
                })
            }
            Outcome::Failed(failure) => {
                self.calls.push(format!("{method} {path}{shown} -> failed"));
                let short = failure.message.clone();
                self.last_failure = Some(failure);
                Err(Error::Unreachable(short))
            }
        }
    }

    fn record(
        &mut self,
        ipset: String,
        cidr: String,
        comment: Option<String>,
        outcome: WriteOutcome,
    ) {
        self.writes.push(Write {
            ipset,
            cidr,
            comment,
            outcome,
        });
    }
}

impl pve::Host for Pve {
    fn request(
        &mut self,
        method: String,
        path: String,
        params: Vec<(String, String)>,
    ) -> Result<Response, Error> {
        self.guarded(Actor::Policy, &method, &path, &params)
    }
}

/// `…/IPSET/CIDR`, the entry's `/` (and `%`) encoded.
fn entry_path(ipset: &str, cidr: &str) -> String {
    let segment = cidr.replace('%', "%25").replace('/', "%2F");
    format!("{IPSET_API}/{ipset}/{segment}")
}

fn is_success(response: &Response) -> bool {
    (200..300).contains(&response.status)
}

/// The comment and the digest of `GET …/NAME/CIDR`'s `{"data":{…}}`;
/// `None` when the body is not one entry.
fn entry_of(body: &str) -> Option<(Option<String>, Option<String>)> {
    let body: Value = serde_json::from_str(body).ok()?;
    let data = body.get("data")?.as_object()?;
    let text = |key: &str| data.get(key).and_then(Value::as_str).map(str::to_string);
    Some((text("comment"), text("digest")))
}

/// ` cidr="1.2.3.4" comment="…"`, for the list of calls.
fn shown(params: &[(String, String)]) -> String {
    params.iter().map(|(k, v)| format!(" {k}={v:?}")).collect()
}

mod own;
pub use own::Added;

#[cfg(test)]
mod tests;
