//! The site's certificates: loading, choosing by SNI, reloading while serving.
//!
//! New handshakes read the current set through an `ArcSwap`, so a reload is one pointer
//! swap: connections already open keep the session they negotiated, new ones get the new
//! certificate. A reload that fails (a half-written file, a key that does not match, or a
//! certificate `vet` refuses: expired, not yet valid, out of order, missing a name the one in
//! use covers, older than it) is logged, kept for the status page, and the old set stays in
//! use: a broken renewal must never take the site down.

pub mod vet;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertificateConfig, CipherPreference};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path}: not a PEM certificate chain: {detail}")]
    BadCertificate { path: PathBuf, detail: String },
    #[error("{path}: no usable private key in it (PKCS#8, PKCS#1 RSA or SEC1 EC, PEM): {detail}")]
    BadKey { path: PathBuf, detail: String },
    #[error("{key} does not belong to the certificate in {cert}: {detail}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
    #[error("{path}: refused, the certificate in use is kept: {reason}")]
    Refused {
        path: PathBuf,
        reason: vet::Rejection,
    },
    #[error("TLS setup: {0}")]
    Setup(#[from] rustls::Error),
}

/// The crypto provider for everything in the process: ring, for the server and (later) the
/// S3 client alike, so the binary carries one implementation.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What the status page and logs need to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub cert_path: PathBuf,
    /// DNS names from subjectAltName (or the subject CN when there is none).
    pub names: Vec<String>,
    pub not_after: SystemTime,
}

impl CertInfo {
    pub fn expires_within(&self, window: Duration) -> bool {
        self.not_after
            .duration_since(SystemTime::now())
            .map_or(true, |left| left < window)
    }
}

struct Loaded {
    key: Arc<CertifiedKey>,
    info: CertInfo,
    facts: vet::Facts,
}

/// Reads and checks one certificate chain and its key.
fn load(config: &CertificateConfig, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let cert_pem = read(&config.cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: config.cert.clone(),
            detail: e.to_string(),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: config.cert.clone(),
        });
    };
    let (info, facts) = describe(&chain, leaf, &config.cert)?;
    let key_pem = read(&config.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: config.key.clone(),
        detail: e.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::Mismatch {
            cert: config.cert.clone(),
            key: config.key.clone(),
            detail: e.to_string(),
        })?;
    Ok(Loaded {
        key: Arc::new(certified),
        info,
        facts,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn describe(
    chain: &[CertificateDer<'_>],
    leaf: &CertificateDer<'_>,
    path: &Path,
) -> Result<(CertInfo, vet::Facts), TlsError> {
    use x509_parser::prelude::*;
    let bad = |e: &dyn std::fmt::Display| TlsError::BadCertificate {
        path: path.to_owned(),
        detail: e.to_string(),
    };
    let (_, cert) = parse_x509_certificate(leaf).map_err(|e| bad(&e))?;
    let parsed = chain
        .iter()
        .map(|der| parse_x509_certificate(der).map(|(_, c)| c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    let chain_break = parsed
        .windows(2)
        .position(|pair| pair[0].issuer().as_raw() != pair[1].subject().as_raw())
        .map(|at| at + 1);
    let mut names: Vec<String> = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_ascii_lowercase))
            .collect();
    }
    let time =
        |t: ASN1Time| UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0));
    let not_after = time(cert.validity().not_after);
    let facts = vet::Facts {
        names: names.clone(),
        not_before: time(cert.validity().not_before),
        not_after,
        chain_break,
    };
    let info = CertInfo {
        cert_path: path.to_owned(),
        names,
        not_after,
    };
    Ok((info, facts))
}

/// The certificate set, chosen per handshake by SNI, replaceable at any time.
pub struct CertResolver {
    configs: Vec<CertificateConfig>,
    /// `site.hostnames`: a renewal must keep covering those the certificate in use covers.
    hostnames: Vec<String>,
    /// Why the last reload was refused, until one succeeds (for the status page).
    refused: Mutex<Option<String>>,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<Vec<Loaded>>,
    /// File stamps of the last set that was tried, so one broken renewal is reported once.
    last_tried: Mutex<Vec<FileStamp>>,
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("certificates", &self.infos())
            .finish()
    }
}

