//! Who may see the status page: addresses in the allow-list asking by a local name, or
//! anyone with the token.
//!
//! The name matters because of DNS rebinding: a web page a LAN user opens can make
//! `evil.example` resolve to the Pi and then read `/api/status` with the user's browser, from
//! an allowed address. The browser sends `Host: evil.example`; the page answers such a request
//! only with the token, which the attacker does not have. IP literals, `localhost`, the Pi's
//! own host name (and `.local`) and `status.hostnames` are local names.

use std::net::IpAddr;

use http::header;

#[derive(Debug, Clone)]
pub struct Access {
    allow: Vec<ipnet::IpNet>,
    token: Option<String>,
    /// Lower-case names, besides IP literals, that a request without the token may ask for.
    local_names: Vec<String>,
}

/// `localhost`, this machine's host name and its mDNS name, and `extra`, lower-cased.
pub(crate) fn local_names(extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Ok(host) = rustix::system::uname().nodename().to_str() {
        if !host.is_empty() {
            names.push(host.to_ascii_lowercase());
            names.push(format!("{}.local", host.to_ascii_lowercase()));
        }
    }
    names.extend(extra.iter().map(|name| name.to_ascii_lowercase()));
    names
}

impl Access {
    pub fn new(allow: Vec<ipnet::IpNet>, token: Option<String>, local_names: Vec<String>) -> Self {
        Self {
            allow,
            token,
            local_names,
        }
    }

    /// `peer` as accepted: canonical, an IPv4 client of a dual-stack listener as IPv4
    /// (`listener::canonical`), so the allow-list's IPv4 networks match it.
    pub(crate) fn permits<B>(&self, peer: IpAddr, request: &http::Request<B>) -> bool {
        let allowed = self.allow.iter().any(|net| net.contains(&peer)) && self.local_host(request);
        allowed || self.has_token(request)
    }

    /// The request names the page by an IP literal or a local name (or names nothing, as an
    /// HTTP/1.0 client may: no browser does, so no rebinding page can).
    fn local_host<B>(&self, request: &http::Request<B>) -> bool {
        let host = request
            .uri()
            .host()
            .or_else(|| request.headers().get(header::HOST)?.to_str().ok());
        let Some(host) = host else {
            return request.headers().get(header::HOST).is_none();
        };
        let name = crate::site::handler::strip_port(host);
        let name = name.strip_suffix('.').unwrap_or(name);
        name.parse::<IpAddr>().is_ok()
            || self
                .local_names
                .iter()
                .any(|local| local.eq_ignore_ascii_case(name))
    }

    fn has_token<B>(&self, request: &http::Request<B>) -> bool {
        let Some(token) = &self.token else {
            return false;
        };
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        [bearer, query_token(request)]
            .into_iter()
            .flatten()
            .any(|offered| same(offered.as_bytes(), token.as_bytes()))
    }

    /// The query string to keep on the page's own links and refreshes.
    pub(crate) fn token_query<B>(&self, request: &http::Request<B>) -> Option<String> {
        let token = self.token.as_ref()?;
        let offered = query_token(request)?;
        same(offered.as_bytes(), token.as_bytes()).then(|| format!("?token={offered}"))
    }
}

/// `?token=…`: a phone's browser cannot add an Authorization header.
fn query_token<B>(request: &http::Request<B>) -> Option<&str> {
    request
        .uri()
        .query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("token="))
}

/// Compares in time independent of where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        Access::new(
            vec![
                "127.0.0.0/8".parse().expect("net"),
                "192.168.0.0/16".parse().expect("net"),
            ],
            Some("0123456789abcdef".into()),
            local_names(&["pi.lan".into()]),
        )
    }

    fn request(uri: &str, auth: Option<&str>) -> http::Request<()> {
        request_for("192.168.1.20:8080", uri, auth)
    }

    fn request_for(host: &str, uri: &str, auth: Option<&str>) -> http::Request<()> {
        let mut r = http::Request::get(uri).header(header::HOST, host);
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(()).expect("request")
    }

    #[test]
    fn allowed_networks_need_no_token() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(access().permits(ip("127.0.0.1"), &request("/", None)));
        assert!(!access().permits(ip("203.0.113.9"), &request("/", None)));
    }

    #[test]
    fn the_token_lets_any_address_in_by_header_or_query() {
        let outside: IpAddr = "203.0.113.9".parse().expect("ip");
        let a = access();
        assert!(a.permits(outside, &request("/", Some("Bearer 0123456789abcdef"))));
        assert!(a.permits(
            outside,
            &request("/api/status?token=0123456789abcdef", None)
        ));
        assert!(!a.permits(outside, &request("/", Some("Bearer 0123456789abcdeF"))));
        assert!(!a.permits(outside, &request("/?token=0123456789abcde", None)));
        assert!(!a.permits(outside, &request("/", Some("0123456789abcdef"))));
        let no_token = Access::new(vec![], None, local_names(&[]));
        assert!(!no_token.permits(outside, &request("/?token=", None)));
    }

    #[test]
    fn a_rebound_name_needs_the_token_even_from_an_allowed_address() {
        let lan: IpAddr = "192.168.1.7".parse().expect("ip");
        let a = access();
        for host in [
            "192.168.1.20",
            "192.168.1.20:8080",
            "[::1]:8080",
            "localhost:8080",
            "PI.LAN",
            "pi.lan.",
        ] {
            assert!(
                a.permits(lan, &request_for(host, "/api/status", None)),
                "{host}"
            );
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "pi.lan.evil.example",
        ] {
            assert!(
                !a.permits(lan, &request_for(host, "/api/status", None)),
                "{host}"
            );
            assert!(
                a.permits(
                    lan,
                    &request_for(host, "/api/status?token=0123456789abcdef", None)
                ),
                "{host} with the token"
            );
        }
        let no_host = http::Request::get("/").body(()).expect("request");
        assert!(a.permits(lan, &no_host), "an HTTP/1.0 request without Host");
    }
}
