//! The bucket: listing it and downloading objects, verified, retried, rate-limited.
//!
//! Retries happen in one layer, here (the SDK's own retries are off: they ran inside ours, so
//! a persistent 503 cost up to 15 GETs an object). Each request — a LIST page, or a GET with
//! the HEADs of its multipart check — is tried at most [`ATTEMPTS`] times with exponential
//! backoff and jitter (waits of 0.4 s, 0.8 s, 1.6 s and 3.2 s, each 50–100 % of that: at most
//! 6 s in all). A clock-skew
//! refusal is retried too: the SDK learns the server's time from every response's `Date`.
//!
//! A download is bound to the listing: `If-Match` the listed ETag, and the body may not be
//! longer than the listed size. An object that changed since it was listed is
//! [`SourceError::Changed`], never downloaded whole: the size and free-space checks were made
//! on the listing.

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

use super::newfile::{NewFile, TmpDir};
use super::plan::RemoteObject;
use super::verify::{equal_parts, hex, is_md5_hex, multipart_etag, multipart_parts, Mismatches};
use crate::aws::{describe, with_causes};
use crate::config::S3Config;
use crate::generation::manifest::ManifestEntry;

/// Tries per request (the first and the retries).
pub const ATTEMPTS: u32 = 5;

/// Requests made, by kind, for the sync report and the no-op check.
#[derive(Debug, Default)]
pub(crate) struct RequestCounts {
    pub list: AtomicU64,
    pub get: AtomicU64,
    /// The multipart check's `HEAD ?partNumber=`.
    pub head: AtomicU64,
}

/// Requests made so far, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Requests {
    pub list: u64,
    pub get: u64,
    pub head: u64,
}

impl std::ops::Sub for Requests {
    type Output = Requests;
    fn sub(self, before: Requests) -> Requests {
        Requests {
            list: self.list.saturating_sub(before.list),
            get: self.get.saturating_sub(before.get),
            head: self.head.saturating_sub(before.head),
        }
    }
}

