//! Who may see the status page: addresses in the allow-list, or anyone with the token.

use std::net::IpAddr;

use http::header;

#[derive(Debug, Clone)]
pub struct Access {
    allow: Vec<ipnet::IpNet>,
    token: Option<String>,
}

impl Access {
    pub fn new(allow: Vec<ipnet::IpNet>, token: Option<String>) -> Self {
        Self { allow, token }
    }

    pub fn permits<B>(&self, peer: IpAddr, request: &http::Request<B>) -> bool {
        // An IPv4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|net| net.contains(&peer)) || self.has_token(request)
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
    pub fn token_query<B>(&self, request: &http::Request<B>) -> Option<String> {
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
        )
    }

    fn request(uri: &str, auth: Option<&str>) -> http::Request<()> {
        let mut r = http::Request::get(uri);
        if let Some(a) = auth {
            r = r.header(header::AUTHORIZATION, a);
        }
        r.body(()).expect("request")
    }

    #[test]
    fn allowed_networks_need_no_token() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(access().permits(ip("127.0.0.1"), &request("/", None)));
        assert!(access().permits(ip("::ffff:192.168.1.20"), &request("/", None)));
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
        let no_token = Access::new(vec![], None);
        assert!(!no_token.permits(outside, &request("/?token=", None)));
    }
}
