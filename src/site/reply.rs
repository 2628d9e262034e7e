//! The last step of the file server: one indexed file → one response, with the
//! representation chosen by Accept-Encoding, validators, conditional requests and ranges.
//!
//! Length and modification time come from `fstat` on the opened file rather than from the
//! index, so the headers always describe the bytes that are sent even if someone edits the
//! tree by hand between two index builds (a file replaced mid-response ends the response).

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::body::{Body, FileSource};
use super::index::{Entry, SiteIndex};
use super::open_files::{FileId, OpenFiles};

/// Where a response's file is opened, and the index it was found in.
#[derive(Clone, Copy)]
pub struct Files<'a> {
    pub open: &'a Arc<OpenFiles>,
    pub index: &'a Arc<SiteIndex>,
}

impl Files<'_> {
    /// The file at `path`, opened (or borrowed from the cache), and where its body comes from.
    fn open(&self, path: &Path) -> io::Result<(Contents, Arc<Metadata>)> {
        let opened = self.open.open(path)?;
        let contents = match opened.contents {
            Some(bytes) => Contents::Memory(bytes),
            None => Contents::File(FileSource {
                files: self.open.clone(),
                path: path.to_owned(),
                id: FileId::of(&opened.meta),
                index: self.index.clone(),
            }),
        };
        Ok((contents, opened.meta))
    }
}

/// A response body's bytes: a small file's, already in memory, or a file to stream.
enum Contents {
    Memory(Bytes),
    File(FileSource),
}

impl Contents {
    /// `len` bytes from `start`, which the caller has checked against the file's length.
    fn body(self, start: u64, len: u64) -> Body {
        match self {
            Contents::Memory(bytes) => Body::held(bytes, start, len),
            Contents::File(source) => Body::file(source, start, len),
        }
    }
}

/// The encodings a precompressed sibling can carry, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
            Encoding::Identity => "identity",
        }
    }
}

/// Serves `entry` for a GET or HEAD with status 200 (or 206/304/416 as the request asks).
pub fn file(
    files: Files<'_>,
    entry: &Entry,
    method: &Method,
    headers: &HeaderMap,
) -> Response<Body> {
    let (encoding, path) = choose_representation(entry, headers);
    let (contents, meta) = match files.open(path) {
        Ok(opened) => opened,
        Err(e) => return open_failure(e),
    };
    let len = meta.len();
    let validators = Validators::of(&meta, encoding);
    let has_variants = entry.brotli.is_some() || entry.gzip.is_some();

    let mut builder = Response::builder()
        .header(header::ETAG, validators.etag.clone())
        .header(header::LAST_MODIFIED, validators.last_modified.clone())
        .header(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if has_variants {
        builder = builder.header(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }

    if is_not_modified(headers, &validators) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_else(|_| internal_error());
    }

    builder = builder.header(header::CONTENT_TYPE, entry.content_type.clone());
    if encoding != Encoding::Identity {
        builder = builder.header(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.token()),
        );
    } else if let Some(stored) = &entry.content_encoding {
        builder = builder.header(header::CONTENT_ENCODING, stored.clone());
    }
    for (name, value) in &entry.headers {
        builder = builder.header(name, value.clone());
    }

    let (status, start, count) = match requested_range(method, headers, &validators, len) {
        RangeDecision::Full => (StatusCode::OK, 0, len),
        RangeDecision::Partial(start, end) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeDecision::Unsatisfiable => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .header(header::CONTENT_LENGTH, 0)
                .body(Body::empty())
                .unwrap_or_else(|_| internal_error());
        }
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        contents.body(start, count)
    };
    builder
        .status(status)
        .header(header::CONTENT_LENGTH, count)
        .body(body)
        .unwrap_or_else(|_| internal_error())
}

