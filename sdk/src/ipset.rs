//! Datacenter IPSets: their names, their API paths, and the calls a policy
//! makes on them, each judged as [`crate::answers`] says.
//!
//! The calls ([`read`], [`list`], [`get`], [`add`], [`remove`],
//! [`set_comment`]) go through the host's `pve` import (natively, through
//! the test host); the rest is plain code.

use std::fmt;

use serde_json::Value;

use crate::cidr;
use crate::types::{Entry, Error};

/// Where datacenter IPSets live, relative to `/api2/json`.
pub const IPSET_API: &str = "/cluster/firewall/ipset";

/// Bytes `cluster.fw` may hold, for all of the datacenter firewall.
pub const CLUSTER_FW_BUDGET: usize = 1024 * 1024;

/// A datacenter IPSet name a policy can use: `^[a-z][a-z0-9_-]{1,63}$`.
///
/// PVE itself takes upper case too, but lower-cases names when it re-reads
/// `cluster.fw` (pve-ipset-api.md §2.1), after which `MySet` is gone and only
/// `myset` exists. So upper case is refused here rather than half working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpsetName(String);

impl IpsetName {
    /// The name, or `invalid-input` saying how to fix it.
    pub fn new(name: &str) -> Result<Self, Error> {
        if is_ipset_name(name) {
            return Ok(IpsetName(name.to_string()));
        }
        let quoted = cidr::quote(name);
        let lower = name.to_ascii_lowercase();
        let message = if is_ipset_name(&lower) {
            format!(
                "{quoted} is not a usable IPSet name: PVE lower-cases IPSet names when it \
                 re-reads cluster.fw, so use '{lower}'"
            )
        } else {
            format!(
                "{quoted} is not a usable IPSet name: use 2 to 64 lower-case letters, digits, \
                 '-' or '_', starting with a letter"
            )
        };
        Err(Error::InvalidInput(message))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `/cluster/firewall/ipset/{name}`; the name needs no encoding.
    pub fn path(&self) -> String {
        format!("{IPSET_API}/{}", self.0)
    }

    /// `/cluster/firewall/ipset/{name}/{cidr}`, the entry as one path
    /// segment ([`segment`]).
    pub fn entry_path(&self, cidr: &str) -> String {
        format!("{}/{}", self.path(), segment(cidr))
    }
}

impl fmt::Display for IpsetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_ipset_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=64).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes[1..]
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}

/// An entry as one path segment: `%` and the `/` of a prefix
/// percent-encoded (`10.0.0.0/8` → `10.0.0.0%2F8`), as PVE's paths take it.
pub fn segment(cidr: &str) -> String {
    cidr.replace('%', "%25").replace('/', "%2F")
}

/// The entries of a `GET /cluster/firewall/ipset/NAME` body, their owners
/// read from the comments' tags; `Err` says what is wrong with the body.
pub fn parse_list(body: &str) -> Result<Vec<Entry>, String> {
    let body: Value =
        serde_json::from_str(body).map_err(|e| format!("a body that is not JSON: {e}"))?;
    let entries = body
        .get("data")
        .and_then(Value::as_array)
        .ok_or("no data list")?;
    Ok(entries
        .iter()
        .filter_map(|entry| {
            let cidr = entry.get("cidr")?.as_str()?;
            let comment = entry.get("comment").and_then(Value::as_str);
            Some(Entry::new(cidr, comment))
        })
        .collect())
}

/// How many entries a `GET …/NAME` body lists, if it says.
pub fn count(body: &str) -> Option<usize> {
    let body: Value = serde_json::from_str(body).ok()?;
    body.get("data")?.as_array().map(Vec::len)
}

/// A warning when the IPSet in a `GET /cluster/firewall/ipset/NAME` body
/// takes more than 3/4 of `cluster.fw`'s budget: each entry is one line,
/// `cidr # comment`. `None` when it is far from full or the body is unreadable.
pub fn budget_warning(ipset: &str, body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let entries = value.get("data")?.as_array()?;
    let bytes: usize = entries.iter().map(line_bytes).sum();
    if bytes * 4 < CLUSTER_FW_BUDGET * 3 {
        return None;
    }
    Some(format!(
        "IPSet '{ipset}' takes about {} KiB of the 1024 KiB that cluster.fw may hold \
         ({} entries); PVE refuses writes once the file is full: shorten ban times or \
         comments, or ban networks",
        bytes / 1024,
        entries.len()
    ))
}

/// One entry's line in `cluster.fw`: `[!]cidr[ # comment]\n`.
fn line_bytes(entry: &Value) -> usize {
    let text = |key: &str| entry.get(key).and_then(Value::as_str).map_or(0, str::len);
    let comment = text("comment");
    let nomatch = usize::from(entry.get("nomatch").is_some());
    nomatch + text("cidr") + if comment > 0 { comment + 3 } else { 0 } + 1
}

/// What [`add`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// PVE added it.
    Added,
    /// It was there already (PVE's 400 `already exists`): success, but the
    /// comment there is not the one sent, and it may be someone else's.
    AlreadyThere,
}

/// What [`remove`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// It is not in the IPSet any more (or never was).
    Removed,
    /// Someone else's entry, which the host left alone (its words).
    LeftAlone(String),
}

