//! The `acme` certificate source: the Pi obtains and renews its own certificate by ACME
//! (RFC 8555) with the DNS-01 challenge, which works while DNS points at the primary.
//!
//! - [`order`]: one issuance, resumable, its TXT values always removed.
//! - [`dns`]: the TXT rule that keeps other writers' values; [`route53`] applies it.
//! - [`schedule`]: when to renew (ACME Renewal Information, else two thirds of the lifetime)
//!   and how long to back off after a failure.
//! - [`http`]: the client's HTTPS, with an optional CA bundle for the directory.
//!
//! A renewed pair goes the way every fetched certificate goes: checked by the resolver,
//! installed whole on the data partition ([`super::store`]), swapped in for new handshakes.

pub mod dns;
pub mod http;
pub mod order;
pub mod route53;
pub mod schedule;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::slot::Source;
use super::{store, vet, CertResolver};
use dns::DnsProvider;
use order::{IssueError, Issuer};

/// Let's Encrypt's production directory.
pub(crate) const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory: untrusted certificates, generous rate limits, for a
/// first try.
pub(crate) const LETS_ENCRYPT_STAGING: &str =
    "https://acme-staging-v02.api.letsencrypt.org/directory";

/// Longest one attempt may take (account, order, DNS propagation, validation, signing).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(20 * 60);
/// The schedule is looked at again at least this often: ARI windows move (a CA revoking a
/// batch of certificates asks for early renewal), and the clock may have been wrong.
const RECHECK: Duration = Duration::from_secs(6 * 3600);

/// An `acme` certificate's settings, from `[[tls.certificates]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The names the certificate is for (the site's hostnames unless configured).
    pub names: Vec<String>,
    /// The ACME directory URL.
    pub directory: String,
    /// PEM certificates trusted for the directory's HTTPS besides the system's.
    pub directory_ca: Option<PathBuf>,
    /// Contact URIs (`mailto:…`) for the CA's expiry and policy mail.
    pub contact: Vec<String>,
    /// External Account Binding: the key ID and the decoded HMAC key.
    pub eab: Option<(String, Vec<u8>)>,
    /// Route 53: the hosted zone holding `_acme-challenge.<names>`.
    pub hosted_zone_id: String,
    /// Route 53's API endpoint when not AWS's own (a test server).
    pub route53_endpoint: Option<String>,
}

