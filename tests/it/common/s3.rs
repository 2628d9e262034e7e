//! A real S3 protocol server on loopback for the sync tests: the `s3s` crate speaks the
//! protocol and checks SigV4 signatures; the bucket is ours, in memory, so it keeps hostile
//! keys verbatim, reports ETags in listings, counts requests and injects faults.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use md5::{Digest, Md5};
use s3s::dto::{
    ETag, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object, StreamingBlob,
};
use s3s::{s3_error, S3Request, S3Response, S3Result};

pub const ACCESS_KEY: &str = "AKTESTKEY123";
pub const SECRET_KEY: &str = "SKTESTSECRET456";
pub const BUCKET: &str = "site";

#[derive(Debug, Clone)]
pub struct StoredObject {
    pub body: Bytes,
    pub etag: String,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_encoding: Option<String>,
    pub content_disposition: Option<String>,
    pub redirect: Option<String>,
    pub last_modified: SystemTime,
    /// Set by [`StoredObject::multipart`]: HEAD with `partNumber` answers with part sizes.
    pub part_size: Option<usize>,
}

impl StoredObject {
    pub fn new(body: impl Into<Bytes>) -> Self {
        let body = body.into();
        Self {
            etag: format!("\"{}\"", hex(&Md5::digest(&body))),
            body,
            content_type: None,
            cache_control: None,
            content_encoding: None,
            content_disposition: None,
            redirect: None,
            last_modified: SystemTime::now(),
            part_size: None,
        }
    }

    pub fn content_type(mut self, value: &str) -> Self {
        self.content_type = Some(value.into());
        self
    }

    pub fn cache_control(mut self, value: &str) -> Self {
        self.cache_control = Some(value.into());
        self
    }

    pub fn content_encoding(mut self, value: &str) -> Self {
        self.content_encoding = Some(value.into());
        self
    }

    pub fn redirect(mut self, value: &str) -> Self {
        self.redirect = Some(value.into());
        self
    }

    /// The ETag S3 gives an object uploaded in `parts` parts: MD5 of the parts' MD5s, `-N`.
    pub fn multipart(mut self, parts: usize) -> Self {
        let size = self.body.len().div_ceil(parts);
        let mut digests = Vec::new();
        for part in self.body.chunks(size) {
            digests.extend_from_slice(&Md5::digest(part));
        }
        self.etag = format!("\"{}-{parts}\"", hex(&Md5::digest(&digests)));
        self.part_size = Some(size);
        self
    }
}

/// S3's `encoding-type=url`: everything but unreserved characters and `/` percent-encoded.
pub fn url_encode(key: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    percent_encoding::utf8_percent_encode(key, SET).to_string()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// What the next GET (of any key) suffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    InternalError,
    SlowDown,
    /// Half the body, then the connection drops.
    Truncate,
    /// The full length, one byte flipped.
    Corrupt,
    /// The answer comes after this long.
    Stall(Duration),
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, StoredObject>,
    faults: VecDeque<Fault>,
    /// Applied to every GET while set.
    persistent_fault: Option<Fault>,
    /// Puts (`Some`) and deletes (`None`) made just after the next LIST is answered: the
    /// bucket changing between a sync's listing and its downloads.
    after_list: Vec<(String, Option<StoredObject>)>,
    lists: u64,
    gets: u64,
    heads: u64,
    /// GETs answered 304 Not Modified (their `If-None-Match` named the object's ETag).
    not_modified: u64,
    /// GETs answered with the object's body, by key.
    bodies_by_key: BTreeMap<String, u64>,
}

/// The objects a LIST answers from.
struct ListView {
    objects: BTreeMap<String, StoredObject>,
}

/// The in-memory bucket; clones share it.
#[derive(Debug, Clone, Default)]
pub struct MemBucket(Arc<Mutex<State>>);

impl MemBucket {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn put(&self, key: &str, object: StoredObject) {
        self.state().objects.insert(key.to_owned(), object);
    }

    pub fn put_body(&self, key: &str, body: impl Into<Bytes>) {
        self.put(key, StoredObject::new(body));
    }

    pub fn delete(&self, key: &str) {
        self.state().objects.remove(key);
    }

    pub fn clear(&self) {
        self.state().objects.clear();
    }

