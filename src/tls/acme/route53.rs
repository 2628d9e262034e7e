//! Route 53 as the DNS provider: ListResourceRecordSets to read the TXT set, one
//! ChangeResourceRecordSets batch to replace it (DELETE exactly what was read, CREATE the new
//! set), GetChange until INSYNC. A batch whose DELETE no longer matches (someone changed the
//! set since it was read) is refused by Route 53 and read and tried again.
//!
//! The IAM policy the user guide gives restricts the Pi to TXT records named
//! `_acme-challenge.<its names>` in this one zone, and GetChange.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_sdk_route53::Client;

use super::dns::{txt_change, DnsError, DnsProvider, TxtChange};
use crate::aws::error::describe;

/// Times a batch is re-read and tried when the set changed under it.
const CONFLICT_RETRIES: u32 = 5;
/// How long a change may take to reach every Route 53 server (usually under a minute).
const INSYNC_TIMEOUT: Duration = Duration::from_secs(300);
const TTL: i64 = 60;

pub struct Route53 {
    client: Client,
    zone: String,
}

impl Route53 {
    pub fn new(client: Client, hosted_zone_id: String) -> Self {
        Self {
            client,
            zone: hosted_zone_id,
        }
    }

    async fn change(&self, name: &str, value: &str, add: bool) -> Result<(), DnsError> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let existing = self.read(&fqdn).await?;
            let Some(change) = txt_change(&existing, value, add) else {
                return Ok(());
            };
            match self.apply(&fqdn, change).await {
                Ok(id) => return self.wait_insync(&id).await,
                Err(Conflict::Changed(e)) if attempt < CONFLICT_RETRIES => {
                    tracing::info!(name, error = %e, "the TXT set changed while we changed it; reading it again");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
                }
                Err(Conflict::Changed(e) | Conflict::Other(e)) => return Err(e),
            }
        }
    }

    /// The TXT values at `fqdn`, quoted as Route 53 gives them.
    async fn read(&self, fqdn: &str) -> Result<Vec<String>, DnsError> {
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .start_record_name(fqdn)
            .start_record_type(RrType::Txt)
            .max_items(1)
            .send()
            .await
            .map_err(|e| DnsError(format!("Route 53 ListResourceRecordSets: {}", describe(&e))))?;
        Ok(out
            .resource_record_sets()
            .iter()
            .find(|set| set.name().eq_ignore_ascii_case(fqdn) && *set.r#type() == RrType::Txt)
            .map(|set| {
                set.resource_records()
                    .iter()
                    .map(|r| r.value().to_owned())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn apply(&self, fqdn: &str, change: TxtChange) -> Result<String, Conflict> {
        let set = |values: Vec<String>| -> Result<ResourceRecordSet, Conflict> {
            let records = values
                .into_iter()
                .map(|value| ResourceRecord::builder().value(value).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| Conflict::Other(DnsError(e.to_string())))?;
            ResourceRecordSet::builder()
                .name(fqdn)
                .r#type(RrType::Txt)
                .ttl(TTL)
                .set_resource_records(Some(records))
                .build()
                .map_err(|e| Conflict::Other(DnsError(e.to_string())))
        };
        let mut changes = Vec::new();
        for (action, values) in [
            (ChangeAction::Delete, change.delete),
            (ChangeAction::Create, change.create),
        ] {
            if let Some(values) = values {
                changes.push(
                    Change::builder()
                        .action(action)
                        .resource_record_set(set(values)?)
                        .build()
                        .map_err(|e| Conflict::Other(DnsError(e.to_string())))?,
                );
            }
        }
        let batch = ChangeBatch::builder()
            .comment("pi-failover ACME DNS-01")
            .set_changes(Some(changes))
            .build()
            .map_err(|e| Conflict::Other(DnsError(e.to_string())))?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| {
                let text = format!("Route 53 ChangeResourceRecordSets: {}", describe(&e));
                let changed = e.as_service_error().is_some_and(|s| {
                    s.is_invalid_change_batch() || s.is_prior_request_not_complete()
                });
                if changed {
                    Conflict::Changed(DnsError(text))
                } else {
                    Conflict::Other(DnsError(text))
                }
            })?;
        Ok(out
            .change_info()
            .map(|info| info.id().to_owned())
            .unwrap_or_default())
    }

    async fn wait_insync(&self, id: &str) -> Result<(), DnsError> {
        if id.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + INSYNC_TIMEOUT;
        loop {
            let out = self
                .client
                .get_change()
                .id(id)
                .send()
                .await
                .map_err(|e| DnsError(format!("Route 53 GetChange: {}", describe(&e))))?;
            if out
                .change_info()
                .is_some_and(|info| *info.status() == ChangeStatus::Insync)
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DnsError(format!(
                    "Route 53 change {id} not INSYNC after {} s",
                    INSYNC_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }
}

enum Conflict {
    /// The set changed between the read and the batch: read again.
    Changed(DnsError),
    Other(DnsError),
}

impl DnsProvider for Route53 {
    fn add_txt<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), DnsError>> + Send + 'a>> {
        Box::pin(self.change(name, value, true))
    }

    fn remove_txt<'a>(
        &'a self,
        name: &'a str,
        value: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), DnsError>> + Send + 'a>> {
        Box::pin(self.change(name, value, false))
    }

    fn describe(&self) -> String {
        format!("Route 53 hosted zone {}", self.zone)
    }
}
