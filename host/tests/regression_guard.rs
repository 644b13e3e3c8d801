//! Regression tests of issue 10's findings that the guard and WIT 0.2.0 fix
//! (part B): the real binary against the PVE emulator over HTTPS.

mod support;
mod wasm_build;

use pve_emulator::Fault;
use support::{Run, Setup, options};

const MANUAL: &str = "manual-by-admin";
const FOREIGN: &str = "[2020/01/01 00:00:00] sshd f2p:otherhost/sshd/-";

/// An emulator whose IPSet holds an admin's manual entry (192.0.2.50) and
/// another instance's permanent ban (192.0.2.51).
fn with_others() -> Setup {
    let mut opts = options();
    opts.ipsets = vec![(
        "fail2ban".into(),
        vec![
            ("192.0.2.50".into(), Some(MANUAL.into())),
            ("192.0.2.51".into(), Some(FOREIGN.into())),
        ],
    )];
    Setup::with(opts)
}

fn comment_of(s: &Setup, cidr: &str) -> Option<String> {
    s.emu
        .entries("fail2ban")
        .unwrap()
        .into_iter()
        .find(|e| e.cidr == cidr)
        .map(|e| e.comment.unwrap_or_default())
}

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "{r:?}");
    r
}

fn deletes(s: &Setup) -> Vec<String> {
    s.emu
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect()
}

fn status_json(s: &Setup, policy: &[&str]) -> serde_json::Value {
    let r = s.run(&[policy, &["status", "--json"]].concat());
    assert_eq!(r.code, 0, "{r:?}");
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

// See: issue 10, finding 1
#[test]
fn r10_1_unban_leaves_a_manual_entry_alone() {
    let s = with_others();
    for (cidr, comment) in [("192.0.2.50", MANUAL), ("192.0.2.51", FOREIGN)] {
        // fail2ban bans it ("already exists" is success), then unbans it.
        ok(s.run(&["-f", "ban", cidr, "--jail", "sshd"]));
        let r = ok(s.run(&["-v", "-f", "unban", cidr, "--jail", "sshd"]));
        let left = format!("the host sent no DELETE of {cidr} in IPSet 'fail2ban': not ours (");
        assert!(r.stderr.contains(&left), "unban {cidr}: {r:?}");
        assert_eq!(comment_of(&s, cidr).as_deref(), Some(comment), "{cidr}");
        // An unban from the shell, without a jail, and the jail's flush.
        ok(s.run(&["-f", "unban", cidr]));
        ok(s.run(&["-f", "ban", cidr, "--jail", "sshd"]));
        ok(s.run(&["-f", "flush", "--jail", "sshd", "--remove"]));
        assert_eq!(comment_of(&s, cidr).as_deref(), Some(comment), "{cidr}");
    }
    assert!(deletes(&s).is_empty(), "{:?}", deletes(&s));
    // Our own entries still come and go.
    ok(s.run(&["-f", "ban", "192.0.2.60", "--jail", "sshd"]));
    ok(s.run(&["-f", "unban", "192.0.2.60", "--jail", "sshd"]));
    let mut cidrs = s.cidrs();
    cidrs.sort();
    assert_eq!(cidrs, ["192.0.2.50", "192.0.2.51"]);
}

// See: issue 10, finding 1
#[test]
fn r10_1_a_delete_is_sent_with_the_digest_and_read_again_when_pve_refuses_it() {
    let s = Setup::new();
    ok(s.run(&["-f", "ban", "192.0.2.61", "--jail", "sshd"]));
    s.emu.clear_requests();
    // PVE refuses the DELETE once, as when the IPSet changed since the read.
    s.emu.fail_next_writes(
        1,
        Fault::Status(
            500,
            "detected modified configuration - file changed by other user? Try again.".into(),
        ),
    );
    ok(s.run(&["-f", "unban", "192.0.2.61", "--jail", "sshd"]));
    assert!(s.cidrs().is_empty());
    let seen: Vec<(String, u16, bool)> = s
        .emu
        .requests()
        .into_iter()
        .map(|r| {
            let digest = r.params.iter().any(|(k, v)| k == "digest" && !v.is_empty());
            (r.method, r.status, digest)
        })
        .collect();
    let expected = [
        ("GET", 200, false),
        ("DELETE", 500, true),
        ("GET", 200, false),
        ("DELETE", 200, true),
    ];
    let expected: Vec<(String, u16, bool)> = expected
        .iter()
        .map(|(m, s, d)| (m.to_string(), *s, *d))
        .collect();
    assert_eq!(seen, expected, "{:?}", s.emu.requests());
}

// See: issue 10, finding 1
#[test]
fn r10_1_an_unban_of_a_missing_entry_writes_nothing() {
    let s = Setup::new();
    ok(s.run(&["-f", "unban", "192.0.2.62"]));
    assert_eq!(s.emu.write_count(), 0, "{:?}", s.emu.requests());
    assert!(deletes(&s).is_empty(), "{:?}", s.emu.requests());
}

/// `fail2pvefw --policy hostile.wasm -f ban MODE`.
fn hostile_ban(s: &Setup, mode: &str) -> Run {
    let policy = wasm_build::hostile_policy().to_str().unwrap();
    s.run(&["--policy", policy, "-f", "ban", mode])
}

// See: issue 10, finding 3
#[test]
fn r10_3_each_hostile_write_is_denied_before_any_request() {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{text}\n[rules]\nnever_ban = [\"10.0.0.0/8\"]\n"));
    let table = [
        ("delete-ipset", "deleting an IPSet itself"),
        ("delete-ipset-force", "deleting an IPSet itself"),
        ("rename-ipset", "outside what the policy is granted"),
        ("never-ban", "overlaps 10.0.0.0/8 ([rules] never_ban)"),
        ("node", "127.0.0.1, the address of a PVE node"),
        ("low-half", "wider than /16 ([rules] widest_ipv4)"),
        ("high-half", "wider than /16 ([rules] widest_ipv4)"),
        ("wide-v6", "wider than /32 ([rules] widest_ipv6)"),
        ("nomatch", "the parameter 'nomatch' is not allowed"),
        ("digest", "the parameter 'digest' is not allowed"),
        ("alias", "not an address or network"),
        ("newline-comment", "control character"),
        ("other-ipset", "outside what the policy is granted"),
    ];
    for (mode, rule) in table {
        s.emu.clear_requests();
        let r = hostile_ban(&s, mode);
        assert_eq!(r.code, 3, "{mode}: {r:?}");
        let last = r.stderr.lines().last().unwrap_or_default();
        let said = format!("fail2pvefw: ban '{mode}': denied by the host: ");
        assert!(last.starts_with(&said), "{mode}: {r:?}");
        assert!(last.contains(rule), "{mode}: {r:?}");
        assert!(
            s.emu.requests().is_empty(),
            "{mode}: PVE received {:?}",
            s.emu.requests()
        );
    }
    assert!(s.emu.ipsets().contains(&"fail2ban".to_string()));
    assert_eq!(s.emu.write_count(), 0);
}

