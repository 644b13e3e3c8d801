//! The escalation, on the SDK's imports and conventions.

use fail2pvefw_sdk::cidr::{self, Cidr};
use fail2pvefw_sdk::ipset::{self, IpsetName};
use fail2pvefw_sdk::{BanRequest, Error, Owner, clock, comment, policy, settings, store};

/// A member of a subnet: its address and when its ban ends (`None`:
/// never), with the second it was banned for the window.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Member {
    addr: String,
    at: i64,
    expires: Option<i64>,
}

/// The IPSet and the one address of a request, as PVE stores it.
pub fn member(req: &BanRequest) -> Result<(IpsetName, Cidr), Error> {
    let single = cidr::normalize(&req.ip).map_err(Error::InvalidInput)?;
    if !single.is_host() {
        return Err(Error::InvalidInput(format!(
            "{} is a network: this policy bans single addresses (and escalates to their subnet)",
            cidr::quote(&req.ip)
        )));
    }
    policy::checked(req)
}

/// The /24 or /64 around an address.
fn subnet(member: &Cidr) -> Cidr {
    member.widen(if member.net().addr().is_ipv4() {
        24
    } else {
        64
    })
}

pub fn ban(req: &BanRequest) -> Result<String, Error> {
    let (set, addr) = member(req)?;
    let net = subnet(&addr);
    let at = comment::banned_at(req);
    let this = Member {
        addr: addr.to_string(),
        at,
        expires: req.owner(at).expires,
    };
    let escalated_key = format!("escalated/{net}");
    let mut members = live(load(&escalated_key), at);
    if !members.is_empty() {
        members.retain(|m| m.addr != this.addr);
        members.push(this);
        keep_subnet(req, &set, &net, at, &members)?;
        save(&escalated_key, &members)?;
        return Ok(format!("{addr} is covered by the banned subnet {net}"));
    }
    let threshold = settings::policy("threshold", 3usize)?.max(2);
    let window = settings::policy("window", 3600i64)?;
    let hits_key = format!("hits/{net}");
    let mut hits: Vec<Member> = live(load(&hits_key), at)
        .into_iter()
        .filter(|m| at - m.at <= window && m.addr != this.addr)
        .collect();
    hits.push(this);
    if hits.len() < threshold {
        ipset::add(&set, addr.as_str(), &comment::for_ban(req))?;
        save(&hits_key, &hits)?;
        return Ok(format!(
            "added {addr} ({} of {threshold} in {net})",
            hits.len()
        ));
    }
    keep_subnet(req, &set, &net, at, &hits)?;
    for m in &hits {
        ipset::remove(&set, &m.addr)?;
    }
    save(&escalated_key, &hits)?;
    store::delete(&hits_key);
    Ok(format!(
        "escalated to {net}: banned the subnet, removed {} member entries",
        hits.len()
    ))
}

pub fn unban(req: &BanRequest) -> Result<String, Error> {
    let (set, addr) = member(req)?;
    let net = subnet(&addr);
    let escalated_key = format!("escalated/{net}");
    let members = load(&escalated_key);
    if !members.is_empty() {
        let rest: Vec<Member> = members
            .into_iter()
            .filter(|m| m.addr != addr.as_str())
            .collect();
        if !rest.is_empty() {
            save(&escalated_key, &rest)?;
            return Ok(format!(
                "{net} stays banned for {} more members",
                rest.len()
            ));
        }
        ipset::remove(&set, net.as_str())?;
        store::delete(&escalated_key);
        return Ok(format!("last member unbanned: removed {net}"));
    }
    ipset::remove(&set, addr.as_str())?;
    let hits_key = format!("hits/{net}");
    let rest: Vec<Member> = load(&hits_key)
        .into_iter()
        .filter(|m| m.addr != addr.as_str())
        .collect();
    save(&hits_key, &rest)?;
    Ok(format!("{addr} is not in IPSet '{set}' any more"))
}

/// Makes PVE hold the subnet with the tag of the latest member ban: adds
/// it if it is missing (PVE lost it), or rewrites its comment (a PUT) when
/// a member's ban now ends later than its tag says. No write when it is
/// already right.
fn keep_subnet(
    req: &BanRequest,
    set: &IpsetName,
    net: &Cidr,
    at: i64,
    members: &[Member],
) -> Result<(), Error> {
    let owner = Owner {
        expires: latest(members),
        ..req.owner(at)
    };
    let text = format!("subnet-escalation: {} bans in {net}", members.len());
    let wanted = comment::tagged(at, clock::local_offset(at), &text, &owner);
    match ipset::get(set, net.as_str())? {
        // Missing (PVE lost it): add it. Already there by now is as good.
        None => {
            ipset::add(set, net.as_str(), &wanted)?;
        }
        Some(found) => {
            let theirs = found.owner.as_ref();
            let ours = theirs.is_some_and(|o| o.instance == owner.instance);
            let shorter = theirs.is_some_and(|o| later(owner.expires, o.expires));
            if ours && shorter {
                ipset::set_comment(set, net.as_str(), &wanted)?;
            }
        }
    }
    Ok(())
}

