//! The escalation, over [`Pve`] and [`Store`] so that it runs natively in
//! tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An HTTP answer from PVE.
pub struct Answer {
    pub status: u16,
    pub reason: String,
    pub body: String,
}

/// Why a call failed (the WIT `error`, simplified).
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    Invalid(String),
    Denied(String),
    Refused(u16, String),
    Unreachable(String),
}

pub trait Pve {
    fn request(
        &mut self,
        method: &str,
        path: &str,
        params: &[(&str, &str)],
    ) -> Result<Answer, Failure>;
}

pub trait Store {
    fn get(&mut self, key: &str) -> Option<String>;
    fn set(&mut self, key: &str, value: &str) -> Result<(), Failure>;
    fn delete(&mut self, key: &str);
}

pub struct Escalation {
    /// Different addresses in one subnet that make it a subnet ban.
    pub threshold: usize,
    /// Seconds within which they must come.
    pub window: u64,
    pub now: u64,
}

/// The entry PVE stores for a single address: IPv4 dotted, IPv6 as Rust
/// prints it (PVE keeps an IPv6 address without prefix verbatim).
pub fn entry(input: &str) -> Result<String, Failure> {
    address(input).map(|a| a.to_string())
}

fn address(input: &str) -> Result<IpAddr, Failure> {
    input
        .parse::<IpAddr>()
        .map_err(|_| Failure::Invalid(format!("'{input}' is not a single IPv4 or IPv6 address")))
}

/// The /24 or /64 around an address, as PVE stores it.
pub fn subnet(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => format!("{}/24", Ipv4Addr::from(u32::from(v4) & !0xff)),
        IpAddr::V6(v6) => format!("{}/64", Ipv6Addr::from(u128::from(v6) & !(u128::MAX >> 64))),
    }
}

/// An entry's comment: `text` on one line, then the ownership tag
/// `f2p:INSTANCE/JAIL/-` (no expiry: this policy removes its entries on
/// unban, `sync` never does).
pub fn comment(text: &str, instance: &str, jail: Option<&str>) -> String {
    let name = |s: &str| -> String {
        let kept: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
            .take(32)
            .collect();
        if kept.is_empty() || kept == "-" {
            "-".into()
        } else {
            kept
        }
    };
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .filter(|w| !w.starts_with("f2p:"))
        .collect::<Vec<_>>()
        .join(" ");
    let instance = match name(instance).as_str() {
        "-" => "fail2pvefw".to_string(),
        kept => kept.to_string(),
    };
    let jail = jail.map_or_else(|| "-".to_string(), name);
    format!("{text} f2p:{instance}/{jail}/-")
}

fn path(ipset: &str, entry: Option<&str>) -> String {
    match entry {
        None => format!("/cluster/firewall/ipset/{ipset}"),
        Some(e) => format!("/cluster/firewall/ipset/{ipset}/{}", e.replace('/', "%2F")),
    }
}

fn judged(answer: Answer) -> Result<(), Failure> {
    let duplicate = answer.status == 400 && answer.body.contains("already exists");
    if (200..300).contains(&answer.status) || duplicate {
        Ok(())
    } else {
        Err(Failure::Refused(answer.status, answer.reason))
    }
}

fn post(pve: &mut impl Pve, ipset: &str, cidr: &str, comment: &str) -> Result<(), Failure> {
    judged(pve.request(
        "POST",
        &path(ipset, None),
        &[("cidr", cidr), ("comment", comment)],
    )?)
}

fn delete(pve: &mut impl Pve, ipset: &str, cidr: &str) -> Result<(), Failure> {
    judged(pve.request("DELETE", &path(ipset, Some(cidr)), &[])?)
}

/// `start`/`check`: the IPSet answers.
pub fn read_ipset(pve: &mut impl Pve, ipset: &str) -> Result<String, Failure> {
    judged(pve.request("GET", &path(ipset, None), &[])?)?;
    Ok(format!("IPSet '{ipset}' exists (subnet-escalation policy)"))
}

