//! The guard: what a policy may ask PVE for, checked by the `pve` capability
//! before any I/O, whatever the policy is.
//!
//! - **Reads**: the configured IPSets and below, `GET /version`, and the
//!   paths `[rules] allow_paths` adds; never a query, a fragment or a dot
//!   segment.
//! - **Writes under `/cluster/firewall/ipset`**: entry writes only, on the
//!   granted IPSets: `POST …/NAME` with `cidr` (and an optional `comment`),
//!   `PUT …/NAME/CIDR` with an optional `comment`, `DELETE …/NAME/CIDR`
//!   with nothing. No other parameter (`nomatch`, `force`, `digest`,
//!   `rename`, …). No delete, creation or rename of an IPSet itself unless
//!   `[rules] allow_paths` names that exact path.
//! - **Every entry a policy adds** passes [`entry::EntryRules`]: an address
//!   or network, no wider than `[rules] widest_ipv4` / `widest_ipv6`, and in
//!   a ban list clear of `[rules] never_ban`, the PVE nodes' addresses and
//!   the addresses `[dns]` names resolved to.
//! - **An accept list** (`Purpose::Accept`: the IPSets `fail2pvefw dns`
//!   keeps host names in) is read-only for a policy: only the host writes
//!   there ([`Guard::check_host`]), for form and width only.
//! - **A PUT or DELETE of an entry** is [`Checked::Change`]: the `pve`
//!   capability sends it only for an entry whose comment carries this
//!   instance's tag, read by the policy SDK's own reader
//!   ([`fail2pvefw_sdk::tag`], the one implementation policies write it
//!   with), with PVE's digest.
//!
//! Other writes the admin granted with `allow_paths` (outside the IPSets)
//! pass as they are: the admin chose them.

pub mod entry;
pub mod named;

pub use entry::{EntryRules, Purpose};

use std::collections::BTreeMap;

/// Where datacenter IPSets live, relative to `/api2/json`.
pub const IPSET_API: &str = "/cluster/firewall/ipset";

/// What the policy may ask for, and the rules its writes must pass.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// The granted IPSets (the config's, and any named with `-i` for this
    /// run), with what each is for.
    ipsets: BTreeMap<String, Purpose>,
    paths: Vec<String>,
    rules: EntryRules,
    /// This instance, whose tag marks the entries it may change.
    instance: String,
}

/// Who asks for a request: the policy, or the host itself (`fail2pvefw dns`
/// writing a host name's entry, `sync` removing an expired one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Actor {
    Policy,
    Host,
}

/// A request the guard let through, and how the `pve` capability sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Checked {
    /// A read, or a write the admin granted outside the IPSets: sent as it is.
    Pass,
    /// `POST …/NAME` of one entry: sent as it is, and recorded.
    Add {
        ipset: String,
        /// As PVE will store it.
        cidr: String,
        comment: Option<String>,
    },
    /// `PUT` or `DELETE …/NAME/CIDR`: sent only if the entry is ours.
    Change {
        ipset: String,
        /// The entry as the path names it (decoded): PVE matches it exactly.
        cidr: String,
    },
}

impl Guard {
    /// `ipsets` with what each is for, `[rules] allow_paths`, the entry
    /// rules, and this instance's name (as its tags carry it).
    pub fn new(
        ipsets: impl IntoIterator<Item = (String, Purpose)>,
        paths: &[String],
        rules: EntryRules,
        instance: &str,
    ) -> Guard {
        Guard {
            ipsets: ipsets.into_iter().collect(),
            paths: paths
                .iter()
                .map(|p| p.trim_end_matches('/').to_string())
                .collect(),
            rules,
            instance: instance.to_string(),
        }
    }

    /// Grants one more IPSet, a ban list: the host calls it with the IPSet
    /// of each request it hands the policy (the admin named it; the policy
    /// did not).
    pub fn allow_ipset(&mut self, name: &str) {
        if !self.ipsets.contains_key(name) {
            self.ipsets.insert(name.to_string(), Purpose::Ban);
        }
    }

    /// Marks `name` an accept list (it is granted): a policy may read it,
    /// never write it; the host's own writes there pass form and width only.
    pub fn mark_accept(&mut self, name: &str) {
        self.ipsets.insert(name.to_string(), Purpose::Accept);
    }

    /// The addresses `[dns]` names resolved to last: no entry of a ban list
    /// may hold one (`[dns] never_ban_resolved`).
    pub fn protect_resolved(&mut self, resolved: Vec<(std::net::IpAddr, String)>) {
        self.rules.resolved = resolved;
    }

