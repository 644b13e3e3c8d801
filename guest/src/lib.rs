//! The default fail2pvefw policy: what to do for each fail2ban action.
//!
//! This file only wires the WIT world `admitting-policy` (`../wit/policy.wit`:
//! `policy` and `admission`) to plain modules that build and test natively:
//! - [`admission`]: which of many wanted entries get in under a budget
//!   (CrowdSec's decisions), and their comments;
//! - [`cidr`]: validates an address and gives the exact string PVE stores;
//! - [`comment`]: the `[YYYY/MM/DD HH:MM:SS] text` comment of an entry;
//! - [`owner`]: the ownership tag that ends every comment we write;
//! - [`plan`]: the PVE calls of each action and what PVE's answers mean;
//! - [`rules`]: the administrator's never-ban networks, the PVE nodes, IPv6
//!   widening and the `cluster.fw` budget, from the host's `settings`.

pub mod admission;
pub mod cidr;
pub mod comment;
pub mod owner;
pub mod plan;
pub mod rules;

mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "admitting-policy",
    });
}

// The export names contain `:`, which a native link refuses; the plain
// modules are tested natively without it.
#[cfg(target_arch = "wasm32")]
bindings::export!(Policy with_types_in bindings);

use bindings::exports::fail2pvefw::policy::action::{BanRequest, Entry, Guest, Owner};
use bindings::exports::fail2pvefw::policy::admission::{
    Admitted, Budget, Candidate, Chosen, Guest as AdmissionGuest, LeftOut, LeftReason,
};
use bindings::fail2pvefw::policy::types::{Error as WitError, Refusal, RefusalCause};
use bindings::fail2pvefw::policy::{clock, log, pve, settings};
use plan::{Cause, Error, IpsetName, Method, Pve, Response};

/// The component. Its name is not significant.
pub struct Policy;

impl Guest for Policy {
    fn validate(req: BanRequest) -> Result<String, WitError> {
        let (_, entry) = checked(&req)?;
        Ok(entry.to_string())
    }

    fn start(ipset: String) -> Result<String, WitError> {
        let ipset = IpsetName::new(&ipset)?;
        let mut host = HostPve;
        let mut pve = rules::Watching::new(&mut host);
        let done = plan::start(&mut pve, &ipset)?;
        warn(pve.budget_warning(ipset.as_str()));
        Ok(done)
    }

    fn check(ipset: String) -> Result<String, WitError> {
        let ipset = IpsetName::new(&ipset)?;
        let mut host = HostPve;
        let mut pve = rules::Watching::new(&mut host);
        let done = plan::check(&mut pve, &ipset)?;
        warn(pve.budget_warning(ipset.as_str()));
        Ok(done)
    }

    fn ban(req: BanRequest) -> Result<String, WitError> {
        let (ipset, entry) = checked(&req)?;
        let comment = if req.jail.as_deref() == Some(CROWDSEC) {
            crowdsec_comment(&req)
        } else {
            entry_comment(&req)
        };
        let instance = owner::tag_name(&req.instance);
        Ok(plan::ban(
            &mut HostPve,
            &ipset,
            &entry,
            &comment,
            &instance,
        )?)
    }

    fn unban(req: BanRequest) -> Result<String, WitError> {
        let (ipset, entry) = checked(&req)?;
        Ok(plan::unban(&mut HostPve, &ipset, &entry)?)
    }

    fn entries(ipset: String) -> Result<Vec<Entry>, WitError> {
        let ipset = IpsetName::new(&ipset)?;
        let listed = plan::list(&mut HostPve, &ipset)?;
        Ok(listed
            .into_iter()
            .map(|l| Entry {
                owner: l
                    .comment
                    .as_deref()
                    .and_then(owner::Owner::parse)
                    .map(|o| Owner {
                        instance: o.instance,
                        jail: o.jail,
                        expires: o.expires,
                    }),
                cidr: l.cidr,
                comment: l.comment,
            })
            .collect())
    }
}

/// The IPSet and the entry to send: valid, then through the administrator's
/// rules (the same for ban and unban, so unban deletes what ban stored).
fn checked(req: &BanRequest) -> Result<(IpsetName, cidr::Entry), Error> {
    let (ipset, entry) = plan::validate(&req.ipset, &req.ip)?;
    let rules = rules::Rules::from_settings(settings::get)?;
    Ok((ipset, rules.apply(entry)?))
}

fn warn(warning: Option<String>) {
    if let Some(warning) = warning {
        log::log(log::Level::Warn, &warning);
    }
}

/// The entry's comment, in the host's local time at the moment of the ban,
/// ending with the ownership tag.
fn entry_comment(req: &BanRequest) -> String {
    let at = comment::ban_time(req.time, clock::now);
    let text = comment::text(req.comment.as_deref(), req.jail.as_deref(), req.failures);
    let text = owner::strip_tags(&text);
    let tag = owner::Owner::for_ban(&req.instance, req.jail.as_deref(), at, req.bantime).tag();
    format!(
        "{} {tag}",
        comment::comment(at, clock::local_offset(at), &text)
    )
}

/// The jail the host names in the requests it makes for CrowdSec's chosen
/// entries (see `admission` in the WIT).
const CROWDSEC: &str = "crowdsec";

