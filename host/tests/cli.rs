//! The real `fail2pvefw` binary, with its embedded policy component, against
//! the PVE emulator over HTTPS on 127.0.0.1.

mod support;

use pve_emulator::{Fault, Options, Tls, Token};
use support::{SECRET, Setup, options, run_binary};

#[test]
fn ban_adds_entry_with_dated_comment_and_unban_removes_it() {
    let s = Setup::new();
    let r = s.run(&[
        "-f",
        "ban",
        "203.0.113.7",
        "-c",
        "sshd: 3 attempts",
        "-t",
        "1700000000",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let entries = s.emu.entries("fail2ban").unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].cidr, "203.0.113.7");
    let comment = entries[0].comment.clone().unwrap();
    // The human text, then the ownership tag: this instance, no jail, no expiry.
    let (text, tag) = comment.rsplit_once(' ').unwrap();
    assert_eq!(text, "[2023/11/14 22:13:20] sshd: 3 attempts");
    assert!(
        tag.starts_with("f2p:") && tag.ends_with("/-/-"),
        "{comment}"
    );

    let r = s.run(&["-f", "unban", "203.0.113.7", "-f"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(s.cidrs().is_empty());
}

#[test]
fn comment_without_time_uses_now_and_keeps_percent() {
    let s = Setup::new();
    let r = s.run(&["-f", "ban", "192.0.2.9", "-c", "100% bad\r\nline"]);
    assert_eq!(r.code, 0, "{r:?}");
    let comment = s.emu.entries("fail2ban").unwrap()[0]
        .comment
        .clone()
        .unwrap();
    let year = chrono_like_year_now();
    assert!(comment.starts_with(&format!("[{year}/")), "{comment}");
    assert!(comment.contains("] 100% bad line f2p:"), "{comment}");
    assert!(
        !s.emu.cluster_fw().contains("\nline"),
        "a newline reached cluster.fw"
    );
}

fn chrono_like_year_now() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Good enough away from New Year's Eve: 365.2425 days a year.
    1970 + secs / 31_556_952
}

/// Every row of pve-ipset-api.md §3.3 that PVE stores.
fn accepted() -> Vec<&'static str> {
    support::inputs(include_str!("../testdata/accepted-inputs.txt"))
}

/// The rows PVE refuses or misreads, and some shell-hostile strings.
fn refused() -> Vec<&'static str> {
    support::inputs(include_str!("../testdata/refused-inputs.txt"))
}

/// A setup whose guard lets the widest rows of the tables through
/// (`10.0.0.1/8`, `FE80::1/10`): they test normalisation, not the limits.
fn wide_setup() -> Setup {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}\n[rules]\nwidest_ipv4 = 8\nwidest_ipv6 = 10\n"
    ));
    s
}

#[test]
fn every_accepted_input_round_trips() {
    let s = wide_setup();
    for input in accepted() {
        let r = s.run(&["-f", "ban", input]);
        assert_eq!(r.code, 0, "ban {input}: {r:?}");
        let stored = s.cidrs();
        assert_eq!(stored.len(), 1, "ban {input} stored {stored:?}");
        // What we sent is already what PVE stores: its own normalisation is the identity.
        assert_eq!(
            pve_emulator::cidr::normalise(&stored[0]).as_deref(),
            Some(stored[0].as_str()),
            "{input}"
        );
        let r = s.run(&["-f", "unban", input]);
        assert_eq!(r.code, 0, "unban {input}: {r:?}");
        assert!(s.cidrs().is_empty(), "unban {input} left {:?}", s.cidrs());
    }
}

#[test]
fn ban_stores_what_pve_would_store() {
    let s = wide_setup();
    for (input, stored) in [
        ("10.0.0.1/8", "10.0.0.0/8"),
        ("1.2.3.4/32", "1.2.3.4"),
        ("2001:DB8::1/64", "2001:db8::/64"),
        ("::ffff:10.0.0.1/104", "::ffff:a00:0/104"),
        ("0:0:1:2:0:0:3:4/127", "0:0:1:2::3:4/127"),
    ] {
        assert_eq!(s.run(&["-f", "ban", input]).code, 0);
        assert!(
            s.cidrs().contains(&stored.to_string()),
            "{input}: {:?}",
            s.cidrs()
        );
    }
}

