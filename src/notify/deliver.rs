//! One POST to the receiver: HTTPS only (rustls on ring, the system's CA certificates plus
//! `notify.ca_file`), bounded in time, and a verdict on whether trying again can help.

use std::path::Path;
use std::time::Duration;

use http_body_util::BodyExt;
// The body of `tls::HttpsClient`, the one client type in the binary.
use instant_acme::BodyWrapper;

use super::message::Message;
use crate::config::NotifyFormat;

/// Longest one delivery may take, connect to answer.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{host} answered {status}")]
    Refused {
        host: String,
        status: http::StatusCode,
    },
    #[error("{host}: {message}")]
    Unreachable { host: String, message: String },
    #[error("no answer from {host} within {DELIVERY_TIMEOUT:?}")]
    Timeout { host: String },
    #[error("notify: {0}")]
    Setup(String),
}

impl DeliveryError {
    /// Whether the same message may get through later: a network that is down, a receiver
    /// that is busy or broken. A refusal of the message itself (401, 404, 400) will not
    /// change until the owner changes the config.
    pub fn transient(&self) -> bool {
        match self {
            DeliveryError::Refused { status, .. } => {
                status.is_server_error()
                    || *status == http::StatusCode::TOO_MANY_REQUESTS
                    || *status == http::StatusCode::REQUEST_TIMEOUT
            }
            DeliveryError::Unreachable { .. } | DeliveryError::Timeout { .. } => true,
            DeliveryError::Setup(_) => false,
        }
    }
}

#[derive(Clone)]
pub struct Sender {
    client: crate::tls::HttpsClient,
    url: String,
    format: NotifyFormat,
    /// The URL's host: what errors and logs show (the rest may be a key).
    host: String,
}

impl Sender {
    pub fn new(
        url: &str,
        format: NotifyFormat,
        extra_roots: Option<&Path>,
    ) -> Result<Self, DeliveryError> {
        let client = crate::tls::https_client(extra_roots).map_err(DeliveryError::Setup)?;
        let host = url
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.authority().map(std::string::ToString::to_string))
            .unwrap_or_else(|| "the receiver".to_owned());
        Ok(Self {
            client,
            url: url.to_owned(),
            format,
            host,
        })
    }

    /// The receiver's host, for the status page and logs.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub async fn send(&self, message: &Message) -> Result<(), DeliveryError> {
        let body = message.body(self.format, &self.url);
        let request = http::Request::post(Message::post_url(self.format, &self.url))
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("pi-failover/", env!("CARGO_PKG_VERSION")),
            )
            .body(BodyWrapper::from(body))
            .map_err(|e| DeliveryError::Setup(e.to_string()))?;
        let host = self.host.clone();
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    message = format!("{message}: {s}");
                    source = s.source();
                }
                DeliveryError::Unreachable {
                    host: host.clone(),
                    message,
                }
            })?;
            let status = response.status();
            // Read (a little of) the answer so the connection can be reused.
            let _ = http_body_util::Limited::new(response.into_body(), 64 * 1024)
                .collect()
                .await;
            if status.is_success() {
                Ok(())
            } else {
                Err(DeliveryError::Refused {
                    host: host.clone(),
                    status,
                })
            }
        };
        tokio::time::timeout(DELIVERY_TIMEOUT, exchange)
            .await
            .map_err(|_| DeliveryError::Timeout {
                host: self.host.clone(),
            })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What docs/status-api.md promises: 5xx, 408, 429 and no answer are tried again; any
    /// other refusal gives the message up (a wrong URL or key will not mend itself).
    #[test]
    fn only_what_may_pass_later_is_retried() {
        let refused = |code: u16| DeliveryError::Refused {
            host: "h".into(),
            status: http::StatusCode::from_u16(code).expect("code"),
        };
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(refused(code).transient(), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 413, 301] {
            assert!(!refused(code).transient(), "{code}");
        }
        let down = DeliveryError::Unreachable {
            host: "h".into(),
            message: "connection refused".into(),
        };
        assert!(down.transient());
        assert!(DeliveryError::Timeout { host: "h".into() }.transient());
        assert!(!DeliveryError::Setup("no roots".into()).transient());
    }
}