/// The latest end of the members' bans; `None` (permanent) if one is.
fn latest(members: &[Member]) -> Option<i64> {
    members
        .iter()
        .map(|m| m.expires)
        .try_fold(i64::MIN, |acc, e| e.map(|e| acc.max(e)))
}

/// Whether the end `a` is later than `b` (`None` is never).
fn later(a: Option<i64>, b: Option<i64>) -> bool {
    match (a, b) {
        (None, Some(_)) => true,
        (Some(a), Some(b)) => a > b,
        (_, None) => false,
    }
}

/// The members whose ban has not ended at `at`.
fn live(members: Vec<Member>, at: i64) -> Vec<Member> {
    members
        .into_iter()
        .filter(|m| m.expires.is_none_or(|e| e > at))
        .collect()
}

/// `ADDR@AT@EXPIRES …`, EXPIRES `-` for a permanent ban.
fn load(key: &str) -> Vec<Member> {
    store::get(key)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|word| {
            let mut parts = word.split('@');
            let (addr, at, expires) = (parts.next()?, parts.next()?, parts.next()?);
            Some(Member {
                addr: addr.to_string(),
                at: at.parse().ok()?,
                expires: match expires {
                    "-" => None,
                    e => Some(e.parse().ok()?),
                },
            })
        })
        .collect()
}

fn save(key: &str, members: &[Member]) -> Result<(), Error> {
    if members.is_empty() {
        store::delete(key);
        return Ok(());
    }
    let text: Vec<String> = members
        .iter()
        .map(|m| {
            let expires = m.expires.map_or("-".to_string(), |e| e.to_string());
            format!("{}@{}@{expires}", m.addr, m.at)
        })
        .collect();
    store::set(key, &text.join(" "))
}

#[cfg(test)]
mod tests {
    use crate::SubnetEscalation as P;
    use fail2pvefw_sdk::ipset::{self, IpsetName};
    use fail2pvefw_sdk::test_host::TestHost;
    use fail2pvefw_sdk::{BanRequest, Error, Policy};

    fn host() -> TestHost {
        TestHost::new()
            .ipset("fail2ban")
            .instance("web01")
            .setting("policy.window", "600")
            .at(1_700_000_000)
    }

    /// A ban of `ip` for `bantime` seconds (jail sshd) at the host's now.
    fn ban(host: &mut TestHost, ip: &str, bantime: i64) -> String {
        let req = BanRequest {
            jail: Some("sshd".into()),
            bantime: Some(bantime),
            ..host.request(ip)
        };
        host.ban_with::<P>(&req).unwrap()
    }

    #[test]
    fn third_ban_in_a_24_bans_the_subnet_and_removes_members() {
        let mut host = host();
        assert_eq!(
            ban(&mut host, "203.0.113.1", 600),
            "added 203.0.113.1 (1 of 3 in 203.0.113.0/24)"
        );
        host.advance(10);
        ban(&mut host, "203.0.113.2", 600);
        assert_eq!(host.cidrs("fail2ban"), ["203.0.113.1", "203.0.113.2"]);
        host.advance(10);
        host.take_calls();
        assert_eq!(
            ban(&mut host, "203.0.113.3", 900),
            "escalated to 203.0.113.0/24: banned the subnet, removed 3 member entries"
        );
        assert_eq!(host.cidrs("fail2ban"), ["203.0.113.0/24"]);
        let subnet = &host.entries("fail2ban")[0];
        // Tagged with the latest end of its members' bans.
        let owner = subnet.owner.as_ref().unwrap();
        assert_eq!(
            (owner.instance.as_str(), owner.expires),
            ("web01", Some(1_700_000_920))
        );
        assert!(
            subnet.comment.as_deref().unwrap().starts_with(
                "[2023/11/14 22:13:40] subnet-escalation: 3 bans in 203.0.113.0/24 f2p:"
            ),
            "{subnet:?}"
        );
        let writes: Vec<String> = host
            .writes()
            .iter()
            .map(|c| format!("{} {}", c.method, c.path))
            .collect();
        assert_eq!(
            writes,
            [
                "POST /cluster/firewall/ipset/fail2ban",
                "DELETE /cluster/firewall/ipset/fail2ban/203.0.113.1",
                "DELETE /cluster/firewall/ipset/fail2ban/203.0.113.2",
                "DELETE /cluster/firewall/ipset/fail2ban/203.0.113.3",
            ]
        );
        // `entries` (the SDK's default) says the subnet is ours.
        let entries = host.run(|| P::entries("fail2ban")).unwrap();
        assert_eq!(entries[0].owner.as_ref().unwrap().instance, "web01");
    }

