//! An in-memory PVE datacenter-IPSet API: the `pve` capability's backend for
//! `fail2pvefw sandbox`, so a policy can be tried with no cluster, no token
//! and no network.
//!
//! Faithful where a policy can tell: POST normalises the cidr as PVE stores
//! it (host bits cleared, an exact `/32` or `/128` dropped, IPv6 with a
//! prefix compressed by Net::IP's rule, an address without prefix kept
//! verbatim); a duplicate is `400` with `errors.cidr = "address 'X' already
//! exists"`; GET/PUT/DELETE of an entry match the stored string exactly; a
//! DELETE of a missing entry is 200; an unknown IPSet is `500 no such IPSet`;
//! a `cluster.fw` over 1 MiB is `500 ... File too large`.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `cluster.fw`'s size cap.
const MAX_FILE_SIZE: usize = 1024 * 1024;
const IPSET_API: &str = "/cluster/firewall/ipset";

/// One stored entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub comment: Option<String>,
    pub nomatch: bool,
}

/// An HTTP answer: status, reason phrase, JSON body.
pub type Answer = (u16, String, String);

#[derive(Clone, Debug, Default)]
pub struct MemoryPve {
    /// IPSet name → cidr → entry; sorted, as PVE writes `cluster.fw`.
    ipsets: BTreeMap<String, BTreeMap<String, Stored>>,
}

