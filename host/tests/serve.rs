//! `fail2pvefw serve` and its local API, against the PVE emulator: each
//! operation, bad requests, the peer check, SIGHUP and SIGTERM, the CLI's
//! hand-off and its fallback.

mod support;

use serde_json::{Value, json};
use std::time::Duration;
use support::serve::{Conn, Service, serve_table};
use support::{SECRET, Setup, wait_until};

const LAND: Duration = Duration::from_secs(30);

/// A set-up whose config puts the socket in its temp dir, and the service.
fn served(extra: &str) -> (Setup, Service) {
    let s = Setup::new();
    let socket = s.dir.path().join("run/f2p.sock");
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!("{text}{}{extra}", serve_table(&socket)));
    let service = Service::start(&s.config, &socket);
    (s, service)
}

fn no_secret(answer: &Value) {
    let text = answer.to_string();
    assert!(
        !text.contains(SECRET),
        "the token crossed the socket: {text}"
    );
    assert!(!text.contains(&SECRET[..8]), "part of the token: {text}");
}

#[test]
fn each_operation_answers_with_the_cli_outcome_and_never_the_token() {
    let (s, svc) = served("");
    let mut conn = Conn::open(&svc.socket).unwrap();
    let ping = conn.ask(&json!({"op": "ping"})).unwrap();
    assert_eq!(
        (ping["ok"].clone(), ping["code"].clone()),
        (json!(true), json!(0))
    );

    let start = conn.ask(&json!({"op": "start"})).unwrap();
    assert_eq!(start["code"], 0, "{start}");
    let check = conn
        .ask(&json!({"op": "check", "ipset": "fail2ban"}))
        .unwrap();
    assert_eq!(check["code"], 0, "{check}");

    let ban = conn
        .ask(
            &json!({"op": "ban", "ip": "203.0.113.7", "jail": "sshd", "failures": 3,
                     "bantime": 3600, "time": support::unix_now(), "restored": false,
                     "comment": "sshd, 3 failures"}),
        )
        .unwrap();
    assert_eq!(ban["code"], 0, "{ban}");
    assert_eq!(ban["kind"], "done", "{ban}");
    assert_eq!(ban["entry"], "203.0.113.7", "{ban}");
    assert!(ban["event"].as_i64().is_some(), "{ban}");
    wait_until("the ban to land", LAND, || s.cidrs() == ["203.0.113.7"]);
    let comment = s.emu.entries("fail2ban").unwrap()[0]
        .comment
        .clone()
        .unwrap();
    assert!(comment.contains("sshd, 3 failures"), "{comment}");

    let bad = conn
        .ask(&json!({"op": "ban", "ip": "not-an-address"}))
        .unwrap();
    assert_eq!(
        (bad["code"].clone(), bad["kind"].clone()),
        (json!(2), json!("invalid-input")),
        "{bad}"
    );
    assert!(
        bad["message"].as_str().unwrap().contains("not-an-address"),
        "{bad}"
    );

    let status = conn.ask(&json!({"op": "status", "json": true})).unwrap();
    assert_eq!(status["code"], 0, "{status}");
    let report: Value = serde_json::from_str(status["message"].as_str().unwrap()).unwrap();
    assert!(report["queue"]["pending"].as_u64().is_some(), "{report}");
    let prometheus = conn
        .ask(&json!({"op": "status", "prometheus": true}))
        .unwrap();
    assert!(
        prometheus["message"]
            .as_str()
            .unwrap()
            .contains("fail2pvefw_"),
        "{prometheus}"
    );

    let keep = conn.ask(&json!({"op": "flush", "jail": "sshd"})).unwrap();
    assert!(
        keep["message"]
            .as_str()
            .unwrap()
            .contains("kept 1 ban(s) of jail sshd"),
        "{keep}"
    );

    let unban = conn
        .ask(&json!({"op": "unban", "ip": "203.0.113.7", "jail": "sshd"}))
        .unwrap();
    assert_eq!(unban["code"], 0, "{unban}");
    wait_until("the unban to land", LAND, || s.cidrs().is_empty());

    for answer in [
        &ping,
        &start,
        &check,
        &ban,
        &bad,
        &status,
        &prometheus,
        &keep,
        &unban,
    ] {
        no_secret(answer);
    }
    assert!(!svc.log_text().contains(SECRET), "{}", svc.log_text());
}

