//! A generation's manifest: what each file is in the bucket, and the headers its GET carried.
//!
//! Listings carry only key, ETag and size; Content-Type, Cache-Control and the rest come from
//! the GET response and are kept here so the site server can send them, as S3 website hosting
//! would, and so an unchanged object never needs another request.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const MANIFEST_FILE: &str = "manifest.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The generation's id (its directory name).
    pub generation: String,
    /// Seconds since the Unix epoch when the generation was completed.
    pub created_unix: u64,
    pub objects: BTreeMap<String, ManifestEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ManifestEntry {
    pub etag: String,
    pub size: u64,
    /// Seconds since the Unix epoch, from the GET response's Last-Modified.
    pub last_modified_unix: Option<i64>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    /// `x-amz-website-redirect-location`: served as a 301.
    pub redirect_location: Option<String>,
    /// Precompressed siblings written at sync time (`key.br`, `key.gz`).
    pub brotli: bool,
    pub gzip: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid manifest: {source}")]
    Parse {
        path: std::path::PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl Manifest {
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ManifestError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Writes and fsyncs the manifest; the generation directory is fsynced by the caller.
    pub fn write(&self, path: &Path) -> Result<(), ManifestError> {
        let io = |source| ManifestError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = serde_json::to_vec(self).map_err(|source| ManifestError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let mut file = std::fs::File::create(path).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        file.sync_all().map_err(io)
    }
}
