//! The emulator over the wire: raw HTTP/1.1 on a rustls client that pins the
//! server's fingerprint, so status lines, headers and connection handling are
//! checked exactly as a client sees them.

use pve_emulator::recorder::Recorder;
use pve_emulator::{Emulator, Entry, Fault, Options, Tls, Token};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accepts exactly the certificate with this SHA-256 fingerprint, ignoring
/// names and validity, but still checking the handshake signatures.
#[derive(Debug)]
struct Pin(String, Arc<CryptoProvider>);

impl ServerCertVerifier for Pin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let digest = ::ring::digest::digest(&::ring::digest::SHA256, end_entity);
        let fp: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        if fp.join(":") == self.0 {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("fingerprint mismatch".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

struct Client(StreamOwned<ClientConnection, TcpStream>);

#[derive(Debug)]
struct Resp {
    status_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

fn connect(addr: SocketAddr, fingerprint: &str) -> std::io::Result<Client> {
    let provider = Arc::new(ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pin(fingerprint.into(), provider)))
        .with_no_client_auth();
    let conn = ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(Client(s))
}

impl Client {
    fn to(emu: &Emulator) -> Client {
        connect(emu.addr(), &emu.fingerprint()).expect("connect")
    }

    fn raw(&mut self, request: &str) -> Resp {
        self.0.write_all(request.as_bytes()).unwrap();
        self.0.flush().unwrap();
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            assert_eq!(
                self.0.read(&mut byte).expect("response head"),
                1,
                "closed early"
            );
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap().to_string();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(": ").unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k == "Content-Length")
            .unwrap()
            .1
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        self.0.read_exact(&mut body).unwrap();
        Resp {
            status_line,
            headers,
            body: String::from_utf8(body).unwrap(),
        }
    }

    /// A request with the given token header (if any) and a form body.
    fn req(&mut self, method: &str, path: &str, auth: Option<&str>, body: &str) -> Resp {
        let mut r = format!("{method} /api2/json{path} HTTP/1.1\r\nHost: localhost\r\n");
        if let Some(a) = auth {
            r += &format!("Authorization: {a}\r\n");
        }
        if !body.is_empty() {
            r += &format!(
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
                body.len()
            );
        }
        r += "\r\n";
        r += body;
        self.raw(&r)
    }

    /// True when the server has closed the connection.
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.0.read(&mut b), Ok(0) | Err(_))
    }
}

const AUTH: &str = "PVEAPIToken=f2b@pve!ban=s3cret";

fn start(adjust: impl FnOnce(&mut Options)) -> Emulator {
    let mut opts = Options {
        tokens: vec![Token::new("f2b@pve!ban", "s3cret")],
        auth_delay: Duration::from_millis(20),
        ..Options::default()
    };
    adjust(&mut opts);
    Emulator::start(opts)
}

/// One request on a fresh connection, authenticated.
fn call(emu: &Emulator, method: &str, path: &str, body: &str) -> Resp {
    Client::to(emu).req(method, path, Some(AUTH), body)
}

fn cidrs(emu: &Emulator) -> Vec<String> {
    emu.entries("fail2ban")
        .unwrap()
        .into_iter()
        .map(|e| e.cidr)
        .collect()
}