#[test]
fn every_refused_input_exits_2_and_sends_nothing() {
    let s = Setup::new();
    for input in refused() {
        for verb in ["ban", "unban"] {
            let r = s.run(&["-f", verb, input]);
            assert_eq!(r.code, 2, "{verb} {input:?}: {r:?}");
            assert!(r.stderr.contains("fail2pvefw:"), "{r:?}");
        }
    }
    assert!(s.emu.requests().is_empty(), "{:?}", s.emu.requests());
}

#[test]
fn refusal_names_the_input() {
    let s = Setup::new();
    let r = s.run(&["-f", "ban", "010.0.0.1"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("'010.0.0.1'"), "{r:?}");
}

#[test]
fn ban_twice_is_success_and_one_entry() {
    let s = Setup::new();
    assert_eq!(s.run(&["-f", "ban", "198.51.100.1"]).code, 0);
    let r = s.run(&["-f", "ban", "198.51.100.1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs(), ["198.51.100.1"]);
}

#[test]
fn unban_of_missing_entry_is_success() {
    let s = Setup::new();
    let r = s.run(&["-f", "unban", "198.51.100.2"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn cidr_delete_percent_encodes_the_slash() {
    let s = Setup::new();
    assert_eq!(s.run(&["-f", "ban", "192.168.1.155/24"]).code, 0);
    assert_eq!(s.run(&["-f", "unban", "192.168.1.155/24"]).code, 0);
    let delete = s
        .emu
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .unwrap();
    // The query string carries the digest of the host's ownership read.
    let (path, query) = delete.path.split_once('?').unwrap_or((&delete.path, ""));
    assert_eq!(
        path,
        "/api2/json/cluster/firewall/ipset/fail2ban/192.168.1.0%2F24"
    );
    assert!(query.starts_with("digest="), "{query}");
}

#[test]
fn other_ipset_with_dash_i() {
    let mut opts = options();
    opts.ipsets = vec![("fail2ban".into(), vec![]), ("blacklist".into(), vec![])];
    let s = Setup::with(opts);
    assert_eq!(
        s.run(&["-f", "ban", "-i", "blacklist", "192.0.2.1"]).code,
        0
    );
    assert_eq!(s.emu.entries("blacklist").unwrap().len(), 1);
    assert!(s.cidrs().is_empty());
}

#[test]
fn wrong_token_exits_1_without_printing_the_secret() {
    let mut opts = options();
    opts.tokens = vec![Token::new(support::TOKEN_ID, "another-secret")];
    let s = Setup::with(opts);
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("401"), "{r:?}");
    assert!(r.stderr.contains("check the token id"), "{r:?}");
    assert!(!r.all().contains(SECRET), "secret printed: {r:?}");
    let r = s.run(&["-vv", "-f", "ban", "203.0.113.7"]);
    assert!(!r.all().contains(SECRET), "secret printed with -vv: {r:?}");
}

#[test]
fn missing_privilege_names_sys_modify_and_the_role() {
    let s = Setup::new();
    s.emu.set_privileges(support::TOKEN_ID, true, false);
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("403 Permission check failed (/, Sys.Modify)"),
        "{r:?}"
    );
    assert!(r.stderr.contains("pveum role add"), "{r:?}");
}

#[test]
fn missing_ipset_says_where_to_create_it() {
    let s = Setup::new();
    let r = s.run(&["-f", "ban", "-i", "nosuch", "203.0.113.7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("no such IPSet 'nosuch'"), "{r:?}");
    assert!(r.stderr.contains("Datacenter → Firewall → IPSet"), "{r:?}");
}

#[test]
fn unreachable_pve_names_host_and_port() {
    let s = Setup::new();
    s.emu.pause();
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&s.emu.host_port()), "{r:?}");
    assert!(r.stderr.contains("cannot connect"), "{r:?}");
}

#[test]
fn lock_timeout_is_reported_as_busy() {
    let s = Setup::new();
    s.emu.fail_next_writes(10, Fault::LockTimeout);
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cfs-lock"), "{r:?}");
    assert!(s.cidrs().is_empty());
}

#[test]
fn one_lock_timeout_is_absorbed_by_the_retry() {
    let s = Setup::new();
    s.emu.fail_next_writes(1, Fault::LockTimeout);
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 0, "the retry landed, so -f must say so: {r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.7"]);
}

#[test]
fn pve_400_shows_its_errors_text() {
    let s = Setup::new();
    s.emu.fail_next_writes(
        1,
        Fault::Status(400, "Parameter verification failed.".into()),
    );
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("400 Parameter verification failed."),
        "{r:?}"
    );
}

#[test]
fn start_and_check_see_the_ipset() {
    let s = Setup::new();
    assert_eq!(s.run(&["start"]).code, 0);
    assert_eq!(s.run(&["check", "-i", "fail2ban"]).code, 0);
    assert_eq!(s.run(&["check", "-i", "nosuch"]).code, 1);
    assert_eq!(s.emu.write_count(), 0);
}

#[test]
fn ca_file_trust_works() {
    let s = Setup::new();
    let ca = s.dir.path().join("pve-root-ca.pem");
    std::fs::write(&ca, s.emu.ca_pem()).unwrap();
    let state = s.dir.path().join("state");
    s.write_config(&format!(
        "[pve]\nhost = \"{}\"\ntoken = \"{}={SECRET}\"\nca_file = \"{}\"\n\n[state]\ndir = \"{}\"\n",
        s.emu.host_port(),
        support::TOKEN_ID,
        ca.display(),
        state.display()
    ));
    let r = s.run(&["-f", "ban", "203.0.113.8"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.8"]);
}

#[test]
fn wrong_pin_sends_nothing_and_names_both_fingerprints() {
    let recorder = pve_emulator::recorder::Recorder::start();
    let s = Setup::new();
    // Our config pins the emulator's certificate, but points at the recorder.
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace(&s.emu.host_port(), &recorder.host_port());
    s.write_config(&text);
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains(&s.emu.fingerprint()),
        "expected fingerprint missing: {r:?}"
    );
    assert!(
        r.stderr.contains(&recorder.fingerprint()),
        "presented fingerprint missing: {r:?}"
    );
    let trust = format!("fail2pvefw --config '{}' trust", s.config.display());
    assert!(r.stderr.contains(&trust), "the hint lacks `{trust}`: {r:?}");
    assert!(
        recorder.received().is_empty(),
        "the server received {:?}",
        recorder.received()
    );
}

#[test]
fn self_signed_pinned_certificate_is_accepted() {
    let s = Setup::with(Options {
        tls: Tls::SelfSigned,
        ..options()
    });
    assert_eq!(s.run(&["-f", "ban", "203.0.113.9"]).code, 0);
    assert_eq!(s.cidrs(), ["203.0.113.9"]);
}

#[test]
fn config_errors_exit_3() {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{text}\nfingerprnt = \"x\"\n"));
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("fingerprnt"), "{r:?}");

    let r = run_binary(&[
        "--config",
        "/nonexistent/fail2pvefw.toml",
        "ban",
        "203.0.113.7",
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("/nonexistent/fail2pvefw.toml"), "{r:?}");
}

