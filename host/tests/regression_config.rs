//! Regression tests of issue 10, part D: configuration, command line and
//! the minor items. One test per finding, named for it, each against the
//! real binary and, where PVE is involved, the emulator over HTTPS.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use support::{Run, SECRET, Setup, TOKEN_ID};

/// Every command that loads the configuration.
const CONFIG_COMMANDS: &[&[&str]] = &[
    &["ban", "192.0.2.7"],
    &["unban", "192.0.2.7"],
    &["start"],
    &["check"],
    &["sync"],
    &["status"],
    &["flush"],
    &["trust"],
    &["doctor"],
    &["drain"],
];

/// The secret, or any 16-character piece of it, in `text`.
fn leaks(text: &str, secret: &str) -> Option<String> {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() < 16 {
        return text.contains(secret).then(|| secret.to_string());
    }
    chars
        .windows(16)
        .map(|w| w.iter().collect::<String>())
        .find(|piece| text.contains(piece.as_str()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A configuration broken in one way, with the secret somewhere in it, and
/// what its error must still say (line, key, problem).
struct Case {
    name: &'static str,
    text: Vec<u8>,
    says: Vec<&'static str>,
}

fn corpus(s: &Setup) -> Vec<Case> {
    let host = s.emu.host_port();
    let fp = s.emu.fingerprint();
    let state = s.dir.path().join("state");
    let state = state.display();
    let token = format!("{TOKEN_ID}={SECRET}");
    let good_pve =
        format!("[pve]\nhost = \"{host}\"\ntoken = \"{token}\"\nfingerprint = \"{fp}\"\n");
    let tail = format!("\n[state]\ndir = \"{state}\"\n");
    let pve_with =
        |lines: &str| format!("[pve]\nhost = \"{host}\"\nfingerprint = \"{fp}\"\n{lines}\n{tail}");
    let with = |extra: &str| format!("{good_pve}{extra}\n{tail}");
    let garbage_file = s.dir.path().join("garbage-token");
    std::fs::write(&garbage_file, format!("garbage {SECRET} garbage\n")).unwrap();
    let spaced_file = s.dir.path().join("spaced-token");
    std::fs::write(&spaced_file, format!("{TOKEN_ID}={SECRET} and more\n")).unwrap();
    let binary_file = s.dir.path().join("binary-token");
    let mut bytes = format!("{TOKEN_ID}={SECRET}").into_bytes();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00]);
    std::fs::write(&binary_file, bytes).unwrap();
    let case = |name, text: String, says: &[&'static str]| Case {
        name,
        text: text.into_bytes(),
        says: says.to_vec(),
    };
    let mut not_utf8 = format!("[pve]\ntoken = \"{token}").into_bytes();
    not_utf8.extend_from_slice(&[0xc3, 0x28, b'"', b'\n']);
    vec![
        // The corpus of the issue: TOML errors on the secret's own line.
        case(
            "unterminated basic string",
            pve_with(&format!("token = \"{token}\n")),
            &["line 4", "key 'token' in [pve]"],
        ),
        case(
            "token as a list",
            pve_with(&format!("token = [\"{token}\"]")),
            &["line 4", "expected a string", "key 'token' in [pve]"],
        ),
        case(
            "typo of the key",
            pve_with(&format!("tokn = \"{token}\"")),
            &["line 4", "`tokn`"],
        ),
        case(
            "duplicate token",
            with(&format!("token = \"{token}\"")),
            &["line 5", "duplicate key", "key 'token' in [pve]"],
        ),
        case(
            "token in the wrong table",
            format!("[pve]\nhost = \"{host}\"\n[state]\ndir = \"{state}\"\ntoken = \"{token}\"\n"),
            &["line 5", "`token`", "[state]"],
        ),
        case(
            "token in an unknown table",
            format!("[crowdsek]\napi_key = \"{SECRET}\"\n{good_pve}"),
            &["line 1", "`crowdsek`"],
        ),
        case(
            "bad escape in the token",
            pve_with(&format!("token = \"{token}\\q\"")),
            &["line 4", "escape", "key 'token' in [pve]"],
        ),
        case(
            "secret alone on a line",
            pve_with(&format!("token = \"{TOKEN_ID}=\"\n{SECRET}")),
            &["line 5", "in [pve]"],
        ),
        case(
            "secret as a key",
            pve_with(&format!("{SECRET} = 1")),
            &["line 4", "unknown field"],
        ),
        case(
            "unterminated literal string",
            pve_with(&format!("token = '{token}")),
            &["line 4"],
        ),
        // Reported where the file ends.
        case(
            "unterminated multi-line string",
            pve_with(&format!("token = \"\"\"{token}")),
            &["line 8"],
        ),
        case(
            "unquoted token",
            pve_with(&format!("token = {token}")),
            &["line 4"],
        ),
        case(
            "text after the token",
            pve_with(&format!("token = \"{token}\" x")),
            &["line 4"],
        ),
        case(
            "token as a table",
            format!("{}[pve.token]\nsecret = \"{SECRET}\"\n", pve_with("")),
            &["line"],
        ),
        case(
            "token as an inline table",
            pve_with(&format!("token = {{ secret = \"{SECRET}\" }}")),
            &["line 4", "expected a string"],
        ),
        case(
            "secret under another key",
            with(&format!("timeout = \"{token}\"")),
            &["line 5", "expected f64", "key 'timeout' in [pve]"],
        ),
        case(
            "secret as the hosts",
            format!("[pve]\nhosts = \"{token}\"\ntoken = \"{token}\"\n{tail}"),
            &["line 2", "expected a sequence"],
        ),
        case(
            "secret as a number",
            with(&format!("[limits]\nfuel = \"{SECRET}\"")),
            &["line 6", "key 'fuel' in [limits]"],
        ),
        // token_file holding something else.
        case(
            "token_file with garbage",
            pve_with(&format!("token_file = \"{}\"", garbage_file.display())),
            &["[pve] token_file '", "no '=' found"],
        ),
        case(
            "token_file with spaces",
            pve_with(&format!("token_file = \"{}\"", spaced_file.display())),
            &["empty or contains spaces"],
        ),
        case(
            "token_file not text",
            pve_with(&format!("token_file = \"{}\"", binary_file.display())),
            &["token_file"],
        ),
        case(
            "token_file missing",
            format!(
                "# token = \"{token}\"\n{}",
                pve_with("token_file = \"/nonexistent/token\"")
            ),
            &["cannot read token_file"],
        ),
        // Every check after parsing, with the secret in the file.
        case(
            "host and hosts",
            with(&format!("hosts = [\"{host}\"]")),
            &["both host and hosts"],
        ),
        case(
            "no host",
            format!("[pve]\ntoken = \"{token}\"\n{tail}"),
            &["host is missing"],
        ),
        case(
            "bad host",
            format!("[pve]\nhost = \"user@{host}\"\ntoken = \"{token}\"\n{tail}"),
            &["user part"],
        ),
        case(
            "secret as the host",
            format!("[pve]\nhost = \"{token}\"\ntoken = \"{token}\"\n{tail}"),
            &["[pve] host"],
        ),
        case(
            "token and token_file",
            with("token_file = \"/etc/passwd\""),
            &["both token and token_file"],
        ),
        case(
            "no token",
            format!("# token = \"{token}\"\n{}", pve_with("")),
            &["no token"],
        ),
        case(
            "token without '='",
            pve_with(&format!("token = \"{SECRET}\"")),
            &["no '=' found"],
        ),
        case(
            "token with a bad id",
            pve_with(&format!("token = \"not an id={SECRET}\"")),
            &["token id"],
        ),
        case(
            "token with a space",
            pve_with(&format!("token = \"{token} x\"")),
            &["empty or contains spaces"],
        ),
        case(
            "fingerprint and ca_file",
            with("ca_file = \"/etc/ssl/ca.pem\""),
            &["both fingerprint and ca_file"],
        ),
        case(
            "empty fingerprint list",
            format!("[pve]\nhost = \"{host}\"\ntoken = \"{token}\"\nfingerprint = []\n{tail}"),
            &["empty list"],
        ),
        case(
            "secret as the fingerprint",
            format!(
                "[pve]\nhost = \"{host}\"\ntoken = \"{token}\"\nfingerprint = \"{token}\"\n{tail}"
            ),
            &["not a SHA-256 fingerprint"],
        ),
        case(
            "timeout out of range",
            with("timeout = 0"),
            &["timeout = 0"],
        ),
        case(
            "bad instance",
            format!("{good_pve}\n[state]\ndir = \"{state}\"\ninstance = \"a b\"\n"),
            &["[state] instance"],
        ),
        case(
            "too little fuel",
            with("[limits]\nfuel = 10"),
            &["fuel = 10"],
        ),
        case(
            "bad memory",
            with("[limits]\nmemory_mib = 1"),
            &["memory_mib = 1"],
        ),
        case(
            "bad never_ban",
            with("[rules]\nnever_ban = [\"10.0.0.0/33\"]"),
            &["never_ban"],
        ),
        case(
            "bad ipv6_prefix",
            with("[rules]\nipv6_prefix = 0"),
            &["ipv6_prefix = 0"],
        ),
        case(
            "bad allow_paths",
            with("[rules]\nallow_paths = [\"/a/../b\"]"),
            &["allow_paths"],
        ),
        case(
            "bad widest_ipv4",
            with("[rules]\nwidest_ipv4 = 0"),
            &["widest_ipv4 = 0"],
        ),
        case("unknown table", with("[pev]\nx = 1"), &["`pev`"]),
        case(
            "a control character",
            format!("{good_pve}\u{0}"),
            &["line 5"],
        ),
        Case {
            name: "not UTF-8",
            text: not_utf8,
            says: vec!["cannot read config", "UTF-8"],
        },
    ]
}

// See: issue 10, finding 5
#[test]
fn r10_5_no_config_error_shows_the_secret() {
    let s = Setup::new();
    let mut checked = 0;
    for case in corpus(&s) {
        std::fs::write(&s.config, &case.text).unwrap();
        for command in CONFIG_COMMANDS {
            let r = s.run(command);
            let all = r.all();
            if let Some(piece) = leaks(&all, SECRET) {
                panic!(
                    "{} / {command:?} shows '{piece}' of the secret:\n{all}",
                    case.name
                );
            }
            assert_eq!(r.code, 3, "{} / {command:?}: {r:?}", case.name);
            for said in &case.says {
                assert!(
                    all.contains(said),
                    "{} / {command:?} lacks {said:?}:\n{all}",
                    case.name
                );
            }
            checked += 1;
        }
    }
    assert!(s.emu.requests().is_empty(), "{:?}", s.emu.requests());
    assert!(checked >= 400, "{checked}");
}

/// Host strings that are not a host name or IP literal with an optional
/// port, and the problem the error must name.
fn bad_hosts(port: u16) -> Vec<(String, &'static str)> {
    vec![
        (format!("user@127.0.0.1:{port}"), "user part"),
        (format!("127.0.0.1:{port}?x=1"), "'?'"),
        ("127.0.0.1?x=1".to_string(), "'?'"),
        (format!("127.0.0.1:{port}#frag"), "'#'"),
        (format!("127.0.0.1:{port}/api2/json"), "'/'"),
        (format!("https://127.0.0.1:{port}"), "a URL"),
        (format!("[::1%lo]:{port}"), "zone id"),
        ("127.0.0.1:".to_string(), "empty port"),
        (format!("127.0.0.1 :{port}"), "space"),
        (format!("pve_1.test:{port}"), "'_' is not allowed"),
        (format!("127.0.0.01:{port}"), "looks like an IPv4"),
        (format!("127.0.0.1:+{port}"), "not a port number"),
    ]
}

// See: issue 10, finding 6
#[test]
fn r10_6_a_host_that_is_not_a_plain_host_exits_3_naming_the_problem() {
    let s = Setup::new();
    let good = s.emu.host_port();
    let port = s.emu.addr().port();
    let rest = format!(
        "token = \"{TOKEN_ID}={SECRET}\"\nfingerprint = \"{}\"\n\n[state]\ndir = \"{}\"\n",
        s.emu.fingerprint(),
        s.dir.path().join("state").display()
    );
    for (bad, problem) in bad_hosts(port) {
        for (key, value) in [
            ("host", format!("{bad:?}")),
            ("hosts", format!("[\"{good}\", {bad:?}]")),
        ] {
            s.write_config(&format!("[pve]\n{key} = {value}\n{rest}"));
            for command in [&["-f", "ban", "192.0.2.7"][..], &["start"], &["doctor"]] {
                let r = s.run(command);
                assert_eq!(r.code, 3, "{key} = {value} / {command:?}: {r:?}");
                assert!(
                    r.all().contains(problem),
                    "{key} = {value}: lacks {problem:?}: {r:?}"
                );
                assert!(r.all().contains(&format!("[pve] {key}")), "{r:?}");
            }
        }
    }
    assert!(s.emu.requests().is_empty(), "{:?}", s.emu.requests());
}

/// Runs the binary with stdout a pipe whose reader has gone.
fn run_into_closed_pipe(s: &Setup, args: &[&str]) -> Run {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_fail2pvefw"))
        .arg("--config")
        .arg(&s.config)
        .args(args)
        .env("TZ", "UTC")
        .env_remove("FAIL2PVEFW_CONFIG")
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// See: issue 10, finding 10
#[test]
fn r10_10_a_closed_stdout_ends_quietly_with_exit_0() {
    let s = Setup::new();
    assert_eq!(s.run(&["trust", "--yes"]).code, 0);
    assert_eq!(s.run(&["-f", "ban", "192.0.2.8"]).code, 0);
    for args in [
        &["sandbox", "ban", "192.0.2.9"][..],
        &["doctor"],
        &["status"],
        &["status", "--json"],
        &["status", "--prometheus"],
        &["--help"],
        &["-h"],
        &["--version"],
        &["ban", "--help"],
        &["-f", "ban", "192.0.2.10"],
        &["trust"],
        &["sync"],
    ] {
        let r = run_into_closed_pipe(&s, args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
        assert!(!r.stderr.contains("panicked"), "{args:?}: {r:?}");
        assert!(!r.stderr.contains("Broken pipe"), "{args:?}: {r:?}");
    }
    // The work before the closed pipe was done: the ban is in PVE.
    assert!(
        s.cidrs().contains(&"192.0.2.10".to_string()),
        "{:?}",
        s.cidrs()
    );
}

/// Runs `fail2pvefw --config … ARGS` under umask 022, as a shell would.
fn run_with_umask_022(s: &Setup, args: &[&str]) -> Run {
    let out = Command::new("sh")
        .arg("-c")
        .arg("umask 022; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_fail2pvefw"))
        .arg("--config")
        .arg(&s.config)
        .args(args)
        .env_remove("FAIL2PVEFW_CONFIG")
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// See: issue 10, finding 10
#[test]
fn r10_10_the_state_is_private_new_or_old() {
    let s = Setup::new();
    let state = s.dir.path().join("state");
    let db = state.join("state.db");
    let files = ["state.db", "state.db-wal", "state.db-shm"].map(|f| state.join(f));
    let r = run_with_umask_022(&s, &["-f", "ban", "192.0.2.11"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(mode(&state), 0o700);
    for file in &files {
        assert!(file.exists(), "{}", file.display());
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    // An existing, looser state (made by hand, or by an older version).
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    for file in &files {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let r = run_with_umask_022(&s, &["ban", "192.0.2.12"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&db), 0o600);
    for file in files.iter().filter(|f| f.exists()) {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
}

// See: issue 10, finding 10
#[test]
fn r10_10_the_timeout_error_states_the_real_range() {
    let s = Setup::new();
    let config = std::fs::read_to_string(&s.config).unwrap();
    for timeout in ["0", "-1", "600.5", "nan"] {
        s.write_config(&config.replace("[pve]\n", &format!("[pve]\ntimeout = {timeout}\n")));
        let r = s.run(&["start"]);
        assert_eq!(r.code, 3, "{timeout}: {r:?}");
        assert!(r.stderr.contains("more than 0 and at most 600"), "{r:?}");
        assert!(!r.stderr.contains("between 0 and"), "{r:?}");
    }
    s.write_config(&config.replace("[pve]\n", "[pve]\ntimeout = 600\n"));
    assert_eq!(s.run(&["start"]).code, 0);
}

// See: issue 10, finding 10
#[test]
fn r10_10_a_garbled_state_db_is_named_not_blamed_on_permissions() {
    let s = Setup::new();
    let state = s.dir.path().join("state");
    assert_eq!(s.run(&["-f", "ban", "192.0.2.13"]).code, 0);
    let db = state.join("state.db");
    for file in ["state.db-wal", "state.db-shm"] {
        let _ = std::fs::remove_file(state.join(file));
    }
    // Something else written over it (a new file: no process may still
    // write the old one's pages back).
    let other = state.join("other");
    std::fs::write(
        &other,
        "this is not a database, whatever it once was\n".repeat(200),
    )
    .unwrap();
    std::fs::rename(&other, &db).unwrap();
    for command in [&["ban", "192.0.2.14"][..], &["status"], &["sync"]] {
        let r = s.run(command);
        assert_eq!(r.code, 3, "{command:?}: {r:?}");
        assert!(r.stderr.contains("not a usable state database"), "{r:?}");
        assert!(
            r.stderr.contains("permissions are not the problem"),
            "{r:?}"
        );
        assert!(
            r.stderr.contains(&format!("mv '{}'", db.display())),
            "{r:?}"
        );
        assert!(!r.stderr.contains("writable"), "{r:?}");
    }
    // Doing what it says works.
    std::fs::rename(&db, state.join("state.db.broken")).unwrap();
    assert_eq!(s.run(&["-f", "ban", "192.0.2.14"]).code, 0);
}
