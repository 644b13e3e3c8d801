//! Whom the real binary trusts for PVE's certificate, over real HTTPS on
//! loopback with certificates made here: pins, a CA file, the system's
//! roots, and pins stored by `fail2pvefw trust`. Every refusal must happen
//! inside the handshake: the server receives no byte, so never the token.

mod support;

use pve_emulator::recorder::Recorder;
use pve_emulator::{Emulator, Options, Tls};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::{Run, SECRET, Setup, TOKEN_ID, options};

/// A throw-away cluster CA, like `pve-root-ca.pem`.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.distinguished_name
        .push(DnType::OrganizationName, "PVE Cluster Manager CA");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        issuer: Issuer::new(p, key),
    }
}

fn leaf_params(node: &str) -> CertificateParams {
    let mut p =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name
        .push(DnType::CommonName, format!("{node}.localdomain"));
    p.distinguished_name
        .push(DnType::OrganizationalUnitName, "PVE Cluster Node");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p
}

/// A node certificate signed by `ca`.
fn signed_leaf(ca: &Ca, node: &str) -> Tls {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(node).signed_by(&key, &ca.issuer).unwrap();
    Tls::Custom {
        cert_chain_der: vec![cert.der().to_vec()],
        key_der: key.serialize_der(),
    }
}

fn self_signed_leaf(node: &str) -> Tls {
    let key = KeyPair::generate().unwrap();
    let cert = leaf_params(node).self_signed(&key).unwrap();
    Tls::Custom {
        cert_chain_der: vec![cert.der().to_vec()],
        key_der: key.serialize_der(),
    }
}

fn emulator(tls: Tls) -> Setup {
    Setup::with(Options { tls, ..options() })
}

fn state_dir(s: &Setup) -> PathBuf {
    s.dir.path().join("state")
}

/// Points the config at `host` with the given trust lines (may be empty).
fn configure(s: &Setup, host: &str, trust: &str) {
    s.write_config(&format!(
        "[pve]\nhost = \"{host}\"\ntoken = \"{TOKEN_ID}={SECRET}\"\n{trust}\n[state]\ndir = \"{}\"\n",
        state_dir(s).display()
    ));
}