#[test]
fn bad_json_is_answered_and_an_oversize_line_closes_the_connection() {
    let (_s, svc) = served("");
    let mut conn = Conn::open(&svc.socket).unwrap();
    let bad = conn.raw("{not json").unwrap();
    assert_eq!(
        (bad["code"].clone(), bad["kind"].clone()),
        (json!(2), json!("invalid-input")),
        "{bad}"
    );
    let unknown = conn.raw(r#"{"op":"explode"}"#).unwrap();
    assert_eq!(unknown["code"], 2, "{unknown}");
    // The connection still serves.
    assert_eq!(conn.ask(&json!({"op": "ping"})).unwrap()["ok"], true);

    let mut conn = Conn::open(&svc.socket).unwrap();
    let huge = format!(r#"{{"op":"ban","ip":"{}"}}"#, "1".repeat(70 * 1024));
    let answer = conn.raw(&huge).unwrap();
    assert_eq!(answer["code"], 2, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("longer than"),
        "{answer}"
    );
    assert!(conn.closed());
}

#[test]
fn a_request_for_another_config_is_refused_so_the_client_does_it_itself() {
    let (s, svc) = served("");
    let other = s.dir.path().join("other.toml");
    let answer = svc.ask(&json!({"op": "ping", "config": other}));
    assert_eq!(answer["kind"], "other-config", "{answer}");
    let ours = svc.ask(&json!({"op": "ping", "config": s.config}));
    assert_eq!(ours["ok"], true, "{ours}");
}

#[test]
fn the_cli_hands_its_ban_to_the_service_and_falls_back_when_it_is_gone() {
    let (s, mut svc) = served("");
    let r = s.run(&["-vv", "ban", "203.0.113.20", "--jail", "sshd"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("handed to fail2pvefw serve"), "{r:?}");
    wait_until("the handed-off ban to land", LAND, || {
        s.cidrs() == ["203.0.113.20"]
    });
    let bad = s.run(&["ban", "999.1.2.3"]);
    assert_eq!(
        bad.code, 2,
        "same exit code as without the service: {bad:?}"
    );
    assert!(
        !s.state_dir().join("drain.log").exists(),
        "no background drainer was started"
    );

    assert_eq!(svc.stop(), 0);
    assert!(!svc.socket.exists(), "the socket file is removed at stop");
    let r = s.run(&["-vv", "ban", "203.0.113.21", "--jail", "sshd"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(!r.stderr.contains("handed to fail2pvefw serve"), "{r:?}");
    wait_until("the fallback ban to land", LAND, || s.cidrs().len() == 2);
}

#[test]
fn sighup_reloads_the_config_and_a_bad_one_keeps_the_old() {
    let (s, svc) = served("");
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}\n[rules]\nnever_ban = [\"198.51.100.0/24\"]\n"
    ));
    svc.signal(libc::SIGHUP);
    wait_until("the reload", LAND, || svc.log_text().contains("reloaded"));
    let refused = svc.ask(&json!({"op": "ban", "ip": "198.51.100.5"}));
    assert_eq!(refused["code"], 2, "the new never_ban applies: {refused}");

    s.write_config("[pve]\nhost = ");
    svc.signal(libc::SIGHUP);
    wait_until("the refused reload", LAND, || {
        svc.log_text().contains("the old one stays")
    });
    let still = svc.ask(&json!({"op": "ban", "ip": "198.51.100.6"}));
    assert_eq!(
        still["code"], 2,
        "the old config (with never_ban) stays: {still}"
    );
    let ok = svc.ask(&json!({"op": "ban", "ip": "203.0.113.30"}));
    assert_eq!(ok["code"], 0, "{ok}");
    wait_until("the ban to land", LAND, || s.cidrs() == ["203.0.113.30"]);
}

#[test]
fn sigterm_mid_drain_leaves_the_queue_consistent() {
    let (s, mut svc) = served("");
    let mut conn = Conn::open(&svc.socket).unwrap();
    let ips: Vec<String> = (1..=60).map(|i| format!("198.51.100.{i}")).collect();
    for ip in &ips {
        let a = conn
            .ask(&json!({"op": "ban", "ip": ip, "jail": "sshd"}))
            .unwrap();
        assert_eq!(a["code"], 0, "{a}");
    }
    assert_eq!(svc.stop(), 0, "{}", svc.log_text());
    let sent = s.emu.write_count();
    let r = s.run(&["sync"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(s.cidrs().len(), 60, "every committed ban lands");
    assert_eq!(
        s.emu.write_count(),
        60,
        "none sent twice ({sent} before the sync)"
    );
}

#[test]
fn a_peer_outside_the_group_is_refused() {
    let (s, svc) = served("");
    // The file modes keep others out: nobody cannot even connect.
    let client = |socket: &std::path::Path| {
        std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import socket,sys\n\
                 s=socket.socket(socket.AF_UNIX)\n\
                 try:\n    s.connect(sys.argv[1])\nexcept OSError as e:\n    print('refused', e.errno); sys.exit(0)\n\
                 s.sendall(b'{\"op\":\"status\",\"json\":true}\\n')\n\
                 print(s.makefile().readline())\n",
            )
            .arg(socket)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    use std::os::unix::process::CommandExt;
    let out = client(&svc.socket);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("refused"), "{out:?}");
    // With the modes opened, the peer check still refuses it.
    use std::os::unix::fs::PermissionsExt;
    for dir in [
        s.dir.path().to_path_buf(),
        svc.socket.parent().unwrap().to_path_buf(),
    ] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&svc.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = client(&svc.socket);
    let text = String::from_utf8_lossy(&out.stdout);
    let answer: Value = serde_json::from_str(text.trim()).unwrap_or_else(|_| panic!("{out:?}"));
    assert_eq!(answer["kind"], "denied", "{answer}");
    assert!(!text.contains("queue"), "nothing of the status: {text}");
    assert!(
        svc.log_text().contains("refused a client (uid 65534"),
        "{}",
        svc.log_text()
    );
}

#[test]
fn the_socket_is_0660_and_a_second_service_is_refused() {
    let (s, svc) = served("");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&svc.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let dir_mode = std::fs::metadata(svc.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o750);
    let second = s.run(&["serve"]);
    assert_eq!(second.code, 3, "{second:?}");
    assert!(second.stderr.contains("already listens"), "{second:?}");
}

#[test]
fn metrics_are_served_on_loopback_and_a_public_address_is_refused() {
    let s = Setup::new();
    let socket = s.dir.path().join("run/f2p.sock");
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}{}\n[metrics]\nlisten = \"0.0.0.0:9712\"\n",
        serve_table(&socket)
    ));
    let r = s.run(&["serve"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("not a loopback address"), "{r:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    s.write_config(&format!(
        "{text}{}\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
        serve_table(&socket)
    ));
    let _svc = Service::start(&s.config, &socket);
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    tcp.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("fail2pvefw_"), "{body}");
    assert!(!body.contains(SECRET), "{body}");
}

