//! `[s3]` and `[storage]`: where the site comes from, how it is synced, and the data
//! partition it is kept on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{key_error, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The writable data partition: site generations live in `<data_dir>/site/`.
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/data"),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Only keys under this prefix are synced; the prefix is not part of the local path.
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// For S3-compatible stores (MinIO, Garage, R2, B2, ...): e.g. "https://minio.lan:9000".
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`.
    #[serde(default)]
    pub path_style: bool,
    /// An AWS shared-credentials file (`[default]` with `aws_access_key_id` and
    /// `aws_secret_access_key`). Without it: the environment, then the SDK's default chain.
    pub credentials_file: Option<PathBuf>,
    /// The profile to use in `credentials_file`.
    #[serde(default = "default_profile")]
    pub profile: String,
    #[serde(default = "default_sync_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// A random delay up to this much is added to each interval, so several Pis do not
    /// hit the bucket in step.
    #[serde(default = "default_sync_jitter", with = "humantime_serde")]
    pub jitter: Duration,
    /// Downloads in flight at once.
    #[serde(default = "default_sync_concurrency")]
    pub concurrency: usize,
    /// Download bandwidth limit in bytes per second; 0 means no limit.
    #[serde(default)]
    pub bandwidth_limit: u64,
    /// Time allowed for a request's answer to start (a LIST page, or a GET's headers)
    /// before it is retried.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A download that receives no byte for this long is retried. It times the network
    /// only, not the bandwidth limiter: a large object on a thin uplink is not a stall.
    #[serde(default = "default_stall_timeout", with = "humantime_serde")]
    pub stall_timeout: Duration,
    #[serde(default = "default_max_objects")]
    pub max_objects: usize,
    #[serde(default = "default_max_total_bytes")]
    pub max_total_bytes: u64,
    /// A sync that would leave less free space than this on the data partition is refused.
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// Largest share of the site one sync may delete (0.0 to 1.0).
    #[serde(default = "default_max_delete_fraction")]
    pub max_delete_fraction: f64,
    /// Accept an empty listing (and so an empty site).
    #[serde(default)]
    pub allow_empty: bool,
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_profile() -> String {
    "default".into()
}
fn default_sync_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_sync_jitter() -> Duration {
    Duration::from_secs(30)
}
fn default_sync_concurrency() -> usize {
    4
}
fn default_stall_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_objects() -> usize {
    100_000
}
fn default_max_total_bytes() -> u64 {
    2_000_000_000
}
fn default_min_free_bytes() -> u64 {
    100_000_000
}
fn default_max_delete_fraction() -> f64 {
    0.5
}

/// The limiter lets a download through in pieces of up to 64 KiB; below this rate each piece
/// waits longer than S3 and most proxies keep a silent connection open.
const MIN_BANDWIDTH: u64 = 4 * 1024;

pub(super) fn validate_s3(s3: &S3Config, file: &Path) -> Result<(), ConfigError> {
    let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
    let valid_bucket = (3..=63).contains(&s3.bucket.len())
        && s3
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(err(
            "s3.bucket",
            format!("`{}` is not a bucket name", s3.bucket),
            "write the bucket's name only (3-63 lowercase letters, digits, dots, dashes), no s3:// or path",
        ));
    }
    if s3.prefix.starts_with('/') {
        return Err(err(
            "s3.prefix",
            "starts with /".into(),
            "write the key prefix without a leading slash, e.g. \"site/\"",
        ));
    }
    if let Some(endpoint) = &s3.endpoint {
        let ok = endpoint
            .parse::<http::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !ok {
            return Err(err(
                "s3.endpoint",
                format!("`{endpoint}` is not an http(s) URL"),
                "write the store's URL, e.g. \"https://s3.eu-central-003.backblazeb2.com\"",
            ));
        }
    }
    if s3.concurrency == 0 || s3.concurrency > 64 {
        return Err(err(
            "s3.concurrency",
            format!("{} downloads at once", s3.concurrency),
            "use 1 to 64; 4 suits a Pi on a thin uplink",
        ));
    }
    if s3.interval < Duration::from_secs(1) {
        return Err(err(
            "s3.interval",
            "shorter than a second".into(),
            "use minutes, e.g. \"5m\"",
        ));
    }
    if s3.request_timeout.is_zero() {
        return Err(err(
            "s3.request_timeout",
            "a zero timeout fails every request".into(),
            "use a duration such as \"60s\"",
        ));
    }
    if s3.stall_timeout < Duration::from_secs(1) {
        return Err(err(
            "s3.stall_timeout",
            format!(
                "{:?} without a byte fails downloads on any hiccup",
                s3.stall_timeout
            ),
            "use a duration such as \"30s\"",
        ));
    }
    if s3.bandwidth_limit != 0 && s3.bandwidth_limit < MIN_BANDWIDTH {
        return Err(err(
            "s3.bandwidth_limit",
            format!(
                "{} bytes per second: the connection sits idle between pieces long enough to be dropped",
                s3.bandwidth_limit
            ),
            "use at least 4096 (4 KiB/s), or 0 for no limit",
        ));
    }
    if !(0.0..=1.0).contains(&s3.max_delete_fraction) {
        return Err(err(
            "s3.max_delete_fraction",
            format!("{} is not a fraction", s3.max_delete_fraction),
            "use a number from 0.0 to 1.0, e.g. 0.5",
        ));
    }
    if s3.max_objects == 0 {
        return Err(err(
            "s3.max_objects",
            "0 allows no site at all".into(),
            "use a number above the site's file count, e.g. 100000",
        ));
    }
    Ok(())
}