#[test]
fn success_keeps_the_connection_alive() {
    let emu = start(|_| {});
    let mut c = Client::to(&emu);
    let r = c.req("GET", "/cluster/firewall/ipset/fail2ban", Some(AUTH), "");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(r.body, r#"{"data":[]}"#);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json;charset=UTF-8")
    );
    assert_eq!(r.header("Server"), Some("pve-api-daemon/3.0"));
    assert_eq!(r.header("Connection"), Some("Keep-Alive"));
    assert_eq!(r.header("Expires"), r.header("Date"));
    let r = c.req(
        "POST",
        "/cluster/firewall/ipset/fail2ban",
        Some(AUTH),
        "cidr=192.0.2.7",
    );
    assert_eq!(
        (r.status_line.as_str(), r.body.as_str()),
        ("HTTP/1.1 200 OK", r#"{"data":null}"#)
    );
    assert_eq!(emu.write_count(), 1);
}

#[test]
fn keep_alive_ends_after_100_requests() {
    let emu = start(|_| {});
    let mut c = Client::to(&emu);
    for i in 1..=100 {
        let r = c.req("GET", "/version", Some(AUTH), "");
        let expected = if i == 100 { "close" } else { "Keep-Alive" };
        assert_eq!(r.header("Connection"), Some(expected), "request {i}");
    }
    assert!(c.closed());
}

#[test]
fn missing_and_bad_tokens_get_401_after_the_delay_and_close() {
    let emu = start(|o| o.auth_delay = Duration::from_millis(300));
    for (auth, line) in [
        (None, "HTTP/1.1 401 No ticket"),
        (Some("Bearer x"), "HTTP/1.1 401 No ticket"),
        (
            Some("PVEAPIToken=f2b@pve!ban=wrong"),
            "HTTP/1.1 401 Authentication failed!",
        ),
    ] {
        let mut c = Client::to(&emu);
        let t = Instant::now();
        let r = c.req("GET", "/cluster/firewall/ipset", auth, "");
        assert!(t.elapsed() >= Duration::from_millis(300), "{line}");
        assert_eq!(r.status_line, line);
        assert_eq!((r.body.as_str(), r.header("Content-Type")), ("", None));
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(c.closed());
    }
    let rec = emu.requests();
    assert_eq!(
        rec.iter().map(|r| r.authorization).collect::<Vec<_>>(),
        [false, true, true]
    );
    assert!(rec.iter().all(|r| r.status == 401));
}

#[test]
fn privileges_are_checked_before_the_schema() {
    let emu = start(|_| {});
    emu.set_privileges("f2b@pve!ban", true, false);
    let r = call(&emu, "POST", "/cluster/firewall/ipset/fail2ban", "bogus=1");
    assert_eq!(
        r.status_line,
        "HTTP/1.1 403 Permission check failed (/, Sys.Modify)"
    );
    assert_eq!(
        r.body,
        r#"{"data":null,"message":"Permission check failed (/, Sys.Modify)\n"}"#
    );
    emu.set_privileges("f2b@pve!ban", false, true);
    let r = call(&emu, "GET", "/cluster/firewall/ipset", "");
    assert_eq!(
        r.status_line,
        "HTTP/1.1 403 Permission check failed (/, Sys.Audit)"
    );
    assert_eq!(
        call(&emu, "GET", "/version", "").status_line,
        "HTTP/1.1 200 OK"
    );
}

#[test]
fn add_normalises_and_delete_matches_exactly() {
    let emu = start(|_| {});
    let ok = |path: &str, body: &str, method: &str| {
        let r = call(&emu, method, path, body);
        assert_eq!(
            r.status_line, "HTTP/1.1 200 OK",
            "{method} {path} {body}: {}",
            r.body
        );
    };
    let set = "/cluster/firewall/ipset/fail2ban";
    ok(set, "cidr=10.0.0.1%2F8&comment=%20spaced%20", "POST");
    ok(set, "cidr=1.2.3.4/32&comment=0", "POST");
    ok(set, "cidr=2001:DB8::1/64&nomatch=1", "POST");
    ok(set, "cidr=2001:DB8::1", "POST");
    assert_eq!(
        cidrs(&emu),
        ["1.2.3.4", "10.0.0.0/8", "2001:DB8::1", "2001:db8::/64"]
    );
    let entries = emu.entries("fail2ban").unwrap();
    assert_eq!(entries[1].comment.as_deref(), Some("spaced"));
    assert_eq!(entries[0].comment, None, "a \"0\" comment is dropped");
    assert_eq!(
        entries[3],
        Entry {
            cidr: "2001:db8::/64".into(),
            comment: None,
            nomatch: true
        }
    );

    let r = call(&emu, "POST", set, "cidr=1.2.3.4");
    assert_eq!(r.status_line, "HTTP/1.1 400 Parameter verification failed.");
    assert_eq!(
        r.json()["errors"]["cidr"],
        "address '1.2.3.4' already exists"
    );
    assert_eq!(r.header("Connection"), Some("close"));
    let r = call(&emu, "POST", set, "cidr=1.2.3.4/0");
    assert_eq!(
        r.json()["errors"]["cidr"],
        "invalid format - Invalid prefix 00000001000000100000001100000100/0\n"
    );
    let r = call(&emu, "POST", set, "cidr=0.0.0.0/0");
    assert_eq!(
        r.json()["errors"]["cidr"],
        "a zero prefix is not allowed in ipset entries"
    );

    // Exact string match: "/32" does not find "1.2.3.4", yet answers 200.
    ok(&format!("{set}/1.2.3.4%2F32"), "", "DELETE");
    assert_eq!(cidrs(&emu).len(), 4);
    let r = call(&emu, "GET", &format!("{set}/1.2.3.4%2F32"), "");
    assert_eq!(r.json()["errors"]["cidr"], "no such IP/Network");
    ok(&format!("{set}/1.2.3.4"), "", "DELETE");
    ok(&format!("{set}/10.0.0.0/8"), "", "DELETE"); // an unescaped slash works too
    ok(&format!("{set}//2001:db8::%2F64/"), "", "DELETE");
    assert_eq!(cidrs(&emu), ["2001:DB8::1"]);
    assert_eq!(emu.write_count(), 8);
}

#[test]
fn digests_and_updates() {
    let emu = start(|o| o.ipsets = vec![("fail2ban".into(), vec![("1.2.3.4".into(), None)])]);
    let r = call(&emu, "GET", "/cluster/firewall/ipset/fail2ban", "");
    assert_eq!(
        r.json()["data"][0]["digest"],
        "cf70dabeb1791eb8381cd3f13bd883ad2d413e5d"
    );
    let path = "/cluster/firewall/ipset/fail2ban/1.2.3.4";
    let r = call(&emu, "PUT", path, "comment=c&digest=0000");
    assert_eq!(
        r.status_line,
        "HTTP/1.1 500 detected modified configuration - file changed by other user? Try again."
    );
    let r = call(
        &emu,
        "PUT",
        path,
        "comment=c&nomatch=1&digest=cf70dabeb1791eb8381cd3f13bd883ad2d413e5d",
    );
    assert_eq!(r.status_line, "HTTP/1.1 200 OK");
    assert_eq!(emu.cluster_fw(), "[IPSET fail2ban]\n\n!1.2.3.4 # c\n\n");
    let r = call(&emu, "GET", path, "");
    let d = r.json()["data"].clone();
    assert_eq!(
        (d["nomatch"].clone(), d["comment"].clone()),
        (serde_json::json!(1), serde_json::json!("c"))
    );
    call(&emu, "PUT", path, ""); // omitted fields are cleared
    assert_eq!(emu.cluster_fw(), "[IPSET fail2ban]\n\n1.2.3.4\n\n");
}

#[test]
fn errors_have_pve_reason_phrases_and_close() {
    let emu = start(|_| {});
    let mut c = Client::to(&emu);
    let r = c.req("GET", "/cluster/firewall/ipset/nope", Some(AUTH), "");
    assert_eq!(r.status_line, "HTTP/1.1 500 no such IPSet 'nope'");
    assert_eq!(
        r.body,
        r#"{"data":null,"message":"no such IPSet 'nope'\n"}"#
    );
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed());

    let r = call(&emu, "PUT", "/cluster/firewall/ipset/foo", "");
    assert_eq!(
        r.status_line,
        "HTTP/1.1 501 Method 'PUT /cluster/firewall/ipset/foo' not implemented"
    );
    let r = call(
        &emu,
        "POST",
        "/cluster/firewall/ipset/fail2ban",
        "cidr=1.2.3.4&digest=x",
    );
    assert_eq!(
        r.json()["errors"]["digest"],
        "property is not defined in schema and the schema does not allow additional properties"
    );
    let r = call(
        &emu,
        "POST",
        "/cluster/firewall/ipset/fail2ban",
        "name=other&cidr=1.2.3.4",
    );
    assert_eq!(
        r.json()["errors"]["name"],
        "duplicate parameter (already defined in URI) with conflicting values!"
    );
    let r = call(
        &emu,
        "DELETE",
        "/cluster/firewall/ipset/fail2ban?force=true",
        "",
    );
    assert_eq!(
        r.json()["errors"]["force"],
        "type check ('boolean') failed - got 'true'"
    );

    let mut c = Client::to(&emu);
    let r = c.raw(&format!(
        "DELETE /api2/json/cluster/firewall/ipset/fail2ban/1.2.3.4 HTTP/1.1\r\nAuthorization: {AUTH}\r\nContent-Length: 3\r\n\r\nx=1"
    ));
    assert_eq!(
        r.status_line,
        "HTTP/1.1 501 Unexpected content for method 'DELETE'"
    );
    assert_eq!(
        (r.body.as_str(), r.header("Content-Type")),
        ("Unexpected content for method 'DELETE'", None)
    );
    let r = Client::to(&emu).raw("HEAD /api2/json/version HTTP/1.1\r\n\r\n");
    assert_eq!(r.status_line, "HTTP/1.1 501 method 'HEAD' not available");
    let r = Client::to(&emu)
        .raw("POST /api2/json/version HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(
        r.status_line,
        "HTTP/1.1 501 chunked transfer encoding not supported"
    );
}

