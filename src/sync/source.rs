//! The bucket: listing it and downloading objects, verified, retried, rate-limited.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::Client;
use aws_smithy_async::time::SharedTimeSource;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use super::manifest::ManifestEntry;
use super::plan::RemoteObject;
use crate::config::S3Config;

/// Requests made, by kind, for the sync report and the no-op check.
#[derive(Debug, Default)]
pub struct RequestCounts {
    pub list: AtomicU64,
    pub get: AtomicU64,
}

impl RequestCounts {
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.list.load(Ordering::Relaxed),
            self.get.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("listing the bucket failed: {0}")]
    List(String),
    #[error("{key}: {reason}")]
    Object {
        key: String,
        reason: String,
        retryable: bool,
    },
    #[error("{key}: gone from the bucket since it was listed")]
    Vanished { key: String },
}

pub struct Bucket {
    client: Client,
    bucket: String,
    prefix: String,
    request_timeout: Duration,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub requests: RequestCounts,
}

/// Largest amount one bandwidth-limiter reservation may cover: body chunks are split to it.
const LIMITER_BURST: u32 = 64 * 1024;

impl Bucket {
    pub async fn connect(config: &S3Config) -> Self {
        Self::connect_with_clock(config, None).await
    }

    /// As [`Bucket::connect`], signing with `clock` instead of the system clock (a Pi without
    /// a real-time clock, in tests). Either way the SDK measures the skew from each response's
    /// `Date` and signs the retry of a `RequestTimeTooSkewed` with the corrected time.
    pub async fn connect_with_clock(config: &S3Config, clock: Option<SharedTimeSource>) -> Self {
        use aws_config::retry::RetryConfig;
        use aws_config::timeout::TimeoutConfig;
        use aws_config::{BehaviorVersion, Region};
        use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

        // One TLS stack in the binary: the SDK's client uses rustls with ring, as the server.
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(config.region.clone()))
            .http_client(http.clone())
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .read_timeout(config.request_timeout)
                    .build(),
            );
        if let Some(file) = &config.credentials_file {
            use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
            let files = EnvConfigFiles::builder()
                .with_file(EnvConfigFileKind::Credentials, file)
                .build();
            // The provider may reach out (role assumption, IMDS for a credential_source):
            // give it the same HTTP client.
            let provider_config = aws_config::provider_config::ProviderConfig::without_region()
                .with_http_client(http.clone())
                .with_region(Some(Region::new(config.region.clone())));
            let provider = aws_config::profile::ProfileFileCredentialsProvider::builder()
                .configure(&provider_config)
                .profile_files(files)
                .profile_name(&config.profile)
                .build();
            loader = loader.credentials_provider(provider);
        }
        if let Some(clock) = clock {
            loader = loader.time_source(clock);
        }
        let shared = loader.load().await;
        let mut builder =
            aws_sdk_s3::config::Builder::from(&shared).force_path_style(config.path_style);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let limiter = NonZeroU32::new(u32::try_from(config.bandwidth_limit).unwrap_or(u32::MAX))
            .map(|rate| {
                let burst = NonZeroU32::new(LIMITER_BURST.max(rate.get().min(LIMITER_BURST)))
                    .unwrap_or(rate);
                Arc::new(RateLimiter::direct(
                    Quota::per_second(rate).allow_burst(burst),
                ))
            });
        Self {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
            request_timeout: config.request_timeout,
            limiter,
            requests: RequestCounts::default(),
        }
    }

    /// Every object under the prefix, with the prefix removed from the keys.
    pub async fn list(&self) -> Result<Vec<RemoteObject>, SourceError> {
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            // Keys may hold characters XML cannot carry (NUL, control bytes): ask for them
            // URL-encoded, as the AWS CLI does, and decode them here.
            let mut request = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .encoding_type(aws_sdk_s3::types::EncodingType::Url);
            if !self.prefix.is_empty() {
                request = request.prefix(&self.prefix);
            }
            if let Some(token) = token.take() {
                request = request.continuation_token(token);
            }
            self.requests.list.fetch_add(1, Ordering::Relaxed);
            let page = request
                .send()
                .await
                .map_err(|e| SourceError::List(describe(&e)))?;
            for object in page.contents() {
                let (Some(encoded), Some(etag)) = (object.key(), object.e_tag()) else {
                    continue;
                };
                let Some(key) = decode_listed_key(encoded) else {
                    tracing::warn!(
                        key = encoded,
                        "skipping a key that is not UTF-8 once decoded"
                    );
                    continue;
                };
                let Some(key) = key.strip_prefix(&self.prefix) else {
                    continue;
                };
                objects.push(RemoteObject {
                    key: key.to_owned(),
                    etag: etag.to_owned(),
                    size: object
                        .size()
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                });
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(objects)
    }

    /// Downloads one object to `dest`, retrying transient failures with backoff,
    /// and returns its manifest entry built from the GET response's headers.
    pub async fn download(&self, key: &str, dest: &Path) -> Result<ManifestEntry, SourceError> {
        const ATTEMPTS: u32 = 5;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = tokio::time::timeout(self.request_timeout, self.download_once(key, dest))
                .await
                .unwrap_or_else(|_| {
                    Err(SourceError::Object {
                        key: key.to_owned(),
                        reason: format!("no answer within {:?}", self.request_timeout),
                        retryable: true,
                    })
                });
            match result {
                Err(SourceError::Object {
                    retryable: true,
                    reason,
                    ..
                }) if attempt < ATTEMPTS => {
                    let backoff = backoff(attempt);
                    tracing::debug!(key, attempt, %reason, ?backoff, "download failed; retrying");
                    tokio::time::sleep(backoff).await;
                }
                other => return other,
            }
        }
    }

    async fn download_once(&self, key: &str, dest: &Path) -> Result<ManifestEntry, SourceError> {
        let fail = |reason: String, retryable: bool| SourceError::Object {
            key: key.to_owned(),
            reason,
            retryable,
        };
        self.requests.get.fetch_add(1, Ordering::Relaxed);
        let full_key = format!("{}{key}", self.prefix);
        let response = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full_key)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(404) || e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                    return Err(SourceError::Vanished {
                        key: key.to_owned(),
                    });
                }
                return Err(fail(describe(&e), is_retryable(&e)));
            }
        };
        let etag = response.e_tag().unwrap_or_default().to_owned();
        let expected_len = response
            .content_length()
            .and_then(|l| u64::try_from(l).ok());
        let kms = response
            .server_side_encryption()
            .is_some_and(|s| s.as_str() != "AES256");
        let mut entry = ManifestEntry {
            etag: etag.clone(),
            size: 0,
            last_modified_unix: response.last_modified().map(|t| t.secs()),
            content_type: response.content_type().map(str::to_owned),
            cache_control: response.cache_control().map(str::to_owned),
            content_encoding: response.content_encoding().map(str::to_owned),
            content_disposition: response.content_disposition().map(str::to_owned),
            redirect_location: response.website_redirect_location().map(str::to_owned),
            ..Default::default()
        };

        let io_fail = |e: std::io::Error| fail(format!("writing {}: {e}", dest.display()), false);
        let mut file = tokio::fs::File::create(dest).await.map_err(io_fail)?;
        let mut md5 = Md5::new();
        let mut len: u64 = 0;
        let mut body = response.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| fail(format!("body interrupted: {e}"), true))?;
            if let Some(limiter) = &self.limiter {
                for piece in chunk.chunks(LIMITER_BURST as usize) {
                    if let Some(n) = NonZeroU32::new(piece.len() as u32) {
                        let _ = limiter.until_n_ready(n).await;
                    }
                }
            }
            md5.update(&chunk);
            len += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(io_fail)?;
        }
        if let Some(expected) = expected_len {
            if len != expected {
                return Err(fail(
                    format!("truncated body: {len} of {expected} bytes"),
                    true,
                ));
            }
        }
        // A single-part upload's ETag is the MD5 of its bytes (not so for multipart `-N`
        // ETags or KMS-encrypted objects, which are compared by length only).
        let unquoted = etag.trim_matches('"');
        if !kms && unquoted.len() == 32 && unquoted.bytes().all(|b| b.is_ascii_hexdigit()) {
            let actual = hex(&md5.finalize());
            if !actual.eq_ignore_ascii_case(unquoted) {
                return Err(fail(
                    format!("corrupt body: MD5 {actual}, ETag {unquoted}"),
                    true,
                ));
            }
        }
        // Made durable with the whole generation at commit (one syncfs, not one fsync each).
        file.flush().await.map_err(io_fail)?;
        entry.size = len;
        Ok(entry)
    }
}

