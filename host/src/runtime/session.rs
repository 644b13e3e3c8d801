//! One loaded policy with its capabilities, for one process: the calls the
//! commands make, and the words and remedies for what the policy reports.

use super::instance::Instance;
use super::{Source, instantiate};
use crate::bindings::{BanRequest, Entry, PolicyError, Refusal};
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
}

/// What the queue does about a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// The input can never succeed (bad address): nothing to retry.
    Never,
    /// PVE refused this one request for good (a 400): drop it, keep the rest.
    Rejected,
    /// A person must fix the configuration or PVE (401, 403, no such
    /// IPSet, a full cluster.fw, a denied capability): keep everything.
    Fix,
    /// Transport or a busy cluster: retry later.
    Retry,
}

pub struct Session {
    instance: Instance,
    config_path: std::path::PathBuf,
    token_id: String,
    pub default_ipset: String,
    pub instance_name: String,
}

impl Session {
    pub fn open(config: &Config, source: Source) -> Result<Session> {
        Ok(Session {
            instance: instantiate(config, &source)?,
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

    /// The IPSet's entries, with the owners the policy recognises.
    pub fn entries(&mut self, ipset: &str) -> Result<Answer<Vec<Entry>>> {
        let outcome = self.instance.entries(ipset)?;
        Ok(outcome.map_err(|e| self.report(e, ipset)))
    }

    fn report(&mut self, error: PolicyError, ipset: &str) -> Reported {
        let kind = match &error {
            PolicyError::InvalidInput(_) => Remedy::Never,
            PolicyError::Denied(_) => Remedy::Fix,
            PolicyError::Refused(r) if needs_a_person(r) => Remedy::Fix,
            PolicyError::Refused(_) => Remedy::Rejected,
            PolicyError::Unreachable(_) | PolicyError::Busy(_) => Remedy::Retry,
        };
        Reported {
            failure: self.failure(error, ipset),
            kind,
        }
    }

    /// Words and a remedy for what the policy reported.
    fn failure(&mut self, error: PolicyError, ipset: &str) -> Failure {
        match error {
            PolicyError::InvalidInput(msg) => Failure::input(msg),
            PolicyError::Denied(msg) => Failure::config(format!("the policy was denied: {msg}")),
            PolicyError::Refused(refusal) => self.refused(&refusal, ipset),
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
        let hint = match refusal.status {
            401 => Some(format!(
                "Authentication failed: check the token id '{token}' and its secret in [pve] token of '{config}'. \
                 The token must exist and not be expired (Datacenter → Permissions → API Tokens)."
            )),
            403 => Some(format!(
                "The token lacks Sys.Modify (or Sys.Audit) on '/'. Create a role and grant it to the token (and, with privilege separation, to its user):\n  \
                 pveum role add Fail2Ban --privs \"Sys.Audit Sys.Modify\"\n  \
                 pveum acl modify / --tokens '{token}' --roles Fail2Ban"
            )),
            _ if refusal.message.contains("no such IPSet") => Some(format!(
                "Create the IPSet '{ipset}' under Datacenter → Firewall → IPSet in the PVE GUI, or on a node:\n  \
                 pvesh create /cluster/firewall/ipset --name {ipset} --comment fail2ban"
            )),
            _ if refusal.message.contains("File too large") => Some(
                "The datacenter firewall file cluster.fw is full (1 MiB for all of it): shorten ban times, \
                 remove stale entries, or widen bans to networks."
                    .to_string(),
            ),
            _ => None,
        };
        match hint {
            Some(hint) => Failure::pve(message).hint(hint),
            None => Failure::pve(message),
        }
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

/// Refusals no retry fixes until a person acts; the queue keeps the events.
fn needs_a_person(refusal: &Refusal) -> bool {
    matches!(refusal.status, 401 | 403)
        || refusal.message.contains("no such IPSet")
        || refusal.message.contains("File too large")
}
