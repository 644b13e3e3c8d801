//! [`Policy`]: the exports a policy implements, and the defaults it may
//! keep or call from its own versions.

use crate::admission::{self, Admitted, Budget, Candidate};
use crate::cidr::{self, Cidr};
use crate::identity::Identity;
use crate::ipset::{self, IpsetName};
use crate::rules::Rules;
use crate::types::{BanRequest, Entry, Error};

/// What a policy does for fail2ban's actions: the WIT `action` interface,
/// and `admission` (which of many wanted entries get in, [`Policy::admit`]).
/// Export it with [`crate::export_policy!`].
///
/// Each function is called in a fresh sandbox of the host, with a budget of
/// fuel and memory; what a policy keeps between calls goes into
/// [`crate::store`]. `Ok` carries what was done, in words for fail2ban's
/// log; `Err` is one of the WIT error cases, from which the host decides
/// what to do (see [`Error`]).
pub trait Policy: 'static {
    /// Who this policy is: the host keys its store by the name (never by
    /// the file's name, so a renamed or upgraded `.wasm` keeps its data),
    /// and `policy check` shows both. Usually the crate's:
    /// `Identity::new(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))`.
    fn identity() -> Identity;

    /// Checks a request without any I/O and returns the exact entry PVE
    /// would store; the host queues it under that entry, checks it against
    /// its own rules first, and compares it with what PVE holds (`sync`).
    /// Errors: `invalid-input` only (a bad setting: `denied`).
    ///
    /// Default: [`validate`], the default policy's.
    fn validate(req: &BanRequest) -> Result<String, Error> {
        validate(req)
    }

    /// fail2ban's `actionstart`: PVE is reachable and the IPSet exists.
    /// Default: [`start`].
    fn start(ipset: &str) -> Result<String, Error> {
        start(ipset)
    }

    /// fail2ban's `actioncheck`: the IPSet is still there. Default: [`check`].
    fn check(ipset: &str) -> Result<String, Error> {
        check(ipset)
    }

    /// Puts the address into the IPSet (or what the policy makes of it: a
    /// subnet, say). Idempotent: an entry already there is success. Every
    /// entry written ends its comment with the request's ownership tag
    /// ([`crate::comment::for_ban`]), with the right expiry, so that unban
    /// and `sync` can remove it.
    fn ban(req: &BanRequest) -> Result<String, Error>;

    /// Removes what `ban` stored for this request. Idempotent: a missing
    /// entry is success, and so is someone else's, which the host leaves
    /// alone ([`crate::ipset::Removed::LeftAlone`]).
    fn unban(req: &BanRequest) -> Result<String, Error>;

    /// Reads the IPSet (one GET) and says which entries are whose; `sync`
    /// and `status` use it. Default: [`entries`], every entry with the
    /// owner its tag names.
    fn entries(ipset: &str) -> Result<Vec<Entry>, Error> {
        entries(ipset)
    }

    /// Which of the candidates (CrowdSec's decisions, `fail2pvefw
    /// crowdsec`) get into PVE under `budget`: the WIT `admission`
    /// interface. Pure: the host denies every `pve` request meanwhile, and
    /// holds the answer to its own rules and budget whatever it says.
    /// The chosen entries come back as `ban`s of jail
    /// [`admission::JAIL`], whose comment [`crate::comment::for_ban`]
    /// writes as chosen. Default: [`admit`], the default rules.
    fn admit(candidates: &[Candidate], budget: &Budget) -> Result<Admitted, Error> {
        admit(candidates, budget)
    }
}

/// The default `admit`: [`admission::admit`] with the administrator's rules
/// ([`Rules::from_host`]): local decisions first, then what was admitted
/// before, then longer and more recent; optional aggregation; the cap and
/// the byte budget.
pub fn admit(candidates: &[Candidate], budget: &Budget) -> Result<Admitted, Error> {
    let (chosen, left_out) = admission::admit(candidates, budget, &Rules::from_host()?)?;
    Ok(Admitted { chosen, left_out })
}

/// The IPSet and the entry of a request: valid names and the exact string
/// PVE stores, then through the administrator's rules (never-ban, the PVE
/// nodes, IPv6 widening; [`Rules::from_host`]). Ban and unban both call
/// it, so an unban deletes what the ban stored.
pub fn checked(req: &BanRequest) -> Result<(IpsetName, Cidr), Error> {
    let ipset = IpsetName::new(&req.ipset)?;
    let entry = cidr::normalize(&req.ip).map_err(Error::InvalidInput)?;
    Ok((ipset, Rules::from_host()?.apply(entry)?))
}

/// The default `validate`: [`checked`]'s entry.
pub fn validate(req: &BanRequest) -> Result<String, Error> {
    checked(req).map(|(_, entry)| entry.to_string())
}

/// The default `start`: one GET of the IPSet; a warning in the log when it
/// takes most of `cluster.fw`'s 1 MiB.
pub fn start(ipset: &str) -> Result<String, Error> {
    read_ipset(ipset).map(|holds| format!("PVE is reachable; {holds}"))
}

/// The default `check`: as [`start`].
pub fn check(ipset: &str) -> Result<String, Error> {
    read_ipset(ipset)
}

/// The default `entries`: every entry, its owner read from its tag.
pub fn entries(ipset: &str) -> Result<Vec<Entry>, Error> {
    ipset::list(&IpsetName::new(ipset)?)
}

fn read_ipset(name: &str) -> Result<String, Error> {
    let set = IpsetName::new(name)?;
    let response = ipset::read(&set)?;
    if let Some(warning) = ipset::budget_warning(set.as_str(), &response.body) {
        crate::log::warn(&warning);
    }
    Ok(match ipset::count(&response.body) {
        Some(1) => format!("IPSet '{set}' exists with 1 entry"),
        Some(n) => format!("IPSet '{set}' exists with {n} entries"),
        None => format!("IPSet '{set}' exists"),
    })
}
