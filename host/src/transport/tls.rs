//! Whom we trust for PVE's certificate, decided inside the TLS handshake.
//!
//! Verification happens in a rustls certificate verifier, so a server that
//! fails it never receives a request byte, and so never the API token. Pins
//! compare the SHA-256 of the leaf certificate (what the PVE GUI shows); the
//! handshake signature is still checked with the leaf's key, or a replayed
//! public certificate would pass.
//!
//! The rule: a certificate is accepted when its fingerprint is one of the
//! configured `fingerprint` list or of the pins `fail2pvefw trust` stored for
//! this host, or else when the configured chain check (`ca_file`, or the
//! system's roots when neither is set) accepts it.
//!
//! Over 400 lines with its tests: the trust verifier and the probe's share
//! the signature checks, and the words for a refused certificate stay beside
//! the checks that refuse it; the code alone is under 400.

use crate::config::{Trust, format_fingerprint};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::{Arc, Mutex};

/// What the verifier saw and decided, so an error can show the presented
/// certificate and why it was refused. (The HTTP stack buries the TLS error
/// in layers of io errors; asking the verifier is exact.)
#[derive(Clone, Debug, Default)]
pub struct Seen(Arc<Mutex<Verdict>>);

#[derive(Clone, Debug, Default)]
struct Verdict {
    certificate: Option<Vec<u8>>,
    rejection: Option<rustls::Error>,
}

impl Seen {
    /// The SHA-256 fingerprint of the last leaf certificate presented, GUI style.
    pub fn fingerprint(&self) -> Option<String> {
        let der = self.certificate()?;
        Some(format_fingerprint(&sha256(&der)))
    }

    /// The last leaf certificate presented, DER.
    pub fn certificate(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap().certificate.clone()
    }

    /// Why the last certificate was refused, if it was.
    pub fn rejection(&self) -> Option<rustls::Error> {
        self.0.lock().unwrap().rejection.clone()
    }

    /// Forgets the last verdict, before a new request.
    pub fn clear(&self) {
        *self.0.lock().unwrap() = Verdict::default();
    }

    fn record(&self, der: &[u8], result: &Result<ServerCertVerified, rustls::Error>) {
        let mut verdict = self.0.lock().unwrap();
        verdict.certificate = Some(der.to_vec());
        verdict.rejection = result.as_ref().err().cloned();
    }
}

pub fn provider() -> Arc<CryptoProvider> {
    // ring, not aws-lc: aws-lc's first handshake costs ~30 ms of CPU per
    // process, and fail2ban starts us for every ban.
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// Builds the client TLS configuration for `trust` plus the `stored` pins.
pub fn client_config(
    trust: &Trust,
    stored: &[[u8; 32]],
    seen: &Seen,
) -> Result<ClientConfig, String> {
    let verifier = TrustVerifier::new(trust, stored, seen.clone(), Mode::Enforce)?;
    build(Arc::new(verifier))
}

/// A configuration for looking at the certificate without trusting it:
/// every certificate completes the handshake (its signature still checked),
/// and `seen` holds what the real trust would have said. Only for `trust`,
/// which sends nothing over the connection.
pub fn probe_config(
    trust: &Trust,
    stored: &[[u8; 32]],
    seen: &Seen,
) -> Result<ClientConfig, String> {
    let verifier = TrustVerifier::new(trust, stored, seen.clone(), Mode::RecordOnly)?;
    build(Arc::new(verifier))
}

fn build(verifier: Arc<dyn ServerCertVerifier>) -> Result<ClientConfig, String> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(config)
}

fn load_ca_file(path: &std::path::Path) -> Result<RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read ca_file '{}': {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file '{}' is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("ca_file '{}' holds no certificate", path.display()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("ca_file '{}': {e}", path.display()))?;
    }
    Ok(roots)
}

/// The chain check besides the pins.
#[derive(Debug)]
enum Chain {
    /// Pins only.
    None,
    Verifier(Arc<dyn ServerCertVerifier>),
    /// The system's roots could not be loaded: refused in the handshake,
    /// so that stored pins still work on a machine without a CA bundle.
    Unavailable(String),
}

fn chain_verifier(trust: &Trust, provider: &Arc<CryptoProvider>) -> Result<Chain, String> {
    match trust {
        Trust::Pins(_) => Ok(Chain::None),
        Trust::CaFile(path) => {
            let roots = load_ca_file(path)?;
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("cannot use ca_file '{}': {e}", path.display()))?;
            Ok(Chain::Verifier(inner))
        }
        // On Linux: the PEM bundle Debian's ca-certificates maintains (or
        // $SSL_CERT_FILE / $SSL_CERT_DIR), checked with webpki; offline.
        Trust::SystemRoots => Ok(
            match rustls_platform_verifier::Verifier::new(provider.clone()) {
                Ok(verifier) => Chain::Verifier(Arc::new(verifier)),
                Err(e) => {
                    Chain::Unavailable(format!("cannot load the system's root certificates: {e}"))
                }
            },
        ),
    }
}

