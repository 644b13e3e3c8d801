//! The bindings wit-bindgen generates for `wit/policy.wit`, the conversions
//! between them and this crate's plain types, the imports' backend on
//! wasm32, and [`Adapter`], which exports a [`Policy`] (see
//! [`crate::export_policy!`]). Not meant to be used directly.
//!
//! One interface per module of the world: a new exported interface gets
//! its generated `Guest` impl on [`Adapter`] here and its functions (with
//! defaults) on [`Policy`].

use std::marker::PhantomData;

use crate::Policy;
use crate::admission;
use crate::tag::Owner;
use crate::types::{BanRequest, Cause, Entry, Error, Level};

wit_bindgen::generate!({
    path: "wit",
    // `policy` and its optional `admission`: every SDK policy exports both
    // (`Policy::admit` has the default rules).
    world: "admitting-policy",
    // `export_policy!` expands the export macro in the policy's crate, where
    // neither `wit_bindgen` nor these bindings are in scope by name.
    pub_export_macro: true,
    default_bindings_module: "fail2pvefw_sdk::bindings",
    runtime_path: "fail2pvefw_sdk::__wit_bindgen::rt",
});

use exports::fail2pvefw::policy::action as wit_action;
use exports::fail2pvefw::policy::admission as wit_admission;
use fail2pvefw::policy::types as wit_types;

/// Exports `P` as the world's `action` and `admission` interfaces.
pub struct Adapter<P>(PhantomData<P>);

impl<P: Policy> wit_action::Guest for Adapter<P> {
    fn identity() -> wit_action::PolicyIdentity {
        let identity = P::identity();
        wit_action::PolicyIdentity {
            name: identity.name,
            version: identity.version,
        }
    }

    fn validate(req: wit_action::BanRequest) -> Result<String, wit_types::Error> {
        Ok(P::validate(&req.into())?)
    }

    fn start(ipset: String) -> Result<String, wit_types::Error> {
        Ok(P::start(&ipset)?)
    }

    fn check(ipset: String) -> Result<String, wit_types::Error> {
        Ok(P::check(&ipset)?)
    }

    fn ban(req: wit_action::BanRequest) -> Result<String, wit_types::Error> {
        Ok(P::ban(&req.into())?)
    }

    fn unban(req: wit_action::BanRequest) -> Result<String, wit_types::Error> {
        Ok(P::unban(&req.into())?)
    }

    fn entries(ipset: String) -> Result<Vec<wit_action::Entry>, wit_types::Error> {
        Ok(P::entries(&ipset)?.into_iter().map(Into::into).collect())
    }
}

impl<P: Policy> wit_admission::Guest for Adapter<P> {
    fn admit(
        candidates: Vec<wit_admission::Candidate>,
        budget: wit_admission::Budget,
    ) -> Result<wit_admission::Admitted, wit_types::Error> {
        let candidates: Vec<admission::Candidate> =
            candidates.into_iter().map(Into::into).collect();
        let answer = P::admit(&candidates, &budget.into())?;
        Ok(wit_admission::Admitted {
            chosen: answer
                .chosen
                .into_iter()
                .map(|c| wit_admission::Chosen {
                    entry: c.entry,
                    comment: c.comment,
                })
                .collect(),
            left_out: answer
                .left_out
                .into_iter()
                .map(|l| wit_admission::LeftOut {
                    key: l.key,
                    reason: match l.reason {
                        admission::Reason::OverEntries => wit_admission::LeftReason::OverEntries,
                        admission::Reason::OverBytes => wit_admission::LeftReason::OverBytes,
                        admission::Reason::Aggregated => wit_admission::LeftReason::Aggregated,
                    },
                    detail: l.detail,
                })
                .collect(),
        })
    }
}

impl From<wit_admission::Candidate> for admission::Candidate {
    fn from(c: wit_admission::Candidate) -> Self {
        admission::Candidate {
            key: c.key,
            entry: c.entry,
            origin: c.origin,
            scenario: c.scenario,
            expires: c.expires,
            seen: c.seen,
            admitted: c.admitted,
        }
    }
}

impl From<wit_admission::Budget> for admission::Budget {
    fn from(b: wit_admission::Budget) -> Self {
        admission::Budget {
            ipset: b.ipset,
            instance: b.instance,
            now: b.now,
            max_entries: b.max_entries,
            max_bytes: b.max_bytes,
            shared: b.shared,
            aggregate_ipv4: b.aggregate_ipv4,
            aggregate_ipv6: b.aggregate_ipv6,
            aggregate_min: b.aggregate_min,
        }
    }
}

/// The imports on wasm32: the host's.
#[cfg(target_arch = "wasm32")]
pub(crate) mod backend {
    use super::fail2pvefw::policy::{clock, log, pve, settings, store};
    use crate::types::{Error, Level, Response};

