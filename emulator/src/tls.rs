//! Server certificates shaped like PVE's (§12.1) and the rustls set-up.
//! Keys are ECDSA P-256 rather than PVE's RSA: rcgen with ring cannot make
//! RSA keys, and nothing a client pins depends on the key type.

use crate::clock;
use crate::options::Tls;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, date_time_ymd,
};
use rustls::ServerConfig;
use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;

/// What the server presents, plus what tests need to trust or pin it.
pub(crate) struct Identity {
    pub leaf_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub ca_pem: String,
}

/// The node name in the leaf's CN and SANs.
const NODE: &str = "pve-emulator";

fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .expect("random");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Years are validity windows relative to today: PVE's CA lasts 10 years,
/// its node certificate at most 2.
fn params(sans: &[&str], from: (i64, u32, u32), years: i64) -> CertificateParams {
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).expect("certificate parameters");
    let (y, m, d) = from;
    p.not_before = date_time_ymd(y as i32, m as u8, d.min(28) as u8);
    p.not_after = date_time_ymd((y + years) as i32, m as u8, d.min(28) as u8);
    p
}

fn leaf_params(from: (i64, u32, u32), years: i64) -> CertificateParams {
    let mut p = params(&["127.0.0.1", "::1", "localhost", NODE], from, years);
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationalUnitName, "PVE Cluster Node");
    dn.push(DnType::OrganizationName, "Proxmox Virtual Environment");
    dn.push(DnType::CommonName, format!("{NODE}.localdomain"));
    p.distinguished_name = dn;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p
}

impl Identity {
    pub fn generate(tls: &Tls) -> Identity {
        let (y, m, d) = clock::today();
        let yesterday = (y, m, d.saturating_sub(1).max(1));
        match tls {
            Tls::CaSigned => Self::ca_signed(leaf_params(yesterday, 2)),
            Tls::Expired => Self::ca_signed(leaf_params((2019, 1, 1), 2)),
            Tls::SelfSigned => {
                let key = KeyPair::generate().expect("key");
                let cert = leaf_params(yesterday, 2)
                    .self_signed(&key)
                    .expect("self-sign");
                Identity {
                    leaf_der: cert.der().to_vec(),
                    key_der: key.serialize_der(),
                    ca_pem: cert.pem(),
                }
            }
            Tls::Custom {
                cert_chain_der,
                key_der,
            } => Identity {
                leaf_der: cert_chain_der
                    .first()
                    .expect("Tls::Custom needs a certificate")
                    .clone(),
                key_der: key_der.clone(),
                ca_pem: pem("CERTIFICATE", cert_chain_der.last().unwrap()),
            },
        }
    }

    /// A throw-away `pve-root-ca` and a leaf it signs (§12.1).
    fn ca_signed(leaf: CertificateParams) -> Identity {
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = params(&[], clock::today(), 10);
        ca.not_before = date_time_ymd(2018, 1, 1); // also covers Tls::Expired
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "Proxmox Virtual Environment");
        let h = random_hex(16);
        let uuid = format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        );
        dn.push(DnType::OrganizationalUnitName, uuid);
        dn.push(DnType::OrganizationName, "PVE Cluster Manager CA");
        ca.distinguished_name = dn;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("key");
        let cert = leaf.signed_by(&key, &issuer).expect("leaf");
        Identity {
            leaf_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            ca_pem: ca_cert.pem(),
        }
    }

    /// A self-signed certificate with an arbitrary CN, for the recorder.
    pub fn self_signed_named(cn: &str) -> Identity {
        let (y, m, d) = clock::today();
        let mut p = params(
            &["127.0.0.1", "::1", "localhost"],
            (y, m, d.saturating_sub(1).max(1)),
            1,
        );
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name.push(DnType::CommonName, cn);
        let key = KeyPair::generate().expect("key");
        let cert = p.self_signed(&key).expect("self-sign");
        Identity {
            leaf_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            ca_pem: cert.pem(),
        }
    }
}

/// The ring provider: aws-lc's per-process start-up cost is what fail2pvefw
/// avoids (DESIGN.md), and the emulator should not pull it in either.
pub(crate) fn server_config(id: &Identity) -> Arc<ServerConfig> {
    let key = PrivateKeyDer::try_from(id.key_der.clone()).expect("private key DER");
    // Only the leaf is sent, as pveproxy does (§12.1).
    let chain = vec![CertificateDer::from(id.leaf_der.clone())];
    let config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key");
    Arc::new(config)
}

/// `AA:BB:…`: SHA-256 of the DER, upper-case hex pairs joined by `:` (§12.2).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// PEM armour with 64-column base64.
pub fn pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            let c = if i <= chunk.len() {
                B64[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            };
            b64.push(c as char);
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out += std::str::from_utf8(line).unwrap();
        out += "\n";
    }
    out + &format!("-----END {label}-----\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_format() {
        let fp = fingerprint(b"abc");
        assert_eq!(fp.len(), 95);
        assert!(fp.starts_with("BA:78:16:BF:8F:01:CF:EA"));
    }

    #[test]
    fn pem_matches_rcgen() {
        let id = Identity::self_signed_named("x");
        assert_eq!(pem("CERTIFICATE", &id.leaf_der), id.ca_pem);
        assert_eq!(
            pem("X", b"ab"),
            "-----BEGIN X-----\nYWI=\n-----END X-----\n"
        );
    }

    #[test]
    fn all_kinds_build() {
        for kind in [Tls::CaSigned, Tls::SelfSigned, Tls::Expired] {
            let id = Identity::generate(&kind);
            server_config(&id);
            assert!(id.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        }
    }
}
