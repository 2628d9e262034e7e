//! One configured certificate: where it comes from, where its files are, and how its source
//! is doing. Built by the config from `[[tls.certificates]]`; the TLS module imports nothing
//! of the config.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::store;

/// Where one certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// PEM files the owner puts on the card (or a renewal client on the Pi writes); reloaded
    /// when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// `fullchain.pem` and `privkey.pem` under `prefix` in `bucket`, which the primary's
    /// renewal hook uploads; fetched into the data partition on every sync.
    S3 { bucket: String, prefix: String },
    /// Obtained and renewed by the Pi itself over ACME with DNS-01.
    Acme(super::acme::AcmeSettings),
}

/// One entry of `[[tls.certificates]]`, ready for the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSlot {
    pub source: Source,
    /// For the sources the appliance fetches itself: their directory on the data partition
    /// (`<data_dir>/tls/<id>`, laid out by [`store`]).
    pub managed_dir: Option<PathBuf>,
}

impl CertSlot {
    pub fn files(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            source: Source::Files { cert, key },
            managed_dir: None,
        }
    }

    /// A certificate fetched from S3, kept under `data_dir`.
    pub fn s3(bucket: String, prefix: String, data_dir: &Path) -> Self {
        let dir = store::slot_dir(data_dir, &format!("s3-{bucket}-{prefix}"));
        Self {
            source: Source::S3 { bucket, prefix },
            managed_dir: Some(dir),
        }
    }

    /// A certificate the Pi obtains itself by ACME, kept under `data_dir`.
    pub fn acme(settings: super::acme::AcmeSettings, data_dir: &Path) -> Self {
        let id = format!(
            "acme-{}-{}",
            settings.names.first().map_or("", String::as_str),
            settings.directory
        );
        Self {
            managed_dir: Some(store::slot_dir(data_dir, &id)),
            source: Source::Acme(settings),
        }
    }

    /// `files`, `s3`, `acme`: what the status page calls the source.
    pub fn kind(&self) -> &'static str {
        match self.source {
            Source::Files { .. } => "files",
            Source::S3 { .. } => "s3",
            Source::Acme(_) => "acme",
        }
    }

    /// Where the certificate comes from, for people: a path or an `s3://` URL. Never a secret.
    pub fn origin(&self) -> String {
        match &self.source {
            Source::Files { cert, .. } => cert.display().to_string(),
            Source::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
            Source::Acme(settings) => settings.directory.clone(),
        }
    }

    /// The two files to read now: the configured ones, or the installed pair of a managed
    /// source (`None` before its first certificate arrives). A managed pair is read through
    /// the directory `current` names at this moment, so a read never mixes two versions.
    pub fn files_now(&self) -> Option<(PathBuf, PathBuf)> {
        match (&self.source, &self.managed_dir) {
            (Source::Files { cert, key }, _) => Some((cert.clone(), key.clone())),
            (_, Some(dir)) => store::installed(dir),
            (_, None) => None,
        }
    }
}

/// How a fetching source is doing, for the status page and the mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceHealth {
    pub last_attempt: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
    /// When the failures now running began; `None` after a success.
    pub failing_since: Option<SystemTime>,
    pub last_error: Option<String>,
    pub next_attempt: Option<SystemTime>,
}

impl SourceHealth {
    pub fn record(&mut self, at: SystemTime, outcome: Result<(), String>, next: SystemTime) {
        self.last_attempt = Some(at);
        self.next_attempt = Some(next);
        match outcome {
            Ok(()) => {
                self.last_success = Some(at);
                self.failing_since = None;
                self.last_error = None;
            }
            Err(e) => {
                self.failing_since.get_or_insert(at);
                self.last_error = Some(e);
            }
        }
    }
}