#[test]
fn legacy_errors_omit_the_message() {
    let emu = start(|o| o.legacy_errors = true);
    let r = call(&emu, "POST", "/cluster/firewall/ipset/fail2ban", "");
    assert_eq!(
        r.body,
        r#"{"data":null,"errors":{"cidr":"property is missing and it is not optional"}}"#
    );
}

#[test]
fn faults_and_the_size_cap() {
    let emu = start(|o| o.max_file_size = 40);
    emu.fail_next_writes(1, Fault::LockTimeout);
    let set = "/cluster/firewall/ipset/fail2ban";
    let r = call(&emu, "POST", set, "cidr=1.2.3.4");
    assert_eq!(
        r.status_line,
        "HTTP/1.1 500 cfs-lock 'firewall-cluster' error: got lock request timeout"
    );
    assert_eq!(
        call(&emu, "POST", set, "cidr=1.2.3.4").status_line,
        "HTTP/1.1 200 OK"
    );
    let before = emu.cluster_fw();
    let r = call(
        &emu,
        "POST",
        set,
        "cidr=5.6.7.8&comment=this%20is%20far%20too%20long",
    );
    let pid = std::process::id();
    assert_eq!(
        r.status_line,
        format!(
            "HTTP/1.1 500 unable to write '/etc/pve/firewall/cluster.fw.tmp.{pid}' - File too large"
        )
    );
    assert_eq!(emu.cluster_fw(), before);
    emu.fail_next_writes(
        1,
        Fault::Status(500, "cfs-lock 'firewall-cluster' error: no quorum!".into()),
    );
    let r = call(&emu, "DELETE", &format!("{set}/1.2.3.4"), "");
    assert_eq!(
        r.json()["message"],
        "cfs-lock 'firewall-cluster' error: no quorum!\n"
    );
    assert_eq!(emu.write_count(), 1);
    emu.fail_next_writes(1, Fault::Stall(Duration::from_millis(200)));
    let t = Instant::now();
    assert_eq!(
        call(&emu, "DELETE", &format!("{set}/1.2.3.4"), "").status_line,
        "HTTP/1.1 200 OK"
    );
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(emu.write_count(), 2);
}