#[test]
fn config_from_environment_variable() {
    let s = Setup::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .args(["-f", "ban", "203.0.113.10"])
        .env("FAIL2PVEFW_CONFIG", &s.config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(s.cidrs(), ["203.0.113.10"]);
}

#[test]
fn missing_policy_file_is_a_config_error() {
    let s = Setup::new();
    let r = s.run(&[
        "--policy",
        "/nonexistent/x.wasm",
        "-f",
        "ban",
        "203.0.113.7",
    ]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("/nonexistent/x.wasm"), "{r:?}");
}

#[test]
fn usage_errors_exit_2_and_help_lists_exit_codes() {
    assert_eq!(run_binary(&["ban"]).code, 2);
    assert_eq!(run_binary(&["frobnicate"]).code, 2);
    let help = run_binary(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit codes"), "{help:?}");
    let version = run_binary(&["--version"]);
    assert_eq!(version.code, 0);
    assert!(version.stdout.starts_with("fail2pvefw "), "{version:?}");
}

#[test]
fn world_readable_config_warns() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    std::fs::set_permissions(&s.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = s.run(&["-f", "ban", "203.0.113.7"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("chmod 600"), "{r:?}");
}

#[test]
fn next_host_is_tried_when_one_is_down() {
    let s = Setup::new();
    let text = std::fs::read_to_string(&s.config).unwrap().replace(
        &format!("host = \"{}\"", s.emu.host_port()),
        &format!("hosts = [\"127.0.0.1:1\", \"{}\"]", s.emu.host_port()),
    );
    assert!(text.contains("hosts = ["), "{text}");
    s.write_config(&text);
    let r = s.run(&["-f", "ban", "203.0.113.11"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stderr.contains("127.0.0.1:1"),
        "the failover is not logged: {r:?}"
    );
    assert_eq!(s.cidrs(), ["203.0.113.11"]);
}

// See: issue 13, item 0
#[test]
fn the_old_scripts_synopsis_works_with_options_before_the_command() {
    let s = Setup::new();
    let comment = |cidr: &str| {
        s.emu
            .entries("fail2ban")
            .unwrap()
            .into_iter()
            .find(|e| e.cidr == cidr)
            .and_then(|e| e.comment)
            .unwrap_or_else(|| panic!("{cidr} not in PVE: {:?}", s.cidrs()))
    };
    let r = s.run(&["-f", "-i", "fail2ban", "-c", "hello", "ban", "192.0.2.60"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        comment("192.0.2.60").contains("] hello f2p:"),
        "{}",
        comment("192.0.2.60")
    );
    let r = s.run(&["-f", "-t", "1700000000", "ban", "192.0.2.61"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        comment("192.0.2.61").starts_with("[2023/11/14 22:13:20] "),
        "{}",
        comment("192.0.2.61")
    );
    // Flags bundled as Getopt::Long takes them; -m with a trusted node asks nothing.
    let r = s.run(&[
        "-fm",
        "-i",
        "fail2ban",
        "-t",
        "1700000000",
        "-c",
        "x",
        "ban",
        "192.0.2.62",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(comment("192.0.2.62").starts_with("[2023/11/14 22:13:20] x f2p:"));

    let r = s.run(&["-f", "-i", "fail2ban", "unban", "192.0.2.60"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.run(&[
        "-f",
        "-i",
        "fail2ban",
        "-t",
        "1700000000",
        "unban",
        "192.0.2.61",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.run(&["-i", "fail2ban", "-f", "unban", "192.0.2.62", "-c", "after"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(s.cidrs().is_empty(), "{:?}", s.cidrs());

    // -i before the other commands that take it.
    for command in ["start", "check", "sync", "status"] {
        let r = s.run(&["-i", "fail2ban", command]);
        assert_eq!(r.code, 0, "{command}: {r:?}");
    }
    let r = s.run(&["-i", "nosuchset", "check"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("nosuchset"), "{r:?}");
}

// See: issue 13, item 0
#[test]
fn an_old_script_option_the_command_lacks_is_a_usage_error() {
    let s = Setup::new();
    for (args, option) in [
        (&["-c", "hello", "status"][..], "-c/--comment"),
        (&["-t", "1700000000", "start"], "-t/--timestamp"),
        (&["-i", "fail2ban", "flush"], "-i/--ipset"),
        (&["-c", "x", "sync"], "-c/--comment"),
    ] {
        let r = s.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.contains(option), "{args:?}: {r:?}");
        assert!(
            r.stderr
                .contains(&format!("does not apply to '{}'", args[2])),
            "{r:?}"
        );
    }
    assert!(s.emu.requests().is_empty(), "{:?}", s.emu.requests());
    let r = run_binary(&["-h"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("Usage: fail2pvefw"), "{r:?}");
}