    /// This instance's name, as its tags carry it.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The entry rules of a POST of `cidr` to `ipset`, without the rest of
    /// a request: what the host checks before it queues a ban. `Err` names
    /// the rule, without the entry.
    pub fn check_entry(&self, ipset: &str, cidr: &str) -> Result<entry::Stored, String> {
        let purpose = self.ipsets.get(ipset).copied().unwrap_or_default();
        if purpose == Purpose::Accept {
            return Err(accept_only(ipset));
        }
        self.rules.check(cidr, purpose)
    }

    /// `Ok` when the policy may send `method path params`, and how; `Err`
    /// says why not, naming the rule. The path is what follows
    /// `/api2/json`, percent-encoded.
    pub fn check(
        &self,
        method: &str,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Checked, String> {
        self.check_as(Actor::Policy, method, path, params)
    }

    /// [`Guard::check`] for the host's own entry writes: the same rules,
    /// except that an accept list may be written (form and width only).
    pub fn check_host(
        &self,
        method: &str,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Checked, String> {
        self.check_as(Actor::Host, method, path, params)
    }

    fn check_as(
        &self,
        actor: Actor,
        method: &str,
        path: &str,
        params: &[(String, String)],
    ) -> Result<Checked, String> {
        self.granted(method, path)?;
        let lower = path.to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix(IPSET_API) else {
            return Ok(Checked::Pass);
        };
        if !rest.is_empty() && !rest.starts_with('/') {
            // `/cluster/firewall/ipsetx`: not the IPSet API.
            return Ok(Checked::Pass);
        }
        if method == "GET" {
            return Ok(Checked::Pass);
        }
        let segments: Vec<&str> = path[IPSET_API.len()..].split('/').skip(1).collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Err(format!(
                "{method} '{path}': an empty path segment is not an IPSet write the host understands"
            ));
        }
        match (method, segments.as_slice()) {
            ("POST", []) => self.exact_path(method, path, "creating or renaming an IPSet"),
            ("DELETE", [_]) => self.exact_path(method, path, "deleting an IPSet itself"),
            ("POST", [name]) => self.add(actor, name, params),
            ("PUT" | "DELETE", [name, cidr]) => self.change(actor, method, name, cidr, params),
            _ => Err(format!(
                "{method} '{path}' is not an entry write (the host lets a policy POST an entry \
                 to an IPSet, and PUT or DELETE one entry)"
            )),
        }
    }

    /// Writes to the IPSets themselves only where the admin named the path.
    fn exact_path(&self, method: &str, path: &str, what: &str) -> Result<Checked, String> {
        if self.paths.iter().any(|p| p == path) {
            return Ok(Checked::Pass);
        }
        Err(format!(
            "{method} '{path}' refused: {what} is not an entry write (allowed only when \
             [rules] allow_paths names '{path}')"
        ))
    }

    fn add(
        &self,
        actor: Actor,
        name: &str,
        params: &[(String, String)],
    ) -> Result<Checked, String> {
        let shown = params
            .iter()
            .find(|(k, _)| k == "cidr")
            .map(|(_, v)| crate::log::sanitize(v));
        let what = match &shown {
            Some(cidr) => format!("POST of '{cidr}' to IPSet '{name}'"),
            None => format!("POST to IPSet '{name}'"),
        };
        let refuse = |why: String| format!("{what}: {why}");
        let purpose = self.writable(actor, name).map_err(refuse)?;
        only(params, &["cidr", "comment"]).map_err(refuse)?;
        let cidr = one(params, "cidr")
            .ok_or_else(|| refuse("no 'cidr' parameter".into()))?
            .to_string();
        let comment = one(params, "comment").map(str::to_string);
        comment_check(comment.as_deref()).map_err(refuse)?;
        let stored = self.rules.check(&cidr, purpose).map_err(refuse)?;
        Ok(Checked::Add {
            ipset: name.to_string(),
            cidr: stored.text,
            comment,
        })
    }

    fn change(
        &self,
        actor: Actor,
        method: &str,
        name: &str,
        segment: &str,
        params: &[(String, String)],
    ) -> Result<Checked, String> {
        let cidr = pve_model::params::percent_decode(segment, false);
        let what = format!(
            "{method} of '{}' in IPSet '{name}'",
            crate::log::sanitize(&cidr)
        );
        let refuse = |why: String| format!("{what}: {why}");
        self.writable(actor, name).map_err(refuse)?;
        let allowed: &[&str] = if method == "PUT" { &["comment"] } else { &[] };
        only(params, allowed).map_err(refuse)?;
        comment_check(one(params, "comment")).map_err(refuse)?;
        entry::stored(&cidr).map_err(refuse)?;
        Ok(Checked::Change {
            ipset: name.to_string(),
            cidr,
        })
    }

    /// What a granted IPSet is for; a name that needs decoding is no name
    /// the host granted.
    fn purpose(&self, name: &str) -> Result<Purpose, String> {
        match self.ipsets.get(name) {
            Some(purpose) => Ok(*purpose),
            None => Err(format!(
                "'{name}' is not an IPSet the policy is granted ({})",
                self.describe()
            )),
        }
    }

    /// What a granted IPSet is for, when `actor` may write it: an accept
    /// list is the host's alone.
    fn writable(&self, actor: Actor, name: &str) -> Result<Purpose, String> {
        let purpose = self.purpose(name)?;
        if purpose == Purpose::Accept && actor == Actor::Policy {
            return Err(accept_only(name));
        }
        Ok(purpose)
    }

    /// `Ok` when `method path` is granted at all.
    fn granted(&self, method: &str, path: &str) -> Result<(), String> {
        check_plain(method, path)?;
        let under = |root: &str| path == root || path.starts_with(&format!("{root}/"));
        let granted = (method == "GET" && path == "/version")
            || self
                .ipsets
                .keys()
                .any(|name| under(&format!("{IPSET_API}/{name}")))
            || self.paths.iter().any(|root| under(root));
        if granted {
            return Ok(());
        }
        Err(format!(
            "{method} '{path}' is outside what the policy is granted ({})",
            self.describe()
        ))
    }

    /// `IPSet 'f2b', GET /version, /cluster/firewall/rules`.
    fn describe(&self) -> String {
        let mut parts: Vec<String> = self.ipsets.keys().map(|n| format!("IPSet '{n}'")).collect();
        parts.push("GET /version".into());
        parts.extend(self.paths.iter().cloned());
        parts.join(", ")
    }
}

/// Why a policy may not write an accept list.
fn accept_only(name: &str) -> String {
    format!(
        "IPSet '{name}' is an accept list (`fail2pvefw dns` keeps host names there): a policy \
         may read it, never write it, and no ban goes there"
    )
}

/// Why an entry is not ours, in words for the policy and the log:
/// `not ours (comment 'manual-by-admin' carries no tag f2p:web01/…)`.
pub fn not_ours(comment: Option<&str>, instance: &str) -> String {
    use fail2pvefw_sdk::tag::{Owner, PREFIX};
    let Some(comment) = comment else {
        return format!("not ours (it has no comment, so no tag {PREFIX}{instance}/…)");
    };
    let shown: String = crate::log::sanitize(comment).chars().take(120).collect();
    match Owner::parse(comment) {
        Some(owner) => format!(
            "not ours (comment '{shown}': instance '{}' wrote it)",
            owner.instance
        ),
        None => format!("not ours (comment '{shown}' carries no tag {PREFIX}{instance}/…)"),
    }
}

/// The one value of `key`, if given once.
fn one<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Each parameter is one of `allowed`, given at most once.
fn only(params: &[(String, String)], allowed: &[&str]) -> Result<(), String> {
    for (i, (key, _)) in params.iter().enumerate() {
        let key_shown = crate::log::sanitize(key);
        if !allowed.contains(&key.as_str()) {
            let takes = match allowed {
                [] => "none".to_string(),
                keys => keys.join(" and "),
            };
            return Err(format!(
                "the parameter '{key_shown}' is not allowed (an entry write takes {takes}; the \
                 host adds 'digest' itself)"
            ));
        }
        if params[..i].iter().any(|(k, _)| k == key) {
            return Err(format!("the parameter '{key_shown}' is given twice"));
        }
    }
    Ok(())
}

/// PVE writes a comment raw into `cluster.fw`: a line break there would
/// start a new entry or section, past every rule above.
fn comment_check(comment: Option<&str>) -> Result<(), String> {
    if comment.is_some_and(|c| c.chars().any(char::is_control)) {
        return Err(
            "the comment holds a control character (PVE would write it raw into cluster.fw)".into(),
        );
    }
    Ok(())
}

/// A method and a path fit to send at all: no query, fragment or dot
/// segments that could leave the granted tree.
fn check_plain(method: &str, path: &str) -> Result<(), String> {
    let method_ok = matches!(method, "GET" | "POST" | "PUT" | "DELETE");
    if !method_ok {
        return Err(format!("method '{method}' is not granted to the policy"));
    }
    let clean = path.starts_with('/')
        && !path.contains(|c: char| c.is_whitespace() || c.is_control() || "?#\\".contains(c))
        // `..` would be resolved by the URL parser and could leave the firewall tree.
        && !path.split('/').any(|seg| seg == "." || seg == "..")
        && !path.to_ascii_lowercase().contains("%2e");
    if !clean {
        return Err(format!("path '{path}' is not a plain API path"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