/// One `acme` certificate and what renews it.
pub struct AcmeCertificate {
    index: usize,
    settings: AcmeSettings,
    dir: PathBuf,
    http: http::AcmeHttp,
    dns: Arc<dyn DnsProvider>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum AcmeError {
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Refused(#[from] super::TlsError),
    #[error("cannot store the certificate in {dir}: {source}")]
    Store {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no answer within {} min", ATTEMPT_TIMEOUT.as_secs() / 60)]
    Timeout,
}

impl AcmeCertificate {
    /// Slot `index`'s renewal, with `dns` for its challenges; `None` when the slot is not
    /// `acme`, or its directory CA bundle cannot be read (reported on the status at once).
    pub fn new(resolver: &CertResolver, index: usize, dns: Arc<dyn DnsProvider>) -> Option<Self> {
        let slot = resolver.slots().get(index)?;
        let (Source::Acme(settings), Some(dir)) = (&slot.source, &slot.managed_dir) else {
            return None;
        };
        match http::AcmeHttp::new(settings.directory_ca.as_deref()) {
            Ok(http) => Some(Self {
                index,
                settings: settings.clone(),
                dir: dir.clone(),
                http,
                dns,
            }),
            Err(e) => {
                tracing::error!(error = %e, "tls.certificates[{index}].directory_ca");
                resolver.record_attempt(
                    index,
                    Err(format!("directory_ca: {e}")),
                    SystemTime::now(),
                );
                None
            }
        }
    }

    /// When the certificate served should be renewed: at once when there is none, it has
    /// expired or it misses a configured name; else in the CA's ARI window, else at two
    /// thirds of its lifetime.
    async fn due(&self, resolver: &CertResolver) -> SystemTime {
        let now = SystemTime::now();
        let Some((info, leaf)) = resolver.serving(self.index) else {
            return now;
        };
        let facts = vet::Facts {
            names: info.names.clone(),
            not_before: info.not_before,
            not_after: info.not_after,
            chain_break: None,
        };
        if info.not_after <= now || !self.settings.names.iter().all(|n| vet::covers(&facts, n)) {
            return now;
        }
        if let Ok(id) = instant_acme::CertificateIdentifier::try_from(&leaf) {
            let issuer = self.issuer();
            if let Ok(account) = issuer.account().await {
                match account.renewal_info(&id).await {
                    Ok((info, _)) => {
                        let start = SystemTime::from(info.suggested_window.start);
                        let end = SystemTime::from(info.suggested_window.end);
                        return schedule::in_window(start, end, fastrand::f64());
                    }
                    Err(instant_acme::Error::Unsupported(_)) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "no renewal information; two thirds of the lifetime");
                    }
                }
            }
        }
        schedule::two_thirds(info.not_before, info.not_after, fastrand::f64())
    }

    /// One renewal: issue, check, install, swap in.
    async fn renew(&self, resolver: &CertResolver) -> Result<(), AcmeError> {
        let issuer = self.issuer();
        let account = issuer.account().await?;
        let replaces = resolver
            .serving(self.index)
            .and_then(|(_, leaf)| instant_acme::CertificateIdentifier::try_from(&leaf).ok())
            .map(instant_acme::CertificateIdentifier::into_owned);
        let issued = issuer.issue(&account, replaces).await?;
        let (cert, key) = (issued.chain_pem.into_bytes(), issued.key_pem.into_bytes());
        resolver.check(self.index, &cert, &key)?;
        let dir = self.dir.clone();
        let source = format!("{{\"directory\":{:?}}}", self.settings.directory);
        tokio::task::spawn_blocking(move || store::install(&dir, &cert, &key, &source))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
            .map_err(|source| AcmeError::Store {
                dir: self.dir.clone(),
                source,
            })?;
        resolver.reload_slot(self.index)?;
        tracing::info!(names = ?self.settings.names, "ACME certificate issued and in use");
        Ok(())
    }

    fn issuer(&self) -> Issuer<'_> {
        Issuer {
            settings: &self.settings,
            http: &self.http,
            dns: &*self.dns,
            dir: &self.dir,
        }
    }
}

/// Keeps one `acme` certificate valid until `stop`: renews when due, backs off after a
/// failure (at least as long as the CA's `Retry-After`), and tells the status when it will
/// try next.
pub async fn run(
    resolver: Arc<CertResolver>,
    certificate: AcmeCertificate,
    stop: CancellationToken,
) {
    let mut failures = 0u32;
    let mut retry_at = SystemTime::now();
    loop {
        let due = if failures > 0 {
            retry_at
        } else {
            tokio::select! {
                () = stop.cancelled() => return,
                due = certificate.due(&resolver) => due,
            }
        };
        resolver.schedule(certificate.index, due);
        if let Ok(wait) = due.duration_since(SystemTime::now()) {
            if !wait.is_zero() {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait.min(RECHECK)) => continue,
                }
            }
        }
        let at = SystemTime::now();
        // Stopped mid-attempt, the order and its TXT values are in `order.json`: the next
        // start removes the values and resumes the order.
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, certificate.renew(&resolver)) => {
                outcome.unwrap_or(Err(AcmeError::Timeout))
            }
        };
        match outcome {
            Ok(()) => {
                failures = 0;
                resolver.record_attempt(certificate.index, Ok(()), at);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                retry_at = SystemTime::now() + schedule::backoff(failures, fastrand::f64());
                if let Some(ca_says) = certificate.http.take_retry_after() {
                    retry_at = retry_at.max(ca_says);
                }
                tracing::warn!(names = ?certificate.settings.names, error = %e, failures,
                    retry = %httpdate::fmt_http_date(retry_at), "ACME renewal failed; keeping the certificate in use");
                resolver.record_attempt(certificate.index, Err(e.to_string()), retry_at);
            }
        }
    }
}
