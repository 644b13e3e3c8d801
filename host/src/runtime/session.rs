//! One loaded policy with its capabilities, for one process: the calls the
//! commands make, and the words and remedies for what the policy reports.

use super::instance::Instance;
use super::{Source, instantiate};
use crate::bindings::admission::{Admitted, Budget, Candidate};
use crate::bindings::fail2pvefw::policy::pve::Response;
use crate::bindings::{BanRequest, Entry, PolicyError, Refusal, RefusalCause};
use crate::capabilities::guard::{self, named};
use crate::capabilities::pve::{Added, Write, WriteOutcome};
use crate::config::Config;
use crate::error::{Failure, Result};
use crate::state::dns::Known;
use crate::state::queue::{Action, Request, now};

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
    /// What a refusal is about, when PVE refused.
    pub cause: Option<RefusalCause>,
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
    /// The default policy, for `admit` when the configured one has no
    /// `admission` export (made on first use).
    fallback: Option<Instance>,
    node_addresses: Vec<std::net::IpAddr>,
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
            instance: instantiate(config, &source, node_addresses.clone())?,
            fallback: None,
            node_addresses,
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

    /// What the state knows of `fail2pvefw dns`: its accept lists become
    /// the host's alone (a policy may read them, never write them) and, with
    /// `never_ban_resolved`, the names' addresses are never banned.
    pub fn know(&mut self, known: &Known) {
        let guard = &mut self.instance.state_mut().pve.guard;
        for ipset in &known.accept_lists {
            guard.mark_accept(ipset);
        }
        guard.protect_resolved(known.resolved.clone());
    }

    /// Marks one more IPSet an accept list (the one a `dns` run keeps
    /// names in, before the state remembers it).
    pub fn mark_accept(&mut self, ipset: &str) {
        self.instance.state_mut().pve.guard.mark_accept(ipset);
    }

    /// Makes the PVE call for one ban or unban. A host name's entry
    /// (`req.dns`, queued by `fail2pvefw dns`) is written by the host
    /// itself, never handed to the policy: [`Session::keep_name`].
    pub fn apply(&mut self, action: Action, req: &Request) -> Result<Answer<String>> {
        if let Some(name) = &req.dns {
            return Ok(self.keep_name(action, req, name));
        }
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

    /// Which entries get in under `budget`: the policy's `admit`, or the
    /// default policy's when the policy does not export `admission`.
    pub fn admit(
        &mut self,
        config: &Config,
        candidates: &[Candidate],
        budget: &Budget,
    ) -> Result<Answer<Admitted>> {
        let outcome = match self.instance.admit(candidates, budget)? {
            Some(outcome) => outcome,
            None => {
                if self.fallback.is_none() {
                    let addresses = self.node_addresses.clone();
                    self.fallback = Some(instantiate(config, &Source::Embedded, addresses)?);
                }
                let fallback = self.fallback.as_mut().expect("made above");
                fallback.admit(candidates, budget)?.ok_or_else(|| {
                    Failure::config("the default policy does not export admission")
                })?
            }
        };
        Ok(outcome.map_err(|e| self.report(e, &budget.ipset)))
    }

    /// Whether the policy chooses what gets in itself (`admission`).
    pub fn has_admission(&self) -> bool {
        self.instance.has_admission()
    }

    /// The entry writes the last calls made (see `capabilities::pve::Write`).
    pub fn take_writes(&mut self) -> Vec<Write> {
        self.instance.state_mut().pve.take_writes()
    }

    /// The host's own removal of an entry this instance wrote (`sync`
    /// removing an expired one, with no request to hand the policy): the
    /// guard's read, tag check and digested DELETE, as for a policy's
    /// DELETE, and recorded in [`Session::take_writes`] like it.
    ///
    /// `Ok` is `Deleted`, `Absent` (nothing sent) or `NotOurs` (left
    /// alone). A failure's remedy comes from the status alone: 401 and 403
    /// hold (a person must fix the token), another 4xx drops, a 5xx and no
    /// answer retry.
    pub fn delete_own_entry(&mut self, ipset: &str, cidr: &str) -> Answer<WriteOutcome> {
        let pve = &mut self.instance.state_mut().pve;
        let answer = pve.delete_own_entry(ipset, cidr);
        let outcome = pve.writes().last().map(|w| w.outcome);
        let what = format!("remove '{cidr}' from IPSet '{ipset}'");
        match answer {
            Ok(r) if (200..300).contains(&r.status) => Ok(outcome.unwrap_or(WriteOutcome::Deleted)),
            Ok(r) => Err(self.status_refusal(&r, ipset, what)),
            Err(PolicyError::NotOurs(_)) => Ok(WriteOutcome::NotOurs),
            Err(error) => {
                let mut reported = self.report(error, ipset);
                reported.failure = reported.failure.context(what);
                Err(reported)
            }
        }
    }

    /// A refusal of one of the host's own writes, with its remedy from the
    /// status alone: 401 and 403 hold (a person must fix the token), a 5xx
    /// retries, another 4xx drops.
    fn status_refusal(&self, r: &Response, ipset: &str, what: String) -> Reported {
        let refusal = Refusal {
            status: r.status,
            message: crate::log::sanitize(&r.reason),
            cause: match r.status {
                401 => RefusalCause::Authentication,
                403 => RefusalCause::Permission,
                _ => RefusalCause::Other,
            },
        };
        let (kind, label) = match r.status {
            401 | 403 => (Remedy::Hold, "config"),
            500.. => (Remedy::Retry, "transient"),
            _ => (Remedy::Drop, "rejected"),
        };
        Reported {
            failure: self.refused(&refusal, ipset).context(what),
            kind,
            label,
            cause: Some(refusal.cause),
        }
    }

    /// The host's own write of host name `name`'s entry `req.ip` (exactly
    /// as it resolved: no policy, no widening) in its accept list
    /// `req.ipset`: an add with the name's comment, or the guard's removal
    /// of our own entry. A manual entry of the same address is left as it
    /// is, both ways.
    fn keep_name(&mut self, action: Action, req: &Request, name: &str) -> Answer<String> {
        let (ipset, entry) = (req.ipset.as_str(), req.ip.as_str());
        if action == Action::Unban {
            return Ok(match self.delete_own_entry(ipset, entry)? {
                WriteOutcome::Deleted => {
                    format!("removed {entry} of '{name}' from IPSet '{ipset}'")
                }
                WriteOutcome::NotOurs => {
                    let pve = &self.instance.state_mut().pve;
                    let comment = pve.writes().last().and_then(|w| w.comment.clone());
                    let why = guard::not_ours(comment.as_deref(), &self.instance_name);
                    format!("left {entry} in IPSet '{ipset}' alone: {why}")
                }
                _ => format!("{entry} of '{name}' is not in IPSet '{ipset}' any more"),
            });
        }
        let comment = named::comment(name, req.time.unwrap_or_else(now), &self.instance_name);
        let what = format!("keep {entry} of '{name}' in IPSet '{ipset}'");
        let pve = &mut self.instance.state_mut().pve;
        match pve.add_own_entry(ipset, entry, &comment) {
            Ok(Added::New) => Ok(format!("added {entry} of '{name}' to IPSet '{ipset}'")),
            Ok(Added::Present { ours: true, .. }) => Ok(format!(
                "{entry} of '{name}' was already in IPSet '{ipset}' (our entry)"
            )),
            Ok(Added::Present { ours: false, .. }) => {
                let pve = &self.instance.state_mut().pve;
                let comment = pve.writes().last().and_then(|w| w.comment.clone());
                let why = guard::not_ours(comment.as_deref(), &self.instance_name);
                Ok(format!(
                    "{entry} of '{name}' was already in IPSet '{ipset}', {why}: left as it is"
                ))
            }
            Ok(Added::Refused(r)) => Err(self.status_refusal(&r, ipset, what)),
            Err(error) => {
                let mut reported = self.report(error, ipset);
                reported.failure = reported.failure.context(what);
                Err(reported)
            }
        }
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
            cause: match &error {
                PolicyError::Refused(r) | PolicyError::Rejected(r) => Some(r.cause),
                _ => None,
            },
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

#[cfg(test)]
mod tests {
    use super::*;
    use pve_emulator::{Emulator, Options, Token};

    const TAGGED: &str = "[2020/01/01 00:00:00] sshd f2p:web01/sshd/1";

    fn open(emu: &Emulator, dir: &std::path::Path, secret: &str) -> Session {
        let token = Token::new("fail2ban@pve!f2b", secret);
        let state = dir.join("state");
        let text = emu.config_toml(&token, "fail2ban", state.to_str().unwrap());
        let path = dir.join("config.toml");
        std::fs::write(&path, format!("{text}\ninstance = \"web01\"\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let config = Config::load(&path).unwrap();
        Session::open(&config, Source::Embedded, Vec::new()).unwrap()
    }

    #[test]
    fn the_hosts_own_delete_removes_only_our_entries() {
        let emu = Emulator::start(Options {
            tokens: vec![Token::new("fail2ban@pve!f2b", "s3cret")],
            auth_delay: std::time::Duration::from_millis(10),
            ipsets: vec![(
                "fail2ban".into(),
                vec![
                    ("192.0.2.50".into(), Some("manual-by-admin".into())),
                    ("192.0.2.52".into(), Some(TAGGED.into())),
                ],
            )],
            ..Options::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let mut session = open(&emu, dir.path(), "s3cret");
        let outcome = |s: &mut Session, cidr: &str| s.delete_own_entry("fail2ban", cidr).ok();
        assert_eq!(
            outcome(&mut session, "192.0.2.50"),
            Some(WriteOutcome::NotOurs)
        );
        assert_eq!(
            outcome(&mut session, "192.0.2.52"),
            Some(WriteOutcome::Deleted)
        );
        assert_eq!(
            outcome(&mut session, "192.0.2.53"),
            Some(WriteOutcome::Absent)
        );
        let left: Vec<String> = emu
            .entries("fail2ban")
            .unwrap()
            .into_iter()
            .map(|e| e.cidr)
            .collect();
        assert_eq!(left, ["192.0.2.50"]);
        let outcomes: Vec<_> = session
            .take_writes()
            .into_iter()
            .map(|w| w.outcome)
            .collect();
        assert_eq!(
            outcomes,
            [
                WriteOutcome::NotOurs,
                WriteOutcome::Deleted,
                WriteOutcome::Absent
            ]
        );
        // A token PVE refuses holds the queue: a person must fix it.
        let dir = tempfile::tempdir().unwrap();
        let mut session = open(&emu, dir.path(), "wrong");
        let reported = session
            .delete_own_entry("fail2ban", "192.0.2.50")
            .unwrap_err();
        assert_eq!(reported.kind, Remedy::Hold, "{}", reported.failure);
        assert!(
            reported
                .failure
                .to_string()
                .contains("remove '192.0.2.50' from IPSet"),
            "{}",
            reported.failure
        );
    }
}