impl RequestCounts {
    pub(crate) fn snapshot(&self) -> Requests {
        Requests {
            list: self.list.load(Ordering::Relaxed),
            get: self.get.load(Ordering::Relaxed),
            head: self.head.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("listing the bucket failed: {reason}")]
    List { reason: String, retryable: bool },
    #[error("{key}: {reason}")]
    Object {
        key: String,
        reason: String,
        retryable: bool,
    },
    #[error("{key}: gone from the bucket since it was listed")]
    Vanished { key: String },
    /// The object is no longer the one listed (another ETag, or longer than listed).
    #[error("{key}: changed in the bucket since it was listed ({reason})")]
    Changed { key: String, reason: String },
}

impl SourceError {
    fn retryable(&self) -> bool {
        match self {
            Self::List { retryable, .. } | Self::Object { retryable, .. } => *retryable,
            Self::Vanished { .. } | Self::Changed { .. } => false,
        }
    }
}

pub(crate) struct Bucket {
    client: Client,
    bucket: String,
    prefix: String,
    request_timeout: Duration,
    stall_timeout: Duration,
    limiter: Option<Arc<DefaultDirectRateLimiter>>,
    pub requests: RequestCounts,
    mismatched: Mismatches,
}

/// Largest amount one bandwidth-limiter reservation may cover: body chunks are split to it.
const LIMITER_BURST: u32 = 64 * 1024;

impl Bucket {
    /// The bucket's client, signing with `clock` when given instead of the system clock (a Pi
    /// without a real-time clock, in tests). Either way the SDK measures the skew from each response's
    /// `Date` (kept per client) and our retry of a `RequestTimeTooSkewed` is signed with the
    /// corrected time.
    pub(crate) async fn connect_with_clock(
        config: &S3Config,
        clock: Option<SharedTimeSource>,
    ) -> Self {
        let client = crate::aws::s3_client(config, clock).await;
        let limiter = NonZeroU32::new(u32::try_from(config.bandwidth_limit).unwrap_or(u32::MAX))
            .map(|rate| {
                let burst = NonZeroU32::new(LIMITER_BURST.max(rate.get().min(LIMITER_BURST)))
                    .unwrap_or(rate);
                Arc::new(RateLimiter::direct(
                    Quota::per_second(rate).allow_burst(burst),
                ))
            });
        Self {
            client,
            bucket: config.bucket.clone(),
            prefix: config.prefix.clone(),
            request_timeout: config.request_timeout,
            stall_timeout: config.stall_timeout,
            limiter,
            requests: RequestCounts::default(),
            mismatched: super::verify::Mismatches::default(),
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
            let page = with_retries("list", || {
                let request = request.clone();
                async move {
                    self.requests.list.fetch_add(1, Ordering::Relaxed);
                    let send = tokio::time::timeout(self.request_timeout, request.send());
                    match send.await {
                        Ok(Ok(page)) => Ok(page),
                        Ok(Err(e)) => Err(SourceError::List {
                            reason: describe(&e),
                            retryable: is_retryable(&e),
                        }),
                        Err(_) => Err(SourceError::List {
                            reason: format!("no answer within {:?}", self.request_timeout),
                            retryable: true,
                        }),
                    }
                }
            })
            .await?;
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

    /// Downloads one listed object into a new file of `tmp`, retrying transient failures,
    /// and returns its manifest entry built from the GET response's headers.
    pub async fn download(
        &self,
        object: &RemoteObject,
        tmp: &Arc<TmpDir>,
    ) -> Result<(ManifestEntry, NewFile), SourceError> {
        with_retries(&object.key, || self.download_once(object, tmp)).await
    }

    async fn download_once(
        &self,
        object: &RemoteObject,
        tmp: &Arc<TmpDir>,
    ) -> Result<(ManifestEntry, NewFile), SourceError> {
        let key = object.key.as_str();
        let fail = |reason: String, retryable: bool| SourceError::Object {
            key: key.to_owned(),
            reason,
            retryable,
        };
        let changed = |reason: String| SourceError::Changed {
            key: key.to_owned(),
            reason,
        };
        self.requests.get.fetch_add(1, Ordering::Relaxed);
        let full_key = format!("{}{key}", self.prefix);
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full_key)
            .if_match(&object.etag)
            .send();
        let response = match tokio::time::timeout(self.request_timeout, request).await {
            Err(_) => {
                return Err(fail(
                    format!("no answer within {:?}", self.request_timeout),
                    true,
                ))
            }
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                if status == Some(404)
                    || e.as_service_error().is_some_and(
                        aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key,
                    )
                {
                    return Err(SourceError::Vanished {
                        key: key.to_owned(),
                    });
                }
                if status == Some(412) {
                    return Err(changed(format!("its ETag is no longer {}", object.etag)));
                }
                return Err(fail(describe(&e), is_retryable(&e)));
            }
        };
        let etag = response.e_tag().unwrap_or_default().to_owned();
        // A store that ignores If-Match still tells: the ETag or the length differ.
        if etag.trim_matches('"') != object.etag.trim_matches('"') {
            return Err(changed(format!("ETag {etag}, listed {}", object.etag)));
        }
        let expected_len = response
            .content_length()
            .and_then(|l| u64::try_from(l).ok());
        if expected_len.is_some_and(|len| len != object.size) {
            return Err(changed(format!(
                "{} bytes, listed {}",
                expected_len.unwrap_or_default(),
                object.size
            )));
        }
        let kms = response
            .server_side_encryption()
            .is_some_and(|s| s.as_str() != "AES256");
        let mut entry = ManifestEntry {
            etag: etag.clone(),
            size: 0,
            last_modified_unix: response
                .last_modified()
                .map(aws_sdk_s3::primitives::DateTime::secs),
            content_type: response.content_type().map(str::to_owned),
            cache_control: response.cache_control().map(str::to_owned),
            content_encoding: response.content_encoding().map(str::to_owned),
            content_disposition: response.content_disposition().map(str::to_owned),
            redirect_location: response.website_redirect_location().map(str::to_owned),
            ..Default::default()
        };

        let creating = tmp.clone();
        let mut new = tokio::task::spawn_blocking(move || creating.create())
            .await
            .map_err(|e| fail(format!("creating a file: {e}"), false))?
            .map_err(|e| {
                fail(
                    format!("creating a file in {}: {e}", tmp.path().display()),
                    false,
                )
            })?;
        let dest = new.path().to_owned();
        let io_fail = |e: std::io::Error| fail(format!("writing {}: {e}", dest.display()), false);
        let std_file = new
            .take_file()
            .ok_or_else(|| fail("no file to write".into(), false))?;
        let mut file = tokio::fs::File::from_std(std_file);
        let mut md5 = Md5::new();
        let mut len: u64 = 0;
        let mut body = response.body;
        loop {
            // The stall timeout measures the network only: the bandwidth limiter's waits
            // below are not a stall (a thin uplink must still get large objects through).
            let chunk = match tokio::time::timeout(self.stall_timeout, body.next()).await {
                Err(_) => {
                    return Err(fail(
                        format!(
                            "no byte for {:?} (s3.stall_timeout) after {len} bytes",
                            self.stall_timeout
                        ),
                        true,
                    ))
                }
                Ok(None) => break,
                Ok(Some(chunk)) => chunk,
            };
            let chunk =
                chunk.map_err(|e| fail(format!("body interrupted: {}", with_causes(&e)), true))?;
            if len + chunk.len() as u64 > object.size {
                return Err(changed(format!(
                    "the body is longer than the listed {} bytes",
                    object.size
                )));
            }
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
        if len != object.size {
            return Err(fail(
                format!("truncated body: {len} of {} bytes", object.size),
                true,
            ));
        }
        // A single-part upload's ETag is the MD5 of its bytes; a multipart one (`…-N`) is the
        // MD5 of its parts' MD5s. A KMS-encrypted object's ETag is neither: length only.
        let unquoted = etag.trim_matches('"');
        let body_md5 = hex(&md5.finalize());
        if !kms && is_md5_hex(unquoted) && !body_md5.eq_ignore_ascii_case(unquoted) {
            return Err(fail(
                format!("corrupt body: MD5 {body_md5}, ETag {unquoted}"),
                true,
            ));
        }
        // Made durable with the whole generation at commit (one syncfs, not one fsync each).
        file.flush().await.map_err(io_fail)?;
        drop(file);
        if let Some(parts) = multipart_parts(unquoted).filter(|_| !kms) {
            let made = self
                .parts_make_the_etag(key, &full_key, &etag, parts, len, &dest)
                .await?;
            // Only a real mismatch may be forgiven: a failed HEAD or read is an error as any.
            if !made {
                if !self.mismatched.same_bytes_again(key, &body_md5) {
                    return Err(fail(
                        format!("corrupt body: its parts' MD5s do not make the multipart ETag {unquoted}"),
                        true,
                    ));
                }
                tracing::warn!(key, etag = unquoted, "the same bytes came twice: the store makes multipart ETags its own way; accepted");
            }
        }
        entry.size = len;
        Ok((entry, new))
    }

    /// Whether a downloaded multipart object's parts' MD5s make its ETag (the MD5 of those
    /// MD5s). The part sizes are not in the ETag: a HEAD with `partNumber` (S3 and most
    /// compatible stores answer it with that part's length) gives them, one HEAD in the common
    /// case of equal parts, one per part otherwise. A store that does not answer it leaves the
    /// object checked by length only, as before (`true`): refusing it would fail every sync.
    async fn parts_make_the_etag(
        &self,
        key: &str,
        full_key: &str,
        etag: &str,
        parts: u32,
        len: u64,
        dest: &Path,
    ) -> Result<bool, SourceError> {
        let Some(first) = self.part_length(key, full_key, etag, 1, parts).await? else {
            tracing::debug!(
                key,
                "the store gives no part sizes; multipart object checked by length only"
            );
            return Ok(true);
        };
        let expected = etag.trim_matches('"');
        if let Some(sizes) = equal_parts(len, first, parts) {
            if file_multipart_etag(key, dest, sizes)
                .await?
                .is_some_and(|actual| actual.eq_ignore_ascii_case(expected))
            {
                return Ok(true);
            }
        }
        // Unequal parts (a custom uploader), or damage: ask for every part's length.
        let mut sizes = vec![first];
        for part in 2..=parts {
            match self.part_length(key, full_key, etag, part, parts).await? {
                Some(size) => sizes.push(size),
                None => return Ok(true),
            }
        }
        Ok(file_multipart_etag(key, dest, sizes)
            .await?
            .is_some_and(|actual| actual.eq_ignore_ascii_case(expected)))
    }

    /// The length of part `part` of a multipart object, if the store reports parts.
    async fn part_length(
        &self,
        key: &str,
        full_key: &str,
        etag: &str,
        part: u32,
        parts: u32,
    ) -> Result<Option<u64>, SourceError> {
        let number = i32::try_from(part).unwrap_or(i32::MAX);
        self.requests.head.fetch_add(1, Ordering::Relaxed);
        // If-Match: the lengths must be those of the object just downloaded.
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full_key)
            .part_number(number)
            .if_match(etag)
            .send()
            .await;
        match head {
            Ok(head) if head.parts_count() == i32::try_from(parts).ok() => {
                Ok(head.content_length().and_then(|l| u64::try_from(l).ok()))
            }
            Ok(_) => Ok(None),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                // 412: the object changed since the download. 501: a store without
                // `partNumber`, which is no reason to retry.
                if status == Some(412) || (is_retryable(&e) && status != Some(501)) {
                    return Err(SourceError::Object {
                        key: key.to_owned(),
                        reason: format!("asking for the part sizes: {}", describe(&e)),
                        retryable: true,
                    });
                }
                tracing::debug!(key, error = %describe(&e), "no part sizes from the store");
                Ok(None)
            }
        }
    }
}