/// A CrowdSec entry's comment: the one `admit` chose, then the tag; no
/// timestamp (the LAPI keeps it, and every byte costs entries).
fn crowdsec_comment(req: &BanRequest) -> String {
    let at = comment::ban_time(req.time, clock::now);
    let text = comment::text(req.comment.as_deref(), req.jail.as_deref(), None);
    let text = owner::strip_tags(&text);
    let tag = owner::Owner::for_ban(&req.instance, req.jail.as_deref(), at, req.bantime).tag();
    format!("{} {tag}", text.trim())
}

impl AdmissionGuest for Policy {
    fn admit(candidates: Vec<Candidate>, budget: Budget) -> Result<Admitted, WitError> {
        let rules = rules::Rules::from_settings(settings::get)?;
        let candidates: Vec<admission::Candidate> = candidates
            .into_iter()
            .map(|c| admission::Candidate {
                key: c.key,
                entry: c.entry,
                origin: c.origin,
                scenario: c.scenario,
                expires: c.expires,
                seen: c.seen,
                admitted: c.admitted,
            })
            .collect();
        let budget = admission::Budget {
            ipset: budget.ipset,
            instance: budget.instance,
            now: budget.now,
            max_entries: budget.max_entries,
            max_bytes: budget.max_bytes,
            shared: budget.shared,
            aggregate_ipv4: budget.aggregate_ipv4,
            aggregate_ipv6: budget.aggregate_ipv6,
            aggregate_min: budget.aggregate_min,
        };
        let (chosen, left) = admission::admit(&candidates, &budget, &rules)?;
        Ok(Admitted {
            chosen: chosen
                .into_iter()
                .map(|c| Chosen {
                    entry: c.entry,
                    comment: c.comment,
                })
                .collect(),
            left_out: left
                .into_iter()
                .map(|l| LeftOut {
                    key: l.key,
                    reason: match l.reason {
                        admission::Reason::OverEntries => LeftReason::OverEntries,
                        admission::Reason::OverBytes => LeftReason::OverBytes,
                        admission::Reason::Aggregated => LeftReason::Aggregated,
                    },
                    detail: l.detail,
                })
                .collect(),
        })
    }
}

/// [`Pve`] through the host's `pve` import, with one debug line per call.
struct HostPve;

impl Pve for HostPve {
    fn request(
        &mut self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Response, Error> {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        let outcome = pve::request(method.as_str(), path, &owned)
            .map(|response| Response {
                status: response.status,
                reason: response.reason,
                body: response.body,
            })
            .map_err(Error::from);
        log::log(
            log::Level::Debug,
            &plan::describe_call(method, path, params, &outcome),
        );
        outcome
    }
}

impl From<Error> for WitError {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidInput(m) => WitError::InvalidInput(m),
            Error::Denied(m) => WitError::Denied(m),
            Error::Refused {
                status,
                message,
                cause,
            } => WitError::Refused(Refusal {
                status,
                message,
                cause: cause.into(),
            }),
            Error::Rejected {
                status,
                message,
                cause,
            } => WitError::Rejected(Refusal {
                status,
                message,
                cause: cause.into(),
            }),
            Error::NotOurs(m) => WitError::NotOurs(m),
            Error::Unreachable(m) => WitError::Unreachable(m),
            Error::Busy(m) => WitError::Busy(m),
        }
    }
}

/// The host's `pve` import should only give `denied`, `not-ours` or
/// `unreachable`; the other cases are passed on as they are.
impl From<WitError> for Error {
    fn from(error: WitError) -> Self {
        match error {
            WitError::InvalidInput(m) => Error::InvalidInput(m),
            WitError::Denied(m) => Error::Denied(m),
            WitError::Refused(r) => Error::Refused {
                status: r.status,
                message: r.message,
                cause: r.cause.into(),
            },
            WitError::Rejected(r) => Error::Rejected {
                status: r.status,
                message: r.message,
                cause: r.cause.into(),
            },
            WitError::NotOurs(m) => Error::NotOurs(m),
            WitError::Unreachable(m) => Error::Unreachable(m),
            WitError::Busy(m) => Error::Busy(m),
        }
    }
}

impl From<Cause> for RefusalCause {
    fn from(cause: Cause) -> Self {
        match cause {
            Cause::Authentication => RefusalCause::Authentication,
            Cause::Permission => RefusalCause::Permission,
            Cause::NoSuchIpset => RefusalCause::NoSuchIpset,
            Cause::Capacity => RefusalCause::Capacity,
            Cause::Parameter => RefusalCause::Parameter,
            Cause::Other => RefusalCause::Other,
        }
    }
}

impl From<RefusalCause> for Cause {
    fn from(cause: RefusalCause) -> Self {
        match cause {
            RefusalCause::Authentication => Cause::Authentication,
            RefusalCause::Permission => Cause::Permission,
            RefusalCause::NoSuchIpset => Cause::NoSuchIpset,
            RefusalCause::Capacity => Cause::Capacity,
            RefusalCause::Parameter => Cause::Parameter,
            RefusalCause::Other => Cause::Other,
        }
    }
}
