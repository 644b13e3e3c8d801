//! Subnet escalation: after `threshold` bans of different addresses inside
//! one /24 (IPv4) or /64 (IPv6) within `window` seconds, ban the subnet and
//! remove its member entries. An unban of a member keeps the subnet until its
//! last member is unbanned, then removes it: ban and unban stay consistent.
//!
//! Every entry's comment ends with the ownership tag `f2p:INSTANCE/JAIL/-`
//! (`wit/policy.wit`): the host lets a policy delete only entries that carry
//! its instance's tag, so the subnet and member entries can be removed
//! again, and an entry someone else wrote never is.
//!
//! Settings (the config's `[policy_settings]`): `threshold` (default 3),
//! `window` in seconds (default 3600). Counters live in the `store` import:
//! `hits/<subnet>` (recent addresses) and `escalated/<subnet>` (members).
//!
//! [`logic`] is plain Rust over two small traits, tested natively with
//! `cargo test`; this file wires it to the WIT world.

pub mod logic;

mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "policy",
    });
}

#[cfg(target_arch = "wasm32")]
bindings::export!(SubnetEscalation with_types_in bindings);

use bindings::exports::fail2pvefw::policy::action::{BanRequest, Entry, Guest};
use bindings::fail2pvefw::policy::types::{Error, Refusal, RefusalCause};
use bindings::fail2pvefw::policy::{clock, pve, settings, store};
use logic::{Answer, Escalation, Failure, Pve, Store};

pub struct SubnetEscalation;

fn escalation() -> Escalation {
    let number = |name: &str, default: u64| {
        settings::get(&format!("policy.{name}"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    Escalation {
        threshold: number("threshold", 3).max(2) as usize,
        window: number("window", 3600),
        now: clock::now(),
    }
}

impl Guest for SubnetEscalation {
    fn validate(req: BanRequest) -> Result<String, Error> {
        Ok(logic::entry(&req.ip)?)
    }

    fn start(ipset: String) -> Result<String, Error> {
        Ok(logic::read_ipset(&mut Host, &ipset)?)
    }

    fn check(ipset: String) -> Result<String, Error> {
        Ok(logic::read_ipset(&mut Host, &ipset)?)
    }

    fn ban(req: BanRequest) -> Result<String, Error> {
        let text = req.comment.as_deref().unwrap_or("subnet-escalation");
        let comment = logic::comment(text, &req.instance, req.jail.as_deref());
        Ok(escalation().ban(&mut Host, &mut Host, &req.ipset, &req.ip, &comment)?)
    }

    fn unban(req: BanRequest) -> Result<String, Error> {
        Ok(escalation().unban(&mut Host, &mut Host, &req.ipset, &req.ip)?)
    }

    /// No owners reported: `sync` leaves every entry alone (the tags carry
    /// no expiry either); this policy removes its entries on unban only.
    fn entries(_ipset: String) -> Result<Vec<Entry>, Error> {
        Ok(Vec::new())
    }
}

/// The host's imports behind the logic's traits.
struct Host;

impl Pve for Host {
    fn request(
        &mut self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Answer, Failure> {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match pve::request(method, path, &owned) {
            Ok(r) => Ok(Answer {
                status: r.status,
                reason: r.reason,
                body: r.body,
            }),
            Err(e) => Err(match e {
                Error::Denied(m) => Failure::Denied(m),
                Error::InvalidInput(m) => Failure::Invalid(m),
                Error::Refused(r) | Error::Rejected(r) => Failure::Refused(r.status, r.message),
                Error::NotOurs(m) => Failure::Denied(m),
                Error::Unreachable(m) | Error::Busy(m) => Failure::Unreachable(m),
            }),
        }
    }
}

impl Store for Host {
    fn get(&mut self, key: &str) -> Option<String> {
        store::get(key)
    }
    fn set(&mut self, key: &str, value: &str) -> Result<(), Failure> {
        store::set(key, value).map_err(|e| Failure::Denied(format!("store: {e:?}")))
    }
    fn delete(&mut self, key: &str) {
        store::delete(key)
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Error {
        match f {
            Failure::Invalid(m) => Error::InvalidInput(m),
            Failure::Denied(m) => Error::Denied(m),
            Failure::Refused(status, message) => Error::Refused(Refusal {
                status,
                message,
                cause: RefusalCause::Other,
            }),
            Failure::Unreachable(m) => Error::Unreachable(m),
        }
    }
}