    pub fn object(&self, key: &str) -> Option<StoredObject> {
        self.state().objects.get(key).cloned()
    }

    pub fn keys(&self) -> Vec<String> {
        self.state().objects.keys().cloned().collect()
    }

    /// Queues faults for the next GETs, one each.
    pub fn fail_next(&self, faults: &[Fault]) {
        self.state().faults.extend(faults.iter().copied());
    }

    /// Every GET fails this way until cleared with `None`.
    pub fn fail_always(&self, fault: Option<Fault>) {
        self.state().persistent_fault = fault;
    }

    /// (list requests, get requests) so far.
    pub fn requests(&self) -> (u64, u64) {
        let state = self.state();
        (state.lists, state.gets)
    }

    /// GETs answered 304 Not Modified so far.
    pub fn not_modified(&self) -> u64 {
        self.state().not_modified
    }

    /// GETs of `key` answered with its body so far.
    pub fn downloads_of(&self, key: &str) -> u64 {
        self.state().bodies_by_key.get(key).copied().unwrap_or(0)
    }

    /// HEAD requests so far.
    pub fn heads(&self) -> u64 {
        self.state().heads
    }

    /// Puts `object` at `key` right after the next LIST is answered.
    pub fn put_after_next_list(&self, key: &str, object: StoredObject) {
        self.state().after_list.push((key.to_owned(), Some(object)));
    }
}

#[async_trait::async_trait]
impl s3s::S3 for MemBucket {
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        if input.bucket != BUCKET {
            return Err(s3_error!(NoSuchBucket));
        }
        let max_keys = usize::try_from(input.max_keys.unwrap_or(1000))
            .unwrap_or(1000)
            .clamp(1, 1000);
        let prefix = input.prefix.unwrap_or_default();
        let url_encoded = input
            .encoding_type
            .as_ref()
            .is_some_and(|e| e.as_str() == "url");
        let after = input
            .continuation_token
            .or(input.start_after)
            .unwrap_or_default();
        let mut state = self.state();
        state.lists += 1;
        // Answered from the state as it is now; the changes land before the next request.
        let listed_before_changes = state.objects.clone();
        for (key, change) in std::mem::take(&mut state.after_list) {
            match change {
                Some(object) => state.objects.insert(key, object),
                None => state.objects.remove(&key),
            };
        }
        let state = ListView {
            objects: listed_before_changes,
        };
        let mut matching = state
            .objects
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix) && key.as_str() > after.as_str());
        let page: Vec<Object> = matching
            .by_ref()
            .take(max_keys)
            .map(|(key, object)| Object {
                key: Some(if url_encoded {
                    url_encode(key)
                } else {
                    key.clone()
                }),
                e_tag: Some(ETag::Strong(object.etag.trim_matches('"').to_owned())),
                size: Some(object.body.len() as i64),
                last_modified: Some(object.last_modified.into()),
                ..Default::default()
            })
            .collect();
        let truncated = matching.next().is_some();
        let next = truncated
            .then(|| {
                state
                    .objects
                    .range(after.clone()..)
                    .filter(|(k, _)| k.starts_with(&prefix) && k.as_str() > after.as_str())
                    .nth(max_keys - 1)
                    .map(|(k, _)| k.clone())
            })
            .flatten();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(BUCKET.into()),
            prefix: Some(prefix),
            key_count: Some(page.len() as i32),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(truncated),
            next_continuation_token: next,
            contents: Some(page),
            ..Default::default()
        }))
    }

    /// With `partNumber`, as S3 answers for a multipart object: that part's length and the
    /// part count (the sync checks multipart ETags with them).
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let input = req.input;
        let object = {
            let mut state = self.state();
            state.heads += 1;
            state.objects.get(&input.key).cloned()
        };
        let Some(object) = object else {
            return Err(s3_error!(NoSuchKey));
        };
        let len = object.body.len();
        let (length, parts_count) = match (input.part_number, object.part_size) {
            (Some(n), Some(size)) if n >= 1 => {
                let start = (n as usize - 1) * size;
                if start >= len {
                    return Err(s3_error!(InvalidRange));
                }
                (size.min(len - start), Some(len.div_ceil(size) as i32))
            }
            _ => (len, None),
        };
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(length as i64),
            parts_count,
            e_tag: Some(ETag::Strong(object.etag.trim_matches('"').to_owned())),
            last_modified: Some(object.last_modified.into()),
            content_type: object.content_type.clone(),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let input = req.input;
        let (object, fault) = {
            let mut state = self.state();
            state.gets += 1;
            let fault = state.faults.pop_front().or(state.persistent_fault);
            let object = state.objects.get(&input.key).cloned();
            (object, fault)
        };
        if input.bucket != BUCKET {
            return Err(s3_error!(NoSuchBucket));
        }
        let Some(object) = object else {
            return Err(s3_error!(NoSuchKey));
        };
        // As S3: a GET bound to an ETag fails with 412 once the object is another.
        if let Some(wanted) = input.if_match.as_ref().and_then(|c| c.as_etag()) {
            if wanted.value() != object.etag.trim_matches('"') {
                return Err(s3_error!(PreconditionFailed));
            }
        }
        // As S3: a GET whose `If-None-Match` names the object's ETag gets 304 and no body.
        if let Some(held) = input.if_none_match.as_ref().and_then(|c| c.as_etag()) {
            if held.value() == object.etag.trim_matches('"') {
                self.state().not_modified += 1;
                return Err(s3_error!(NotModified));
            }
        }
        *self
            .state()
            .bodies_by_key
            .entry(input.key.clone())
            .or_default() += 1;
        let mut body = object.body.clone();
        let mut truncate = false;
        match fault {
            Some(Fault::InternalError) => return Err(s3_error!(InternalError, "injected")),
            Some(Fault::SlowDown) => return Err(s3_error!(SlowDown, "injected")),
            Some(Fault::Stall(d)) => tokio::time::sleep(d).await,
            Some(Fault::Corrupt) if !body.is_empty() => {
                let mut bytes = body.to_vec();
                bytes[0] ^= 0xff;
                body = bytes.into();
            }
            Some(Fault::Truncate) => truncate = true,
            _ => {}
        }
        let len = body.len();
        let blob = if truncate {
            let half = body.slice(..len / 2);
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::other("injected connection drop")),
            ];
            StreamingBlob::wrap(futures_util::stream::iter(chunks))
        } else {
            StreamingBlob::from(s3s::Body::from(body))
        };
        Ok(S3Response::new(GetObjectOutput {
            body: Some(blob),
            content_length: Some(len as i64),
            e_tag: Some(ETag::Strong(object.etag.trim_matches('"').to_owned())),
            last_modified: Some(object.last_modified.into()),
            content_type: object.content_type.clone(),
            cache_control: object.cache_control.clone(),
            content_encoding: object.content_encoding.clone(),
            content_disposition: object.content_disposition.clone(),
            website_redirect_location: object.redirect.clone(),
            ..Default::default()
        }))
    }
}

