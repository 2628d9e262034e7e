//! Updates (docs/user-guide.md, "Updating a Pi you cannot reach"): the card has two slots
//! (image/README.md, "Slots"); RAUC installs a signed bundle into the one not booted, and
//! U-Boot's boot script gives a slot three boots to be marked good before it falls back to
//! the other.
//!
//! What runs here today is the marking: once the appliance booted from a slot serves (its
//! own HTTPS listener answers the health path and the site's front page, `self_check`) and
//! has completed a sync when the site comes from S3, it asks RAUC to mark the slot good,
//! which gives it its tries back. A slot that never gets there is left by the boot counting.
//! Fetching and installing bundles is still to come (issue 16).

pub mod self_check;
pub mod slot;
pub mod state;
pub mod version;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

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
    /// Whether a completed sync is awaited (the site comes from S3).
    pub awaits_sync: bool,
}

/// How long between tries while the slot is not yet serving or RAUC does not answer.
const RETRY: Duration = Duration::from_secs(30);

/// Marks the booted slot good once the appliance serves (module doc); returns at once when
/// the system was not booted from a slot (a development machine, the demo).
pub async fn mark_good_when_serving(
    settings: CommitSettings,
    certs: Arc<CertResolver>,
    mut sync: watch::Receiver<SyncStatus>,
    shutdown: CancellationToken,
) {
    let Some(slot) = slot::booted() else {
        return;
    };
    if settings.awaits_sync {
        tokio::select! {
            () = shutdown.cancelled() => return,
            done = sync.wait_for(|s| s.last_success.is_some()) => {
                if done.is_err() {
                    return;
                }
            }
        }
    }
    loop {
        match serves(&settings, &certs).await {
            Ok(()) => match slot::mark_good().await {
                Ok(()) => {
                    tracing::info!(%slot, "this slot serves: marked good");
                    return;
                }
                Err(e) => tracing::warn!(%slot, error = %e, "cannot mark this slot good"),
            },
            Err(e) => tracing::warn!(%slot, error = %e, "not marking this slot good yet"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY) => {}
        }
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