impl MemoryPve {
    /// Empty IPSets with these names.
    pub fn with_ipsets<'a>(names: impl IntoIterator<Item = &'a str>) -> MemoryPve {
        let ipsets = names
            .into_iter()
            .map(|n| (n.to_string(), BTreeMap::new()))
            .collect();
        MemoryPve { ipsets }
    }

    /// The `[IPSET name]` sections of a `cluster.fw` text; other sections are
    /// ignored. Names are lower-cased as PVE's parser does.
    pub fn from_cluster_fw(text: &str) -> MemoryPve {
        let mut pve = MemoryPve::default();
        let mut current: Option<String> = None;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(head) = line.strip_prefix('[') {
                let head = head.split('#').next().unwrap_or("").trim();
                let head = head.trim_end_matches(']').trim().to_ascii_lowercase();
                current = head.strip_prefix("ipset ").map(|n| n.trim().to_string());
                if let Some(name) = &current {
                    pve.ipsets.entry(name.clone()).or_default();
                }
                continue;
            }
            let Some(name) = &current else { continue };
            let (body, comment) = match line.split_once('#') {
                Some((body, c)) => (body.trim(), Some(c.trim().to_string())),
                None => (line, None),
            };
            let (nomatch, cidr) = match body.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, body),
            };
            if !cidr.is_empty() && !cidr.contains(char::is_whitespace) {
                let comment = comment.filter(|c| !c.is_empty());
                let set = pve.ipsets.get_mut(name).expect("inserted above");
                set.entry(cidr.to_string())
                    .or_insert(Stored { comment, nomatch });
            }
        }
        pve
    }

    pub fn ipset_names(&self) -> Vec<String> {
        self.ipsets.keys().cloned().collect()
    }

    /// An IPSet's entries, in `cluster.fw` order.
    pub fn entries(&self, ipset: &str) -> Option<Vec<(String, Stored)>> {
        let set = self.ipsets.get(ipset)?;
        Some(set.iter().map(|(c, e)| (c.clone(), e.clone())).collect())
    }

    /// One request, as PVE would answer it. `path` is relative to
    /// `/api2/json`, percent-encoded.
    pub fn request(&mut self, method: &str, path: &str, params: &[(String, String)]) -> Answer {
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if (method, path) == ("GET", "/version") {
            return ok(json!({"version": "9.0.3", "release": "9.0", "repoid": "sandbox"}));
        }
        if (method, path) == ("GET", IPSET_API) {
            let list: Vec<Value> = self.ipsets.keys().map(|n| json!({"name": n})).collect();
            return ok(Value::Array(list));
        }
        let rest = path
            .strip_prefix(IPSET_API)
            .and_then(|r| r.strip_prefix('/'));
        let segments: Vec<&str> = rest.map(|r| r.split('/').collect()).unwrap_or_default();
        match (method, segments.as_slice()) {
            ("GET", [name]) => self.with_set(name, |set| ok(list(set))),
            ("POST", [name]) => {
                let cidr = param("cidr").unwrap_or_default().to_string();
                let entry = Stored {
                    comment: param("comment")
                        .filter(|c| !c.is_empty())
                        .map(str::to_string),
                    nomatch: param("nomatch").is_some_and(|v| v != "0" && !v.is_empty()),
                };
                self.add(name, &cidr, entry)
            }
            ("GET", [name, cidr]) => {
                let cidr = decode(cidr);
                self.with_set(name, |set| match set.get(&cidr) {
                    Some(e) => ok(entry_json(&cidr, e)),
                    None => param_error("cidr", "no such IP/Network"),
                })
            }
            ("DELETE", [name, cidr]) => {
                let cidr = decode(cidr);
                self.change(name, |set| {
                    set.remove(&cidr);
                    Ok(())
                })
            }
            ("PUT", [name, cidr]) => {
                let cidr = decode(cidr);
                let comment = param("comment").map(str::to_string);
                let nomatch = param("nomatch").is_some_and(|v| v != "0" && !v.is_empty());
                self.change(name, |set| match set.get_mut(&cidr) {
                    Some(e) => {
                        *e = Stored { comment, nomatch };
                        Ok(())
                    }
                    None => Err(param_error("cidr", "no such IP/Network")),
                })
            }
            _ => (
                501,
                format!("Method '{method} {path}' not implemented"),
                String::new(),
            ),
        }
    }

    fn with_set(&self, name: &str, f: impl FnOnce(&BTreeMap<String, Stored>) -> Answer) -> Answer {
        match self.ipsets.get(name) {
            Some(set) => f(set),
            None => die(&format!("no such IPSet '{name}'")),
        }
    }

    /// A write: applied to a copy, kept only if `cluster.fw` still fits.
    fn change(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut BTreeMap<String, Stored>) -> Result<(), Answer>,
    ) -> Answer {
        let Some(set) = self.ipsets.get(name) else {
            return die(&format!("no such IPSet '{name}'"));
        };
        let mut changed = set.clone();
        if let Err(answer) = f(&mut changed) {
            return answer;
        }
        let before = self.ipsets.insert(name.to_string(), changed);
        if self.file_size() > MAX_FILE_SIZE {
            self.ipsets
                .insert(name.to_string(), before.unwrap_or_default());
            return die("unable to write '/etc/pve/firewall/cluster.fw.tmp.1' - File too large");
        }
        ok(Value::Null)
    }

    fn add(&mut self, name: &str, given: &str, entry: Stored) -> Answer {
        if !self.ipsets.contains_key(name) {
            return die(&format!("no such IPSet '{name}'"));
        }
        let cidr = match normalise(given) {
            Ok(cidr) => cidr,
            Err(answer) => return answer,
        };
        self.change(name, |set| {
            if set.contains_key(&cidr) {
                return Err(param_error(
                    "cidr",
                    &format!("address '{cidr}' already exists"),
                ));
            }
            set.insert(cidr, entry);
            Ok(())
        })
    }

    /// About the size of `cluster.fw` holding these IPSets.
    fn file_size(&self) -> usize {
        self.ipsets
            .iter()
            .map(|(name, set)| {
                name.len()
                    + 10
                    + set
                        .iter()
                        .map(|(cidr, e)| {
                            let comment = e.comment.as_ref().map_or(0, |c| c.len() + 3);
                            usize::from(e.nomatch) + cidr.len() + comment + 1
                        })
                        .sum::<usize>()
            })
            .sum()
    }
}

