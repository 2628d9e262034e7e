//! Marking the booted slot good (RAUC gives it its tries back).
//!
//! An established slot is marked good at every boot once it serves: its own HTTPS listener
//! answers the health path and the site's front page (`self_check`). Nothing more: a slot
//! that has served for months must not fall back to the other, older one because S3 was
//! down for three reboots in a row.
//!
//! A slot on trial (freshly installed) must also have synced: a sync completed since it
//! booted, or one that failed exactly as the old slot's last one did (`sync_before`, digits
//! masked): S3 unreachable from the co-location is not the update's fault, a new build that
//! cannot sign its requests is. Until then it records what it still finds wrong, the reason a
//! rollback reports; once marked good, the attempt is committed and the trial marker goes
//! (the watchdog stops counting).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::journal::{Journal, TRIAL_MARKER};
use super::state::{self, Phase, Role};
use super::{self_check, slot};
use crate::sync::SyncStatus;
use crate::tls::CertResolver;

/// What the check of the appliance's own listener asks for.
#[derive(Debug, Clone)]
pub struct CommitSettings {
    /// The HTTPS listener, as the appliance itself reaches it (loopback for a wildcard).
    pub https: SocketAddr,
    /// The name asked for (SNI and Host): the site's first.
    pub host: String,
    pub health_path: String,
    /// Whether a slot on trial must sync (the site comes from S3).
    pub awaits_sync: bool,
}

/// How long between tries while the slot is not yet serving or RAUC does not answer.
const RETRY: Duration = Duration::from_secs(30);
/// A trial slot looks again this soon after a sync ends.
const SYNC_SETTLE: Duration = Duration::from_secs(1);

/// Marks the booted slot good once it serves (module doc).
pub async fn mark_good_when_serving(
    settings: CommitSettings,
    role: Role,
    journal: Option<Arc<Journal>>,
    certs: Arc<CertResolver>,
    mut sync: watch::Receiver<SyncStatus>,
    shutdown: CancellationToken,
) {
    let Some(booted) = slot::booted() else {
        return;
    };
    let trial = role == Role::Trial;
    loop {
        let verdict = match serves(&settings, &certs).await {
            Err(e) => Err(e.to_string()),
            Ok(()) if trial && settings.awaits_sync => synced(&sync.borrow(), journal.as_deref()),
            Ok(()) => Ok(()),
        };
        match verdict {
            Ok(()) => match slot::mark_good().await {
                Ok(()) => {
                    tracing::info!(slot = %booted, "this slot serves: marked good");
                    if let (true, Some(journal)) = (trial, &journal) {
                        commit(journal);
                    }
                    if let Some(journal) = journal {
                        journal.refresh_slots().await;
                    }
                    return;
                }
                Err(e) => tracing::warn!(slot = %booted, error = %e, "cannot mark this slot good"),
            },
            Err(why) => {
                tracing::warn!(slot = %booted, reason = %why, "not marking this slot good yet");
                if let (true, Some(journal)) = (trial, &journal) {
                    complain(journal, why);
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
            // A sync just ended (and with it the certificate fetch a fresh card waits for; a
            // trial's sync): the check may pass now rather than at the next retry.
            changed = sync.changed() => {
                if changed.is_err() {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(RETRY) => {}
                    }
                } else {
                    tokio::time::sleep(SYNC_SETTLE).await;
                }
            }
        }
    }
}

/// Whether a trial slot has synced as the old slot did (module doc). The sync status is this
/// run's own (it starts empty), so any success is the new slot's; no clock is compared (the
/// clock of a Pi without a real-time clock steps at boot: comparing with the time the check
/// started once refused the first sync and cost the trial a whole interval).
fn synced(sync: &SyncStatus, journal: Option<&Journal>) -> Result<(), String> {
    if sync.last_success.is_some() {
        return Ok(());
    }
    let Some(error) = &sync.last_error else {
        return Err("no sync has completed yet".into());
    };
    let before = journal
        .and_then(|j| j.state().attempt)
        .and_then(|a| a.sync_before);
    if before.is_some() && state::sync_outcome(Some(error)) == before {
        return Ok(());
    }
    Err(format!(
        "the sync fails, and did not on the old slot: {error}"
    ))
}

fn commit(journal: &Journal) {
    let result = journal.record(|s| {
        if let Some(a) = s.attempt.as_mut() {
            a.phase = Phase::Committed;
            a.reason = None;
            a.complaint = None;
            journal.boot_id().clone_into(&mut a.boot_id);
            a.at = super::journal::unix_now();
        }
    });
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot record the commit");
    }
    let _ = std::fs::remove_file(journal.path(TRIAL_MARKER));
    tracing::info!("the update is committed: this slot is the one the Pi boots");
}

/// Records what the trial slot still finds wrong, when that changed.
fn complain(journal: &Journal, why: String) {
    let result = journal.record(|s| {
        if let Some(a) = s.attempt.as_mut() {
            a.complaint = Some(why);
        }
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot record why this slot is not marked good");
    }
}

async fn serves(
    settings: &CommitSettings,
    certs: &Arc<CertResolver>,
) -> Result<(), self_check::SelfCheckError> {
    let (https, host) = (settings.https, settings.host.as_str());
    self_check::get_ok(https, host, &settings.health_path, 200..=200, certs).await?;
    // The front page: a site may send its readers on from `/` (a language, a blog's first
    // page), so a redirect serves as well as a page.
    self_check::get_ok(https, host, "/", 200..=399, certs).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn a_trial_passes_by_syncing_or_failing_as_the_old_slot_did() {
        // Any success of this run counts, even one the clock puts in 1970 (it stepped).
        let ok = SyncStatus {
            last_success: Some(SystemTime::UNIX_EPOCH),
            ..SyncStatus::default()
        };
        assert!(synced(&ok, None).is_ok());
        assert!(synced(&SyncStatus::default(), None)
            .expect_err("none yet")
            .contains("no sync"));
        let failing = |port: u16| SyncStatus {
            last_error: Some(format!("s3: connecting to 10.0.2.100:{port} refused")),
            ..SyncStatus::default()
        };
        // Without a record of the old slot's sync, a failure is the new slot's.
        assert!(synced(&failing(9000), None)
            .expect_err("failing")
            .contains("did not on the old slot"));

        // The old slot failed the same way (another port) before installing: it passes.
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, _) = state::StateFile::open(dir.path()).expect("state");
        file.save(&state::UpdateState {
            format: state::FORMAT,
            seen_etag: None,
            rolled_back: std::collections::BTreeMap::new(),
            attempt: Some(state::Attempt {
                version: "0.2.0".into(),
                from_slot: "A".into(),
                to_slot: "B".into(),
                phase: Phase::Installed,
                boot_id: "an earlier boot".into(),
                at: 0,
                reason: None,
                installs: 1,
                sync_before: state::sync_outcome(failing(9001).last_error.as_deref()),
                complaint: None,
            }),
        })
        .expect("save");
        let (tx, _rx) = watch::channel(super::super::UpdateStatus::default());
        let journal = Journal::open(dir.path(), "B", tx).expect("journal");
        assert_eq!(journal.role(), Role::Trial);
        assert!(synced(&failing(9000), Some(&journal)).is_ok());
        let other = SyncStatus {
            last_error: Some("s3: 403 Forbidden: SignatureDoesNotMatch".into()),
            ..SyncStatus::default()
        };
        assert!(synced(&other, Some(&journal)).is_err(), "another failure");
    }
}