#[test]
fn upper_case_ipset_names_are_lower_cased_on_reread() {
    let emu = start(|_| {});
    assert_eq!(
        call(
            &emu,
            "POST",
            "/cluster/firewall/ipset",
            "name=MySet&comment=x"
        )
        .status_line,
        "HTTP/1.1 200 OK"
    );
    assert!(emu.cluster_fw().contains("[IPSET MySet] # x\n"));
    let r = call(&emu, "GET", "/cluster/firewall/ipset", "");
    let names: Vec<_> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, ["fail2ban", "myset"]);
    let r = call(&emu, "GET", "/cluster/firewall/ipset/MySet", "");
    assert_eq!(r.status_line, "HTTP/1.1 500 no such IPSet 'MySet'");
}

#[test]
fn aliases_resolve_case_insensitively() {
    let emu = start(|o| o.aliases = vec![("Office".into(), "192.0.2.0/24".into())]);
    let set = "/cluster/firewall/ipset/fail2ban";
    assert_eq!(
        call(&emu, "POST", set, "cidr=dc/office").status_line,
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        call(&emu, "POST", set, "cidr=guest/office").status_line,
        "HTTP/1.1 500 no such alias 'office'"
    );
    assert_eq!(
        call(&emu, "POST", set, "cidr=nosuch").status_line,
        "HTTP/1.1 500 no such alias 'nosuch'"
    );
    assert_eq!(cidrs(&emu), ["dc/office"]);
}