fn ok(data: Value) -> Answer {
    (200, "OK".into(), json!({ "data": data }).to_string())
}

/// A `die "...\n"` in PVE: 500, the text as reason and message.
fn die(message: &str) -> Answer {
    let body = json!({"data": null, "message": format!("{message}\n")});
    (500, message.to_string(), body.to_string())
}

/// `raise_param_exc`: 400 with the `errors` map.
fn param_error(key: &str, text: &str) -> Answer {
    let body = json!({
        "data": null,
        "errors": { key: text },
        "message": "Parameter verification failed.\n",
    });
    (
        400,
        "Parameter verification failed.".into(),
        body.to_string(),
    )
}

fn list(set: &BTreeMap<String, Stored>) -> Value {
    Value::Array(set.iter().map(|(c, e)| entry_json(c, e)).collect())
}

fn entry_json(cidr: &str, e: &Stored) -> Value {
    let mut v = json!({ "cidr": cidr, "digest": "sandbox" });
    if let Some(c) = &e.comment {
        v["comment"] = json!(c);
    }
    if e.nomatch {
        v["nomatch"] = json!(1);
    }
    v
}

/// `%2F` → `/`, `%3A` → `:` and the like, in one path segment.
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What POST stores for `given`, or PVE's 400.
fn normalise(given: &str) -> Result<String, Answer> {
    let invalid = || {
        param_error(
            "cidr",
            "invalid format - value does not look like a valid IP address or CIDR network\n",
        )
    };
    let (text, prefix) = match given.split_once('/') {
        Some((a, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (a, Some(p)),
        Some(_) => return Err(invalid()),
        None => (given, None),
    };
    let addr: IpAddr = text.parse().map_err(|_| invalid())?;
    let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
    let Some(prefix) = prefix else {
        // No prefix: PVE stores the text as it came.
        return Ok(given.to_string());
    };
    let len: u32 = prefix.parse().unwrap_or(u32::MAX);
    if len > bits {
        return Err(param_error(
            "cidr",
            &format!(
                "invalid format - Prefix length {prefix} is longer than IP address ({bits})\n"
            ),
        ));
    }
    if len == 0 {
        return Err(param_error(
            "cidr",
            "a zero prefix is not allowed in ipset entries",
        ));
    }
    let ip = match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX << (32 - len);
            Ipv4Addr::from(u32::from(v4) & mask).to_string()
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - len);
            compress_v6(u128::from(v6) & mask)
        }
    };
    let stored = format!("{ip}/{prefix}");
    let whole = if bits == 32 { "/32" } else { "/128" };
    Ok(stored
        .strip_suffix(whole)
        .map_or(stored.clone(), str::to_string))
}

