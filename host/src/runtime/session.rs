//! One loaded policy with its capabilities, for one process: the calls the
//! commands make, and the words and remedies for what the policy reports.

use super::instance::Instance;
use super::{Source, instantiate};
use crate::bindings::{BanRequest, Entry, PolicyError, Refusal, RefusalCause};
use crate::config::Config;
use crate::error::{Failure, Result};
use crate::state::queue::{Action, Request};

/// What the policy answered, or the failure (already in words) it reported.
pub type Answer<T> = std::result::Result<T, Reported>;

/// A failure the policy reported, with the kind of remedy it needs.
#[derive(Debug)]
pub struct Reported {
    pub failure: Failure,
    pub kind: Remedy,
    /// The metrics label of the WIT case (`invalid`, `denied`, `rejected`,
    /// `config`, `transient`, `not-ours`).
    pub label: &'static str,
}

/// What the queue does about a failure: decided from the WIT error case
/// alone, never from PVE's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// `invalid-input`, `denied`, `rejected`: this event can never succeed.
    /// Its entry's events are marked failed (status shows them); the others go on.
    Drop,
    /// `refused` (and a trap of the policy): a person must fix the token,
    /// its privileges, the IPSet, a full cluster.fw or the policy module.
    /// Keep every event and stop sending.
    Hold,
    /// `unreachable`, `busy`: keep the events, back off this entry, stop the
    /// pass.
    Retry,
    /// `not-ours`: the entry belongs to someone else and was left alone,
    /// which is the right outcome. The events are done.
    Done,
}

pub struct Session {
    instance: Instance,
    config_path: std::path::PathBuf,
    token_id: String,
    pub default_ipset: String,
    pub instance_name: String,
}

impl Session {
    /// `node_addresses`: the PVE nodes' own addresses, for the policy's
    /// `pve-hosts` and the host's guard.
    pub fn open(
        config: &Config,
        source: Source,
        node_addresses: Vec<std::net::IpAddr>,
    ) -> Result<Session> {
        Ok(Session {
            instance: instantiate(config, &source, node_addresses)?,
            config_path: config.path.clone(),
            token_id: config.pve.token.id.clone(),
            default_ipset: config.ipset.clone(),
            instance_name: config.instance.clone(),
        })
    }

    /// The exact entry PVE will store, without any I/O.
    pub fn validate(&mut self, req: &Request) -> Result<Answer<String>> {
        let ban = ban_request(req, &self.instance_name);
        let outcome = self.instance.validate(&ban)?;
        Ok(outcome.map_err(|e| self.report(e, &req.ipset)))
    }

    /// Makes the PVE call for one ban or unban.
    pub fn apply(&mut self, action: Action, req: &Request) -> Result<Answer<String>> {
        let ban = ban_request(req, &self.instance_name);
        let outcome = match action {
            Action::Ban => self.instance.ban(&ban)?,
            Action::Unban => self.instance.unban(&ban)?,
        };
        Ok(outcome.map_err(|e| self.report(e, &req.ipset)))
    }

    pub fn start(&mut self, ipset: &str) -> Result<Answer<String>> {
        let outcome = self.instance.start(ipset)?;
        Ok(outcome.map_err(|e| self.report(e, ipset)))
    }

    pub fn check(&mut self, ipset: &str) -> Result<Answer<String>> {
        let outcome = self.instance.check(ipset)?;
        Ok(outcome.map_err(|e| self.report(e, ipset)))
    }

    /// The entry writes the last calls made (see `capabilities::pve::Write`).
    pub fn take_writes(&mut self) -> Vec<crate::capabilities::pve::Write> {
        self.instance.state_mut().pve.take_writes()
    }

    /// The IPSet's entries, with the owners the policy recognises.
    pub fn entries(&mut self, ipset: &str) -> Result<Answer<Vec<Entry>>> {
        let outcome = self.instance.entries(ipset)?;
        Ok(outcome.map_err(|e| self.report(e, ipset)))
    }

    fn report(&mut self, error: PolicyError, ipset: &str) -> Reported {
        Reported {
            kind: remedy(&error),
            label: label(&error),
            failure: self.failure(error, ipset),
        }
    }

