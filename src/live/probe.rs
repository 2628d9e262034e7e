//! The primary probe: polls the primary's health URL as the DNS health checker does, and
//! calls it up or down only after `threshold` results in a row agree (hysteresis).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{Request, Uri};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::PrimaryConfig;

/// What the probe knows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProbeStatus {
    pub url: String,
    /// `None` until `threshold` results agree.
    pub up: Option<bool>,
    #[serde(with = "crate::format::json_time_option")]
    pub last_checked: Option<SystemTime>,
    /// The last result in words: `200 OK in 12 ms`, or what failed.
    pub last_result: Option<String>,
    /// Results in a row that agree with the last one.
    pub streak: u32,
}

/// Counts results in a row and turns them into a verdict.
#[derive(Debug, Clone)]
pub(crate) struct Hysteresis {
    threshold: u32,
    last: Option<bool>,
    streak: u32,
    verdict: Option<bool>,
}

impl Hysteresis {
    pub fn new(threshold: u32) -> Self {
        Self {
            threshold: threshold.max(1),
            last: None,
            streak: 0,
            verdict: None,
        }
    }

    pub fn record(&mut self, healthy: bool) -> Option<bool> {
        if self.last == Some(healthy) {
            self.streak = self.streak.saturating_add(1);
        } else {
            self.last = Some(healthy);
            self.streak = 1;
        }
        if self.streak >= self.threshold {
            self.verdict = Some(healthy);
        }
        self.verdict
    }

    pub(crate) fn streak(&self) -> u32 {
        self.streak
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad URL or host: {0}")]
    Url(String),
}

/// Sends one health request. Healthy means a 2xx or 3xx answer, as Route 53 decides.
pub async fn check(
    config: &PrimaryConfig,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<http::StatusCode, ProbeError> {
    tokio::time::timeout(config.timeout, check_inner(config, tls))
        .await
        .map_err(|_| ProbeError::Timeout(config.timeout))?
}

async fn check_inner(
    config: &PrimaryConfig,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<http::StatusCode, ProbeError> {
    let uri: Uri = config
        .url
        .parse()
        .map_err(|e: http::uri::InvalidUri| ProbeError::Url(e.to_string()))?;
    let https = uri.scheme_str() == Some("https");
    let url_host = uri
        .host()
        .ok_or_else(|| ProbeError::Url("no host".into()))?;
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let host = config.host.as_deref().unwrap_or(url_host);
    let connect_to = url_host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((connect_to, port))
        .await
        .map_err(ProbeError::Connect)?;
    let request = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, host)
        .header(
            http::header::USER_AGENT,
            concat!("pi-failover/", env!("CARGO_PKG_VERSION"), " primary-probe"),
        )
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| ProbeError::Url(e.to_string()))?;
    if https {
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| ProbeError::Url(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(ProbeError::Tls)?;
        send(TokioIo::new(stream), request).await
    } else {
        send(TokioIo::new(tcp), request).await
    }
}

async fn send<I>(
    io: I,
    request: Request<Empty<bytes::Bytes>>,
) -> Result<http::StatusCode, ProbeError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(conn);
    let response = sender.send_request(request).await;
    driver.abort();
    Ok(response?.status())
}

/// The probe's TLS client: the system's CA certificates (the image ships them), ring.
pub(crate) fn client_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    for cert in loaded.certs {
        let _ = roots.add(cert);
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Polls until shutdown, publishing what it learns.
pub async fn run(
    config: PrimaryConfig,
    status: watch::Sender<ProbeStatus>,
    shutdown: CancellationToken,
) {
    let tls = match client_config() {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(error = %e, "primary probe disabled: no TLS client");
            return;
        }
    };
    let mut verdict = Hysteresis::new(config.threshold);
    let mut ticks = tokio::time::interval(config.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let started = tokio::time::Instant::now();
        let outcome = check(&config, &tls).await;
        let (healthy, words) = match &outcome {
            Ok(code) => (
                code.is_success() || code.is_redirection(),
                format!("{code} in {} ms", started.elapsed().as_millis()),
            ),
            Err(e) => (false, e.to_string()),
        };
        let up = verdict.record(healthy);
        tracing::debug!(healthy, result = %words, ?up, "primary probe");
        status.send_modify(|s| {
            if s.up.is_some() && s.up != up {
                tracing::info!(up = ?up, result = %words, "primary changed state");
            }
            s.url.clone_from(&config.url);
            s.up = up;
            s.last_checked = Some(SystemTime::now());
            s.last_result = Some(words);
            s.streak = verdict.streak();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Hysteresis;

    #[test]
    fn the_verdict_changes_only_after_threshold_results_in_a_row() {
        let mut h = Hysteresis::new(3);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(true));
        assert_eq!(h.record(false), Some(true));
        assert_eq!(h.record(false), Some(true));
        assert_eq!(
            h.record(true),
            Some(true),
            "a good answer restarts the count"
        );
        assert_eq!(h.record(false), Some(true));
        assert_eq!(h.record(false), Some(true));
        assert_eq!(h.record(false), Some(false));
        assert_eq!(h.streak(), 3);
    }
}