#[path = "support/crowdsec.rs"]
mod lapi;

#[test]
fn the_service_runs_the_crowdsec_pulls_when_configured() {
    let Some(lapi) = lapi::Lapi::start_or_skip() else {
        return;
    };
    let key = lapi.bouncer_key("fail2pvefw");
    let s = Setup::new();
    let key_file = s.dir.path().join("crowdsec.key");
    support::write_private(&key_file, &format!("{key}\n"));
    let socket = s.dir.path().join("run/f2p.sock");
    let text = std::fs::read_to_string(&s.config).unwrap();
    s.write_config(&format!(
        "{text}{}\n[crowdsec]\nurl = \"{}\"\napi_key_file = \"{}\"\nupdate_frequency = 1\n",
        serve_table(&socket),
        lapi.url,
        key_file.display()
    ));
    lapi.add_decision("192.0.2.77", "4h", "serve test");
    let svc = Service::start(&s.config, &socket);
    wait_until("CrowdSec's decision to land", LAND, || {
        s.cidrs().contains(&"192.0.2.77".to_string())
    });
    // fail2ban's bans go through the same service meanwhile.
    let ban = svc.ask(&json!({"op": "ban", "ip": "203.0.113.40", "jail": "sshd"}));
    assert_eq!(ban["code"], 0, "{ban}");
    wait_until("the ban to land", LAND, || s.cidrs().len() == 2);
    // A second bouncer on the state directory is refused while it runs.
    let second = s.run(&["crowdsec", "--once"]);
    assert_ne!(second.code, 0, "{second:?}");
}