#[test]
fn requests_are_recorded_with_decoded_params() {
    let emu = start(|_| {});
    call(
        &emu,
        "POST",
        "/cluster/firewall/ipset/fail2ban?comment=q",
        "cidr=1.2.3.4%2F32",
    );
    let rec = emu.requests();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].method, "POST");
    assert_eq!(
        rec[0].path,
        "/api2/json/cluster/firewall/ipset/fail2ban?comment=q"
    );
    assert_eq!(
        rec[0].params,
        [
            ("cidr".to_string(), "1.2.3.4/32".to_string()),
            ("comment".into(), "q".into())
        ]
    );
    assert!(rec[0].authorization);
    assert_eq!(
        emu.entries("fail2ban").unwrap()[0].comment.as_deref(),
        Some("q")
    );
}

#[test]
fn pause_refuses_connections_and_resume_reuses_the_port() {
    let emu = start(|_| {});
    let mut open = Client::to(&emu);
    emu.pause();
    assert!(TcpStream::connect(emu.addr()).is_err());
    assert!(open.closed(), "open connections are dropped too");
    emu.resume();
    assert_eq!(
        call(&emu, "GET", "/version", "").status_line,
        "HTTP/1.1 200 OK"
    );
}

#[test]
fn expired_and_self_signed_certificates_can_be_pinned() {
    for tls in [Tls::Expired, Tls::SelfSigned] {
        let emu = start(|o| o.tls = tls);
        assert_eq!(
            call(&emu, "GET", "/version", "").status_line,
            "HTTP/1.1 200 OK"
        );
        assert_eq!(emu.fingerprint().len(), 95);
    }
}

#[test]
fn recorder_receives_only_what_a_trusting_client_sends() {
    let rec = Recorder::start();
    let emu = start(|_| {});
    // A client pinning the emulator refuses the recorder: nothing is sent.
    assert!(connect(rec.addr(), &emu.fingerprint()).is_err());
    std::thread::sleep(Duration::from_millis(50));
    assert!(rec.received().is_empty());
    assert_eq!((rec.handshakes(), rec.connections()), (0, 1));
    // One that pins the recorder completes the handshake and is recorded.
    let mut c = connect(rec.addr(), &rec.fingerprint()).unwrap();
    let r = c.raw(&format!(
        "GET /api2/json/version HTTP/1.1\r\nAuthorization: {AUTH}\r\n\r\n"
    ));
    assert_eq!(r.status_line, "HTTP/1.1 503 recorder");
    let got = String::from_utf8(rec.received()).unwrap();
    assert!(got.contains(AUTH), "{got}");
    assert_eq!(rec.handshakes(), 1);
}

/// A hand-kept `cluster.fw` with options, aliases, a hand-edited `/32`,
/// rules and a security group, and what PVE writes after one add of
/// 203.0.113.8: options validated and rewritten, aliases normalised, the
/// `/32` read as the bare address, rules in PVE's field order, the group
/// kept, full-line comments gone.
const HAND_KEPT: &str = "# edited by hand\n[OPTIONS]\n\nenable: 1\npolicy_in: drop\nbogus_option: 1\n\n\
    [ALIASES]\n\nOffice 192.0.2.0/24 # HQ\nv6host 2001:db8::7/128\n\n\
    [IPSET fail2ban] # bans\n\n203.0.113.7/32 # hand-edited\n198.51.100.0/24\n\n\
    [RULES]\n\nIN DROP -source +dc/fail2ban -log nolog\nIN SSH(ACCEPT) -source office -i vmbr0\n\n\
    [group webservers] # web\n\nIN ACCEPT -p tcp -dport 443\n";
