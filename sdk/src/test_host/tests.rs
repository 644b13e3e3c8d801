use super::*;
use crate::ipset::{self, Added, IpsetName, Removed};
use crate::{comment, policy, store};

/// The smallest policy on the SDK: the default `validate`, one entry per ban.
struct Plain;

impl Policy for Plain {
    fn identity() -> crate::Identity {
        crate::Identity::new("plain", "1")
    }

    fn ban(req: &BanRequest) -> Result<String, Error> {
        let (set, entry) = policy::checked(req)?;
        ipset::add(&set, entry.as_str(), &comment::for_ban(req))?;
        store::set(&format!("banned/{entry}"), "1")?;
        Ok(format!("added {entry}"))
    }

    fn unban(req: &BanRequest) -> Result<String, Error> {
        let (set, entry) = policy::checked(req)?;
        store::delete(&format!("banned/{entry}"));
        match ipset::remove(&set, entry.as_str())? {
            Removed::Removed => Ok(format!("removed {entry}")),
            Removed::LeftAlone(why) => Ok(format!("left {entry} alone: {why}")),
        }
    }
}

fn f2b() -> IpsetName {
    IpsetName::new("f2b").unwrap()
}

#[test]
fn a_ban_goes_into_the_model_with_the_tag_and_the_store() {
    let mut host = TestHost::new().ipset("f2b").at(1_700_000_000);
    let req = BanRequest {
        jail: Some("sshd".into()),
        bantime: Some(600),
        ..host.request("10.9.0.1/24")
    };
    assert_eq!(host.ban_with::<Plain>(&req), Ok("added 10.9.0.0/24".into()));
    let entries = host.entries("f2b");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].comment.as_deref(),
        Some("[2023/11/14 22:13:20] sshd f2p:test/sshd/1700000600")
    );
    let owner = entries[0].owner.as_ref().unwrap();
    assert_eq!(
        (owner.instance.as_str(), owner.expires),
        ("test", Some(1_700_000_600))
    );
    assert_eq!(
        host.store().get("banned/10.9.0.0/24").map(String::as_str),
        Some("1")
    );
    let call = &host.calls()[0];
    assert_eq!(
        (call.method.as_str(), call.path.as_str(), call.status()),
        ("POST", "/cluster/firewall/ipset/f2b", Some(200))
    );
    assert_eq!(call.param("cidr"), Some("10.9.0.0/24"));
    assert!(
        host.logs()
            .iter()
            .any(|(level, line)| *level == Level::Debug && line.starts_with("POST ")),
        "{:?}",
        host.logs()
    );
}

#[test]
fn a_duplicate_is_pves_400_and_unban_deletes_the_exact_entry() {
    let mut host = TestHost::new().ipset("f2b");
    host.ban::<Plain>("2001:DB8::1").unwrap();
    let again = host.run(|| ipset::add(&f2b(), "2001:db8::1", "x f2p:test/-/-"));
    assert_eq!(again, Ok(Added::AlreadyThere));
    assert_eq!(host.calls()[1].status(), Some(400));
    assert_eq!(
        host.unban::<Plain>("2001:db8::1"),
        Ok("removed 2001:db8::1".into())
    );
    assert!(host.cidrs("f2b").is_empty());
    assert!(host.store().is_empty());
    // Missing: 200, as PVE answers, without a DELETE.
    assert_eq!(
        host.unban::<Plain>("2001:db8::1"),
        Ok("removed 2001:db8::1".into())
    );
}

#[test]
fn someone_elses_entry_is_left_alone() {
    let mut host = TestHost::new()
        .entry("f2b", "192.0.2.50", Some("manual-by-admin"))
        .entry(
            "f2b",
            "192.0.2.51",
            Some("[2020/01/01 00:00:00] x f2p:other/-/-"),
        );
    let left = host.unban::<Plain>("192.0.2.50").unwrap();
    assert!(left.contains("left 192.0.2.50 alone: not ours"), "{left}");
    assert!(host.unban::<Plain>("192.0.2.51").unwrap().contains("alone"));
    assert_eq!(host.cidrs("f2b"), ["192.0.2.50", "192.0.2.51"]);
    assert!(matches!(host.calls()[0].answer, Answer::NotOurs(_)));
    // A PUT is guarded alike.
    let put = host.run(|| ipset::set_comment(&f2b(), "192.0.2.50", "mine f2p:test/-/-"));
    assert!(matches!(put, Err(Error::NotOurs(_))), "{put:?}");
}

