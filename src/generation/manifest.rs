//! A generation's manifest: what each file is in the bucket, and the headers its GET carried.
//!
//! Listings carry only key, ETag and size; Content-Type, Cache-Control and the rest come from
//! the GET response and are kept here so the site server can send them, as S3 website hosting
//! would, and so an unchanged object never needs another request.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub(crate) const MANIFEST_FILE: &str = "manifest.json";

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
    /// Worth compressing, but the generation was switched in before its siblings were made:
    /// the next generation (made at once by the same sync, or by the next one after a crash)
    /// adds them.
    pub siblings_pending: bool,
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
    /// Streams the file through the parser: at 10,000 objects the JSON is ~3 MB, which would
    /// otherwise sit in memory beside the manifest it becomes (docs/benchmarks.md, memory).
    pub fn read(path: &Path) -> Result<Self, ManifestError> {
        let file = std::fs::File::open(path).map_err(|source| ManifestError::Io {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_reader(std::io::BufReader::with_capacity(64 * 1024, file)).map_err(
            |source| ManifestError::Parse {
                path: path.to_owned(),
                source,
            },
        )
    }

    /// Writes and fsyncs the manifest; the generation directory is fsynced by the caller.
    pub fn write(&self, path: &Path) -> Result<(), ManifestError> {
        let io = |source| ManifestError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(64 * 1024, file);
        serde_json::to_writer(&mut out, self).map_err(|source| ManifestError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    }
}