/// Serves the site's own `404.html` with status 404, or a short text when it has none.
pub fn not_found(files: Files<'_>, page: Option<&Entry>, method: &Method) -> Response<Body> {
    if let Some(entry) = page {
        if let Ok((contents, meta)) = files.open(&entry.path) {
            let len = meta.len();
            let body = if method == Method::HEAD {
                Body::empty()
            } else {
                contents.body(0, len)
            };
            return Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header(header::CONTENT_TYPE, entry.content_type.clone())
                .header(header::CONTENT_LENGTH, len)
                .body(body)
                .unwrap_or_else(|_| internal_error());
        }
    }
    text(StatusCode::NOT_FOUND, "404 Not Found\n", method)
}

/// A short plain-text response (errors, the health path).
pub fn text(status: StatusCode, message: &'static str, method: &Method) -> Response<Body> {
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::bytes(message)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(message.len()));
    response
}

fn internal_error() -> Response<Body> {
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 Internal Server Error\n",
        &Method::GET,
    )
}

fn open_failure(e: io::Error) -> Response<Body> {
    if e.kind() == io::ErrorKind::NotFound {
        // The tree changed since it was indexed; the next index build will catch up.
        text(StatusCode::NOT_FOUND, "404 Not Found\n", &Method::GET)
    } else {
        // EMFILE and friends come in floods: one line a minute, with the count.
        static OPEN_ERRORS: crate::throttle::Throttle = crate::throttle::Throttle::new();
        if let Some(left_out) = OPEN_ERRORS.report() {
            tracing::warn!(error = %e, left_out, "cannot open an indexed file");
        }
        internal_error()
    }
}

fn choose_representation<'a>(entry: &'a Entry, headers: &HeaderMap) -> (Encoding, &'a Path) {
    if entry.brotli.is_none() && entry.gzip.is_none() {
        return (Encoding::Identity, &entry.path);
    }
    let accepted = AcceptEncoding::parse(headers);
    if let Some(path) = entry.brotli.as_deref().filter(|_| accepted.brotli) {
        return (Encoding::Brotli, path);
    }
    if let Some(path) = entry.gzip.as_deref().filter(|_| accepted.gzip) {
        return (Encoding::Gzip, path);
    }
    (Encoding::Identity, &entry.path)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct AcceptEncoding {
    brotli: bool,
    gzip: bool,
}

impl AcceptEncoding {
    /// Honours `q=0` (refusal) and `*`; other weights only matter between br and gzip,
    /// where br is always the smaller body, so they are not ranked further.
    fn parse(headers: &HeaderMap) -> Self {
        let mut accepted = AcceptEncoding::default();
        let mut wildcard = None;
        let (mut br_said, mut gzip_said) = (false, false);
        for value in headers.get_all(header::ACCEPT_ENCODING) {
            let Ok(value) = value.to_str() else { continue };
            for item in value.split(',') {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or("").trim();
                let refused = parts.any(|p| {
                    let p = p.trim();
                    p.strip_prefix("q=")
                        .or_else(|| p.strip_prefix("Q="))
                        .and_then(|q| q.trim().parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                });
                if coding.eq_ignore_ascii_case("br") {
                    br_said = true;
                    accepted.brotli = !refused;
                } else if coding.eq_ignore_ascii_case("gzip")
                    || coding.eq_ignore_ascii_case("x-gzip")
                {
                    gzip_said = true;
                    accepted.gzip = !refused;
                } else if coding == "*" {
                    wildcard = Some(!refused);
                }
            }
        }
        if let Some(ok) = wildcard {
            if !br_said {
                accepted.brotli = ok;
            }
            if !gzip_said {
                accepted.gzip = ok;
            }
        }
        accepted
    }
}

struct Validators {
    etag: HeaderValue,
    last_modified: HeaderValue,
    modified: SystemTime,
}

impl Validators {
    /// A strong ETag from modification time (to the nanosecond), size and inode, different
    /// per encoding because each encoding is a different representation.
    fn of(meta: &Metadata, encoding: Encoding) -> Self {
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let since_epoch = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        let suffix = match encoding {
            Encoding::Identity => "",
            Encoding::Brotli => "-br",
            Encoding::Gzip => "-gz",
        };
        let etag = format!(
            "\"{:x}.{:x}-{:x}-{:x}{suffix}\"",
            since_epoch.as_secs(),
            since_epoch.subsec_nanos(),
            meta.len(),
            meta.ino()
        );
        // HTTP dates have whole seconds; comparisons below use the truncated time too.
        let modified = UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs());
        Self {
            etag: HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\"")),
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(modified))
                .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT")),
            modified,
        }
    }
}