const AS_PVE_WRITES_IT: &str = "[OPTIONS]\n\nenable: 1\npolicy_in: DROP\n\n\
    [ALIASES]\n\nOffice 192.0.2.0/24 # HQ\nv6host 2001:db8::7\n\n\
    [IPSET fail2ban] # bans\n\n198.51.100.0/24\n203.0.113.7 # hand-edited\n203.0.113.8 # ban\n\n\
    [RULES]\n\nIN DROP -source +dc/fail2ban -log nolog\nIN SSH(ACCEPT) -i vmbr0 -source office\n\n\
    [group webservers] # web\n\nIN ACCEPT -p tcp -dport 443\n\n";

/// The hand-kept file's add, as a client sends it: the `/32` entry's
/// address is a duplicate, a new one is written with the whole file.
fn add_to_hand_kept(client: impl Fn() -> Client) {
    let set = "/cluster/firewall/ipset/fail2ban";
    let r = client().req("POST", set, Some(AUTH), "cidr=203.0.113.7");
    assert_eq!(
        r.json()["errors"]["cidr"],
        "address '203.0.113.7' already exists"
    );
    let r = client().req("POST", set, Some(AUTH), "cidr=203.0.113.8&comment=ban");
    assert_eq!(r.status_line, "HTTP/1.1 200 OK", "{}", r.body);
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pve-emulator-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// No temporary file is left beside `cluster.fw`.
fn only_cluster_fw(dir: &std::path::Path) {
    let names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["cluster.fw"]);
}

#[test]
fn cluster_fw_file_is_read_at_start_and_rewritten_as_pve_writes_it() {
    let dir = temp_dir("lib");
    let path = dir.join("cluster.fw");
    std::fs::write(&path, HAND_KEPT).unwrap();
    let emu = start(|o| o.cluster_fw_file = Some(path.clone()));
    add_to_hand_kept(|| Client::to(&emu));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), AS_PVE_WRITES_IT);
    assert_eq!(emu.cluster_fw(), AS_PVE_WRITES_IT);
    only_cluster_fw(&dir);
    // A hand edit through the emulator reaches the file too.
    emu.set_cluster_fw("[IPSET fail2ban]\n\n");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[IPSET fail2ban]\n\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_cluster_fw_file_is_created_from_the_options() {
    let dir = temp_dir("new");
    let path = dir.join("cluster.fw");
    let emu = start(|o| {
        o.cluster_fw_file = Some(path.clone());
        o.firewall_enable = Some(true);
    });
    let expected = "[OPTIONS]\n\nenable: 1\n\n[IPSET fail2ban]\n\n\n";
    assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
    drop(emu);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn binary_with_cluster_fw_keeps_the_file_as_a_node_does() {
    use std::io::BufRead;
    let dir = temp_dir("bin");
    let path = dir.join("cluster.fw");
    std::fs::write(&path, HAND_KEPT).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pve-emulator"))
        .args(["--listen", "127.0.0.1:0", "--quiet", "--auth-delay-ms", "0"])
        .args(["--token", "f2b@pve!ban=s3cret", "--cluster-fw"])
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start pve-emulator");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut field = |prefix: &str| loop {
        let line = lines.next().expect("pve-emulator's banner").unwrap();
        if let Some(rest) = line.strip_prefix(prefix) {
            return rest.trim().to_string();
        }
    };
    let url = field("pve-emulator listening on https://");
    let addr: SocketAddr = url.trim_end_matches("/api2/json").parse().unwrap();
    let fingerprint = field("fingerprint:");
    assert_eq!(field("cluster.fw:"), path.display().to_string());
    add_to_hand_kept(|| connect(addr, &fingerprint).expect("connect"));
    let written = std::fs::read_to_string(&path).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(written, AS_PVE_WRITES_IT);
    only_cluster_fw(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
}