/// [`multipart_etag`] of the file just written, off the async threads.
async fn file_multipart_etag(
    key: &str,
    dest: &Path,
    sizes: Vec<u64>,
) -> Result<Option<String>, SourceError> {
    let fail = |reason: String| SourceError::Object {
        key: key.to_owned(),
        reason,
        retryable: false,
    };
    let path = dest.to_owned();
    tokio::task::spawn_blocking(move || multipart_etag(&path, &sizes))
        .await
        .map_err(|e| fail(format!("checking the parts: {e}")))?
        .map_err(|e| fail(format!("reading {}: {e}", dest.display())))
}

/// Undoes S3's `encoding-type=url` (form encoding: `+` is a space).
fn decode_listed_key(encoded: &str) -> Option<String> {
    let plus_as_space = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Runs `op` until it succeeds, fails for good, or has been tried [`ATTEMPTS`] times.
async fn with_retries<T, F, Fut>(what: &str, mut op: F) -> Result<T, SourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, SourceError>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(e) if e.retryable() && attempt < ATTEMPTS => {
                let backoff = backoff(attempt);
                tracing::debug!(what, attempt, error = %e, ?backoff, "request failed; retrying");
                tokio::time::sleep(backoff).await;
            }
            other => return other,
        }
    }
}

/// Exponential backoff with jitter: 0.4 s, 0.8 s, 1.6 s ... capped at 10 s, each 50–100 % of that.
fn backoff(attempt: u32) -> Duration {
    let cap =
        crate::backoff::doubling(Duration::from_millis(200), attempt, Duration::from_secs(10));
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
                    | "RequestTimeTooSkewed"
                    | "InternalError"
                    | "ServiceUnavailable"
                    | "RequestTimeout"
                    | "Throttling"
            ) || service.raw().status().as_u16() >= 500
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::primitives::SdkBody;

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

    fn service_error(
        status: u16,
        meta: aws_sdk_s3::error::ErrorMetadata,
    ) -> SdkError<GetObjectError, HttpResponse> {
        let raw = http::Response::builder()
            .status(status)
            .body(SdkBody::from("Internal Server Error"))
            .expect("response");
        SdkError::service_error(
            GetObjectError::generic(meta),
            HttpResponse::try_from(raw).expect("raw response"),
        )
    }

    #[test]
    fn a_bare_5xx_is_described_by_its_http_status() {
        let e = service_error(500, aws_sdk_s3::error::ErrorMetadata::builder().build());
        assert_eq!(
            describe(&e),
            "HTTP 500 Internal Server Error, without an S3 error code"
        );
    }

    #[test]
    fn an_s3_error_is_described_by_its_code_message_and_status() {
        let meta = aws_sdk_s3::error::ErrorMetadata::builder()
            .code("SlowDown")
            .message("Please reduce your request rate.")
            .build();
        assert_eq!(
            describe(&service_error(503, meta)),
            "SlowDown (Please reduce your request rate.), HTTP 503"
        );
    }

    #[test]
    fn a_transport_error_is_described_with_its_causes() {
        let cause = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "end of file before message length reached",
        );
        let e: SdkError<GetObjectError, HttpResponse> = SdkError::timeout_error(cause);
        let text = describe(&e);
        assert!(
            text.ends_with(": end of file before message length reached"),
            "{text}"
        );
    }
}