#[test]
fn the_guard_denies_what_the_host_denies() {
    let mut host = TestHost::new()
        .ipset("f2b")
        .setting("never-ban", "10.0.0.0/8")
        .setting("pve-hosts", "192.0.2.10");
    let denied = |host: &mut TestHost, method: &str, path: &str, params: &[(&str, &str)]| {
        let outcome = host.run(|| crate::pve::request(method, path, params));
        match outcome {
            Err(Error::Denied(why)) => why,
            other => panic!("{method} {path}: {other:?}"),
        }
    };
    let f2b = "/cluster/firewall/ipset/f2b";
    let why = denied(&mut host, "POST", f2b, &[("cidr", "10.1.2.3")]);
    assert!(why.contains("never_ban"), "{why}");
    let why = denied(&mut host, "POST", f2b, &[("cidr", "192.0.2.0/24")]);
    assert!(why.contains("PVE node"), "{why}");
    let why = denied(&mut host, "POST", f2b, &[("cidr", "198.51.0.0/15")]);
    assert!(why.contains("widest_ipv4"), "{why}");
    let why = denied(
        &mut host,
        "POST",
        f2b,
        &[("cidr", "198.51.100.1"), ("nomatch", "1")],
    );
    assert!(why.contains("'nomatch' is not allowed"), "{why}");
    let why = denied(
        &mut host,
        "POST",
        f2b,
        &[("cidr", "198.51.100.1"), ("comment", "a\nb")],
    );
    assert!(why.contains("control character"), "{why}");
    let why = denied(&mut host, "DELETE", f2b, &[]);
    assert!(why.contains("deleting an IPSet"), "{why}");
    let why = denied(&mut host, "GET", "/nodes", &[]);
    assert!(why.contains("outside what the policy is granted"), "{why}");
    let why = denied(&mut host, "GET", "/cluster/firewall/ipset/other", &[]);
    assert!(why.contains("outside"), "{why}");
    assert!(
        host.calls()
            .iter()
            .all(|c| matches!(c.answer, Answer::Denied(_)))
    );
    assert!(host.cidrs("f2b").is_empty());
    let version = host.run(|| crate::pve::request("GET", "/version", &[]));
    assert_eq!(version.map(|r| r.status), Ok(200));
}

#[test]
fn respond_stands_in_for_pve() {
    let mut host = TestHost::new().ipset("f2b").respond(|method, _, _| {
        (method == "POST").then(|| {
            Ok(Response {
                status: 401,
                reason: "No ticket".into(),
                body: String::new(),
            })
        })
    });
    let outcome = host.ban::<Plain>("192.0.2.1");
    assert!(
        matches!(
            outcome,
            Err(Error::Refused {
                status: 401,
                cause: crate::Cause::Authentication,
                ..
            })
        ),
        "{outcome:?}"
    );
    assert!(host.cidrs("f2b").is_empty());
    assert_eq!(
        host.run(|| policy::check("f2b")),
        Ok("IPSet 'f2b' exists with 0 entries".into())
    );
}

#[test]
fn the_store_has_the_hosts_quota_and_the_clock_moves() {
    let mut host = TestHost::new().stored("k", "v").at(100);
    let big = "x".repeat(STORE_QUOTA);
    let outcome = host.run(|| store::set("big", &big));
    assert!(matches!(outcome, Err(Error::Denied(_))), "{outcome:?}");
    assert_eq!(host.run(|| store::keys("")), ["k"]);
    host.advance(5);
    assert_eq!(host.run(crate::clock::now), 105);
}

#[test]
fn a_bad_setting_is_denied_naming_it() {
    let mut host = TestHost::new().ipset("f2b").setting("ipv6-prefix", "0");
    let outcome = host.ban::<Plain>("192.0.2.1");
    let Err(Error::Denied(m)) = outcome else {
        panic!("{outcome:?}")
    };
    assert!(m.contains("'ipv6-prefix'"), "{m}");
    assert!(host.calls().is_empty());
}

