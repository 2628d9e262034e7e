//! The site's certificates: where they come from, choosing one per handshake by SNI, and
//! replacing them while serving.
//!
//! - [`slot`]: one configured certificate and its source (`files` on the card, `s3` fetched
//!   from the primary's renewals, `acme` obtained by the Pi); built by the config.
//! - [`parse`] and [`vet`]: PEM bytes to a pair, and whether a pair may replace the one in use.
//! - [`resolver`]: the set handshakes are served from, each slot swapped on its own.
//! - [`store`]: certificates the Pi fetches or obtains, on the data partition.
//! - [`s3`] and [`acme`]: the two sources that bring them.

pub mod acme;
mod parse;
pub mod resolver;
pub mod s3;
pub mod slot;
pub mod store;
pub mod vet;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;

pub use resolver::{CertResolver, SlotView};
pub use slot::{CertSlot, SourceHealth};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{from}: cannot read it: {source}")]
    Read {
        from: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{from}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { from: String },
    #[error("{from}: not a PEM certificate chain: {detail}")]
    BadCertificate { from: String, detail: String },
    #[error("{from}: no usable private key in it (PKCS#8, PKCS#1 RSA or SEC1 EC, PEM): {detail}")]
    BadKey { from: String, detail: String },
    #[error("{key} does not belong to the certificate in {cert}: {detail}")]
    Mismatch {
        cert: String,
        key: String,
        detail: String,
    },
    #[error("{from}: refused, the certificate in use is kept: {reason}")]
    Refused {
        from: String,
        reason: vet::Rejection,
    },
    #[error("TLS setup: {0}")]
    Setup(#[from] rustls::Error),
}

/// The crypto provider for everything in the process: ring, for the server and the clients
/// alike, so the binary carries one implementation.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The appliance's HTTPS client (ACME, notifications): HTTP/1.1 over rustls on ring, HTTPS only.
/// One type for both, bodies as instant-acme's: each other instantiation of hyper's client
/// cost the Pi's binary 64 KiB (docs/benchmarks.md, issue 18).
pub(crate) type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    instant_acme::BodyWrapper<bytes::Bytes>,
>;

/// An [`HttpsClient`] trusting [`roots`]`(extra_roots)`, connecting within 10 s.
pub(crate) fn https_client(extra_roots: Option<&std::path::Path>) -> Result<HttpsClient, String> {
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(extra_roots)?)
        .with_no_client_auth();
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector),
    )
}

/// The system's CA certificates plus the PEM certificates in `extra` (a private CA, a test
/// CA): what the appliance's own HTTPS clients trust. Never verification off.
pub fn roots(extra: Option<&std::path::Path>) -> Result<rustls::RootCertStore, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra {
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .and_then(std::iter::Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(roots)
}

/// What the status page and logs need to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Where it was read from: a path, or an `s3://` location.
    pub from: String,
    /// DNS names from subjectAltName (or the subject CN when there is none).
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl CertInfo {
    pub fn expires_within(&self, window: Duration) -> bool {
        self.not_after
            .duration_since(SystemTime::now())
            .map_or(true, |left| left < window)
    }
}

pub use crate::config::CipherPreference;

/// The rustls server configuration: TLS 1.3 and 1.2 with ring's forward-secret AEAD suites,
/// ALPN h2 and http/1.1, session tickets so returning readers skip the full handshake, and the
/// cipher order `preference` asks for on this CPU.
pub(crate) fn server_config(
    resolver: Arc<CertResolver>,
    preference: CipherPreference,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chacha_first = prefers_chacha(preference, cpu_has_aes());
    let mut provider = rustls::crypto::ring::default_provider();
    if chacha_first {
        // Stable: the AES suites keep their order behind ChaCha20's.
        provider
            .cipher_suites
            .sort_by_key(|suite| !is_chacha(suite.suite()));
    }
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    // The server's order only when it has a reason: otherwise a client (a phone without AES
    // instructions of its own) knows best what is cheap for it.
    config.ignore_client_order = chacha_first;
    tracing::info!(?preference, chacha_first, "TLS cipher order");
    Ok(Arc::new(config))
}

/// Whether the server puts ChaCha20-Poly1305 first.
pub fn prefers_chacha(preference: CipherPreference, cpu_has_aes: bool) -> bool {
    match preference {
        CipherPreference::Auto => !cpu_has_aes,
        CipherPreference::Client => false,
        CipherPreference::Chacha20 => true,
    }
}

fn is_chacha(suite: rustls::CipherSuite) -> bool {
    matches!(
        suite,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
    )
}

/// Whether this CPU has AES instructions (the ARMv8 Cryptography Extensions on a Pi 5;
/// AES-NI with carry-less multiply on x86), which make AES-GCM cheaper than ChaCha20.
pub fn cpu_has_aes() -> bool {
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes")
        && std::arch::is_aarch64_feature_detected!("pmull");
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(not(any(target_arch = "aarch64", target_arch = "x86_64")))]
    return false;
}

/// Watches the certificate files and reloads on change, until `stop` fires.
pub async fn watch(
    resolver: Arc<CertResolver>,
    interval: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {
                let resolver = resolver.clone();
                // File reads are blocking; keep them off the reactor threads.
                let _ = tokio::task::spawn_blocking(move || resolver.reload_if_changed()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chacha_comes_first_only_where_it_is_cheaper_or_asked_for() {
        use CipherPreference::*;
        for (preference, has_aes, first) in [
            (Auto, false, true),
            (Auto, true, false),
            (Client, false, false),
            (Client, true, false),
            (Chacha20, true, true),
            (Chacha20, false, true),
        ] {
            assert_eq!(
                prefers_chacha(preference, has_aes),
                first,
                "{preference:?}, AES {has_aes}"
            );
        }
    }
}
