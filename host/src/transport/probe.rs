//! A look at a node's certificate: a TLS handshake only, then close. No
//! request is sent, so never the token. For `fail2pvefw trust`, `-m`,
//! `doctor` and `init`, which show the certificate before it is trusted.

use super::pins;
use super::tls::{self, PinMismatch, Seen};
use crate::config::Pve;
use crate::error::{Failure, Result};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;

/// The certificate a node presented, and what the configured trust says.
pub struct Presented {
    pub der: Vec<u8>,
    pub fingerprint: [u8; 32],
    /// Why the configured trust (plus stored pins) refuses it; `None` if it accepts it.
    pub refusal: Option<rustls::Error>,
    /// The pins `fail2pvefw trust` stored for this node, which the verdict counted.
    pub stored_pins: Vec<[u8; 32]>,
}

/// Connects and completes a TLS handshake, then closes: no request is sent.
/// The verdict counts the pins stored for the node in `state_dir`.
pub fn probe(pve: &Pve, state_dir: &Path) -> Result<Presented> {
    let stored_pins = pins::load_pins(state_dir, &pve.host)?;
    let seen = Seen::default();
    let config = tls::probe_config(&pve.trust, &stored_pins, &seen)
        .map_err(|e| Failure::config(format!("cannot set up TLS: {e}")))?;
    handshake(pve, Arc::new(config))?;
    let der = seen
        .certificate()
        .ok_or_else(|| Failure::pve(format!("PVE at {} presented no certificate", pve.host)))?;
    Ok(Presented {
        fingerprint: tls::sha256(&der),
        der,
        refusal: seen.rejection(),
        stored_pins,
    })
}

fn handshake(pve: &Pve, config: Arc<rustls::ClientConfig>) -> Result<()> {
    let at = &pve.host;
    let name = rustls::pki_types::ServerName::try_from(at.host.clone())
        .map_err(|e| Failure::config(format!("[pve] host '{}': {e}", at.host)))?;
    let mut conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| Failure::config(format!("cannot set up TLS: {e}")))?;
    let mut sock = connect(pve)?;
    let failed = |e: std::io::Error| {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            Failure::pve(format!("PVE at {at} did not answer in time"))
        } else {
            Failure::pve(format!("TLS handshake with {at} failed: {e}"))
        }
    };
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(failed)?;
    }
    // Only a close_notify alert goes out after the handshake: no data.
    conn.send_close_notify();
    while conn.wants_write() {
        if conn.write_tls(&mut sock).is_err() {
            break;
        }
    }
    Ok(())
}

fn connect(pve: &Pve) -> Result<TcpStream> {
    let at = &pve.host;
    let unreachable = |why: String| {
        Failure::pve(format!("cannot connect to PVE at {at}: {why}")).hint(
            "Check [pve] host, that pveproxy runs on the node, and that a firewall lets this machine reach it.",
        )
    };
    let addrs: Vec<SocketAddr> = (at.host.as_str(), at.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .collect();
    let mut why = "the name has no address".to_string();
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, pve.timeout) {
            Ok(sock) => {
                let _ = sock.set_read_timeout(Some(pve.timeout));
                let _ = sock.set_write_timeout(Some(pve.timeout));
                return Ok(sock);
            }
            Err(e) => why = e.to_string(),
        }
    }
    Err(unreachable(why))
}

/// What the admin sees before deciding.
pub struct Details {
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    pub names: Vec<String>,
}

pub fn details(der: &[u8]) -> Option<Details> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|name| match name {
                    GeneralName::DNSName(dns) => dns.to_string(),
                    GeneralName::IPAddress(ip) => ip_text(ip),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Details {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap()).to_string(),
        16 => std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap()).to_string(),
        _ => format!("{bytes:02x?}"),
    }
}

/// Why the trust refused a presented certificate, in words.
pub fn why_refused(err: &rustls::Error) -> String {
    match err {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other))
            if other.0.downcast_ref::<PinMismatch>().is_some() =>
        {
            "its fingerprint is not in [pve] fingerprint".into()
        }
        rustls::Error::InvalidCertificate(e) => tls::describe_certificate_error(e),
        rustls::Error::General(why) => why.clone(),
        other => other.to_string(),
    }
}
