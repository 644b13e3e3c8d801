//! `fail2pvefw doctor` and `fail2pvefw init` against the emulator: the
//! admin's set-up and check (issue 7).

mod support;

use pve_emulator::Options;
use std::os::unix::fs::PermissionsExt;
use support::{Run, SECRET, Setup, options, run_binary};

/// A cluster set up as the README says: DROP rule on the set, firewall on.
fn ready() -> Options {
    Options {
        rules: vec!["IN DROP -source +dc/fail2ban -log nolog".into()],
        firewall_enable: Some(true),
        ..options()
    }
}

fn line<'a>(run: &'a Run, check: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.contains(check))
        .unwrap_or_else(|| panic!("no line for '{check}': {run:?}"))
}

fn assert_no_secret(run: &Run) {
    assert!(
        !run.all().contains(SECRET),
        "the secret was printed: {run:?}"
    );
}

#[test]
fn doctor_passes_on_a_complete_setup() {
    let s = Setup::with(ready());
    let r = s.run(&["doctor"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stdout.contains('✘'), "{r:?}");
    for check in [
        "config parses",
        "token file permissions",
        "reachable",
        "TLS verified",
        "token accepted",
        "privileges",
        "IPSet exists",
        "rule drops",
        "firewall enabled",
    ] {
        assert!(line(&r, check).starts_with('✔'), "{check}: {r:?}");
    }
    assert!(r.stdout.contains("+dc/fail2ban"), "{r:?}");
    assert_no_secret(&r);
}

#[test]
fn doctor_with_read_only_token_points_at_sys_modify() {
    let s = Setup::with(ready());
    s.emu.set_privileges(support::TOKEN_ID, true, false);
    let r = s.run(&["doctor"]);
    assert_eq!(r.code, 1, "{r:?}");
    let privileges = line(&r, "privileges");
    assert!(
        privileges.starts_with("✘") && privileges.contains("lacks Sys.Modify"),
        "{r:?}"
    );
    assert!(
        r.stdout
            .contains("pveum acl modify / --tokens 'fail2ban@pve!fail2ban' --roles Fail2Ban"),
        "{r:?}"
    );
    // Reading still works, so the other checks pass.
    assert!(line(&r, "IPSet exists").starts_with('✔'), "{r:?}");
    assert!(r.stderr.contains("1 of 10 checks"), "{r:?}");
    assert_no_secret(&r);
}

#[test]
fn doctor_names_a_missing_rule_and_a_disabled_firewall() {
    let s = Setup::with(Options {
        rules: vec![
            "IN ACCEPT -source +dc/fail2ban".into(),
            "|IN DROP -source +dc/other".into(),
        ],
        ..options()
    });
    let r = s.run(&["doctor"]);
    assert_eq!(r.code, 1, "{r:?}");
    let rule = line(&r, "rule drops");
    assert!(
        rule.starts_with('✘') && rule.contains("does not drop"),
        "{r:?}"
    );
    assert!(
        r.stdout.contains(
            "pvesh create /cluster/firewall/rules --type in --action DROP --source +dc/fail2ban"
        ),
        "{r:?}"
    );
    assert!(line(&r, "firewall enabled").starts_with('✘'), "{r:?}");
    assert!(
        r.stdout
            .contains("pvesh set /cluster/firewall/options --enable 1"),
        "{r:?}"
    );
}

#[test]
fn doctor_accepts_blacklist_without_a_rule() {
    let s = Setup::with(Options {
        ipsets: vec![("blacklist".into(), Vec::new())],
        firewall_enable: Some(true),
        ..options()
    });
    let r = s.run(&["doctor", "-i", "blacklist"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(line(&r, "rule drops").contains("iptables"), "{r:?}");
}

#[test]
fn doctor_names_a_missing_ipset() {
    let s = Setup::with(Options {
        ipsets: Vec::new(),
        ..ready()
    });
    let r = s.run(&["doctor"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(line(&r, "IPSet exists").starts_with('✘'), "{r:?}");
    assert!(
        r.stdout
            .contains("pvesh create /cluster/firewall/ipset --name fail2ban"),
        "{r:?}"
    );
}

#[test]
fn doctor_on_a_broken_config_exits_3() {
    let s = Setup::new();
    s.write_config("[pve]\nhots = \"x\"\n");
    let r = s.run(&["doctor"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        line(&r, "config parses").starts_with('✘') && r.stdout.contains("hots"),
        "{r:?}"
    );
}

#[test]
fn doctor_on_a_token_file_others_may_read_exits_3() {
    let s = Setup::with(ready());
    std::fs::set_permissions(&s.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = s.run(&["doctor"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        line(&r, "token file permissions").starts_with('✘') && r.stdout.contains("chmod 600"),
        "{r:?}"
    );
}

#[test]
fn doctor_sends_nothing_to_an_untrusted_node() {
    let s = Setup::with(ready());
    let text = std::fs::read_to_string(&s.config)
        .unwrap()
        .replace(&s.emu.fingerprint(), &["AB"; 32].join(":"));
    s.write_config(&text);
    let r = s.run(&["doctor"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(line(&r, "TLS verified").starts_with('✘'), "{r:?}");
    assert!(
        r.stdout.contains(&s.emu.fingerprint()),
        "the presented fingerprint is shown: {r:?}"
    );
    assert!(line(&r, "token accepted").starts_with('–'), "{r:?}");
    assert!(
        s.emu.requests().is_empty(),
        "a request reached the untrusted node"
    );
}

#[test]
fn doctor_checks_each_node_and_goes_on_with_one_that_answers() {
    let s = Setup::with(ready());
    let text = std::fs::read_to_string(&s.config).unwrap().replace(
        &format!("host = \"{}\"", s.emu.host_port()),
        &format!("hosts = [\"127.0.0.1:1\", \"{}\"]", s.emu.host_port()),
    );
    s.write_config(&text);
    let r = s.run(&["doctor"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(line(&r, "127.0.0.1:1 reachable").starts_with('✘'), "{r:?}");
    assert!(
        line(&r, &format!("{} token accepted", s.emu.host_port())).starts_with('✔'),
        "{r:?}"
    );
    assert!(line(&r, "privileges").starts_with('✔'), "{r:?}");
}

fn init(args: &[&str]) -> Run {
    let mut all = vec!["init"];
    all.extend_from_slice(args);
    run_binary(&all)
}

#[test]
fn init_writes_a_private_config_trusts_and_creates_the_ipset() {
    let s = Setup::with(Options {
        ipsets: Vec::new(),
        ..ready()
    });
    let out = s.dir.path().join("etc/new.toml");
    let state = s.dir.path().join("state2");
    let token = format!("{}={SECRET}", support::TOKEN_ID);
    let r = init(&[
        "--host",
        &s.emu.host_port(),
        "--token",
        &token,
        "--state-dir",
        state.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--yes",
        "--create-ipset",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        r.stdout.contains(&s.emu.fingerprint()),
        "the certificate is shown: {r:?}"
    );
    assert!(state.join("trusted-fingerprints").exists(), "{r:?}");
    assert_eq!(s.emu.ipsets(), ["fail2ban"]);
    assert!(
        r.stdout.contains("fail2pvefw[ipset=fail2ban, config="),
        "{r:?}"
    );
    assert_no_secret(&r);
    let r = run_binary(&["--config", out.to_str().unwrap(), "doctor"]);
    assert_eq!(r.code, 0, "the written config passes the doctor: {r:?}");
}

#[test]
fn init_without_a_terminal_and_values_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.toml");
    let r = init(&["--output", out.to_str().unwrap(), "--host", "192.0.2.10"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("missing --token"), "{r:?}");
    assert!(!out.exists());
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let s = Setup::new();
    let before = std::fs::read_to_string(&s.config).unwrap();
    let token = format!("{}={SECRET}", support::TOKEN_ID);
    let r = init(&[
        "--host",
        "192.0.2.10",
        "--token",
        &token,
        "--output",
        s.config.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--force"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&s.config).unwrap(), before);
}

#[test]
fn init_with_a_bad_token_names_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.toml");
    let r = init(&[
        "--host",
        "192.0.2.10",
        "--token",
        &format!("nobody={SECRET}"),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_no_secret(&r);
    assert!(!out.exists());
}
