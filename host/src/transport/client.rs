//! The HTTPS client for the PVE REST API.
//!
//! One keep-alive connection per process, the token header marked sensitive,
//! no proxy (the token goes to the configured node and nowhere else), and
//! transport failures turned into messages that name the host and the fix.

use super::pins;
use super::tls::{self, PinMismatch, Seen, describe_certificate_error};
use crate::config::{self, HostPort, Trust, format_fingerprint};
use crate::error::Failure;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use std::io::Read;
use std::path::Path;

/// PVE's JSON answers are small; `cluster.fw` itself is capped at 1 MiB.
const MAX_BODY: u64 = 16 * 1024 * 1024;

/// The PVE API, on the configured node and its fallbacks (`[pve] hosts`):
/// a transport failure on one node moves on to the next. Safe for writes:
/// an add that landed before the failure answers "already exists" on the
/// next node, which counts as success, and a delete is idempotent.
pub struct Client {
    nodes: Vec<Node>,
    /// The node that answered last; later requests start there.
    current: std::cell::Cell<usize>,
}

impl Client {
    /// A client for `pve.host` and its fallbacks, each node trusting what
    /// the config says plus the pins `fail2pvefw trust` stored for it in
    /// `state_dir`. A bad pin file fails here, where the pins are needed.
    pub fn new(pve: &config::Pve, state_dir: &Path) -> Result<Client, Failure> {
        let mut nodes = Vec::new();
        for host in std::iter::once(&pve.host).chain(&pve.fallbacks) {
            let stored_pins = pins::load_pins(state_dir, host)?;
            nodes.push(Node::new(pve, host, stored_pins)?);
        }
        Ok(Client {
            nodes,
            current: std::cell::Cell::new(0),
        })
    }

    /// Sends one request to the current node, then to the others in turn
    /// while the transport fails. `path` follows `/api2/json` and is
    /// already percent-encoded; `params` go in the query (GET, DELETE) or a
    /// form body. With every node failing, the first failure is reported.
    pub fn request(&self, method: &str, path: &str, params: &[(String, String)]) -> Outcome {
        let start = self.current.get();
        let mut first_failure = None;
        for step in 0..self.nodes.len() {
            let index = (start + step) % self.nodes.len();
            let node = &self.nodes[index];
            match node.request(method, path, params) {
                Outcome::Response(r) => {
                    self.current.set(index);
                    return Outcome::Response(r);
                }
                Outcome::Failed(failure) => {
                    if self.nodes.len() > 1 {
                        crate::log::warn(&format!("{}; trying the next node", failure.message));
                    }
                    first_failure.get_or_insert(failure);
                }
            }
        }
        Outcome::Failed(first_failure.expect("at least one node"))
    }

    /// The presented certificate of the last handshake, if any.
    pub fn seen(&self) -> &Seen {
        &self.nodes[self.current.get()].seen
    }
}

/// One PVE node: its HTTPS client, trust and address.
struct Node {
    http: reqwest::blocking::Client,
    base: String,
    auth: HeaderValue,
    endpoint: HostPort,
    trust: Trust,
    /// Pins stored by `fail2pvefw trust`, for messages.
    stored_pins: Vec<[u8; 32]>,
    /// What the hints tell the admin to run to pin a presented certificate.
    trust_command: String,
    seen: Seen,
}

/// A response of any status.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// PVE puts its error text in the reason phrase.
    pub reason: String,
    pub body: String,
}

pub enum Outcome {
    Response(HttpResponse),
    /// No response: with what went wrong and what to do.
    Failed(Failure),
}

