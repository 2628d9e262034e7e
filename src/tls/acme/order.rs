//! One issuance: the account, an order, its DNS-01 challenges, the CSR, the chain.
//!
//! Interrupted anywhere (power cut, restart, timeout), it leaves `order.json` behind: the
//! order's URL, the key made for it, and every TXT value written. The next attempt first
//! removes those values (no record is ever left behind), then resumes that order while the CA
//! still has it valid (no order leaked, no extra issuance counted against the rate limits),
//! else starts a new one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};

use super::dns::DnsProvider;
use super::http::AcmeHttp;
use super::AcmeSettings;
use crate::tls::store;

const ACCOUNT_FILE: &str = "account.json";
const ORDER_FILE: &str = "order.json";

/// How long the CA may take to validate every challenge.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long it may take to sign once the order is finalized.
const ISSUANCE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("DNS: {0}")]
    Dns(#[from] super::dns::DnsError),
    #[error("the order became invalid: {0}")]
    Invalid(String),
    #[error("{what} in {dir}: {source}")]
    Store {
        what: &'static str,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

/// The account, kept with the directory it belongs to (a changed `directory` makes a new one).
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// How an order's state is polled: every second at first, 1.5 times longer each time.
fn polling(timeout: Duration) -> RetryPolicy {
    RetryPolicy::new()
        .initial_delay(Duration::from_secs(1))
        .backoff(1.5)
        .timeout(timeout)
}

/// A problem the CA reports while polling ends the order (it is not resumed); anything else
/// (the network, a timeout) leaves it to be resumed at the next attempt.
fn order_failed(e: instant_acme::Error) -> IssueError {
    match e {
        instant_acme::Error::Api(problem) => IssueError::Invalid(problem.to_string()),
        other => IssueError::Acme(other),
    }
}

/// An order under way (see the module doc).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Pending {
    url: Option<String>,
    /// The certificate's key, made before the CSR is sent so a restart after finalizing can
    /// still pair it with the chain.
    key_pem: Option<String>,
    /// TXT values written (name, value), removed when the order ends either way.
    txt: Vec<(String, String)>,
}

/// A certificate chain (PEM) and its key (PEM, PKCS#8).
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

pub struct Issuer<'a> {
    pub settings: &'a AcmeSettings,
    pub http: &'a AcmeHttp,
    pub dns: &'a dyn DnsProvider,
    pub dir: &'a Path,
}

