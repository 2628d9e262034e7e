//! `[tls]`: the certificates and where each comes from (files, S3, ACME), and the cipher
//! order. `settings` turns each entry into what `src/tls/` takes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{key_error, ConfigError};

/// Which cipher suite the server picks among those a client offers (`tls.cipher_preference`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CipherPreference {
    /// ChaCha20-Poly1305 first on a CPU without AES instructions (every Pi before the Pi 5,
    /// where AES-GCM in software costs several times as much); the client's order otherwise.
    #[default]
    Auto,
    /// The client's order, always.
    Client,
    /// ChaCha20-Poly1305 first, always.
    Chacha20,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// One or more certificate chains. A client's SNI picks the one whose names match; the
    /// first is used for clients without SNI or with an unknown name.
    pub certificates: Vec<CertificateConfig>,
    /// How often the certificate files are checked for changes (SIGHUP reloads at once).
    #[serde(default = "default_watch_interval", with = "humantime_serde")]
    pub watch_interval: Duration,
    /// Which cipher suite wins when a client offers several.
    #[serde(default)]
    pub cipher_preference: CipherPreference,
    /// A certificate source (`s3`) failing for longer than this puts the Pi in ATTENTION;
    /// it keeps serving the certificate it has meanwhile.
    #[serde(default = "default_source_failing_attention", with = "humantime_serde")]
    pub attention_after_failing: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// Where the certificate comes from: `files` (PEM files on the card, the default) or `s3`
    /// (fetched from a private prefix the primary's renewal hook uploads to).
    #[serde(default)]
    pub source: CertificateSource,
    /// `files`: the certificate followed by its intermediates (Let's Encrypt's fullchain.pem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// `files`: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC, PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// `s3`: the bucket holding `fullchain.pem` and `privkey.pem`; `s3.bucket` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// `s3`: the prefix they are under, e.g. "tls/example.com/"; never under `s3.prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `acme`: the names the certificate is for; `site.hostnames` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// `acme`: "letsencrypt" (the default), "letsencrypt-staging", or a directory URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// `acme`: PEM certificates trusted for the directory's HTTPS besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_ca: Option<PathBuf>,
    /// `acme`: an e-mail address for the CA's expiry and policy mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// `acme`: External Account Binding key ID, for CAs that require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab_kid: Option<String>,
    /// `acme`: External Account Binding HMAC key, base64url as the CA gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab_hmac_key: Option<String>,
    /// `acme`: the Route 53 hosted zone holding the names' `_acme-challenge` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
    /// `acme`: Route 53's API endpoint, when not AWS's (a test server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53_endpoint: Option<String>,
}

impl CertificateConfig {
    /// A certificate from PEM files.
    pub fn files(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            cert: Some(cert),
            key: Some(key),
            ..Self::default()
        }
    }
}

/// `tls.certificates[].source`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateSource {
    #[default]
    Files,
    S3,
    Acme,
}

fn default_source_failing_attention() -> Duration {
    Duration::from_secs(2 * 86_400)
}

fn default_watch_interval() -> Duration {
    Duration::from_secs(10)
}

impl TlsConfig {
    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
        if self.certificates.is_empty() {
            return Err(err(
            "tls.certificates",
            "no certificate is configured".into(),
            "add a [[tls.certificates]] table with `cert` and `key` paths, or `source = \"s3\"` and a `prefix`",
        ));
        }
        if self.watch_interval < Duration::from_millis(50) {
            return Err(err(
                "tls.watch_interval",
                "shorter than 50ms".into(),
                "use a few seconds, e.g. \"10s\"",
            ));
        }
        Ok(())
    }
}