impl CertResolver {
    /// Loads every configured certificate; any failure to read or match is an error at
    /// start. A certificate that is expired, early or out of order is served with a warning
    /// (there is nothing better to serve) and shown on the status page.
    pub fn load(configs: &[CertificateConfig], hostnames: &[String]) -> Result<Self, TlsError> {
        let provider = provider();
        let loaded = load_all(configs, &provider)?;
        let now = SystemTime::now();
        for cert in &loaded {
            warn_if_expiring(&cert.info);
            if let Err(reason) = vet::vet(&cert.facts, None, hostnames, now) {
                tracing::warn!(cert = %cert.info.cert_path.display(), %reason, "certificate in use has a problem");
            }
        }
        for name in hostnames {
            if !loaded.iter().any(|c| vet::covers(&c.facts, name)) {
                tracing::warn!(hostname = %name, "no certificate covers this site.hostnames entry; readers asking for it get a certificate error");
            }
        }
        Ok(Self {
            configs: configs.to_vec(),
            hostnames: hostnames.to_vec(),
            refused: Mutex::new(None),
            provider,
            current: ArcSwap::from_pointee(loaded),
            last_tried: Mutex::new(stamps(configs)),
        })
    }

    /// What is being served now.
    pub fn infos(&self) -> Vec<CertInfo> {
        self.current.load().iter().map(|c| c.info.clone()).collect()
    }

    /// Why the last reload was refused (`None` once one succeeds).
    pub fn refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the files again and swaps the new set in. On error the old set stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let mut tried = self.lock_tried();
        self.reload_holding(&mut tried)
    }

    /// Reloads when a file's size, time or inode changed since the last attempt.
    pub fn reload_if_changed(&self) {
        let mut tried = self.lock_tried();
        if *tried != stamps(&self.configs) {
            if let Err(e) = self.reload_holding(&mut tried) {
                tracing::error!(error = %e, "new certificate rejected; still serving the previous one");
            }
        }
    }

    /// SIGHUP and the file watcher can reload at once. Under one lock the stamps, the files
    /// read and the set stored belong together: a reload that read the old files can't store
    /// them after one that read the renewal (and then, the stamps matching the disk, never be
    /// corrected).
    fn lock_tried(&self) -> std::sync::MutexGuard<'_, Vec<FileStamp>> {
        // A panic in another reload left only stamps behind: carry on with them.
        self.last_tried
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reload_holding(&self, tried: &mut Vec<FileStamp>) -> Result<(), TlsError> {
        *tried = stamps(&self.configs);
        let result = self.load_vetted();
        *self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            result.as_ref().err().map(ToString::to_string);
        let loaded = result?;
        for cert in &loaded {
            tracing::info!(cert = %cert.info.cert_path.display(), names = ?cert.info.names,
                not_after = %httpdate::fmt_http_date(cert.info.not_after), "certificate loaded");
            warn_if_expiring(&cert.info);
        }
        self.current.store(Arc::new(loaded));
        Ok(())
    }
}

impl CertResolver {
    /// The configured set read again, each certificate vetted against the one it replaces.
    fn load_vetted(&self) -> Result<Vec<Loaded>, TlsError> {
        let loaded = load_all(&self.configs, &self.provider)?;
        let current = self.current.load();
        let now = SystemTime::now();
        for (i, candidate) in loaded.iter().enumerate() {
            let in_use = current.get(i).map(|c| &c.facts);
            vet::vet(&candidate.facts, in_use, &self.hostnames, now).map_err(|reason| {
                TlsError::Refused {
                    path: candidate.info.cert_path.clone(),
                    reason,
                }
            })?;
        }
        Ok(loaded)
    }
}

fn load_all(
    configs: &[CertificateConfig],
    provider: &CryptoProvider,
) -> Result<Vec<Loaded>, TlsError> {
    configs.iter().map(|c| load(c, provider)).collect()
}

fn warn_if_expiring(info: &CertInfo) {
    if info.expires_within(Duration::from_secs(14 * 24 * 3600)) {
        tracing::warn!(cert = %info.cert_path.display(), names = ?info.names,
            not_after = %httpdate::fmt_http_date(info.not_after),
            "certificate expires within 14 days (or has expired)");
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.load();
        if let Some(sni) = hello.server_name() {
            if let Some(found) = current.iter().find(|c| vet::covers(&c.facts, sni)) {
                return Some(found.key.clone());
            }
        }
        current.first().map(|c| c.key.clone())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamps(configs: &[CertificateConfig]) -> Vec<FileStamp> {
    use std::os::unix::fs::MetadataExt;
    configs
        .iter()
        .flat_map(|c| [&c.cert, &c.key])
        .map(|path| match std::fs::metadata(path) {
            Ok(m) => FileStamp {
                modified: m.modified().ok(),
                len: m.len(),
                inode: m.ino(),
            },
            Err(_) => FileStamp {
                modified: None,
                len: 0,
                inode: 0,
            },
        })
        .collect()
}

/// The rustls server configuration: TLS 1.3 and 1.2 with ring's forward-secret AEAD suites,
/// ALPN h2 and http/1.1, session tickets so returning readers skip the full handshake, and the
/// cipher order `preference` asks for on this CPU.
pub fn server_config(
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
            _ = stop.cancelled() => return,
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