fn write_file(s: &Setup, name: &str, text: &str) -> PathBuf {
    let path = s.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the binary with our config and extra environment, stdin closed,
/// and the system's roots where the machine keeps them unless `env` says.
fn run_env(s: &Setup, args: &[&str], env: &[(&str, &Path)]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .arg("--config")
        .arg(&s.config)
        .args(args)
        // The system's roots come from these when set: only the test's own.
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .env("TZ", "UTC")
        .env_remove("FAIL2PVEFW_CONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_nothing_sent(recorder: &Recorder) {
    let received = recorder.received();
    assert!(
        !String::from_utf8_lossy(&received).contains("Authorization"),
        "the token reached the server"
    );
    assert!(received.is_empty(), "the server received {received:?}");
}

fn assert_no_request(emu: &Emulator) {
    assert!(emu.requests().is_empty(), "requests: {:?}", emu.requests());
}

#[test]
fn ca_signed_leaf_is_trusted_through_ca_file() {
    let cluster = ca("Test Cluster CA");
    let s = emulator(signed_leaf(&cluster, "pve1"));
    let ca_file = write_file(&s, "pve-root-ca.pem", &cluster.pem);
    configure(
        &s,
        &s.emu.host_port(),
        &format!("ca_file = \"{}\"", ca_file.display()),
    );
    let r = s.run(&["-f", "ban", "203.0.113.20"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.20"]);
}

#[test]
fn pinned_self_signed_leaf_is_trusted() {
    let s = emulator(self_signed_leaf("pve1"));
    // Lower case without colons is the same pin.
    let pin = s.emu.fingerprint().replace(':', "").to_lowercase();
    configure(&s, &s.emu.host_port(), &format!("fingerprint = \"{pin}\""));
    let r = s.run(&["-f", "ban", "203.0.113.21"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.21"]);
}

#[test]
fn pin_of_another_leaf_is_refused_and_nothing_is_sent() {
    let s = emulator(self_signed_leaf("pve1"));
    let recorder = Recorder::start();
    configure(
        &s,
        &recorder.host_port(),
        &format!("fingerprint = \"{}\"", s.emu.fingerprint()),
    );
    let r = s.run(&["-f", "ban", "203.0.113.22"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("expected:  "), "{r:?}");
    assert!(r.stderr.contains(&s.emu.fingerprint()), "{r:?}");
    assert!(r.stderr.contains(&recorder.fingerprint()), "{r:?}");
    let trust = format!("fail2pvefw --config '{}' trust", s.config.display());
    assert!(r.stderr.contains(&trust), "{r:?}");
    assert!(!r.all().contains(SECRET), "{r:?}");
    assert_nothing_sent(&recorder);
}

#[test]
fn expired_leaf_is_refused_with_its_dates() {
    let s = emulator(Tls::Expired);
    let ca_file = write_file(&s, "pve-root-ca.pem", &s.emu.ca_pem());
    configure(
        &s,
        &s.emu.host_port(),
        &format!("ca_file = \"{}\"", ca_file.display()),
    );
    let r = s.run(&["-f", "ban", "203.0.113.23"]);
    assert_eq!(r.code, 1, "{r:?}");
    // The emulator's expired leaf was valid from 2019-01-01 to 2021-01-01.
    assert!(r.stderr.contains("expired at 2021-01-01"), "{r:?}");
    assert!(r.stderr.contains("(now 20"), "{r:?}");
    assert!(r.stderr.contains("Renew the node certificate"), "{r:?}");
    assert_no_request(&s.emu);
}

#[test]
fn second_of_two_pins_matches() {
    let s = emulator(Tls::SelfSigned);
    let old = ["0F"; 32].join(":");
    configure(
        &s,
        &s.emu.host_port(),
        &format!("fingerprint = [\"{old}\", \"{}\"]", s.emu.fingerprint()),
    );
    let r = s.run(&["-f", "ban", "203.0.113.24"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.24"]);
}

#[test]
fn trust_yes_then_ban_succeeds_in_a_new_process() {
    let s = emulator(self_signed_leaf("pve1"));
    let stale = ["0F"; 32].join(":");
    configure(
        &s,
        &s.emu.host_port(),
        &format!("fingerprint = \"{stale}\""),
    );
    let r = s.run(&["-f", "ban", "203.0.113.25"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_no_request(&s.emu);

    let r = s.run(&["trust", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    for shown in [
        "subject:  ",
        "CN=pve1.localdomain",
        "issuer:   ",
        "valid:    from ",
        "until ",
        "127.0.0.1",
    ] {
        assert!(r.stdout.contains(shown), "{shown} missing: {r:?}");
    }
    let fingerprint = s.emu.fingerprint();
    assert_eq!(fingerprint.len(), 95);
    assert!(
        r.stdout.contains(&format!("SHA-256:  {fingerprint}")),
        "{r:?}"
    );
    assert_no_request(&s.emu);

    // New processes find the pin.
    let r = s.run(&["-f", "ban", "203.0.113.25"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.run(&["-f", "unban", "203.0.113.25"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(s.cidrs().is_empty());

    let file = state_dir(&s).join("trusted-fingerprints");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("{} {fingerprint}", s.emu.host_port())),
        "{text}"
    );

    // A second `trust` sees it is trusted and stores nothing new.
    let r = s.run(&["trust", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("already trusted"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn trust_sends_no_request_and_never_the_token() {
    let s = Setup::new();
    let recorder = Recorder::start();
    configure(&s, &recorder.host_port(), "");
    let r = s.run(&["trust", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&recorder.fingerprint()), "{r:?}");
    assert!(recorder.handshakes() >= 1);
    assert_nothing_sent(&recorder);
    assert!(!r.all().contains(SECRET), "{r:?}");
}

#[test]
fn trust_without_terminal_or_yes_refuses() {
    let s = emulator(Tls::SelfSigned);
    configure(&s, &s.emu.host_port(), "");
    let r = run_env(&s, &["trust"], &[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stdout.contains(&s.emu.fingerprint()), "{r:?}");
    assert!(r.stderr.contains("no terminal"), "{r:?}");
    assert!(r.stderr.contains("trust --yes"), "{r:?}");
    assert!(r.stderr.contains("[pve] fingerprint"), "{r:?}");
    assert!(!state_dir(&s).join("trusted-fingerprints").exists());
    assert_no_request(&s.emu);
}

#[test]
fn manual_flag_without_terminal_refuses_and_sends_nothing() {
    let s = emulator(Tls::SelfSigned);
    configure(&s, &s.emu.host_port(), "");
    let r = run_env(&s, &["-m", "-f", "ban", "203.0.113.26"], &[]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("trust --yes"), "{r:?}");
    assert_no_request(&s.emu);
}

#[test]
fn manual_flag_with_trusted_certificate_just_bans() {
    let s = Setup::new();
    let r = run_env(&s, &["-m", "-f", "ban", "203.0.113.27"], &[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.27"]);
}

/// `script` gives the binary a terminal; the answer comes through it.
fn run_on_terminal(s: &Setup, args: &str, answer: &str) -> Option<Run> {
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipped: no /usr/bin/script to provide a terminal");
        return None;
    }
    use std::io::Write;
    let command = format!(
        "{} --config {} {args}",
        env!("CARGO_BIN_EXE_fail2pvefw"),
        s.config.display()
    );
    let mut child = Command::new("/usr/bin/script")
        .args(["-qec", &command, "/dev/null"])
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Give the prompt a moment so the answer is not eaten by the terminal set-up.
    std::thread::sleep(std::time::Duration::from_millis(300));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

#[test]
fn manual_flag_asks_on_a_terminal_then_bans() {
    let s = emulator(Tls::SelfSigned);
    configure(&s, &s.emu.host_port(), "");
    let Some(r) = run_on_terminal(&s, "-m -f ban 203.0.113.28", "yes\n") else {
        return;
    };
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.all().contains("(yes/no)"), "{r:?}");
    assert!(r.all().contains(&s.emu.fingerprint()), "{r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.28"]);
    // And the next run, without -m, trusts it.
    assert_eq!(s.run(&["-f", "unban", "203.0.113.28"]).code, 0);
}

#[test]
fn trust_answered_no_stores_nothing() {
    let s = emulator(Tls::SelfSigned);
    configure(&s, &s.emu.host_port(), "");
    let Some(r) = run_on_terminal(&s, "trust", "no\n") else {
        return;
    };
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.all().contains("not trusted"), "{r:?}");
    assert!(!state_dir(&s).join("trusted-fingerprints").exists());
    assert_no_request(&s.emu);
}

#[test]
fn system_roots_refuse_a_cluster_ca_with_the_unknown_issuer_hint() {
    // The emulator's CA is no system root; an unrelated CA stands in for
    // the system's bundle so the test does not depend on the machine's.
    let s = Setup::new();
    let unrelated = ca("Some Public Root");
    let bundle = write_file(&s, "roots.pem", &unrelated.pem);
    configure(&s, &s.emu.host_port(), "");
    let r = run_env(
        &s,
        &["-f", "ban", "203.0.113.29"],
        &[("SSL_CERT_FILE", &bundle)],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("unknown issuer"), "{r:?}");
    assert!(r.stderr.contains("ca_file"), "{r:?}");
    let trust = format!("fail2pvefw --config '{}' trust", s.config.display());
    assert!(r.stderr.contains(&trust), "{r:?}");
    assert!(r.stderr.contains(&s.emu.fingerprint()), "{r:?}");
    assert_no_request(&s.emu);

    // Another server is another cluster: it gets a state of its own (the
    // queued ban above belongs to the emulator's cluster).
    std::fs::remove_dir_all(state_dir(&s)).unwrap();
    let recorder = Recorder::start();
    configure(&s, &recorder.host_port(), "");
    let r = run_env(
        &s,
        &["-f", "ban", "203.0.113.29"],
        &[("SSL_CERT_FILE", &bundle)],
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert_nothing_sent(&recorder);
}

#[test]
fn system_roots_refuse_with_the_machines_own_bundle() {
    let s = Setup::new();
    configure(&s, &s.emu.host_port(), "");
    let r = run_env(&s, &["-f", "ban", "203.0.113.30"], &[]);
    // Exit 1 with the hint; or 3 on a machine without any CA bundle.
    assert!(r.code == 1 || r.code == 3, "{r:?}");
    assert!(r.stderr.contains("ca_file"), "{r:?}");
    assert_no_request(&s.emu);
}

#[test]
fn system_roots_accept_a_certificate_from_a_system_ca() {
    let s = Setup::new();
    let bundle = write_file(&s, "roots.pem", &s.emu.ca_pem());
    configure(&s, &s.emu.host_port(), "");
    let r = run_env(
        &s,
        &["-f", "ban", "203.0.113.31"],
        &[("SSL_CERT_FILE", &bundle)],
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.31"]);
}

#[test]
fn stored_pin_accepts_what_ca_file_refuses() {
    let s = emulator(Tls::SelfSigned);
    let other = write_file(&s, "other-ca.pem", &ca("Other Cluster CA").pem);
    configure(
        &s,
        &s.emu.host_port(),
        &format!("ca_file = \"{}\"", other.display()),
    );
    let r = s.run(&["-f", "ban", "203.0.113.32"]);
    assert_eq!(r.code, 1, "{r:?}");
    let trust = format!("fail2pvefw --config '{}' trust", s.config.display());
    assert!(r.stderr.contains(&trust), "{r:?}");
    let r = s.run(&["trust", "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("unknown issuer"), "{r:?}");
    let r = s.run(&["-f", "ban", "203.0.113.32"]);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn stored_pin_counts_only_for_its_host() {
    let s = emulator(Tls::SelfSigned);
    configure(&s, &s.emu.host_port(), "");
    assert_eq!(s.run(&["trust", "--yes"]).code, 0);
    // The same node reached as another endpoint is a new decision.
    let other = s.emu.host_port().replace("127.0.0.1", "localhost");
    configure(&s, &other, "");
    let r = run_env(&s, &["-f", "ban", "203.0.113.33"], &[]);
    assert_ne!(r.code, 0, "{r:?}");
    assert_no_request(&s.emu);
}

#[test]
fn without_any_system_ca_a_stored_pin_still_works() {
    let s = Setup::new();
    let empty = write_file(&s, "empty.pem", "");
    configure(&s, &s.emu.host_port(), "");
    let env = [("SSL_CERT_FILE", empty.as_path())];
    let r = run_env(&s, &["-f", "ban", "203.0.113.34"], &env);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("system's root certificates"), "{r:?}");
    assert!(r.stderr.contains("ca-certificates"), "{r:?}");
    assert_no_request(&s.emu);
    let r = run_env(&s, &["trust", "--yes"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run_env(&s, &["-f", "ban", "203.0.113.34"], &env);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs(), ["203.0.113.34"]);
}

// See: issue 11 (one bad line in the pin file failed every command as a
// configuration error).
#[test]
fn a_bad_pin_line_stops_only_what_needs_the_pins() {
    let s = Setup::new();
    let state = state_dir(&s);
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let pins = state.join("trusted-fingerprints");
    std::fs::write(&pins, "not a pin line\n").unwrap();
    std::fs::set_permissions(&pins, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A command that talks to no PVE works.
    let r = s.run(&["flush"]);
    assert_eq!(r.code, 0, "{r:?}");
    // One that connects stops on it, as a configuration error naming the line.
    let r = s.run(&["-f", "ban", "203.0.113.35"]);
    assert_eq!(r.code, 3, "{r:?}");
    let named = format!(
        "'{}' line 1: expected 'HOST:PORT FINGERPRINT'",
        pins.display()
    );
    assert!(r.stderr.contains(&named), "{r:?}");
    assert!(r.stderr.contains("Fix or delete that line"), "{r:?}");
    assert_no_request(&s.emu);
}
