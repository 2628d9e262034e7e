//! Which `x-amz-website-redirect-location` values the site answers with.
//!
//! The bucket's writer is trusted with the site, not with where its readers are sent. S3
//! itself accepts only a path (`/…`) or an `http(s)://` URL; anything else, passed through,
//! was an open redirect on the standby: `//evil.example/` is another host to a browser, and
//! so is `/\evil.example/` (browsers read a backslash as a slash). A full URL must name one of
//! the site's own hostnames. Each rule is named for what it stops.

/// Why a redirect location is not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectRejection {
    /// `//host/…` or `/\host/…`: a path to S3, another host to a browser.
    #[error("a protocol-relative location names another host")]
    ProtocolRelative,
    /// Not a path and not an http(s) URL (`javascript:`, `evil.example`, `ftp://…`).
    #[error("neither a path starting with / nor an http(s) URL")]
    NotPathOrHttpUrl,
    /// A control character or a space: a header that splits, or a URL no browser agrees on.
    #[error("contains a control character or a space")]
    ForbiddenCharacter,
    /// An http(s) URL whose host is not one of the site's hostnames.
    #[error("an http(s) URL to a host that is not one of site.hostnames")]
    ForeignHost,
}

/// The shape rules alone, without the site's hostnames: for a manifest written before the
/// sync checked hosts.
pub(crate) fn check_shape(location: &str) -> Result<(), RedirectRejection> {
    if location.chars().any(|c| c.is_control() || c == ' ') {
        return Err(RedirectRejection::ForbiddenCharacter);
    }
    if let Some(rest) = location.strip_prefix('/') {
        if rest.starts_with('/') || rest.starts_with('\\') {
            return Err(RedirectRejection::ProtocolRelative);
        }
        return Ok(());
    }
    let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(());
    }
    Err(RedirectRejection::NotPathOrHttpUrl)
}

/// Every rule: a path on this site, or an http(s) URL to one of `own_hosts`.
pub fn check(location: &str, own_hosts: &[String]) -> Result<(), RedirectRejection> {
    check_shape(location)?;
    if location.starts_with('/') {
        return Ok(());
    }
    let host = location
        .parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_owned))
        .ok_or(RedirectRejection::NotPathOrHttpUrl)?;
    // A backslash or userinfo trick leaves a host the URI parser and a browser disagree on.
    let authority_end = location.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    if authority_end.contains(['\\', '@']) {
        return Err(RedirectRejection::ForeignHost);
    }
    if own_hosts.iter().any(|own| own.eq_ignore_ascii_case(&host)) {
        Ok(())
    } else {
        Err(RedirectRejection::ForeignHost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_stops_its_redirect() {
        let own = ["example.com".to_owned(), "www.example.com".to_owned()];
        let table: &[(&str, Result<(), RedirectRejection>)] = &[
            ("/about/", Ok(())),
            ("/blog/2026/?utm=x", Ok(())),
            ("https://www.example.com/new/", Ok(())),
            ("HTTP://Example.COM/", Ok(())),
            ("//evil.example/", Err(RedirectRejection::ProtocolRelative)),
            ("/\\evil.example/", Err(RedirectRejection::ProtocolRelative)),
            ("https://evil.example/", Err(RedirectRejection::ForeignHost)),
            (
                "https://example.com@evil.example/",
                Err(RedirectRejection::ForeignHost),
            ),
            // Not a URI at all to the parser; a browser would go to evil.example.
            (
                "https://evil.example\\@example.com/",
                Err(RedirectRejection::NotPathOrHttpUrl),
            ),
            (
                "javascript:alert(1)",
                Err(RedirectRejection::NotPathOrHttpUrl),
            ),
            (
                "evil.example/path",
                Err(RedirectRejection::NotPathOrHttpUrl),
            ),
            (
                "ftp://example.com/",
                Err(RedirectRejection::NotPathOrHttpUrl),
            ),
            (
                "/a\r\nSet-Cookie: x",
                Err(RedirectRejection::ForbiddenCharacter),
            ),
            ("/a b", Err(RedirectRejection::ForbiddenCharacter)),
        ];
        for (location, expected) in table {
            assert_eq!(check(location, &own), *expected, "{location:?}");
        }
    }
}