#[test]
#[should_panic(expected = "outside TestHost::run")]
fn an_import_outside_run_says_how_to_call_it() {
    crate::clock::now();
}

fn candidate(key: &str, entry: &str, origin: &str) -> crate::Candidate {
    crate::Candidate {
        key: key.into(),
        entry: entry.into(),
        origin: origin.into(),
        scenario: "crowdsecurity/ssh-bf".into(),
        expires: 1_700_003_600,
        seen: 1_700_000_000,
        admitted: false,
    }
}

#[test]
fn a_policy_on_the_sdk_admits_by_the_default_rules() {
    let mut host = TestHost::new().ipset("crowdsec").instance("web01");
    let budget = crate::Budget {
        max_entries: Some(1),
        ..host.budget()
    };
    let cands = [
        candidate("capi", "192.0.2.1", "CAPI"),
        candidate("local", "192.0.2.2", "crowdsec"),
    ];
    let answer = host.admit::<Plain>(&cands, &budget).unwrap();
    let chosen: Vec<&str> = answer.chosen.iter().map(|c| c.entry.as_str()).collect();
    assert_eq!(chosen, ["192.0.2.2"]);
    assert_eq!(answer.chosen[0].comment, "cs crowdsec crowdsecurity/ssh-bf");
    assert_eq!(answer.left_out.len(), 1);
    assert_eq!(answer.left_out[0].key, "capi");
    assert_eq!(
        answer.left_out[0].reason,
        crate::admission::Reason::OverEntries
    );
    assert!(host.calls().is_empty());
}

#[test]
fn the_default_admit_keeps_out_what_the_rules_refuse_to_aggregate() {
    let mut host = TestHost::new()
        .ipset("crowdsec")
        .setting("never-ban", "192.0.2.128/25");
    let budget = crate::Budget {
        aggregate_ipv4: Some(24),
        aggregate_min: 2,
        ..host.budget()
    };
    let cands = [
        candidate("a", "192.0.2.1", "CAPI"),
        candidate("b", "192.0.2.2", "CAPI"),
    ];
    let answer = host.admit::<Plain>(&cands, &budget).unwrap();
    // The /24 would hold a never-ban network: the addresses go in alone.
    let chosen: Vec<&str> = answer.chosen.iter().map(|c| c.entry.as_str()).collect();
    assert_eq!(chosen, ["192.0.2.1", "192.0.2.2"]);
}

/// A policy that reads PVE while it chooses: the test host denies it, as
/// the host does.
struct Peeking;

impl Policy for Peeking {
    fn identity() -> crate::Identity {
        crate::Identity::new("peeking", "1")
    }
    fn ban(req: &BanRequest) -> Result<String, Error> {
        Plain::ban(req)
    }
    fn unban(req: &BanRequest) -> Result<String, Error> {
        Plain::unban(req)
    }
    fn admit(
        candidates: &[crate::Candidate],
        budget: &crate::Budget,
    ) -> Result<crate::Admitted, Error> {
        ipset::read(&IpsetName::new(&budget.ipset)?)?;
        policy::admit(candidates, budget)
    }
}

#[test]
fn admit_is_pure_on_the_test_host_too() {
    let mut host = TestHost::new().ipset("crowdsec");
    let budget = host.budget();
    let err = host
        .admit::<Peeking>(&[candidate("a", "192.0.2.1", "CAPI")], &budget)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Denied(why) if why.contains("admit is pure")),
        "{err:?}"
    );
    // Outside admit, requests go through again.
    assert!(host.ban::<Peeking>("192.0.2.9").is_ok());
}

#[test]
fn a_chosen_entry_is_banned_with_its_comment_and_no_timestamp() {
    let mut host = TestHost::new().ipset("crowdsec").instance("web01");
    let req = BanRequest {
        jail: Some(crate::admission::JAIL.into()),
        comment: Some("cs CAPI crowdsecurity/ssh-bf".into()),
        time: Some(1_700_000_000.0),
        bantime: Some(3600),
        restored: true,
        ..host.request("192.0.2.7")
    };
    host.ban_with::<Plain>(&req).unwrap();
    let entries = host.entries("crowdsec");
    assert_eq!(
        entries[0].comment.as_deref(),
        Some("cs CAPI crowdsecurity/ssh-bf f2p:web01/crowdsec/1700003600")
    );
}
