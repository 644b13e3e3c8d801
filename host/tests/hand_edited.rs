//! A `cluster.fw` an administrator edited by hand, met by the real binary
//! through the queue: its entries are someone else's, and the rest of the
//! file stays as PVE would write it.

mod support;

use pve_emulator::Options;
use pve_model::{Caller, Cluster};
use support::{Run, Setup, options};

fn ok(r: Run) -> Run {
    assert_eq!(r.code, 0, "{r:?}");
    r
}

fn with_cluster_fw(text: &str) -> Setup {
    Setup::with(Options {
        cluster_fw: Some(text.to_string()),
        ..options()
    })
}

const HAND_EDITED: &str = "[IPSET fail2ban]\n\n192.0.2.77/32 # hand-edited\n\n";

fn entries(s: &Setup) -> Vec<(String, Option<String>)> {
    s.emu
        .entries("fail2ban")
        .unwrap()
        .into_iter()
        .map(|e| (e.cidr, e.comment))
        .collect()
}

/// The hand-edited entry as PVE reads it back (`/32` dropped), comment kept.
fn hand_edited() -> Vec<(String, Option<String>)> {
    vec![("192.0.2.77".to_string(), Some("hand-edited".to_string()))]
}

// See: issue 16 (PVE's "already exists" for an entry written `/32` by hand)
#[test]
fn a_ban_of_a_hand_edited_entry_is_success_and_duplicates_nothing() {
    let s = with_cluster_fw(HAND_EDITED);
    let r = ok(s.run(&["-f", "ban", "192.0.2.77", "--jail", "sshd"]));
    assert!(r.stdout.contains("done"), "{r:?}");
    assert_eq!(entries(&s), hand_edited());
    // Again, and as fail2ban restores it at start: still one entry.
    ok(s.run(&["-f", "ban", "192.0.2.77", "--jail", "sshd"]));
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.77",
        "--jail",
        "sshd",
        "--restored",
        "1",
    ]));
    assert_eq!(entries(&s), hand_edited());
}

// See: issue 16
#[test]
fn sync_never_deletes_a_hand_edited_entry() {
    let s = with_cluster_fw(HAND_EDITED);
    ok(s.run(&[
        "-f",
        "ban",
        "192.0.2.77",
        "--jail",
        "sshd",
        "--bantime",
        "1",
    ]));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ok(s.run(&["sync"]));
    ok(s.run(&["sync"]));
    assert_eq!(entries(&s), hand_edited());
    assert!(
        s.emu.requests().iter().all(|r| r.method != "DELETE"),
        "{:?}",
        s.emu.requests()
    );
    let status: serde_json::Value =
        serde_json::from_str(&ok(s.run(&["status", "--json"])).stdout).unwrap();
    assert_eq!(status["ipset"]["not_ours"], 1, "{status}");
}

// See: issue 16, and issue 10 finding 1 (ownership on every delete)
#[test]
fn an_unban_leaves_a_hand_edited_entry_alone() {
    let s = with_cluster_fw(HAND_EDITED);
    ok(s.run(&["-f", "ban", "192.0.2.77", "--jail", "sshd"]));
    let r = ok(s.run(&["-f", "unban", "192.0.2.77", "--jail", "sshd"]));
    assert!(r.all().contains("not ours"), "{r:?}");
    assert_eq!(entries(&s), hand_edited());
}

// See: issue 16 (every write rewrites the whole file)
#[test]
fn a_ban_leaves_the_rest_of_cluster_fw_as_pve_writes_it() {
    let text = "[OPTIONS]\n\nenable: 1\npolicy_in: DROP\n\n\
                [ALIASES]\n\noffice 198.51.100.0/24 # hq\n\n\
                [IPSET fail2ban]\n\n192.0.2.77/32 # hand-edited\n\n\
                [RULES]\n\nIN DROP -source +dc/fail2ban -log nolog\nIN SSH(ACCEPT) -source dc/office\n\n\
                [group webs] # web servers\n\nIN ACCEPT -p tcp -dport 443\n\n";
    let s = with_cluster_fw(text);
    ok(s.run(&["-f", "ban", "192.0.2.80", "--jail", "sshd"]));
    let posts: Vec<_> = s
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert_eq!(posts.len(), 1, "one write: {posts:?}");
    assert_eq!(posts[0].method, "POST");

    // What PVE itself writes for the same request on the same file.
    let mut pve = Cluster::from_cluster_fw(text);
    let answer = pve.handle(
        "POST",
        "/cluster/firewall/ipset/fail2ban",
        &posts[0].params,
        &Caller::FULL,
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let written = s.emu.cluster_fw();
    assert_eq!(
        written,
        String::from_utf8(pve.cluster_fw().to_vec()).unwrap()
    );
    for kept in [
        "[OPTIONS]",
        "policy_in: DROP",
        "office 198.51.100.0/24 # hq",
        "192.0.2.77 # hand-edited",
        "[RULES]",
        "IN SSH(ACCEPT) -source dc/office",
        "[group webs] # web servers",
        "IN ACCEPT -p tcp -dport 443",
    ] {
        assert!(written.contains(kept), "{kept:?} lost:\n{written}");
    }
    assert!(written.contains("\n192.0.2.80 # "), "{written}");
}
