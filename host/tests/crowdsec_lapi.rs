//! The CrowdSec test harness against the real LAPI (Debian's crowdsec
//! 1.4.6 on loopback, no Central API): it starts, hands out a bouncer key,
//! takes decisions, streams them to a plain HTTP client, survives a restart
//! and a new database. These tests prove the fixture, not fail2pvefw; the
//! bouncer's own tests build on it.
//!
//! Needs `scripts/install-crowdsec` (or FAIL2PVEFW_CROWDSEC_DIR). Without
//! it the tests skip loudly, and fail under CI. Timings are printed
//! (`-- --nocapture`), never asserted.

#[path = "support/crowdsec.rs"]
mod crowdsec;

use crowdsec::{Decision, Lapi, go_duration_secs};

fn decision<'a>(list: &'a [serde_json::Value], value: &str) -> &'a serde_json::Value {
    list.iter()
        .find(|d| d["value"] == value)
        .unwrap_or_else(|| panic!("no decision for {value} in {list:#?}"))
}

#[test]
fn stream_follows_decisions_across_a_restart() {
    let Some(mut lapi) = Lapi::start_or_skip() else {
        return;
    };
    eprintln!(
        "LAPI up on {} in {:?}, {} kB resident",
        lapi.url,
        lapi.started_in,
        lapi.rss_kb().unwrap_or(0)
    );
    let key = lapi.bouncer_key("fail2pvefw-test");

    lapi.add_decision("192.0.2.1", "4h", "test-ssh");
    lapi.add_decision("192.0.2.2", "1h", "test-http");
    lapi.add_decision("198.51.100.0/24", "2h", "test-range");

    let first = lapi.pull(&key, true);
    assert_eq!(
        first.new_values(),
        ["192.0.2.1", "192.0.2.2", "198.51.100.0/24"],
        "{first:#?}"
    );
    assert!(first.deleted.is_empty(), "{first:#?}");
    let one = decision(&first.new, "192.0.2.1");
    assert_eq!(one["scope"], "Ip");
    assert_eq!(one["type"], "ban");
    assert_eq!(one["origin"], "cscli");
    assert_eq!(one["scenario"], "test-ssh");
    assert!(one["id"].as_u64().is_some(), "{one}");
    let left = go_duration_secs(one["duration"].as_str().unwrap()).unwrap();
    assert!(left > 3.0 * 3600.0 && left <= 4.0 * 3600.0, "{one}");
    assert_eq!(decision(&first.new, "198.51.100.0/24")["scope"], "Range");

    // Nothing changed since the startup pull.
    let quiet = lapi.pull(&key, false);
    assert!(
        quiet.new.is_empty() && quiet.deleted.is_empty(),
        "{quiet:#?}"
    );

    assert_eq!(lapi.delete_decision("192.0.2.2"), 1);
    let delta = lapi.pull(&key, false);
    assert!(delta.new.is_empty(), "{delta:#?}");
    assert_eq!(delta.deleted_values(), ["192.0.2.2"], "{delta:#?}");
    let gone = go_duration_secs(delta.deleted[0]["duration"].as_str().unwrap()).unwrap();
    assert!(gone <= 0.0, "a deleted decision has run out: {delta:#?}");

    // Same database: the bouncer's place in the stream survives.
    lapi.restart();
    eprintln!("restarted in {:?}", lapi.started_in);
    let after = lapi.pull(&key, false);
    assert!(after.new.is_empty(), "{after:#?}");
    lapi.add_decision("192.0.2.3", "30m", "after-restart");
    let delta = lapi.pull(&key, false);
    assert_eq!(delta.new_values(), ["192.0.2.3"], "{delta:#?}");
    let full = lapi.pull(&key, true);
    assert_eq!(
        full.new_values(),
        ["192.0.2.1", "192.0.2.3", "198.51.100.0/24"],
        "{full:#?}"
    );
    // The startup pull also lists what expired or was deleted.
    assert_eq!(full.deleted_values(), ["192.0.2.2"], "{full:#?}");
    lapi.stop();
}

