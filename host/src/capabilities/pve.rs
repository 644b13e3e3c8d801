//! `pve`: HTTPS to the configured Proxmox VE node, on the policy's behalf.
//!
//! The policy names a method, a path and parameters; this capability checks
//! them against what the policy is granted (`grant`, before any I/O), then
//! adds what the policy must never see: the API token and the TLS trust.

use super::grant::Grant;
use super::pve_memory::MemoryPve;
use crate::bindings::fail2pvefw::policy::pve::{self, Response};
use crate::bindings::fail2pvefw::policy::types::Error;
use crate::config;
use crate::error::Failure;
use crate::log;
use crate::transport::client::{Client, Outcome};
use std::path::PathBuf;

/// Where requests go.
pub enum Backend {
    /// The configured PVE node over HTTPS. The client is built on the first
    /// request: `validate` and refused paths cost no TLS setup.
    Remote {
        config: Box<config::Pve>,
        /// Where the pins `fail2pvefw trust` stored are read from.
        state_dir: PathBuf,
        client: Option<Client>,
    },
    /// An IPSet in memory (`fail2pvefw sandbox`): no network, no token.
    Memory(MemoryPve),
}

pub struct Pve {
    backend: Backend,
    /// What the policy may ask for; checked before any I/O.
    pub grant: Grant,
    /// The last transport failure with its remedy, for the runner's message.
    pub last_failure: Option<Failure>,
    /// Every request the policy made, `METHOD path -> status`, for logs.
    pub calls: Vec<String>,
    /// The entry writes let through since the last `take_writes`: what a
    /// call actually put into or took out of PVE, for the queue.
    writes: Vec<Write>,
}

/// One entry write the guard let through, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub ipset: String,
    /// The entry as PVE stores it.
    pub cidr: String,
    /// The comment sent with a POST.
    pub comment: Option<String>,
    pub outcome: WriteOutcome,
}

/// How an entry write ended, from the status alone (the host never reads
/// PVE's words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// A POST answered 2xx.
    Added,
    /// A DELETE answered 2xx.
    Deleted,
    /// The entry was not there; nothing was sent.
    Absent,
    /// The entry carries no tag of ours; nothing was sent.
    NotOurs,
    /// PVE answered with this error status.
    Refused(u16),
    /// No answer came back: it may or may not have landed.
    Unreachable,
}

impl Pve {
    /// The configured PVE node, for what `grant` allows.
    pub fn new(config: config::Pve, state_dir: PathBuf, grant: Grant) -> Pve {
        Pve::with_backend(
            Backend::Remote {
                config: Box::new(config),
                state_dir,
                client: None,
            },
            grant,
        )
    }

    pub fn with_backend(backend: Backend, grant: Grant) -> Pve {
        Pve {
            backend,
            grant,
            last_failure: None,
            calls: Vec::new(),
            writes: Vec::new(),
        }
    }

    /// The entry writes since the last call of this, oldest first.
    pub fn take_writes(&mut self) -> Vec<Write> {
        std::mem::take(&mut self.writes)
    }

    /// The in-memory PVE, when this is the sandbox's.
    pub fn memory(&self) -> Option<&MemoryPve> {
        match &self.backend {
            Backend::Memory(memory) => Some(memory),
            Backend::Remote { .. } => None,
        }
    }
}

impl pve::Host for Pve {
    fn request(
        &mut self,
        method: String,
        path: String,
        params: Vec<(String, String)>,
    ) -> Result<Response, Error> {
        if let Err(why) = self.grant.check(&method, &path) {
            log::warn(&format!("refused the policy's request: {why}"));
            self.calls
                .push(format!("{method} {path} -> denied by the host"));
            return Err(Error::Denied(why));
        }
        let (config, state_dir, client) = match &mut self.backend {
            Backend::Memory(memory) => {
                let (status, reason, body) = memory.request(&method, &path, &params);
                self.calls.push(format!(
                    "{method} {path}{} -> {status} {reason}",
                    shown(&params)
                ));
                return Ok(Response {
                    status,
                    reason,
                    body,
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
        match client.request(&method, &path, &params) {
            Outcome::Response(r) => {
                self.calls
                    .push(format!("{method} {path} -> {} {}", r.status, r.reason));
                log::debug(&format!("{method} {path} -> {} {}", r.status, r.reason));
                Ok(Response {
                    status: r.status,
                    reason: r.reason,
                    body: r.body,
                })
            }
            Outcome::Failed(failure) => {
                self.calls.push(format!("{method} {path} -> failed"));
                let short = failure.message.clone();
                self.last_failure = Some(failure);
                Err(Error::Unreachable(short))
            }
        }
    }
}

/// ` cidr="1.2.3.4" comment="…"`, for the sandbox's list of calls.
fn shown(params: &[(String, String)]) -> String {
    params.iter().map(|(k, v)| format!(" {k}={v:?}")).collect()
}
