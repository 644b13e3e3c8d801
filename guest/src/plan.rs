//! What the default policy's `ban` and `unban` send, and what they say.
//!
//! Both take the entry of [`policy::checked`]: the exact string PVE stores,
//! after the administrator's rules, so an unban deletes what the ban stored.

use fail2pvefw_sdk::ipset::{self, Added, IpsetName, Removed};
use fail2pvefw_sdk::{BanRequest, Error, cidr::Cidr, comment, policy, tag};

/// `POST /cluster/firewall/ipset/{ipset}` with `cidr` and the comment
/// `[local time] TEXT f2p:INSTANCE/JAIL/EXPIRY`. An entry that is already
/// there is success: fail2ban re-applies bans on restart, and a retried
/// POST may have landed the first time. Then one GET of the entry says in
/// the words whose it is: someone else's entry stays when this address is
/// unbanned (the host sends no DELETE of it).
pub fn ban(req: &BanRequest) -> Result<String, Error> {
    let (set, entry) = policy::checked(req)?;
    match ipset::add(&set, entry.as_str(), &comment::for_ban(req))? {
        Added::Added => Ok(format!("added {entry} to IPSet '{set}'")),
        Added::AlreadyThere => Ok(already_there(&set, &entry, &tag::tag_name(&req.instance))),
    }
}

/// The words for an entry a ban found already there, after one GET of it:
/// ours, another instance's, or someone else's. If the read fails, just
/// that it was there: the ban succeeded all the same.
fn already_there(set: &IpsetName, entry: &Cidr, instance: &str) -> String {
    let plain = format!("{entry} was already in IPSet '{set}'");
    let Ok(Some(found)) = ipset::get(set, entry.as_str()) else {
        return plain;
    };
    match found.owner {
        Some(owner) if owner.instance == instance => format!("{plain} (our entry)"),
        Some(owner) => format!(
            "{plain} as an entry of instance '{}': not ours, so unbanning it here leaves it",
            owner.instance
        ),
        None => {
            let shown = found.comment.map_or_else(
                || "no comment".to_string(),
                |c| format!("comment '{}'", comment::one_line(&c, 100)),
            );
            format!(
                "{plain} as someone else's entry ({shown}): not ours, so unbanning it leaves it"
            )
        }
    }
}

