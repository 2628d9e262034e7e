//! The request path, top to bottom. Each step either answers or hands on:
//!
//! HTTPS: method → health path → resolve the URL → look it up in the index → reply → headers.
//! HTTP:  health path → redirect to HTTPS.

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use super::body::Body;
use super::index::Lookup;
use super::reply::Files;
use super::resolve::request_key;
use super::{reply, Site};

/// Answers one request received over HTTPS.
pub fn https<B>(site: &Site, req: &Request<B>) -> Response<Body> {
    let mut response = site_response(site, req);
    site.policy.apply_https(response.headers_mut());
    response
}

fn site_response<B>(site: &Site, req: &Request<B>) -> Response<Body> {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return method_not_allowed(method);
    }
    let path = req.uri().path();
    if path == site.health_path {
        return health();
    }
    let requested = match request_key(path) {
        Ok(key) => key,
        Err(rejection) => {
            tracing::debug!(path, %rejection, "rejected request path");
            return reply::text(StatusCode::BAD_REQUEST, "400 Bad Request\n", method);
        }
    };
    let index = site.index();
    let files = Files {
        open: &site.open_files,
        index: &index,
    };
    if requested.has_dotfile && !site.serve_dotfiles {
        return reply::not_found(files, index.get("404.html"), method);
    }
    match index.lookup(&requested.key, requested.directory) {
        Lookup::File(entry) => match &entry.redirect {
            Some(location) => redirect_to(location.clone(), method),
            None => reply::file(files, entry, method, req.headers()),
        },
        Lookup::AddSlash => add_slash(&requested.key, req),
        Lookup::NotFound => reply::not_found(files, index.get("404.html"), method),
    }
}

/// Answers one request received over plain HTTP: the health path, or a redirect to HTTPS.
pub fn http<B>(site: &Site, req: &Request<B>) -> Response<Body> {
    let method = req.method();
    let mut response = if req.uri().path() == site.health_path
        && (method == Method::GET || method == Method::HEAD)
    {
        health()
    } else {
        redirect_to_https(site, req)
    };
    site.policy.apply_plain(response.headers_mut());
    response
}

/// The health path is answered whatever the site holds: DNS health checkers only need to
/// know the server is up, and the body is empty so it costs nothing on a thin uplink.
fn health() -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, 0)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::empty())
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn method_not_allowed(method: &Method) -> Response<Body> {
    let mut response = reply::text(
        StatusCode::METHOD_NOT_ALLOWED,
        "405 Method Not Allowed\n",
        method,
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// `/about` → `/about/`, query kept. The Location is built from the normalised key, never
/// from the raw path: `//about` once answered `Location: //about/`, which a browser reads as
/// the host `about` (an open redirect). A key has no empty segment, so the Location is always
/// a path on this site, and a forged Host header can never change that either.
fn add_slash<B>(key: &str, req: &Request<B>) -> Response<Body> {
    /// Everything but a path segment's own characters (RFC 3986 `pchar`) is escaped.
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'!')
        .remove(b'$')
        .remove(b'&')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')')
        .remove(b'*')
        .remove(b'+')
        .remove(b',')
        .remove(b';')
        .remove(b'=')
        .remove(b':')
        .remove(b'@');
    let mut location = String::with_capacity(key.len() + 2);
    for segment in key.split('/') {
        location.push('/');
        location.extend(percent_encoding::utf8_percent_encode(segment, SEGMENT));
    }
    location.push('/');
    if let Some(query) = req.uri().query() {
        location.push('?');
        location.push_str(query);
    }
    moved_permanently(&location, req.method())
}

fn redirect_to_https<B>(site: &Site, req: &Request<B>) -> Response<Body> {
    let asked = req
        .uri()
        .host()
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
        .map(strip_port);
    // Only the site's own names are echoed back; anything else (a bare IP, a scanner's
    // invented Host) goes to the first configured name.
    let host = asked
        .and_then(|h| {
            site.hostnames
                .iter()
                .find(|name| name.eq_ignore_ascii_case(h))
        })
        .or(site.hostnames.first())
        .map_or("localhost", String::as_str);
    let port = match site.https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    // `OPTIONS *` (asterisk form) and other targets that are not a path redirect to `/`:
    // appending `*` to the host made a Location such as `https://example.com*`.
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(http::uri::PathAndQuery::as_str)
        .filter(|pq| pq.starts_with('/'))
        .unwrap_or("/");
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    moved_permanently(
        &format!("https://{host}{port}{path_and_query}"),
        req.method(),
    )
}

/// `host:port` → `host`; `[v6]:port` → `v6`.
pub(crate) fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// An object's `x-amz-website-redirect-location`, answered as S3 website hosting does.
fn redirect_to(location: HeaderValue, method: &Method) -> Response<Body> {
    let mut response = reply::text(
        StatusCode::MOVED_PERMANENTLY,
        "301 Moved Permanently\n",
        method,
    );
    response.headers_mut().insert(header::LOCATION, location);
    response
}

fn moved_permanently(location: &str, method: &Method) -> Response<Body> {
    let mut response = reply::text(
        StatusCode::MOVED_PERMANENTLY,
        "301 Moved Permanently\n",
        method,
    );
    match HeaderValue::from_str(location) {
        Ok(value) => {
            response.headers_mut().insert(header::LOCATION, value);
            response
        }
        Err(_) => reply::text(StatusCode::BAD_REQUEST, "400 Bad Request\n", method),
    }
}

#[cfg(test)]
mod tests {
    use super::strip_port;

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("[::1]:8080"), "::1");
    }
}
