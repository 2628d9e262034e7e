//! The ACME client's HTTPS: `tls::https_client` (hyper over rustls with ring, the connector the
//! AWS SDK links already), trusting the system's CA certificates plus, when configured, a
//! bundle for the directory alone (a private CA, or pebble's test CA in the tests): never verification off.
//!
//! It also keeps the last `Retry-After` a CA sent with a refusal (429 rate limits, 503
//! maintenance), which instant-acme does not surface: the renewal's backoff waits at least
//! that long.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

/// Longest a CA's `Retry-After` is honoured (a wrong date must not stop renewals for good).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct AcmeHttp {
    client: crate::tls::HttpsClient,
    retry_after: Arc<Mutex<Option<SystemTime>>>,
}

impl AcmeHttp {
    /// A client trusting the system's roots and the PEM certificates in `extra_roots`.
    pub fn new(extra_roots: Option<&Path>) -> Result<Self, String> {
        Ok(Self {
            client: crate::tls::https_client(extra_roots)?,
            retry_after: Arc::default(),
        })
    }

    /// The latest `Retry-After` a refusal carried, and forgets it.
    pub(crate) fn take_retry_after(&self) -> Option<SystemTime> {
        self.retry_after
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.client.request(req);
        let retry_after = self.retry_after.clone();
        Box::pin(async move {
            let response = tokio::time::timeout(Duration::from_secs(60), response)
                .await
                .map_err(|_| {
                    instant_acme::Error::Str("no answer from the ACME server within 60 s")
                })?
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
            let status = response.status().as_u16();
            if status == 429 || status == 503 {
                if let Some(at) = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after)
                {
                    *retry_after
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(at);
                }
            }
            Ok(BytesResponse::from(response))
        })
    }
}

/// `Retry-After`: seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`] from now.
fn parse_retry_after(value: &str) -> Option<SystemTime> {
    let now = SystemTime::now();
    let at = match value.trim().parse::<u64>() {
        Ok(secs) => now + Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value.trim()).ok()?,
    };
    Some(at.min(now + MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_in_both_forms_and_capped() {
        let now = SystemTime::now();
        let secs = parse_retry_after("120").unwrap();
        assert!(secs >= now + Duration::from_secs(119) && secs <= now + Duration::from_secs(125));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(3600));
        let at = parse_retry_after(&date).unwrap();
        assert!(at > now + Duration::from_secs(3500));
        let far = parse_retry_after("99999999").unwrap();
        assert!(far <= SystemTime::now() + MAX_RETRY_AFTER);
        assert!(parse_retry_after("soon").is_none());
    }
}