crate::with_host! {
    /// `GET /cluster/firewall/ipset/NAME`, judged: the response when 2xx.
    pub fn read(ipset: &IpsetName) -> Result<crate::Response, Error> {
        crate::answers::judge(crate::pve::request("GET", &ipset.path(), &[])?)
    }

    /// Every entry of the IPSet with its comment and owner (one GET).
    pub fn list(ipset: &IpsetName) -> Result<Vec<Entry>, Error> {
        let response = read(ipset)?;
        parse_list(&response.body).map_err(|why| {
            Error::Busy(format!("PVE answered GET {} with {why}", ipset.path()))
        })
    }

    /// One entry (`GET …/NAME/CIDR`), `None` when PVE has no such entry.
    pub fn get(ipset: &IpsetName, cidr: &str) -> Result<Option<Entry>, Error> {
        let response = crate::pve::request("GET", &ipset.entry_path(cidr), &[])?;
        if response.status == 400 {
            return Ok(None);
        }
        let response = crate::answers::judge(response)?;
        let data = response.data().filter(Value::is_object).ok_or_else(|| {
            Error::Busy(format!(
                "PVE answered GET {} without the entry",
                ipset.entry_path(cidr)
            ))
        })?;
        let comment = data.get("comment").and_then(Value::as_str);
        Ok(Some(Entry::new(cidr, comment)))
    }

    /// `POST …/NAME` of `cidr` with `comment`. An entry that is already
    /// there is success ([`Added::AlreadyThere`]): fail2ban re-applies
    /// bans on restart, and a retried POST may have landed the first time.
    pub fn add(ipset: &IpsetName, cidr: &str, comment: &str) -> Result<Added, Error> {
        let params = [("cidr", cidr), ("comment", comment)];
        let response = crate::pve::request("POST", &ipset.path(), &params)?;
        if response.is_success() {
            return Ok(Added::Added);
        }
        if crate::answers::is_already_there(&response) {
            return Ok(Added::AlreadyThere);
        }
        Err(crate::answers::classify(&response))
    }

    /// `DELETE …/NAME/CIDR`, `cidr` exactly as PVE stores it. Idempotent: a
    /// missing entry is [`Removed::Removed`] too. The host sends it only
    /// for an entry carrying this instance's tag; someone else's is
    /// [`Removed::LeftAlone`], which is an unban's right outcome.
    pub fn remove(ipset: &IpsetName, cidr: &str) -> Result<Removed, Error> {
        match crate::pve::request("DELETE", &ipset.entry_path(cidr), &[]) {
            Err(Error::NotOurs(why)) => Ok(Removed::LeftAlone(why)),
            Err(e) => Err(e),
            Ok(response) => crate::answers::judge(response).map(|_| Removed::Removed),
        }
    }

    /// `PUT …/NAME/CIDR` with a new `comment` (a new tag, say a later
    /// expiry). Only for an entry of ours (else `not-ours`, nothing sent);
    /// a missing entry is PVE's 400 (`rejected`).
    pub fn set_comment(ipset: &IpsetName, cidr: &str, comment: &str) -> Result<(), Error> {
        let response = crate::pve::request("PUT", &ipset.entry_path(cidr), &[("comment", comment)])?;
        crate::answers::judge(response).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipset_names() {
        for good in [
            "f2b",
            "fail2ban",
            "blacklist",
            "a1",
            "x-y_z",
            &"a".repeat(64),
        ] {
            assert!(IpsetName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "1abc",
            "-ab",
            "a b",
            "a/b",
            "a.b",
            "dc/f2b",
            &"a".repeat(65),
        ] {
            let Err(Error::InvalidInput(m)) = IpsetName::new(bad) else {
                panic!("{bad:?} accepted");
            };
            assert!(m.contains("is not a usable IPSet name"), "{m}");
        }
    }

    #[test]
    fn upper_case_ipset_name_is_refused_with_the_reason() {
        assert_eq!(
            IpsetName::new("MySet"),
            Err(Error::InvalidInput(
                "'MySet' is not a usable IPSet name: PVE lower-cases IPSet names when it \
                 re-reads cluster.fw, so use 'myset'"
                    .into()
            ))
        );
    }

    #[test]
    fn entry_paths_encode_the_prefix() {
        let set = IpsetName::new("f2b").unwrap();
        assert_eq!(set.path(), "/cluster/firewall/ipset/f2b");
        assert_eq!(
            set.entry_path("10.0.0.0/8"),
            "/cluster/firewall/ipset/f2b/10.0.0.0%2F8"
        );
        assert_eq!(
            set.entry_path("2001:db8::1"),
            "/cluster/firewall/ipset/f2b/2001:db8::1"
        );
    }

    #[test]
    fn lists_read_entries_with_comments_and_owners() {
        let body = r#"{"data":[{"cidr":"10.0.0.0/8","digest":"x"},{"cidr":"192.0.2.1","comment":"[2020/01/01 00:00:00] x f2p:web01/sshd/5","digest":"x"}]}"#;
        let entries = parse_list(body).unwrap();
        assert_eq!(entries[0], Entry::new("10.0.0.0/8", None));
        let owner = entries[1].owner.as_ref().unwrap();
        assert_eq!((owner.instance.as_str(), owner.expires), ("web01", Some(5)));
        assert_eq!(count(body), Some(2));
        assert!(parse_list("not json").is_err());
        assert!(parse_list(r#"{"data":null}"#).is_err());
    }

    #[test]
    fn budget_warning_only_near_the_limit() {
        let entry = r#"{"cidr":"203.0.113.77","comment":"[2026/01/01 00:00:00] sshd: 3 failures","digest":"x"}"#;
        let body = |n: usize| format!(r#"{{"data":[{}]}}"#, vec![entry; n].join(","));
        assert_eq!(budget_warning("f2b", &body(100)), None);
        let m = budget_warning("f2b", &body(16_000)).unwrap();
        assert!(
            m.contains("IPSet 'f2b'") && m.contains("16000 entries"),
            "{m}"
        );
        assert_eq!(budget_warning("f2b", "not json"), None);
    }
}