/// RFC 9110 §13.2.2: If-None-Match decides when present; If-Modified-Since only without it.
fn is_not_modified(headers: &HeaderMap, v: &Validators) -> bool {
    let etag = v.etag.as_bytes();
    let inm: Vec<_> = headers.get_all(header::IF_NONE_MATCH).iter().collect();
    if !inm.is_empty() {
        return inm.iter().any(|value| {
            value.as_bytes().split(|&b| b == b',').any(|tag| {
                let tag = tag.trim_ascii();
                tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag
            })
        });
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .is_some_and(|since| v.modified <= since)
}

enum RangeDecision {
    Full,
    Partial(u64, u64),
    Unsatisfiable,
}

fn requested_range(
    method: &Method,
    headers: &HeaderMap,
    v: &Validators,
    len: u64,
) -> RangeDecision {
    use http_range_header::RangeUnsatisfiableError as E;
    if method != Method::GET {
        return RangeDecision::Full;
    }
    let Some(range) = headers.get(header::RANGE).and_then(|r| r.to_str().ok()) else {
        return RangeDecision::Full;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        if !if_range_matches(if_range, v) {
            return RangeDecision::Full;
        }
    }
    let ranges = match http_range_header::parse_range_header(range).and_then(|p| p.validate(len)) {
        Ok(ranges) => ranges,
        Err(E::Unsatisfiable | E::Rejected(_)) => return RangeDecision::Unsatisfiable,
        // RFC 9110 §14.2: a Range the server cannot parse is ignored.
        Err(_) => return RangeDecision::Full,
    };
    match ranges.as_slice() {
        [one] => RangeDecision::Partial(*one.start(), *one.end()),
        // Several ranges would need multipart/byteranges; answering whole is allowed and is
        // what a static site's readers (media seeking, resumed downloads) never notice.
        _ => RangeDecision::Full,
    }
}

/// If-Range holds a strong ETag (compared strongly) or an HTTP date (must equal
/// Last-Modified exactly).
fn if_range_matches(if_range: &HeaderValue, v: &Validators) -> bool {
    let value = if_range.as_bytes();
    if value.starts_with(b"\"") {
        return value == v.etag.as_bytes();
    }
    if value.starts_with(b"W/") {
        return false;
    }
    if_range
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .is_some_and(|date| date == v.modified)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> AcceptEncoding {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        AcceptEncoding::parse(&h)
    }

    #[test]
    fn accept_encoding_honours_refusals_and_wildcards() {
        assert_eq!(
            accept("gzip, deflate, br"),
            AcceptEncoding {
                brotli: true,
                gzip: true
            }
        );
        assert_eq!(
            accept("gzip"),
            AcceptEncoding {
                brotli: false,
                gzip: true
            }
        );
        assert_eq!(
            accept("br;q=0, gzip;q=0.5"),
            AcceptEncoding {
                brotli: false,
                gzip: true
            }
        );
        assert_eq!(
            accept("*"),
            AcceptEncoding {
                brotli: true,
                gzip: true
            }
        );
        assert_eq!(
            accept("*;q=0, gzip"),
            AcceptEncoding {
                brotli: false,
                gzip: true
            }
        );
        assert_eq!(accept("identity"), AcceptEncoding::default());
    }
}
