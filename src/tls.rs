//! The site's certificates: loading, choosing by SNI, reloading while serving.
//!
//! New handshakes read the current set through an `ArcSwap`, so a reload is one pointer
//! swap: connections already open keep the session they negotiated, new ones get the new
//! certificate. A reload that fails (a half-written file, a key that does not match) is
//! logged and the old set stays in use: a broken renewal must never take the site down.

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

use crate::config::CertificateConfig;

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
    let info = describe(leaf, &config.cert)?;
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
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn describe(leaf: &CertificateDer<'_>, path: &Path) -> Result<CertInfo, TlsError> {
    use x509_parser::prelude::*;
    let (_, cert) = parse_x509_certificate(leaf).map_err(|e| TlsError::BadCertificate {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
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
    let not_after = UNIX_EPOCH
        + Duration::from_secs(u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0));
    Ok(CertInfo {
        cert_path: path.to_owned(),
        names,
        not_after,
    })
}

/// Does `sni` fall under `pattern` (an exact name, or `*.example.com` for one label)?
fn name_matches(pattern: &str, sni: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => sni
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(suffix)),
        None => pattern.eq_ignore_ascii_case(sni),
    }
}

/// The certificate set, chosen per handshake by SNI, replaceable at any time.
pub struct CertResolver {
    configs: Vec<CertificateConfig>,
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
    /// Loads every configured certificate; any failure is an error at start.
    pub fn load(configs: &[CertificateConfig]) -> Result<Self, TlsError> {
        let provider = provider();
        let loaded = load_all(configs, &provider)?;
        for cert in &loaded {
            warn_if_expiring(&cert.info);
        }
        Ok(Self {
            configs: configs.to_vec(),
            provider,
            current: ArcSwap::from_pointee(loaded),
            last_tried: Mutex::new(stamps(configs)),
        })
    }

    /// What is being served now.
    pub fn infos(&self) -> Vec<CertInfo> {
        self.current.load().iter().map(|c| c.info.clone()).collect()
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
        let loaded = load_all(&self.configs, &self.provider)?;
        for cert in &loaded {
            tracing::info!(cert = %cert.info.cert_path.display(), names = ?cert.info.names,
                not_after = %httpdate::fmt_http_date(cert.info.not_after), "certificate loaded");
            warn_if_expiring(&cert.info);
        }
        self.current.store(Arc::new(loaded));
        Ok(())
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
            if let Some(found) = current
                .iter()
                .find(|c| c.info.names.iter().any(|n| name_matches(n, sni)))
            {
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
/// ALPN h2 and http/1.1, session tickets so returning readers skip the full handshake.
pub fn server_config(resolver: Arc<CertResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
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
    use super::name_matches;

    #[test]
    fn sni_names_match_exactly_or_by_one_wildcard_label() {
        assert!(name_matches("example.com", "EXAMPLE.com"));
        assert!(name_matches("*.example.com", "www.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("example.com", "www.example.com"));
    }
}