    pub fn request(method: &str, path: &str, params: &[(&str, &str)]) -> Result<Response, Error> {
        let owned: Vec<(String, String)> = params
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        pve::request(method, path, &owned)
            .map(|r| Response {
                status: r.status,
                reason: r.reason,
                body: r.body,
            })
            .map_err(Error::from)
    }

    pub fn store_get(key: &str) -> Option<String> {
        store::get(key)
    }

    pub fn store_set(key: &str, value: &str) -> Result<(), Error> {
        store::set(key, value).map_err(Error::from)
    }

    pub fn store_delete(key: &str) {
        store::delete(key)
    }

    pub fn store_keys(prefix: &str) -> Vec<String> {
        store::keys(prefix)
    }

    pub fn now() -> u64 {
        clock::now()
    }

    pub fn local_offset(at: i64) -> i32 {
        clock::local_offset(at)
    }

    pub fn log(level: Level, message: &str) {
        log::log(level.into(), message)
    }

    pub fn setting(name: &str) -> Option<String> {
        settings::get(name)
    }
}

impl From<Level> for fail2pvefw::policy::log::Level {
    fn from(level: Level) -> Self {
        use fail2pvefw::policy::log::Level as L;
        match level {
            Level::Debug => L::Debug,
            Level::Info => L::Info,
            Level::Warn => L::Warn,
            Level::Error => L::Error,
        }
    }
}

impl From<wit_action::BanRequest> for BanRequest {
    fn from(r: wit_action::BanRequest) -> Self {
        BanRequest {
            ip: r.ip,
            ipset: r.ipset,
            jail: r.jail,
            comment: r.comment,
            time: r.time,
            bantime: r.bantime,
            failures: r.failures,
            restored: r.restored,
            instance: r.instance,
        }
    }
}

impl From<Entry> for wit_action::Entry {
    fn from(e: Entry) -> Self {
        wit_action::Entry {
            cidr: e.cidr,
            comment: e.comment,
            owner: e.owner.map(|o: Owner| wit_action::Owner {
                instance: o.instance,
                jail: o.jail,
                expires: o.expires,
            }),
        }
    }
}

impl From<Error> for wit_types::Error {
    fn from(error: Error) -> Self {
        use wit_types::{Error as W, Refusal};
        match error {
            Error::InvalidInput(m) => W::InvalidInput(m),
            Error::Denied(m) => W::Denied(m),
            Error::Refused {
                status,
                message,
                cause,
            } => W::Refused(Refusal {
                status,
                message,
                cause: cause.into(),
            }),
            Error::Rejected {
                status,
                message,
                cause,
            } => W::Rejected(Refusal {
                status,
                message,
                cause: cause.into(),
            }),
            Error::NotOurs(m) => W::NotOurs(m),
            Error::Unreachable(m) => W::Unreachable(m),
            Error::Busy(m) => W::Busy(m),
        }
    }
}

/// The host's imports give only `denied`, `not-ours` or `unreachable`; the
/// other cases are passed on as they are.
impl From<wit_types::Error> for Error {
    fn from(error: wit_types::Error) -> Self {
        use wit_types::Error as W;
        match error {
            W::InvalidInput(m) => Error::InvalidInput(m),
            W::Denied(m) => Error::Denied(m),
            W::Refused(r) => Error::Refused {
                status: r.status,
                message: r.message,
                cause: r.cause.into(),
            },
            W::Rejected(r) => Error::Rejected {
                status: r.status,
                message: r.message,
                cause: r.cause.into(),
            },
            W::NotOurs(m) => Error::NotOurs(m),
            W::Unreachable(m) => Error::Unreachable(m),
            W::Busy(m) => Error::Busy(m),
        }
    }
}

impl From<Cause> for wit_types::RefusalCause {
    fn from(cause: Cause) -> Self {
        use wit_types::RefusalCause as C;
        match cause {
            Cause::Authentication => C::Authentication,
            Cause::Permission => C::Permission,
            Cause::NoSuchIpset => C::NoSuchIpset,
            Cause::Capacity => C::Capacity,
            Cause::Parameter => C::Parameter,
            Cause::Other => C::Other,
        }
    }
}

impl From<wit_types::RefusalCause> for Cause {
    fn from(cause: wit_types::RefusalCause) -> Self {
        use wit_types::RefusalCause as C;
        match cause {
            C::Authentication => Cause::Authentication,
            C::Permission => Cause::Permission,
            C::NoSuchIpset => Cause::NoSuchIpset,
            C::Capacity => Cause::Capacity,
            C::Parameter => Cause::Parameter,
            C::Other => Cause::Other,
        }
    }
}