/// The error a pin mismatch raises inside rustls; the client and the probe
/// turn it into words.
#[derive(Debug)]
pub struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certificate fingerprint does not match the pinned one")
    }
}

impl std::error::Error for PinMismatch {}

/// Accepts a pinned leaf, else what the chain check accepts (see the module doc).
#[derive(Debug)]
struct TrustVerifier {
    pins: Vec<[u8; 32]>,
    chain: Chain,
    provider: Arc<CryptoProvider>,
    seen: Seen,
    mode: Mode,
}

/// What the verifier does with its verdict on the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Refuses an untrusted certificate: the connection every request uses.
    Enforce,
    /// Records the verdict in `seen` and lets the handshake finish (the
    /// signature is still checked): only for `trust`, which sends nothing.
    RecordOnly,
}

impl TrustVerifier {
    fn new(
        trust: &Trust,
        stored: &[[u8; 32]],
        seen: Seen,
        mode: Mode,
    ) -> Result<TrustVerifier, String> {
        let provider = provider();
        let mut pins = match trust {
            Trust::Pins(pins) => pins.clone(),
            _ => Vec::new(),
        };
        pins.extend_from_slice(stored);
        Ok(TrustVerifier {
            pins,
            chain: chain_verifier(trust, &provider)?,
            provider,
            seen,
            mode,
        })
    }

    fn judge(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // A pin names one certificate exactly, so host names, issuers and
        // dates do not matter: PVE's default node certificate is for the
        // node's own names, which the admin may not use to reach it.
        let presented = sha256(end_entity);
        if self.pins.contains(&presented) {
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chain {
            Chain::Verifier(chain) => {
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            }
            Chain::Unavailable(why) => Err(rustls::Error::General(why.clone())),
            Chain::None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch))),
            )),
        }
    }
}

impl ServerCertVerifier for TrustVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = self.judge(end_entity, intermediates, server_name, ocsp, now);
        self.seen.record(end_entity, &result);
        match self.mode {
            Mode::Enforce => result,
            Mode::RecordOnly => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signature12(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        signature13(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes(&self.provider)
    }
}

// The handshake signature proves the server holds the leaf's key; webpki's
// verifier does exactly this too, so pins and chains check it alike.
fn signature12(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls12_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

fn signature13(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    verify_tls13_signature(
        message,
        cert,
        dss,
        &provider.signature_verification_algorithms,
    )
}

fn schemes(provider: &CryptoProvider) -> Vec<SignatureScheme> {
    provider
        .signature_verification_algorithms
        .supported_schemes()
}

/// Why a certificate failed the chain check, in words.
pub fn describe_certificate_error(err: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match err {
        E::Expired => "it has expired".into(),
        E::ExpiredContext { time, not_after } => format!(
            "it expired at {} (now {})",
            unix_to_utc(not_after.as_secs()),
            unix_to_utc(time.as_secs())
        ),
        E::NotValidYet => "it is not valid yet".into(),
        E::NotValidYetContext { time, not_before } => format!(
            "it is valid only from {} (now {})",
            unix_to_utc(not_before.as_secs()),
            unix_to_utc(time.as_secs())
        ),
        E::UnknownIssuer => "it is signed by an unknown issuer".into(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "it is not issued for this host name".into()
        }
        other => format!("{other:?}"),
    }
}

/// `2025-01-31 12:00:00 UTC`, for certificate dates.
pub fn unix_to_utc(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(v: &TrustVerifier, der: &[u8]) -> Result<ServerCertVerified, rustls::Error> {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        v.verify_server_cert(&CertificateDer::from(der), &[], &name, &[], UnixTime::now())
    }

    #[test]
    fn stored_pin_adds_to_configured_pins() {
        let der = b"not really a certificate";
        let seen = Seen::default();
        let config_only = TrustVerifier::new(
            &Trust::Pins(vec![[1; 32]]),
            &[],
            seen.clone(),
            Mode::Enforce,
        )
        .unwrap();
        assert!(verify(&config_only, der).is_err());
        assert!(seen.rejection().is_some());
        let with_stored = TrustVerifier::new(
            &Trust::Pins(vec![[1; 32]]),
            &[sha256(der)],
            seen.clone(),
            Mode::Enforce,
        )
        .unwrap();
        assert!(verify(&with_stored, der).is_ok());
        assert!(seen.rejection().is_none());
        assert_eq!(seen.fingerprint(), Some(format_fingerprint(&sha256(der))));
    }

    #[test]
    fn stored_pin_overrides_a_refusing_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let emu = pve_emulator::Emulator::start(pve_emulator::Options::default());
        std::fs::write(&ca, emu.ca_pem()).unwrap();
        let der = b"garbage that no CA signed";
        let trust = Trust::CaFile(ca);
        let refusing = TrustVerifier::new(&trust, &[], Seen::default(), Mode::Enforce).unwrap();
        assert!(verify(&refusing, der).is_err());
        let pinned =
            TrustVerifier::new(&trust, &[sha256(der)], Seen::default(), Mode::Enforce).unwrap();
        assert!(verify(&pinned, der).is_ok());
    }
}
