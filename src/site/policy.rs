//! Headers every response carries, decided once from the config.
//!
//! `X-Powered-By` is the product's signal to the site's own page script ("served by the
//! standby Pi"), so it goes on everything: 200, 304, 404, redirects and errors alike.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::SiteConfig;

#[derive(Debug, Clone)]
pub(crate) struct HeaderPolicy {
    powered_by: HeaderValue,
    hsts: Option<HeaderValue>,
    extra: Vec<(HeaderName, HeaderValue)>,
}

static X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

/// Headers the server computes itself; a config may not set them under `[site.headers]`.
pub(crate) fn is_managed_header(name: &HeaderName) -> bool {
    [
        &X_POWERED_BY,
        &header::STRICT_TRANSPORT_SECURITY,
        &header::CONTENT_LENGTH,
        &header::CONTENT_TYPE,
        &header::CONTENT_ENCODING,
        &header::CONTENT_RANGE,
        &header::TRANSFER_ENCODING,
        &header::CONNECTION,
        &header::DATE,
        &header::ETAG,
        &header::LAST_MODIFIED,
        &header::LOCATION,
        &header::VARY,
        &header::ACCEPT_RANGES,
        &header::ALLOW,
    ]
    .contains(&name)
}

impl HeaderPolicy {
    /// Builds the policy; the config was validated, so values that would not be headers
    /// cannot reach here (they are skipped rather than panicking if they do).
    pub fn from_config(site: &SiteConfig) -> Self {
        let hsts = (!site.hsts.max_age.is_zero()).then(|| {
            let mut value = format!("max-age={}", site.hsts.max_age.as_secs());
            if site.hsts.include_subdomains {
                value.push_str("; includeSubDomains");
            }
            if site.hsts.preload {
                value.push_str("; preload");
            }
            HeaderValue::from_str(&value).ok()
        });
        let extra = site
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_bytes(name.as_bytes()).ok()?,
                    HeaderValue::from_str(value).ok()?,
                ))
            })
            .collect();
        Self {
            powered_by: HeaderValue::from_str(&site.powered_by)
                .unwrap_or(HeaderValue::from_static("raspberry-pi")),
            hsts: hsts.flatten(),
            extra,
        }
    }

    /// Adds the policy's headers to a response sent over HTTPS.
    pub(crate) fn apply_https(&self, headers: &mut HeaderMap) {
        self.apply_plain(headers);
        if let Some(hsts) = &self.hsts {
            headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
    }

    /// Adds the headers that also belong on plain HTTP (HSTS there is ignored by browsers
    /// and would only be noise).
    pub(crate) fn apply_plain(&self, headers: &mut HeaderMap) {
        headers.insert(X_POWERED_BY.clone(), self.powered_by.clone());
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        for (name, value) in &self.extra {
            // A response's own header (the health path's no-store) wins over a site-wide one.
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
}