    #[test]
    fn a_later_member_ban_extends_the_subnets_expiry_and_a_restored_one_writes_nothing() {
        let mut host = host();
        for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
            ban(&mut host, ip, 600);
        }
        host.take_calls();
        host.advance(100);
        assert_eq!(
            ban(&mut host, "203.0.113.9", 3600),
            "203.0.113.9 is covered by the banned subnet 203.0.113.0/24"
        );
        let owner = host.entries("fail2ban")[0].owner.clone().unwrap();
        assert_eq!(owner.expires, Some(1_700_003_700));
        let writes: Vec<String> = host.writes().iter().map(|c| c.method.clone()).collect();
        assert_eq!(writes, ["PUT"]);
        // fail2ban restarted: the restored member ban only reads.
        host.take_calls();
        let req = BanRequest {
            restored: true,
            jail: Some("sshd".into()),
            bantime: Some(600),
            time: Some(1_700_000_000.0),
            ..host.request("203.0.113.1")
        };
        host.ban_with::<P>(&req).unwrap();
        assert!(host.writes().is_empty(), "{:?}", host.calls());
        // PVE lost the subnet: the next member ban adds it again.
        let set = IpsetName::new("fail2ban").unwrap();
        host.run(|| ipset::remove(&set, "203.0.113.0/24")).unwrap();
        ban(&mut host, "203.0.113.2", 600);
        assert_eq!(host.cidrs("fail2ban"), ["203.0.113.0/24"]);
    }

    #[test]
    fn bans_outside_the_window_do_not_count() {
        let mut host = host();
        ban(&mut host, "203.0.113.1", 3600);
        host.advance(1000);
        ban(&mut host, "203.0.113.2", 3600);
        host.advance(10);
        ban(&mut host, "203.0.113.3", 3600);
        assert_eq!(
            host.cidrs("fail2ban"),
            ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
        );
    }

    #[test]
    fn subnet_stays_until_its_last_member_is_unbanned() {
        let mut host = host();
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3"] {
            ban(&mut host, ip, -1);
        }
        assert_eq!(host.cidrs("fail2ban"), ["2001:db8:1:2::/64"]);
        // A permanent member makes the subnet permanent.
        assert_eq!(
            host.entries("fail2ban")[0].owner.as_ref().unwrap().expires,
            None
        );
        assert_eq!(
            host.unban::<P>("2001:db8:1:2::1").unwrap(),
            "2001:db8:1:2::/64 stays banned for 2 more members"
        );
        host.unban::<P>("2001:db8:1:2::2").unwrap();
        assert_eq!(host.cidrs("fail2ban"), ["2001:db8:1:2::/64"]);
        assert_eq!(
            host.unban::<P>("2001:db8:1:2::3").unwrap(),
            "last member unbanned: removed 2001:db8:1:2::/64"
        );
        assert!(host.cidrs("fail2ban").is_empty());
        assert!(host.store().is_empty(), "{:?}", host.store());
    }

    #[test]
    fn an_escalation_whose_bans_are_over_starts_afresh() {
        let mut host = host();
        for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
            ban(&mut host, ip, 60);
        }
        host.advance(3600);
        assert_eq!(
            ban(&mut host, "203.0.113.4", 60),
            "added 203.0.113.4 (1 of 3 in 203.0.113.0/24)"
        );
    }

    #[test]
    fn settings_are_read_and_a_bad_one_is_denied_naming_it() {
        let mut two = host().setting("policy.threshold", "2");
        ban(&mut two, "198.51.100.1", 600);
        assert!(ban(&mut two, "198.51.100.2", 600).starts_with("escalated"));
        let mut bad = host().setting("policy.threshold", "many");
        let outcome = bad.ban::<P>("198.51.100.1");
        let Err(Error::Denied(m)) = outcome else {
            panic!("{outcome:?}")
        };
        assert!(m.contains("'policy.threshold' has 'many'"), "{m}");
        assert!(bad.cidrs("fail2ban").is_empty());
    }

    #[test]
    fn input_must_be_one_address_as_pve_stores_it() {
        let mut host = host();
        let req = host.request("10.0.0.0/8");
        assert!(matches!(
            host.run(|| P::validate(&req)),
            Err(Error::InvalidInput(_))
        ));
        let req = host.request("2001:DB8::1");
        assert_eq!(host.run(|| P::validate(&req)), Ok("2001:db8::1".into()));
    }
}