    /// Words and a remedy for what the policy reported.
    fn failure(&mut self, error: PolicyError, ipset: &str) -> Failure {
        match error {
            PolicyError::InvalidInput(msg) => Failure::input(msg),
            PolicyError::Denied(msg) => Failure::config(format!("denied by the host: {msg}")),
            PolicyError::Refused(refusal) | PolicyError::Rejected(refusal) => {
                self.refused(&refusal, ipset)
            }
            PolicyError::NotOurs(msg) => Failure::pve(format!("left alone: {msg}")),
            PolicyError::Unreachable(msg) => self
                .instance
                .state_mut()
                .pve
                .last_failure
                .take()
                .unwrap_or_else(|| Failure::pve(msg)),
            PolicyError::Busy(msg) => Failure::pve(format!("PVE is busy: {msg}"))
                .hint("The cluster-wide firewall lock is contended or the node is overloaded; the event stays queued and is retried."),
        }
    }

    fn refused(&self, refusal: &Refusal, ipset: &str) -> Failure {
        let message = format!("PVE refused: {} {}", refusal.status, refusal.message);
        let config = self.config_path.display();
        let token = &self.token_id;
        let hint = match refusal.cause {
            RefusalCause::Authentication => Some(format!(
                "Authentication failed: check the token id '{token}' and its secret in [pve] token of '{config}'. \
                 The token must exist and not be expired (Datacenter → Permissions → API Tokens)."
            )),
            RefusalCause::Permission => Some(format!(
                "The token lacks Sys.Modify (or Sys.Audit) on '/'. Create a role and grant it to the token (and, with privilege separation, to its user):\n  \
                 pveum role add Fail2Ban --privs \"Sys.Audit Sys.Modify\"\n  \
                 pveum acl modify / --tokens '{token}' --roles Fail2Ban"
            )),
            RefusalCause::NoSuchIpset => Some(format!(
                "Create the IPSet '{ipset}' under Datacenter → Firewall → IPSet in the PVE GUI, or on a node:\n  \
                 pvesh create /cluster/firewall/ipset --name {ipset} --comment fail2ban"
            )),
            RefusalCause::Capacity => Some(
                "The datacenter firewall file cluster.fw is full (1 MiB for all of it): shorten ban times, \
                 remove stale entries, or widen bans to networks."
                    .to_string(),
            ),
            RefusalCause::Parameter | RefusalCause::Other => None,
        };
        match hint {
            Some(hint) => Failure::pve(message).hint(hint),
            None => Failure::pve(message),
        }
    }
}

/// The remedy of each WIT error case (see `wit/policy.wit`).
pub fn remedy(error: &PolicyError) -> Remedy {
    match error {
        PolicyError::InvalidInput(_) | PolicyError::Denied(_) | PolicyError::Rejected(_) => {
            Remedy::Drop
        }
        PolicyError::Refused(_) => Remedy::Hold,
        PolicyError::Unreachable(_) | PolicyError::Busy(_) => Remedy::Retry,
        PolicyError::NotOurs(_) => Remedy::Done,
    }
}

/// The metrics label of each WIT error case.
fn label(error: &PolicyError) -> &'static str {
    match error {
        PolicyError::InvalidInput(_) => "invalid",
        PolicyError::Denied(_) => "denied",
        PolicyError::Rejected(_) => "rejected",
        PolicyError::Refused(_) => "config",
        PolicyError::Unreachable(_) | PolicyError::Busy(_) => "transient",
        PolicyError::NotOurs(_) => "not-ours",
    }
}

/// The policy's view of a request, made by the instance `instance_name`:
/// the one conversion from the queue's request to the WIT record.
pub fn ban_request(req: &Request, instance_name: &str) -> BanRequest {
    BanRequest {
        ip: req.ip.clone(),
        ipset: req.ipset.clone(),
        jail: req.jail.clone(),
        comment: req.comment.clone(),
        time: req.time,
        bantime: req.bantime,
        failures: req.failures,
        restored: req.restored,
        instance: instance_name.to_string(),
    }
}