impl Node {
    /// The node at `host`, with `pve`'s token, trust and timeout.
    fn new(
        pve: &config::Pve,
        host: &HostPort,
        stored_pins: Vec<[u8; 32]>,
    ) -> Result<Node, Failure> {
        let seen = Seen::default();
        let tls = tls::client_config(&pve.trust, &stored_pins, &seen).map_err(Failure::config)?;
        let http = reqwest::blocking::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .timeout(pve.timeout)
            .connect_timeout(pve.timeout)
            .pool_max_idle_per_host(1)
            .user_agent(concat!("fail2pvefw/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::config(format!("cannot set up the HTTPS client: {e}")))?;
        let mut auth = HeaderValue::from_str(&pve.token.header_value()).map_err(|_| {
            Failure::config("the API token holds characters not allowed in an HTTP header")
        })?;
        // Keeps it out of any debug output of the HTTP stack.
        auth.set_sensitive(true);
        Ok(Node {
            http,
            base: format!("{}/api2/json", host.origin()),
            auth,
            endpoint: host.clone(),
            trust: pve.trust.clone(),
            stored_pins,
            trust_command: pve.trust_command.clone(),
            seen,
        })
    }

    fn request(&self, method: &str, path: &str, params: &[(String, String)]) -> Outcome {
        self.seen.clear();
        let url = format!("{}{}", self.base, path);
        let builder = match method {
            "GET" => self.http.get(&url).query(params),
            "DELETE" => self.http.delete(&url).query(params),
            "POST" => self.http.post(&url).form(params),
            "PUT" => self.http.put(&url).form(params),
            other => {
                return Outcome::Failed(Failure::config(format!(
                    "method '{other}' is not supported"
                )));
            }
        };
        match builder.header(AUTHORIZATION, self.auth.clone()).send() {
            Ok(response) => match read_response(response) {
                Ok(r) => Outcome::Response(r),
                Err(e) => Outcome::Failed(self.transport_failure(&e)),
            },
            Err(e) => Outcome::Failed(self.transport_failure(&e)),
        }
    }

    fn transport_failure(&self, err: &reqwest::Error) -> Failure {
        let at = &self.endpoint;
        if let Some(tls) = self.seen.rejection() {
            return self.tls_failure(&tls);
        }
        if let Some(tls) = find_rustls_error(err) {
            return self.tls_failure(tls);
        }
        if err.is_timeout() {
            return Failure::pve(format!("PVE at {at} did not answer in time"))
                .hint("Check that the node is up and that port 8006 is open from here; raise [pve] timeout if it is just slow.");
        }
        if err.is_connect() {
            return Failure::pve(format!("cannot connect to PVE at {at}: {}", root_cause(err)))
                .hint("Check [pve] host, that pveproxy runs on the node, and that a firewall lets this machine reach it.");
        }
        Failure::pve(format!(
            "request to PVE at {at} failed: {}",
            root_cause(err)
        ))
    }

    fn tls_failure(&self, err: &rustls::Error) -> Failure {
        let at = &self.endpoint;
        let trust = &self.trust_command;
        let presented = self.seen.fingerprint().unwrap_or_else(|| "(none)".into());
        match err {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
                if other.0.downcast_ref::<PinMismatch>().is_some() =>
            {
                let configured = match &self.trust {
                    Trust::Pins(pins) => pins.as_slice(),
                    Trust::CaFile(_) | Trust::SystemRoots => &[],
                };
                let expected = configured
                    .iter()
                    .chain(&self.stored_pins)
                    .map(|p| format_fingerprint(p))
                    .collect::<Vec<_>>()
                    .join("\n             ");
                Failure::pve(format!(
                    "the certificate of {at} does not match the pinned fingerprint; nothing was sent\n  expected:  {expected}\n  presented: {presented}"
                ))
                .hint(format!("If the node certificate was renewed, compare the presented fingerprint with node → System → Certificates in the PVE GUI. If it matches, put it into [pve] fingerprint (a list keeps the old one during a rollover), or review and trust it with:\n  {trust}"))
            }
            rustls::Error::InvalidCertificate(cert_err) => {
                let why = describe_certificate_error(cert_err);
                let hint = match cert_err {
                    rustls::CertificateError::UnknownIssuer => format!(
                        "PVE node certificates are signed by the cluster's own CA, not a public one: set [pve] ca_file to a copy of /etc/pve/pve-root-ca.pem, pin the certificate with [pve] fingerprint, or review and trust it with:\n  {trust}"
                    ),
                    rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. } => format!(
                        "Use a host name or address the certificate was issued for, pin the certificate with [pve] fingerprint, or review and trust it with:\n  {trust}"
                    ),
                    _ => format!(
                        "Renew the node certificate (node → System → Certificates in the PVE GUI, or `pvecm updatecerts --force` on the node). Until then, a pin accepts it whatever its dates: [pve] fingerprint, or:\n  {trust}"
                    ),
                };
                Failure::pve(format!(
                    "the certificate of {at} is not trusted: {why}; nothing was sent\n  presented: {presented}"
                ))
                .hint(hint)
            }
            // Only the system roots fail this way (see `tls::Chain`).
            rustls::Error::General(why) if self.trust == Trust::SystemRoots => {
                Failure::config(format!("{why}; nothing was sent to {at}"))
                    .hint(format!("Without [pve] fingerprint or ca_file, the system's root CAs decide: install Debian's ca-certificates package, set [pve] ca_file to a copy of /etc/pve/pve-root-ca.pem, or review and trust the certificate with:\n  {trust}"))
            }
            other => Failure::pve(format!("TLS with {at} failed: {other}; nothing was sent")),
        }
    }
}

fn read_response(response: reqwest::blocking::Response) -> Result<HttpResponse, reqwest::Error> {
    let status = response.status();
    let reason = response
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
        .or_else(|| status.canonical_reason().map(str::to_string))
        .unwrap_or_default();
    let mut bytes = Vec::new();
    let mut limited = response.take(MAX_BODY);
    // A body cut short still has its status and reason, which say enough.
    let _ = limited.read_to_end(&mut bytes);
    Ok(HttpResponse {
        status: status.as_u16(),
        reason,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Finds rustls's own error in reqwest's chain (it is wrapped in io errors).
fn find_rustls_error<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls);
        }
        current = e.source();
    }
    None
}

/// The innermost cause: "Connection refused (os error 111)" beats reqwest's
/// "error sending request for url (…)".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
