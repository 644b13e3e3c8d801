//! Whom we trust for PVE's certificate, decided inside the TLS handshake.
//!
//! Verification happens in a rustls certificate verifier, so a server that
//! fails it never receives a request byte, and so never the API token. Pins
//! compare the SHA-256 of the leaf certificate (what the PVE GUI shows); the
//! handshake signature is still checked with the leaf's key, or a replayed
//! public certificate would pass.

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

/// Builds the client TLS configuration for `trust`.
pub fn client_config(trust: &Trust, seen: &Seen) -> Result<ClientConfig, String> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match trust {
        Trust::Pins(pins) => Arc::new(PinVerifier {
            pins: pins.clone(),
            provider: provider.clone(),
            seen: seen.clone(),
        }),
        Trust::CaFile(path) => {
            let roots = load_ca_file(path)?;
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("cannot use ca_file '{}': {e}", path.display()))?;
            Arc::new(Recording {
                inner,
                seen: seen.clone(),
            })
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
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

/// Accepts exactly the pinned leaf certificates.
#[derive(Debug)]
struct PinVerifier {
    pins: Vec<[u8; 32]>,
    provider: Arc<CryptoProvider>,
    seen: Seen,
}

/// The error a pin mismatch raises inside rustls; `pve` turns it into words.
#[derive(Debug)]
pub struct PinMismatch;

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("certificate fingerprint does not match the pinned one")
    }
}

impl std::error::Error for PinMismatch {}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // A pin names one certificate exactly, so host names and issuers do
        // not matter: PVE's default node certificate is for the node's own
        // names, which the admin may not use to reach it.
        let presented = sha256(end_entity);
        let result = if self.pins.iter().any(|pin| *pin == presented) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch))),
            ))
        };
        self.seen.record(end_entity, &result);
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A standard verifier that also remembers what it saw, for error messages.
#[derive(Debug)]
struct Recording {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    seen: Seen,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        self.seen.record(end_entity, &result);
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