impl Issuer<'_> {
    /// Loads the account, or registers one (agreeing to the CA's terms, as every ACME client
    /// configured to use a CA does).
    pub async fn account(&self) -> Result<Account, IssueError> {
        if let Some(bytes) = store::read_private(self.dir, ACCOUNT_FILE) {
            match serde_json::from_slice::<StoredAccount>(&bytes) {
                Ok(stored) if stored.directory == self.settings.directory => {
                    return Ok(Account::builder_with_http(Box::new(self.http.clone()))
                        .from_credentials(stored.credentials)
                        .await?);
                }
                Ok(_) => {
                    tracing::info!(directory = %self.settings.directory, "the ACME directory changed; registering a new account");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the stored ACME account is unreadable; registering a new one");
                }
            }
        }
        let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
        let eab = self
            .settings
            .eab
            .as_ref()
            .map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
        let (account, credentials) = Account::builder_with_http(Box::new(self.http.clone()))
            .create(
                &NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                eab.as_ref(),
            )
            .await?;
        let stored = StoredAccount {
            directory: self.settings.directory.clone(),
            credentials,
        };
        let json = serde_json::to_vec(&stored).map_err(|e| IssueError::Other(e.to_string()))?;
        self.save(ACCOUNT_FILE, "the ACME account", &json)?;
        tracing::info!(id = account.id(), "ACME account registered");
        Ok(account)
    }

    /// Obtains a certificate for the configured names; `replaces` names the one it renews
    /// (ARI), when the CA supports that.
    pub async fn issue(
        &self,
        account: &Account,
        replaces: Option<instant_acme::CertificateIdentifier<'static>>,
    ) -> Result<Issued, IssueError> {
        let mut pending = self.load_pending();
        // Whatever happens next, values written by an interrupted attempt go first.
        self.remove_txt(&mut pending).await;
        let mut order = self.order(account, &mut pending, replaces).await?;
        let outcome = self.drive(&mut order, &mut pending).await;
        // Our TXT values go whether the order succeeded or not.
        self.remove_txt(&mut pending).await;
        let issued = match outcome {
            Ok(issued) => issued,
            Err(e) => {
                if matches!(e, IssueError::Invalid(_)) {
                    // A dead order is not resumed: the next attempt starts afresh.
                    pending = Pending::default();
                }
                let _ = self.save_pending(&pending);
                return Err(e);
            }
        };
        store::remove_private(self.dir, ORDER_FILE).map_err(|source| IssueError::Store {
            what: "the finished order",
            dir: self.dir.to_owned(),
            source,
        })?;
        Ok(issued)
    }

    /// The order to drive: the one under way if the CA still has it pending or further,
    /// else a new one.
    async fn order(
        &self,
        account: &Account,
        pending: &mut Pending,
        replaces: Option<instant_acme::CertificateIdentifier<'static>>,
    ) -> Result<Order, IssueError> {
        if let Some(url) = pending.url.clone() {
            match account.order(url.clone()).await {
                Ok(mut order) => {
                    if order.state().status != OrderStatus::Invalid {
                        tracing::info!(order = %url, "resuming the ACME order under way");
                        return Ok(order);
                    }
                    tracing::info!(order = %url, "the order under way became invalid; starting a new one");
                }
                Err(e) => {
                    tracing::info!(order = %url, error = %e, "the order under way is gone; starting a new one");
                }
            }
            *pending = Pending::default();
        }
        let identifiers: Vec<Identifier> = self
            .settings
            .names
            .iter()
            .map(|name| Identifier::Dns(name.clone()))
            .collect();
        let mut new = NewOrder::new(&identifiers);
        if let Some(replaces) = replaces {
            new = new.replaces(replaces);
        }
        let order = match account.new_order(&new).await {
            // A CA without ARI (or one refusing `replaces` for a certificate it did not
            // issue): order without it.
            Err(instant_acme::Error::Unsupported(_)) => {
                account.new_order(&NewOrder::new(&identifiers)).await?
            }
            other => other?,
        };
        pending.url = Some(order.url().to_owned());
        self.save_pending(pending)?;
        tracing::info!(order = order.url(), names = ?self.settings.names, "ACME order placed");
        Ok(order)
    }

    async fn drive(&self, order: &mut Order, pending: &mut Pending) -> Result<Issued, IssueError> {
        if order.state().status == OrderStatus::Pending {
            self.answer_challenges(order, pending).await?;
            let status = order
                .poll_ready(&polling(VALIDATION_TIMEOUT))
                .await
                .map_err(order_failed)?;
            if status != OrderStatus::Ready {
                return Err(IssueError::Invalid(format!(
                    "the CA did not validate the challenges (order {status:?})"
                )));
            }
        }
        if order.state().status == OrderStatus::Ready {
            let key_pem = if let Some(pem) = &pending.key_pem {
                pem.clone()
            } else {
                let key =
                    rcgen::KeyPair::generate().map_err(|e| IssueError::Other(e.to_string()))?;
                let pem = key.serialize_pem();
                pending.key_pem = Some(pem.clone());
                self.save_pending(pending)?;
                pem
            };
            let key = rcgen::KeyPair::from_pem(&key_pem)
                .map_err(|e| IssueError::Other(format!("the order's stored key: {e}")))?;
            let mut params = rcgen::CertificateParams::new(self.settings.names.clone())
                .map_err(|e| IssueError::Other(e.to_string()))?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            let csr = params
                .serialize_request(&key)
                .map_err(|e| IssueError::Other(e.to_string()))?;
            order.finalize_csr(csr.der()).await?;
        }
        let Some(key_pem) = pending.key_pem.clone() else {
            // Finalized by an attempt whose key was lost: this order cannot be used.
            return Err(IssueError::Invalid(
                "the order was finalized without a key kept for it".into(),
            ));
        };
        let chain_pem = order
            .poll_certificate(&polling(ISSUANCE_TIMEOUT))
            .await
            .map_err(order_failed)?;
        Ok(Issued { chain_pem, key_pem })
    }

    /// Writes each pending authorization's DNS-01 value and tells the CA to look. Each value
    /// is recorded in `order.json` before it is written to DNS.
    async fn answer_challenges(
        &self,
        order: &mut Order,
        pending: &mut Pending,
    ) -> Result<(), IssueError> {
        let mut authorizations = order.authorizations();
        while let Some(authorization) = authorizations.next().await {
            let mut authorization = authorization?;
            match authorization.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => {
                    return Err(IssueError::Invalid(format!(
                        "authorization for {} is {other:?}",
                        authorization.identifier()
                    )))
                }
            }
            let mut challenge = authorization
                .challenge(ChallengeType::Dns01)
                .ok_or_else(|| IssueError::Invalid("the CA offers no dns-01 challenge".into()))?;
            let Identifier::Dns(domain) = challenge.identifier().identifier else {
                return Err(IssueError::Invalid("not a DNS identifier".into()));
            };
            let name = format!("_acme-challenge.{domain}");
            let value = challenge.key_authorization().dns_value();
            if !pending.txt.contains(&(name.clone(), value.clone())) {
                pending.txt.push((name.clone(), value.clone()));
                self.save_pending(pending)?;
            }
            tracing::info!(name, dns = %self.dns.describe(), "writing the DNS-01 value");
            self.dns.add_txt(&name, &value).await?;
            challenge.set_ready().await?;
        }
        Ok(())
    }

    /// Removes every TXT value this slot wrote; one that cannot be removed now stays recorded
    /// and is tried again at the next attempt.
    async fn remove_txt(&self, pending: &mut Pending) {
        let mut kept = Vec::new();
        for (name, value) in std::mem::take(&mut pending.txt) {
            if let Err(e) = self.dns.remove_txt(&name, &value).await {
                tracing::warn!(name, error = %e, "cannot remove our DNS-01 value yet; trying again at the next attempt");
                kept.push((name, value));
            }
        }
        pending.txt = kept;
        let _ = self.save_pending(pending);
    }

    fn load_pending(&self) -> Pending {
        store::read_private(self.dir, ORDER_FILE)
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    fn save_pending(&self, pending: &Pending) -> Result<(), IssueError> {
        let json = serde_json::to_vec(pending).map_err(|e| IssueError::Other(e.to_string()))?;
        self.save(ORDER_FILE, "the order under way", &json)
    }

    fn save(&self, name: &str, what: &'static str, bytes: &[u8]) -> Result<(), IssueError> {
        store::write_private(self.dir, name, bytes).map_err(|source| IssueError::Store {
            what,
            dir: self.dir.to_owned(),
            source,
        })
    }
}
