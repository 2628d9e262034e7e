//! The time from an HTTPS server's `Date` header, for a Pi whose site blocks NTP.
//!
//! The catch is that checking a certificate needs the time, and the time is what is missing:
//! a Pi powered off for months boots with its clock months behind, when the server's
//! certificate may be "not yet valid". So the chain and the name are verified as always
//! (signatures up to a trusted root, the host's name), but *at a moment inside the leaf's own
//! validity* rather than at the local clock, as tlsdate did; and the `Date` is then accepted
//! only if it falls inside that validity. An attacker on the path therefore needs a
//! certificate for the host that a trusted CA once issued, and even then can only move the
//! clock within its lifetime. Plain HTTP is refused: its `Date` could be anyone's.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// Longest one query may take (connect, handshake, answer).
const QUERY_TIMEOUT: Duration = Duration::from_secs(15);

/// What one query found.
#[derive(Debug, Clone, Copy)]
pub struct DateReading {
    /// The server's `Date`.
    pub server: SystemTime,
    /// The local clock halfway through the request (the `Date` is stamped about then).
    pub local: SystemTime,
}

impl DateReading {
    /// Server minus local, in seconds (positive: the local clock is behind).
    pub fn offset_seconds(&self) -> f64 {
        match self.server.duration_since(self.local) {
            Ok(ahead) => ahead.as_secs_f64(),
            Err(behind) => -behind.duration().as_secs_f64(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DateError {
    #[error("{0}")]
    Url(String),
    #[error("trust store: {0}")]
    Roots(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS with {host}: {source}")]
    Tls {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP with {host}: {message}")]
    Http { host: String, message: String },
    #[error("{host} sent no usable Date header")]
    NoDate { host: String },
    #[error("{host}'s Date {date} is outside its own certificate's validity")]
    OutsideValidity { host: String, date: String },
    #[error("no answer from {host} within {QUERY_TIMEOUT:?}")]
    Timeout { host: String },
}

/// Where to ask: an `https://` URL's host, port and path.
#[derive(Debug, Clone)]
pub struct Target {
    host: String,
    port: u16,
    path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, String> {
        crate::config::check_https_url(url)?;
        let uri: http::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
        let host = uri.host().unwrap_or_default();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Self {
            host,
            port: uri.port_u16().unwrap_or(443),
            path: uri
                .path_and_query()
                .map_or("/".into(), |p| p.as_str().to_owned()),
        })
    }
}

/// One `HEAD` to `url`, trusting the system's roots and those in `ca_file`.
pub async fn query(url: &str, ca_file: Option<&Path>) -> Result<DateReading, DateError> {
    let target = Target::parse(url).map_err(DateError::Url)?;
    let host = target.host.clone();
    match tokio::time::timeout(QUERY_TIMEOUT, query_target(&target, ca_file)).await {
        Ok(result) => result,
        Err(_) => Err(DateError::Timeout { host }),
    }
}

async fn query_target(target: &Target, ca_file: Option<&Path>) -> Result<DateReading, DateError> {
    let roots = crate::tls::roots(ca_file).map_err(DateError::Roots)?;
    let inner =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::tls::provider())
            .build()
            .map_err(|e| DateError::Roots(e.to_string()))?;
    let verifier = Arc::new(AtItsOwnTime {
        inner,
        validity: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| DateError::Roots(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(target.host.clone())
        .map_err(|e| DateError::Url(format!("{}: {e}", target.host)))?;

    let addr = format!("{}:{}", target.host, target.port);
    let tcp = tokio::net::TcpStream::connect(addr_for_connect(&target.host, target.port))
        .await
        .map_err(|source| DateError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|source| DateError::Tls {
            host: target.host.clone(),
            source,
        })?;
    let http_error = |e: &dyn std::fmt::Display| DateError::Http {
        host: target.host.clone(),
        message: e.to_string(),
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| http_error(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = http::Request::head(target.path.as_str())
        .header(http::header::HOST, host_header(&target.host, target.port))
        .header(http::header::USER_AGENT, "pi-failover-clock")
        .body(Empty::<Bytes>::new())
        .map_err(|e| http_error(&e))?;
    let sent_at = SystemTime::now();
    let started = Instant::now();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| http_error(&e))?;
    let local = sent_at + started.elapsed() / 2;

    let no_date = || DateError::NoDate {
        host: target.host.clone(),
    };
    let date = response
        .headers()
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(no_date)?;
    let server = httpdate::parse_http_date(date).map_err(|_| no_date())?;
    let validity = *verifier
        .validity
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match validity {
        Some((not_before, not_after)) if server >= not_before && server <= not_after => {
            Ok(DateReading { server, local })
        }
        _ => Err(DateError::OutsideValidity {
            host: target.host.clone(),
            date: date.to_owned(),
        }),
    }
}

fn addr_for_connect(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn host_header(host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// A WebPKI verifier that checks the chain at a moment inside the leaf's validity instead of
/// at the local clock (the module doc says why), and remembers that validity.
#[derive(Debug)]
struct AtItsOwnTime {
    inner: Arc<WebPkiServerVerifier>,
    validity: Mutex<Option<(SystemTime, SystemTime)>>,
}

fn validity(leaf: &CertificateDer<'_>) -> Result<(SystemTime, SystemTime), rustls::Error> {
    use x509_parser::prelude::*;
    let (_, cert) = parse_x509_certificate(leaf)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let at = |t: ASN1Time| {
        u64::try_from(t.timestamp())
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
            .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
    };
    Ok((
        at(cert.validity().not_before)?,
        at(cert.validity().not_after)?,
    ))
}

impl ServerCertVerifier for AtItsOwnTime {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (not_before, not_after) = validity(end_entity)?;
        let middle = not_before + not_after.duration_since(not_before).unwrap_or_default() / 2;
        let at = UnixTime::since_unix_epoch(
            middle
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            at,
        )?;
        *self
            .validity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((not_before, not_after));
        Ok(verified)
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