/// Undoes S3's `encoding-type=url` (form encoding: `+` is a space).
fn decode_listed_key(encoded: &str) -> Option<String> {
    let plus_as_space = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|k| k.into_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exponential backoff with full jitter: 0.2 s, 0.4 s, 0.8 s ... capped at 10 s.
fn backoff(attempt: u32) -> Duration {
    let cap = Duration::from_millis(200 * 2u64.pow(attempt.min(6))).min(Duration::from_secs(10));
    cap.mul_f64(0.5 + fastrand::f64() / 2.0)
}

fn is_retryable<E: ProvideErrorMetadata>(e: &SdkError<E, HttpResponse>) -> bool {
    match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            matches!(
                code,
                "SlowDown"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "RequestTimeout"
                    | "Throttling"
            ) || service.raw().status().as_u16() >= 500
        }
        _ => false,
    }
}

/// A short, useful description: the service's code and message, or the transport error.
fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e {
        SdkError::ServiceError(service) => {
            let err = service.err();
            format!(
                "{} ({})",
                err.code().unwrap_or("service error"),
                err.message().unwrap_or("no message")
            )
        }
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn listed_keys_are_url_decoded() {
        assert_eq!(
            super::decode_listed_key("a+b%2Bc%2F%00.html").as_deref(),
            Some("a b+c/\0.html")
        );
        assert_eq!(
            super::decode_listed_key("plain/key.html").as_deref(),
            Some("plain/key.html")
        );
        assert_eq!(super::decode_listed_key("%ff"), None);
    }
}
