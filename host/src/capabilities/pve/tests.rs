use super::*;
use crate::capabilities::guard::{EntryRules, Purpose};
use pve::Host as _;

const FW: &str = "[IPSET f2b]\n\n\
    192.0.2.50 # manual-by-admin\n\
    192.0.2.51 # [2020/01/01 00:00:00] sshd f2p:other/sshd/1\n\
    192.0.2.52 # [2020/01/01 00:00:00] sshd f2p:web01/sshd/1\n\
    192.0.2.53\n\n";

fn pve() -> Pve {
    let guard = Guard::new(
        [("f2b".to_string(), Purpose::Ban)],
        &[],
        EntryRules::default(),
        "web01",
    );
    Pve::in_memory(Cluster::from_cluster_fw(FW), guard)
}

fn cidrs(pve: &Pve) -> Vec<String> {
    let entries = pve.memory().unwrap().entries("f2b").unwrap();
    entries.into_iter().filter_map(|e| e.cidr).collect()
}

fn delete(pve: &mut Pve, cidr: &str) -> Result<Response, Error> {
    let path = format!("/cluster/firewall/ipset/f2b/{cidr}");
    pve.request("DELETE".into(), path, Vec::new())
}

fn write(ipset: &str, cidr: &str, comment: Option<&str>, outcome: WriteOutcome) -> Write {
    Write {
        ipset: ipset.into(),
        cidr: cidr.into(),
        comment: comment.map(str::to_string),
        outcome,
    }
}

#[test]
fn someone_elses_entries_are_left_alone() {
    let mut pve = pve();
    for cidr in ["192.0.2.50", "192.0.2.51", "192.0.2.53"] {
        match delete(&mut pve, cidr) {
            Err(Error::NotOurs(why)) => assert!(why.starts_with("not ours ("), "{why}"),
            other => panic!("{cidr}: {other:?}"),
        }
    }
    assert_eq!(cidrs(&pve).len(), 4);
    let writes = pve.take_writes();
    assert_eq!(
        writes[0],
        write(
            "f2b",
            "192.0.2.50",
            Some("manual-by-admin"),
            WriteOutcome::NotOurs
        )
    );
    assert!(writes.iter().all(|w| w.outcome == WriteOutcome::NotOurs));
    assert!(
        pve.calls
            .iter()
            .all(|c| !c.starts_with("DELETE") || c.contains("left alone")),
        "{:?}",
        pve.calls
    );
    assert_eq!(pve.memory().unwrap().saves(), 0);
}

#[test]
fn our_entry_is_deleted_with_the_digest_of_the_read() {
    let mut pve = pve();
    let r = delete(&mut pve, "192.0.2.52").unwrap();
    assert_eq!(r.status, 200);
    assert!(!cidrs(&pve).contains(&"192.0.2.52".to_string()));
    assert_eq!(pve.calls.len(), 2, "{:?}", pve.calls);
    assert!(
        pve.calls[0].starts_with("GET /cluster/firewall/ipset/f2b/192.0.2.52 -> 200 OK (the host")
    );
    assert!(pve.calls[1].contains("DELETE /cluster/firewall/ipset/f2b/192.0.2.52 digest=\""));
    let comment = "[2020/01/01 00:00:00] sshd f2p:web01/sshd/1";
    assert_eq!(
        pve.take_writes(),
        [write(
            "f2b",
            "192.0.2.52",
            Some(comment),
            WriteOutcome::Deleted
        )]
    );
}

#[test]
fn a_missing_entry_is_answered_200_without_a_delete() {
    let mut pve = pve();
    let r = delete(&mut pve, "198.51.100.1").unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"data":null}"#));
    assert_eq!(pve.memory().unwrap().saves(), 0);
    assert_eq!(
        pve.take_writes(),
        [write("f2b", "198.51.100.1", None, WriteOutcome::Absent)]
    );
    // A PUT of a missing entry gets PVE's own 400.
    let path = "/cluster/firewall/ipset/f2b/198.51.100.1".to_string();
    let params = vec![("comment".to_string(), "x".to_string())];
    assert_eq!(pve.request("PUT".into(), path, params).unwrap().status, 400);
}

#[test]
fn a_put_of_our_entry_is_sent_and_recorded() {
    let mut pve = pve();
    let path = "/cluster/firewall/ipset/f2b/192.0.2.52".to_string();
    let params = vec![("comment".to_string(), "again f2p:web01/-/-".to_string())];
    assert_eq!(pve.request("PUT".into(), path, params).unwrap().status, 200);
    assert_eq!(
        pve.take_writes(),
        [write(
            "f2b",
            "192.0.2.52",
            Some("again f2p:web01/-/-"),
            WriteOutcome::Added
        )]
    );
}

#[test]
fn posts_are_recorded_as_pve_stores_them() {
    let mut pve = pve();
    let post = |pve: &mut Pve, cidr: &str| {
        let params = vec![
            ("cidr".to_string(), cidr.to_string()),
            ("comment".to_string(), "c f2p:web01/-/-".to_string()),
        ];
        pve.request("POST".into(), "/cluster/firewall/ipset/f2b".into(), params)
            .unwrap()
            .status
    };
    assert_eq!(post(&mut pve, "203.0.113.7/24"), 200);
    assert_eq!(post(&mut pve, "203.0.113.9/24"), 400);
    let writes = pve.take_writes();
    let comment = Some("c f2p:web01/-/-");
    assert_eq!(
        writes,
        [
            write("f2b", "203.0.113.0/24", comment, WriteOutcome::Added),
            write("f2b", "203.0.113.0/24", comment, WriteOutcome::Refused(400)),
        ]
    );
}

#[test]
fn a_denial_is_listed_and_sends_nothing() {
    let mut pve = pve();
    let params = vec![("cidr".to_string(), "0.0.0.0/1".to_string())];
    let e = pve
        .request("POST".into(), "/cluster/firewall/ipset/f2b".into(), params)
        .unwrap_err();
    assert!(
        matches!(&e, Error::Denied(why) if why.contains("widest_ipv4")),
        "{e:?}"
    );
    assert_eq!(pve.calls.len(), 1);
    assert!(
        pve.calls[0].starts_with("POST /cluster/firewall/ipset/f2b cidr=\"0.0.0.0/1\" -> denied by the host: POST of '0.0.0.0/1'"),
        "{:?}",
        pve.calls
    );
    assert!(pve.take_writes().is_empty());
    assert_eq!(pve.memory().unwrap().saves(), 0);
}

#[test]
fn the_hosts_own_delete_takes_the_same_path() {
    let mut pve = pve();
    assert!(matches!(
        pve.delete_own_entry("f2b", "192.0.2.50"),
        Err(Error::NotOurs(_))
    ));
    assert_eq!(
        pve.delete_own_entry("f2b", "192.0.2.52").unwrap().status,
        200
    );
    let outcomes: Vec<_> = pve.take_writes().into_iter().map(|w| w.outcome).collect();
    assert_eq!(outcomes, [WriteOutcome::NotOurs, WriteOutcome::Deleted]);
    assert_eq!(cidrs(&pve), ["192.0.2.50", "192.0.2.51", "192.0.2.53"]);
}