#[test]
fn keys_origins_imports_and_a_new_database() {
    let Some(mut lapi) = Lapi::start_or_skip() else {
        return;
    };
    let key = lapi.bouncer_key("bouncer");

    // A wrong key and no key: 403 with a fixed body.
    for bad in [Some("not-a-key"), None] {
        let reply = lapi.get("/v1/decisions/stream?startup=true", bad).unwrap();
        assert_eq!(reply.status, 403, "{reply:?}");
        assert_eq!(reply.json()["message"], "access forbidden");
    }
    // /health needs no key.
    assert_eq!(lapi.get("/health", None).unwrap().status, 200);

    // Origins other than cscli come through the API.
    lapi.push(&[
        Decision::ban("203.0.113.50", "12h", "lists", "firehol_level1"),
        Decision::ban("203.0.113.51", "12h", "CAPI", "crowdsecurity/ssh-bf"),
        Decision::ban(
            "203.0.113.128/25",
            "1h",
            "crowdsec",
            "crowdsecurity/http-probing",
        ),
    ]);
    let rows: Vec<String> = (1..=5)
        .map(|i| format!("24h,ip,192.0.2.{i},lists,imported"))
        .collect();
    let took = lapi.import(&rows);
    eprintln!("imported {} decisions in {took:?}", rows.len());

    let all = lapi.pull(&key, true);
    assert_eq!(all.new.len(), 8, "{all:#?}");
    assert_eq!(decision(&all.new, "203.0.113.50")["origin"], "lists");
    assert_eq!(decision(&all.new, "203.0.113.51")["origin"], "CAPI");
    assert_eq!(decision(&all.new, "203.0.113.128/25")["scope"], "Range");
    // 1.4.6 sets the origin of imported decisions itself.
    assert_eq!(decision(&all.new, "192.0.2.1")["origin"], "cscli-import");
    assert_eq!(decision(&all.new, "192.0.2.1")["scenario"], "imported");

    let lists = lapi.pull_with(&key, true, "&origins=lists,CAPI");
    assert_eq!(lists.new_values(), ["203.0.113.50", "203.0.113.51"]);
    let ranges = lapi.pull_with(&key, true, "&scopes=range");
    assert_eq!(ranges.new_values(), ["203.0.113.128/25"]);

    // A revoked key answers like a wrong one.
    let spare = lapi.bouncer_key("spare");
    assert_eq!(lapi.pull(&spare, true).new.len(), 8);
    lapi.revoke("spare");
    let reply = lapi.get("/v1/decisions/stream", Some(&spare)).unwrap();
    assert_eq!(reply.status, 403, "{reply:?}");

    // A new database: the key is unknown, and when the admin re-creates it
    // the decisions start from nothing, ids from 1.
    lapi.restart_with_new_database();
    let reply = lapi.get("/v1/decisions/stream", Some(&key)).unwrap();
    assert_eq!(reply.status, 403, "{reply:?}");
    lapi.bouncer_with_key("bouncer", &key);
    lapi.add_decision("192.0.2.200", "1h", "fresh");
    let fresh = lapi.pull(&key, true);
    assert_eq!(fresh.new_values(), ["192.0.2.200"], "{fresh:#?}");
    assert_eq!(fresh.new[0]["id"], 1, "{fresh:#?}");
    assert!(fresh.deleted.is_empty(), "{fresh:#?}");
}

#[test]
fn go_durations_parse() {
    assert_eq!(go_duration_secs("4h"), Some(14_400.0));
    assert_eq!(go_duration_secs("1m0s"), Some(60.0));
    assert_eq!(go_duration_secs("0"), Some(0.0));
    let d = go_duration_secs("3h59m59.29s").unwrap();
    assert!((d - 14_399.29).abs() < 1e-6);
    let d = go_duration_secs("-136.282323ms").unwrap();
    assert!((d + 0.136_282_323).abs() < 1e-9);
    assert!(go_duration_secs("500µs").unwrap() > 0.0);
    assert_eq!(go_duration_secs("1d"), None);
    assert_eq!(go_duration_secs(""), None);
    assert_eq!(go_duration_secs("5"), None);
}