/// `DELETE /cluster/firewall/ipset/{ipset}/{entry}`, the `/` of a prefix
/// percent-encoded. PVE deletes by exact string and answers 200 whether or
/// not the entry was there, so this is idempotent by itself. The host sends
/// it only when the entry carries our ownership tag; someone else's entry
/// (`not-ours`) is left alone, which is this unban's right outcome.
pub fn unban(req: &BanRequest) -> Result<String, Error> {
    let (set, entry) = policy::checked(req)?;
    match ipset::remove(&set, entry.as_str())? {
        Removed::Removed => Ok(format!("{entry} is not in IPSet '{set}' any more")),
        Removed::LeftAlone(why) => Ok(format!("left {entry} in IPSet '{set}' alone: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use crate::DefaultPolicy as P;
    use fail2pvefw_sdk::test_host::{Answer, TestHost};
    use fail2pvefw_sdk::{Cause, Error, Policy, Response};

    fn host() -> TestHost {
        TestHost::new().ipset("f2b").instance("web01")
    }

    fn answering(status: u16, reason: &str, body: &str) -> TestHost {
        let response = Response {
            status,
            reason: reason.to_string(),
            body: body.to_string(),
        };
        host().respond(move |_, _, _| Some(Ok(response.clone())))
    }

    // --- validate, start, check, entries: the SDK's defaults

    #[test]
    fn validate_returns_what_pve_stores_without_io() {
        let mut host = host();
        let mut validate = |ip: &str, ipset: &str| {
            let req = fail2pvefw_sdk::BanRequest::new(ip, ipset, "web01");
            host.run(|| P::validate(&req))
        };
        assert_eq!(validate("10.0.0.1/8", "f2b"), Ok("10.0.0.0/8".into()));
        assert!(
            matches!(validate("010.0.0.1", "f2b"), Err(Error::InvalidInput(m)) if m.starts_with("'010.0.0.1' "))
        );
        assert!(matches!(
            validate("1.2.3.4", "F2B"),
            Err(Error::InvalidInput(_))
        ));
        assert!(host.calls().is_empty());
        let mut wide = TestHost::new().ipset("f2b").setting("ipv6-prefix", "64");
        let req = wide.request("2001:db8:1:2:3:4:5:6");
        assert_eq!(
            wide.run(|| P::validate(&req)),
            Ok("2001:db8:1:2::/64".into())
        );
    }

    #[test]
    fn start_and_check_read_the_ipset() {
        let mut host = host()
            .entry("f2b", "1.2.3.4", None)
            .entry("f2b", "10.0.0.0/16", None);
        assert_eq!(
            host.run(|| P::start("f2b")),
            Ok("PVE is reachable; IPSet 'f2b' exists with 2 entries".into())
        );
        assert_eq!(host.calls()[0].path, "/cluster/firewall/ipset/f2b");
        let mut one = host.entry("g2b", "1.2.3.4", None);
        assert_eq!(
            one.run(|| P::check("g2b")),
            Ok("IPSet 'g2b' exists with 1 entry".into())
        );
        let mut text = answering(200, "OK", "not json");
        assert_eq!(
            text.run(|| P::check("f2b")),
            Ok("IPSet 'f2b' exists".into())
        );
    }

    #[test]
    fn check_of_a_missing_ipset_is_refused() {
        let mut host = TestHost::new().ipset("f2b").cluster_fw("");
        let outcome = host.run(|| P::check("f2b"));
        assert!(
            matches!(&outcome, Err(Error::Refused { status: 500, cause: Cause::NoSuchIpset, message }) if message == "no such IPSet 'f2b'"),
            "{outcome:?}"
        );
    }

    #[test]
    fn entries_name_their_owners() {
        let mut host = host().entry("f2b", "10.0.0.0/16", None).entry(
            "f2b",
            "192.0.2.1",
            Some("[2020/01/01 00:00:00] x f2p:web01/sshd/5"),
        );
        let entries = host.run(|| P::entries("f2b")).unwrap();
        assert_eq!(entries[0].owner, None);
        let owner = entries[1].owner.as_ref().unwrap();
        assert_eq!((owner.instance.as_str(), owner.expires), ("web01", Some(5)));
        let mut missing = answering(500, "no such IPSet 'f2b'", r#"{"data":null}"#);
        assert!(matches!(
            missing.run(|| P::entries("f2b")),
            Err(Error::Refused { status: 500, .. })
        ));
    }

    // --- ban

    #[test]
    fn ban_posts_the_canonical_entry_with_the_tagged_comment() {
        let mut host = host().at(1_795_651_323).local_offset(3600);
        let req = fail2pvefw_sdk::BanRequest {
            jail: Some("sshd".into()),
            comment: Some("sshd: 3 attempts".into()),
            bantime: Some(600),
            ..host.request("2001:DB8::1/128")
        };
        assert_eq!(
            host.ban_with::<P>(&req),
            Ok("added 2001:db8::1 to IPSet 'f2b'".into())
        );
        let call = &host.calls()[0];
        assert_eq!((call.method.as_str(), call.status()), ("POST", Some(200)));
        assert_eq!(call.param("cidr"), Some("2001:db8::1"));
        assert_eq!(
            call.param("comment"),
            Some("[2026/11/26 01:02:03] sshd: 3 attempts f2p:web01/sshd/1795651923")
        );
        assert_eq!(host.cidrs("f2b"), ["2001:db8::1"]);
    }

    #[test]
    fn an_entry_already_there_is_read_once_to_say_whose_it_is() {
        let mut host = host()
            .entry("f2b", "192.0.2.50", Some("manual-by-admin"))
            .entry(
                "f2b",
                "192.0.2.51",
                Some("[2020/01/01 00:00:00] x f2p:other/sshd/5"),
            )
            .entry("f2b", "192.0.2.52", None);
        assert_eq!(
            host.ban::<P>("192.0.2.50").unwrap(),
            "192.0.2.50 was already in IPSet 'f2b' as someone else's entry (comment \
             'manual-by-admin'): not ours, so unbanning it leaves it"
        );
        let paths: Vec<&str> = host.calls().iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/cluster/firewall/ipset/f2b",
                "/cluster/firewall/ipset/f2b/192.0.2.50"
            ]
        );
        assert!(
            host.ban::<P>("192.0.2.51")
                .unwrap()
                .contains("instance 'other': not ours")
        );
        assert!(
            host.ban::<P>("192.0.2.52")
                .unwrap()
                .contains("(no comment)")
        );
        host.ban::<P>("192.0.2.53").unwrap();
        assert_eq!(
            host.ban::<P>("192.0.2.53").unwrap(),
            "192.0.2.53 was already in IPSet 'f2b' (our entry)"
        );
    }

    #[test]
    fn ban_errors_are_the_wit_cases() {
        let reason = "cfs-lock 'firewall-cluster' error: got lock request timeout";
        let body = format!(r#"{{"data":null,"message":"{reason}\n"}}"#);
        let mut busy = answering(500, reason, &body);
        assert_eq!(
            busy.ban::<P>("1.2.3.4"),
            Err(Error::Busy(format!("500 {reason}")))
        );
        let reason = "unable to write '/etc/pve/firewall/cluster.fw.tmp.4242' - File too large";
        let mut full = answering(500, reason, r#"{"data":null}"#);
        assert!(matches!(
            full.ban::<P>("1.2.3.4"),
            Err(Error::Refused {
                cause: Cause::Capacity,
                ..
            })
        ));
        let mut missing = TestHost::new().ipset("f2b").cluster_fw("");
        assert!(matches!(
            missing.ban::<P>("1.2.3.4"),
            Err(Error::Refused {
                cause: Cause::NoSuchIpset,
                ..
            })
        ));
        let mut zero = host();
        let zero_prefix = zero.ban::<P>("1.2.3.4/0");
        assert!(
            matches!(zero_prefix, Err(Error::InvalidInput(_))),
            "{zero_prefix:?}"
        );
        let mut down =
            host().respond(|_, _, _| Some(Err(Error::Unreachable("connection refused".into()))));
        assert_eq!(
            down.ban::<P>("1.2.3.4"),
            Err(Error::Unreachable("connection refused".into()))
        );
    }

    #[test]
    fn a_ban_the_guard_denies_is_denied() {
        let mut host = host().widest(24, 64);
        let outcome = host.ban::<P>("198.51.0.0/16");
        assert!(matches!(outcome, Err(Error::Denied(_))), "{outcome:?}");
        assert!(matches!(host.calls()[0].answer, Answer::Denied(_)));
    }

    // --- unban

    #[test]
    fn unban_deletes_the_exact_entry_with_the_slash_encoded() {
        let mut host = host();
        host.ban::<P>("10.0.0.1/16").unwrap();
        assert_eq!(
            host.unban::<P>("10.0.9.9/16"),
            Ok("10.0.0.0/16 is not in IPSet 'f2b' any more".into())
        );
        let delete = &host.calls()[1];
        assert_eq!(
            (
                delete.method.as_str(),
                delete.path.as_str(),
                delete.status()
            ),
            (
                "DELETE",
                "/cluster/firewall/ipset/f2b/10.0.0.0%2F16",
                Some(200)
            )
        );
        assert!(host.cidrs("f2b").is_empty());
    }

    #[test]
    fn unban_of_someone_elses_entry_leaves_it() {
        let mut host = host().entry("f2b", "2001:db8::1", Some("manual-by-admin"));
        let words = host.unban::<P>("2001:DB8:0::1").unwrap();
        assert!(
            words.starts_with("left 2001:db8::1 in IPSet 'f2b' alone: not ours"),
            "{words}"
        );
        assert_eq!(host.cidrs("f2b"), ["2001:db8::1"]);
    }

    #[test]
    fn unban_errors() {
        let mut host = answering(401, "No ticket", "");
        assert_eq!(
            host.unban::<P>("1.2.3.4"),
            Err(Error::Refused {
                status: 401,
                message: "No ticket".into(),
                cause: Cause::Authentication
            })
        );
    }
}