// See: issue 10, finding 3
#[test]
fn r10_3_a_hostile_delete_or_put_of_a_manual_entry_is_left_alone() {
    let s = with_others();
    for mode in ["delete-manual", "put-manual"] {
        s.emu.clear_requests();
        let r = hostile_ban(&s, mode);
        // Someone else's entry left alone: the event is done.
        assert_eq!(r.code, 0, "{mode}: {r:?}");
        let methods: Vec<String> = s.emu.requests().into_iter().map(|r| r.method).collect();
        assert_eq!(methods, ["GET"], "{mode}: only the host's read");
        assert_eq!(comment_of(&s, "192.0.2.50").as_deref(), Some(MANUAL));
    }
}

// See: issue 10, finding 9
#[test]
fn r10_9_a_policy_wording_errors_its_own_way_cannot_lose_a_ban() {
    let policy = wasm_build::hostile_policy().to_str().unwrap();
    for mode in ["odd-busy", "odd-refused", "odd-unreachable"] {
        let s = Setup::new();
        let r = hostile_ban(&s, mode);
        assert_eq!(r.code, 1, "{mode}: {r:?}");
        let status = status_json(&s, &["--policy", policy]);
        assert_eq!(status["queue"]["pending"], 1, "{mode}: {status}");
        assert_eq!(status["queue"]["failed"], 0, "{mode}: {status}");
    }
}

// See: issue 10, finding 9
#[test]
fn r10_9_a_policy_built_for_0_1_0_is_refused_naming_the_version() {
    let old = wasm_build::policy_0_1_0().to_str().unwrap();
    let s = Setup::new();
    let runs = [
        s.run(&["--policy", old, "-f", "ban", "192.0.2.70"]),
        support::run_binary(&["policy", "check", old]),
    ];
    for r in runs {
        assert_eq!(r.code, 3, "{r:?}");
        let first = r.stderr.lines().next().unwrap_or_default();
        assert!(
            first.contains("built for fail2pvefw:policy@0.1.0")
                && first.contains("fail2pvefw:policy/action@0.2.0"),
            "{r:?}"
        );
    }
    assert!(s.emu.requests().is_empty(), "{:?}", s.emu.requests());
}
