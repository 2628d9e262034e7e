//! The appliance asks its own HTTPS listener for a page, as a reader would, before the slot
//! it runs from is marked good: the TLS handshake, the certificate, the site and the health
//! path, end to end.
//!
//! The certificate is checked against the one the appliance serves (`CertResolver`), not
//! against a CA: a fresh slot must be judged on whether it serves, not on whether the
//! certificate it was given chains to a root in its store (an ACME order may still be on its
//! way). Signatures are still verified: the handshake is a real one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tls::CertResolver;

/// Why the listener did not answer as a reader expects.
#[derive(Debug, thiserror::Error)]
pub enum SelfCheckError {
    #[error("connecting to {0}: {1}")]
    Connect(SocketAddr, std::io::Error),
    #[error("TLS with {0}: {1}")]
    Tls(String, std::io::Error),
    #[error("{0} is not a host name a certificate can name")]
    Name(String),
    #[error("GET {0}: {1}")]
    Request(String, std::io::Error),
    #[error("GET {0}: answered {1:?}")]
    Status(String, String),
    #[error("GET {0}: no answer within {1:?}")]
    Timeout(String, Duration),
}

const TIMEOUT: Duration = Duration::from_secs(15);

/// `GET path` on `addr` over HTTPS as `host`; `Ok` when its status is in `wanted` (the
/// health path must answer 200; a site's front page may redirect).
pub async fn get_ok(
    addr: SocketAddr,
    host: &str,
    path: &str,
    wanted: std::ops::RangeInclusive<u16>,
    certs: &Arc<CertResolver>,
) -> Result<(), SelfCheckError> {
    tokio::time::timeout(TIMEOUT, get(addr, host, path, wanted, certs))
        .await
        .map_err(|_| SelfCheckError::Timeout(path.to_owned(), TIMEOUT))?
}

async fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    wanted: std::ops::RangeInclusive<u16>,
    certs: &Arc<CertResolver>,
) -> Result<(), SelfCheckError> {
    let provider = crate::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SelfCheckError::Tls(host.to_owned(), std::io::Error::other(e)))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ServedLeaf {
            certs: certs.clone(),
            provider,
        }))
        .with_no_client_auth();
    let name =
        ServerName::try_from(host.to_owned()).map_err(|_| SelfCheckError::Name(host.to_owned()))?;
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| SelfCheckError::Connect(addr, e))?;
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| SelfCheckError::Tls(host.to_owned(), e))?;
    // Counted as a health check, never as a reader (`live::classify`).
    let agent = crate::live::classify::SELF_CHECK_AGENT;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n"
    );
    let request_err = |e| SelfCheckError::Request(path.to_owned(), e);
    tls.write_all(request.as_bytes())
        .await
        .map_err(request_err)?;
    // The status line is all that is read: the rest of the answer is dropped with the
    // connection.
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() && !head[..len].contains(&b'\n') {
        let n = tls.read(&mut head[len..]).await.map_err(request_err)?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let line = String::from_utf8_lossy(&head[..len]);
    let line = line.lines().next().unwrap_or_default().trim().to_owned();
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok());
    if status.is_some_and(|s| wanted.contains(&s)) {
        Ok(())
    } else {
        Err(SelfCheckError::Status(path.to_owned(), line))
    }
}

/// Trusts exactly the leaf certificate the appliance serves (module doc).
#[derive(Debug)]
struct ServedLeaf {
    certs: Arc<CertResolver>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for ServedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.certs.serves_leaf(end_entity.as_ref()) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the listener presented a certificate the appliance does not serve".into(),
            ))
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

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