/// A running S3 server on 127.0.0.1 with one bucket, `site`.
pub struct S3Server {
    pub addr: SocketAddr,
    pub bucket: MemBucket,
    /// Requests answered 403: a bad signature, or one signed too far from the server's clock.
    pub forbidden: Arc<std::sync::atomic::AtomicU64>,
}

impl S3Server {
    pub async fn start() -> Self {
        let bucket = MemBucket::default();
        let mut builder = s3s::service::S3ServiceBuilder::new(bucket.clone());
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind s3");
        let addr = listener.local_addr().expect("addr");
        let forbidden = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = forbidden.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let service = service.clone();
                let counter = counter.clone();
                let counting = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (service, counter) = (service.clone(), counter.clone());
                        async move {
                            let response = hyper::service::Service::call(&service, request).await?;
                            if response.status() == hyper::StatusCode::FORBIDDEN {
                                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            Ok::<_, s3s::HttpError>(response)
                        }
                    },
                );
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(tcp);
                    // hyper adds the `Date` header the SDK's clock-skew correction reads.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, counting)
                        .await;
                });
            }
        });
        Self {
            addr,
            bucket,
            forbidden,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes an AWS shared-credentials file for this server, as a user drops on the card.
    pub fn write_credentials(&self, path: &Path) {
        std::fs::write(
            path,
            format!("[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"),
        )
        .expect("credentials file");
    }
}
