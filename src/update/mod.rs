//! Updates (docs/user-guide.md, "Updating a Pi you cannot reach"): the card has two slots
//! (image/README.md, "Slots"); RAUC installs a signed bundle into the one not booted, and
//! U-Boot's boot script gives a slot three boots to be marked good before it falls back to
//! the other.
//!
//! - `state`: what is remembered across boots and slots (the last attempt, the versions
//!   rolled back), and what a boot makes of it (`state::on_boot`): an established slot, a
//!   new slot on its trial, or the old slot back after a rollback.
//! - `commit`: the booted slot is marked good once it serves its own health path and front
//!   page over HTTPS (`self_check`); a slot on trial must also have synced, or failed to
//!   exactly as the old slot did. Until then the watchdog (root, the image's
//!   `pi-failover-watchdog`) reboots a trial slot at `update.trial`, and the boot counter
//!   takes the Pi back after three such boots.
//! - `agent`: on an established slot with `[update]`, after every sync (and at once on
//!   `pi-failover update --now`), one conditional GET of the owner's bundle (`fetch`); a new
//!   one is vetted (`bundle`: signature, board, newer, not rolled back before), installed
//!   when the Pi is neither LIVE nor DRAINING, and the appliance exits for the reboot.
//! - `journal`: the state file and the status view, updated together.
//!
//! Nothing here runs on a system not booted from a slot (a development machine, the demo).

pub mod agent;
pub mod bundle;
pub mod commit;
pub mod fetch;
pub mod journal;
pub mod rauc;
pub mod self_check;
pub mod slot;
pub mod state;
pub mod version;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::sync::SyncStatus;
use crate::tls::CertResolver;

pub use commit::CommitSettings;

/// `[update]`, as the agent takes it (`crate::settings::update_settings`).
#[derive(Debug, Clone)]
pub struct UpdateSettings {
    pub bucket: String,
    /// The bundle's key is `<prefix><compatible>.raucb`.
    pub prefix: String,
    pub max_bundle_bytes: u64,
    pub min_free_bytes: u64,
    pub trial: Duration,
    /// How often to look when no sync finishes (`s3.interval`).
    pub interval: Duration,
}

/// What the appliance hands the update subsystem.
pub struct UpdateInputs {
    pub settings: Option<UpdateSettings>,
    pub commit: CommitSettings,
    pub data_dir: PathBuf,
    pub certs: Arc<CertResolver>,
    pub sync: watch::Receiver<SyncStatus>,
    /// The S3 client of `[s3]`, when there is one.
    pub s3: Option<aws_sdk_s3::Client>,
    /// Whether the Pi is LIVE or DRAINING now (from the status model): no install then.
    pub busy: watch::Receiver<bool>,
}

/// The update subsystem, started: its view for the status, and the token it cancels when it
/// wants the Pi rebooted into a freshly installed slot.
pub struct Updates {
    pub status: watch::Receiver<UpdateStatus>,
    pub reboot: CancellationToken,
}

/// The updates as `/api/status`, the status page and the OLED show them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpdateStatus {
    /// The slot booted (`A`, `B`); `null` off a slotted card.
    pub booted: Option<String>,
    /// `established`, `trial` (a new slot not yet marked good) or `reboot-pending`.
    pub role: Option<&'static str>,
    /// The version running (the image's build stamp).
    pub version: String,
    /// Both slots as RAUC reports them.
    pub slots: Vec<slot::SlotView>,
    /// Where bundles are looked for (`s3://bucket/key`); `null`: updates are off.
    pub source: Option<String>,
    #[serde(with = "crate::format::json_time_option")]
    pub last_check: Option<SystemTime>,
    /// Why the last look for a bundle failed, until one succeeds.
    pub last_error: Option<String>,
    /// The last bundle looked at and what became of it.
    pub last_attempt: Option<AttemptView>,
    /// A vetted bundle waiting to be installed or rebooted into, and why it waits.
    pub waiting: Option<String>,
    /// Why updates are paused on this slot (a newer slot's state format).
    pub paused: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttemptView {
    pub version: String,
    /// `refused`, `installing`, `installed`, `committed`, `rolled-back` or `failed`.
    pub result: &'static str,
    pub from_slot: String,
    pub to_slot: String,
    pub reason: Option<String>,
    #[serde(with = "crate::format::json_time")]
    pub at: SystemTime,
}

impl UpdateStatus {
    /// What the owner should look at: an update that rolled back (until another bundle is
    /// looked at), or updates paused.
    pub fn concern(&self) -> Option<String> {
        if let Some(paused) = &self.paused {
            return Some(format!("updates paused: {paused}"));
        }
        let attempt = self.last_attempt.as_ref()?;
        (attempt.result == state::Phase::RolledBack.as_str()).then(|| {
            format!(
                "update to {} rolled back: {}",
                attempt.version,
                attempt.reason.as_deref().unwrap_or("no reason recorded")
            )
        })
    }
}

/// How long one look for a bundle (the GET and its body) may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Reads what the last boot left, marks the booted slot good once it serves (and, on trial,
/// syncs), and runs the agent when `[update]` asks for it.
pub fn start(inputs: UpdateInputs, tracker: &TaskTracker, shutdown: &CancellationToken) -> Updates {
    let reboot = CancellationToken::new();
    let (status_tx, status) = watch::channel(UpdateStatus {
        version: bundle::own_version().to_string(),
        ..UpdateStatus::default()
    });
    let Some(booted) = slot::booted() else {
        return Updates { status, reboot };
    };
    let journal = match journal::Journal::open(&inputs.data_dir, &booted, status_tx) {
        Ok(journal) => Arc::new(journal),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the update state; this slot is marked good once it serves, and looks for no updates");
            tracker.spawn(commit::mark_good_when_serving(
                inputs.commit,
                state::Role::Established,
                None,
                inputs.certs,
                inputs.sync,
                shutdown.clone(),
            ));
            return Updates { status, reboot };
        }
    };
    let role = journal.role();
    if role == state::Role::Trial {
        tracing::info!(slot = %booted, "this slot is on trial: it is marked good once it serves and syncs, else rebooted");
    }
    tracker.spawn(journal.clone().refresh_slots());
    tracker.spawn(commit::mark_good_when_serving(
        inputs.commit,
        role.clone(),
        Some(journal.clone()),
        inputs.certs,
        inputs.sync.clone(),
        shutdown.clone(),
    ));
    if let (Some(settings), Some(client), true) = (inputs.settings, inputs.s3, journal.writable()) {
        match bundle::Own::read() {
            Ok(own) => {
                tracker.spawn(agent::run(agent::Agent {
                    settings,
                    own,
                    client,
                    journal,
                    busy: inputs.busy,
                    sync: inputs.sync,
                    reboot: reboot.clone(),
                    shutdown: shutdown.clone(),
                    role,
                }));
            }
            Err(e) => {
                tracing::error!(error = %e, "updates off: cannot tell which board and version this is");
                journal.set_error(Some(e));
            }
        }
    }
    Updates { status, reboot }
}

/// Leaves the owner's request to update now (`pi-failover update --now`) for the agent.
pub fn request_now(data_dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let dir = state::StateFile::dir(data_dir);
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(journal::NOW_REQUEST);
    state::write_whole(&dir, journal::NOW_REQUEST, b"now\n")?;
    Ok(path)
}