/// Net::IP's `ip_compress_address`: the longest zero run measured with its
/// colons becomes `::` (a middle run beats a leading one of equal zeros).
fn compress_v6(value: u128) -> String {
    let groups: Vec<u16> = Ipv6Addr::from(value).segments().to_vec();
    let mut best: Option<(usize, usize, usize)> = None;
    let mut i = 0;
    while i < 8 {
        if groups[i] != 0 {
            i += 1;
            continue;
        }
        let start = i;
        while i < 8 && groups[i] == 0 {
            i += 1;
        }
        let zeros = i - start;
        let len = 2 * zeros - 1 + usize::from(start > 0) + usize::from(i < 8);
        if zeros >= 2 && best.is_none_or(|(_, _, l)| len > l) {
            best = Some((start, i, len));
        }
    }
    let hex = |g: &[u16]| {
        g.iter()
            .map(|g| format!("{g:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    match best {
        Some((s, e, _)) => format!("{}::{}", hex(&groups[..s]), hex(&groups[e..])),
        None => hex(&groups),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(pve: &mut MemoryPve, cidr: &str) -> Answer {
        pve.request(
            "POST",
            "/cluster/firewall/ipset/f2b",
            &[("cidr".into(), cidr.into())],
        )
    }

    fn cidrs(pve: &MemoryPve) -> Vec<String> {
        pve.entries("f2b")
            .unwrap()
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    }

    #[test]
    fn post_normalises_like_pve() {
        let mut pve = MemoryPve::with_ipsets(["f2b"]);
        for cidr in [
            "10.0.0.1/8",
            "192.0.2.7/32",
            "2001:DB8:0:0:1::1/80",
            "2001:DB8::7",
        ] {
            assert_eq!(post(&mut pve, cidr).0, 200, "{cidr}");
        }
        assert_eq!(
            cidrs(&pve),
            [
                "10.0.0.0/8",
                "192.0.2.7",
                "2001:DB8::7",
                "2001:db8:0:0:1::/80"
            ]
        );
    }

    #[test]
    fn duplicate_is_400_with_the_errors_map() {
        let mut pve = MemoryPve::with_ipsets(["f2b"]);
        post(&mut pve, "192.0.2.0/24");
        let (status, _, body) = post(&mut pve, "192.0.2.1/24");
        assert_eq!(status, 400);
        assert!(
            body.contains(r#""cidr":"address '192.0.2.0/24' already exists""#),
            "{body}"
        );
    }

    #[test]
    fn delete_matches_exactly_and_a_missing_entry_is_200() {
        let mut pve = MemoryPve::with_ipsets(["f2b"]);
        post(&mut pve, "10.0.0.0/8");
        let path = "/cluster/firewall/ipset/f2b/10.0.0.1%2F8";
        assert_eq!(pve.request("DELETE", path, &[]).0, 200);
        assert_eq!(cidrs(&pve), ["10.0.0.0/8"]);
        let path = "/cluster/firewall/ipset/f2b/10.0.0.0%2F8";
        assert_eq!(pve.request("DELETE", path, &[]).0, 200);
        assert!(cidrs(&pve).is_empty());
    }

    #[test]
    fn unknown_ipset_and_zero_prefix_are_refused() {
        let mut pve = MemoryPve::with_ipsets(["f2b"]);
        let (status, reason, _) = pve.request("GET", "/cluster/firewall/ipset/nope", &[]);
        assert_eq!((status, reason.as_str()), (500, "no such IPSet 'nope'"));
        let (status, _, body) = post(&mut pve, "10.0.0.0/0");
        assert_eq!(status, 400);
        assert!(body.contains("a zero prefix"), "{body}");
        assert_eq!(post(&mut pve, "010.0.0.1").0, 400);
    }

    #[test]
    fn a_full_cluster_fw_refuses_writes() {
        let mut pve = MemoryPve::with_ipsets(["f2b"]);
        let comment = "x".repeat(1000);
        let mut status = 200;
        for i in 0..2000u32 {
            let ip = Ipv4Addr::from(0x0a00_0000 + i).to_string();
            let params = [
                ("cidr".to_string(), ip),
                ("comment".to_string(), comment.clone()),
            ];
            (status, ..) = pve.request("POST", "/cluster/firewall/ipset/f2b", &params);
            if status != 200 {
                break;
            }
        }
        assert_eq!(status, 500);
        assert!(pve.file_size() <= MAX_FILE_SIZE);
    }

    #[test]
    fn seed_reads_ipset_sections_of_cluster_fw() {
        let text = "[OPTIONS]\nenable: 1\n\n[IPSET F2B] # bans\n\n192.0.2.1 # sshd\n!10.0.0.0/8\n\n[RULES]\nIN DROP -source +dc/f2b\n";
        let pve = MemoryPve::from_cluster_fw(text);
        let entries = pve.entries("f2b").unwrap();
        assert_eq!(entries.len(), 2);
        assert!(entries[0].1.nomatch);
        assert_eq!(entries[1].1.comment.as_deref(), Some("sshd"));
    }
}
