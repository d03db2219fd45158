//! Certificate pinning for `cmdb --url`: the first certificate a master
//! presents is recorded (trust on first use, as the minion pins the master
//! key); a different one later is refused with both fingerprints named.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use master::api::tls::fingerprint;

/// The fingerprint pinned for `authority` in `known`, if any.
pub fn pinned(known: &Path, authority: &str) -> Option<String> {
    let text = std::fs::read_to_string(known).ok()?;
    text.lines().find_map(|l| {
        let (a, fp) = l.split_once(' ')?;
        (a == authority).then(|| fp.trim().to_owned())
    })
}

fn record(known: &Path, authority: &str, fp: &str) -> std::io::Result<()> {
    if let Some(dir) = known.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(known)?;
    writeln!(f, "{authority} {fp}")
}

/// What a certificate is checked against.
#[derive(Debug)]
enum Pin {
    /// The pin recorded for `authority` in `known` (recorded on first use).
    Known {
        /// `host:port`.
        authority: String,
        /// The file of pins.
        known: PathBuf,
    },
    /// Exactly this fingerprint.
    Exact(String),
}

/// Checks the master's certificate against its pin.
#[derive(Debug)]
pub struct PinVerifier {
    pin: Pin,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let fp = fingerprint(end_entity);
        let (authority, known) = match &self.pin {
            Pin::Exact(want) if *want == fp => return Ok(ServerCertVerified::assertion()),
            Pin::Exact(want) => {
                return Err(rustls::Error::General(format!(
                    "certificate {fp} is not the pinned {want}"
                )));
            }
            Pin::Known { authority, known } => (authority, known),
        };
        match pinned(known, authority) {
            Some(p) if p == fp => Ok(ServerCertVerified::assertion()),
            Some(p) => Err(rustls::Error::General(format!(
                "the certificate of {authority} changed: pinned {p}, presented {fp}; if the \
                 master's certificate was replaced on purpose, remove its line from {}",
                known.display()
            ))),
            None => {
                record(known, authority, &fp).map_err(|e| {
                    rustls::Error::General(format!(
                        "cannot record the pin in {}: {e}",
                        known.display()
                    ))
                })?;
                eprintln!("cmdb: pinned the certificate of {authority} ({fp})");
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS connector that pins the certificate of `authority` in `known`.
pub fn connector(authority: &str, known: &Path) -> std::io::Result<tokio_rustls::TlsConnector> {
    with_pin(Pin::Known {
        authority: authority.to_owned(),
        known: known.to_owned(),
    })
}

/// A TLS connector that accepts only the certificate with `fingerprint`
/// (as the master logs it).
pub fn exact_connector(fingerprint: &str) -> std::io::Result<tokio_rustls::TlsConnector> {
    with_pin(Pin::Exact(fingerprint.to_owned()))
}

fn with_pin(pin: Pin) -> std::io::Result<tokio_rustls::TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinVerifier {
        pin,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