fn words(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

impl Escalation {
    pub fn ban(
        &self,
        pve: &mut impl Pve,
        store: &mut impl Store,
        ipset: &str,
        input: &str,
        comment: &str,
    ) -> Result<String, Failure> {
        let addr = entry(input)?;
        let net = subnet(address(input)?);
        let escalated_key = format!("escalated/{net}");
        if let Some(members) = store.get(&escalated_key) {
            let mut members = words(Some(members));
            if !members.contains(&addr) {
                members.push(addr.clone());
            }
            post(pve, ipset, &net, comment)?; // heals a lost subnet entry
            store.set(&escalated_key, &members.join(" "))?;
            return Ok(format!("{addr} is covered by the banned subnet {net}"));
        }
        let hits_key = format!("hits/{net}");
        let mut hits: Vec<(String, u64)> = words(store.get(&hits_key))
            .iter()
            .filter_map(|w| w.split_once('@'))
            .filter_map(|(a, t)| Some((a.to_string(), t.parse().ok()?)))
            .filter(|(a, t)| self.now.saturating_sub(*t) <= self.window && *a != addr)
            .collect();
        hits.push((addr.clone(), self.now));
        if hits.len() < self.threshold {
            post(pve, ipset, &addr, comment)?;
            let text: Vec<String> = hits.iter().map(|(a, t)| format!("{a}@{t}")).collect();
            store.set(&hits_key, &text.join(" "))?;
            return Ok(format!(
                "added {addr} ({} of {} in {net})",
                hits.len(),
                self.threshold
            ));
        }
        // The subnet's comment says why, and keeps the ban's tag.
        let tag = comment.rsplit(' ').next().unwrap_or_default();
        let why = format!("subnet-escalation: {} bans in {net} {tag}", hits.len());
        post(pve, ipset, &net, why.trim_end())?;
        let members: Vec<String> = hits.into_iter().map(|(a, _)| a).collect();
        for member in &members {
            delete(pve, ipset, member)?;
        }
        store.set(&escalated_key, &members.join(" "))?;
        store.delete(&hits_key);
        Ok(format!(
            "escalated to {net}: banned the subnet, removed {} member entries",
            members.len()
        ))
    }

    pub fn unban(
        &self,
        pve: &mut impl Pve,
        store: &mut impl Store,
        ipset: &str,
        input: &str,
    ) -> Result<String, Failure> {
        let addr = entry(input)?;
        let net = subnet(address(input)?);
        let escalated_key = format!("escalated/{net}");
        if let Some(members) = store.get(&escalated_key) {
            let rest: Vec<String> = words(Some(members))
                .into_iter()
                .filter(|m| *m != addr)
                .collect();
            if !rest.is_empty() {
                store.set(&escalated_key, &rest.join(" "))?;
                return Ok(format!(
                    "{net} stays banned for {} more members",
                    rest.len()
                ));
            }
            delete(pve, ipset, &net)?;
            store.delete(&escalated_key);
            return Ok(format!("last member unbanned: removed {net}"));
        }
        delete(pve, ipset, &addr)?;
        let hits_key = format!("hits/{net}");
        let rest: Vec<String> = words(store.get(&hits_key))
            .into_iter()
            .filter(|w| !w.starts_with(&format!("{addr}@")))
            .collect();
        if rest.is_empty() {
            store.delete(&hits_key);
        } else {
            store.set(&hits_key, &rest.join(" "))?;
        }
        Ok(format!("{addr} is not in IPSet '{ipset}' any more"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    #[derive(Default)]
    struct Fake {
        set: BTreeSet<String>,
        kv: BTreeMap<String, String>,
    }

    impl Pve for Fake {
        fn request(
            &mut self,
            method: &str,
            path: &str,
            params: &[(&str, &str)],
        ) -> Result<Answer, Failure> {
            let ok = Answer {
                status: 200,
                reason: "OK".into(),
                body: "{}".into(),
            };
            match method {
                "POST" => {
                    self.set.insert(params[0].1.to_string());
                }
                "DELETE" => {
                    let cidr = path.rsplit('/').next().unwrap().replace("%2F", "/");
                    self.set.remove(&cidr);
                }
                _ => {}
            }
            Ok(ok)
        }
    }

    impl Store for Fake {
        fn get(&mut self, key: &str) -> Option<String> {
            self.kv.get(key).cloned()
        }
        fn set(&mut self, key: &str, value: &str) -> Result<(), Failure> {
            self.kv.insert(key.into(), value.into());
            Ok(())
        }
        fn delete(&mut self, key: &str) {
            self.kv.remove(key);
        }
    }

    fn esc(now: u64) -> Escalation {
        Escalation {
            threshold: 3,
            window: 600,
            now,
        }
    }

    fn ban(f: &mut Fake, now: u64, ip: &str) {
        let (mut pve, mut store) = (std::mem::take(&mut f.set), std::mem::take(&mut f.kv));
        let mut p = Fake {
            set: std::mem::take(&mut pve),
            kv: BTreeMap::new(),
        };
        let mut s = Fake {
            set: BTreeSet::new(),
            kv: std::mem::take(&mut store),
        };
        esc(now).ban(&mut p, &mut s, "f2b", ip, "c").unwrap();
        f.set = p.set;
        f.kv = s.kv;
    }

    fn unban(f: &mut Fake, ip: &str) {
        let mut p = Fake {
            set: std::mem::take(&mut f.set),
            kv: BTreeMap::new(),
        };
        let mut s = Fake {
            set: BTreeSet::new(),
            kv: std::mem::take(&mut f.kv),
        };
        esc(0).unban(&mut p, &mut s, "f2b", ip).unwrap();
        f.set = p.set;
        f.kv = s.kv;
    }

    fn set(f: &Fake) -> Vec<&str> {
        f.set.iter().map(String::as_str).collect()
    }

    #[test]
    fn third_ban_in_a_24_bans_the_subnet_and_removes_members() {
        let mut f = Fake::default();
        ban(&mut f, 100, "203.0.113.1");
        ban(&mut f, 110, "203.0.113.2");
        assert_eq!(set(&f), ["203.0.113.1", "203.0.113.2"]);
        ban(&mut f, 120, "203.0.113.3");
        assert_eq!(set(&f), ["203.0.113.0/24"]);
    }

    #[test]
    fn bans_outside_the_window_do_not_count() {
        let mut f = Fake::default();
        ban(&mut f, 0, "203.0.113.1");
        ban(&mut f, 1000, "203.0.113.2");
        ban(&mut f, 1010, "203.0.113.3");
        assert_eq!(set(&f), ["203.0.113.1", "203.0.113.2", "203.0.113.3"]);
    }

    #[test]
    fn subnet_stays_until_its_last_member_is_unbanned() {
        let mut f = Fake::default();
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3"] {
            ban(&mut f, 5, ip);
        }
        assert_eq!(set(&f), ["2001:db8:1:2::/64"]);
        unban(&mut f, "2001:db8:1:2::1");
        unban(&mut f, "2001:db8:1:2::2");
        assert_eq!(set(&f), ["2001:db8:1:2::/64"]);
        unban(&mut f, "2001:db8:1:2::3");
        assert!(set(&f).is_empty());
        assert!(f.kv.is_empty());
    }

    #[test]
    fn comments_end_with_the_ownership_tag() {
        assert_eq!(comment("hi", "web01", Some("sshd")), "hi f2p:web01/sshd/-");
        assert_eq!(
            comment("a\nb f2p:evil/-/-", "my host", None),
            "a b f2p:myhost/-/-"
        );
    }

    #[test]
    fn input_must_be_one_address() {
        assert!(entry("10.0.0.0/8").is_err());
        assert_eq!(entry("2001:DB8::1").unwrap(), "2001:db8::1");
    }
}
