//! The update state and its status view, changed together: every change is written to
//! `state.json` before the status shows it, so what the owner sees is what a reboot finds.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::state::{self, Attempt, Role, StateError, StateFile, UpdateState};
use super::{AttemptView, UpdateStatus};

/// The trial marker the watchdog reads (`state` module doc).
pub const TRIAL_MARKER: &str = "trial";
/// The owner's `pi-failover update --now`.
pub const NOW_REQUEST: &str = "now";

pub struct Journal {
    file: StateFile,
    state: Mutex<UpdateState>,
    status: watch::Sender<UpdateStatus>,
    booted: String,
    role: Role,
    boot_id: String,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Journal {
    /// Reads the state, applies what this boot makes of it ([`state::on_boot`]) and writes it
    /// back when that changed it.
    pub fn open(
        data_dir: &Path,
        booted: &str,
        status: watch::Sender<UpdateStatus>,
    ) -> Result<Self, StateError> {
        let (file, read) = StateFile::open(data_dir)?;
        let boot_id = state::boot_id();
        let (next, role) = state::on_boot(&read, booted, &boot_id, unix_now());
        if next != read && file.read_only().is_none() {
            file.save(&next)?;
        }
        if let Some(a) = &next.attempt {
            match a.phase {
                state::Phase::RolledBack
                    if read.attempt.as_ref().map(|r| r.phase) != Some(a.phase) =>
                {
                    tracing::error!(version = %a.version, reason = a.reason.as_deref().unwrap_or(""), "the update rolled back: this slot runs again");
                }
                state::Phase::Failed if read.attempt.as_ref().map(|r| r.phase) != Some(a.phase) => {
                    tracing::warn!(version = %a.version, reason = a.reason.as_deref().unwrap_or(""), "the last update did not finish; it is tried again");
                }
                _ => {}
            }
        }
        if role != Role::Trial {
            // Only a slot on trial is rebooted by the watchdog; a marker left by an install
            // that failed or rolled back names the other slot, and goes.
            let _ = std::fs::remove_file(file.path(TRIAL_MARKER));
        }
        let journal = Self {
            file,
            state: Mutex::new(next),
            status,
            booted: booted.to_owned(),
            role,
            boot_id,
        };
        journal.publish(|_| {});
        Ok(journal)
    }

    /// The status view, to wait on (a trial slot's agent waits for the commit).
    pub fn subscribe(&self) -> watch::Receiver<UpdateStatus> {
        self.status.subscribe()
    }

    pub fn role(&self) -> Role {
        self.role.clone()
    }

    pub fn booted(&self) -> &str {
        &self.booted
    }

    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    pub fn writable(&self) -> bool {
        self.file.read_only().is_none()
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.file.path(name)
    }

    /// The dir bundles are downloaded into.
    pub fn dir(&self) -> std::path::PathBuf {
        self.file.path("")
    }

    /// A copy of the state.
    pub fn state(&self) -> UpdateState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, UpdateState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the state, writes it whole, then shows it. When it cannot be written the
    /// change is dropped (the state on disk is what counts) and the error returned.
    pub fn record(&self, change: impl FnOnce(&mut UpdateState)) -> Result<(), StateError> {
        let mut state = self.lock();
        let mut next = state.clone();
        change(&mut next);
        if next != *state {
            self.file.save(&next)?;
            *state = next;
        }
        drop(state);
        self.publish(|_| {});
        Ok(())
    }

    /// Records an attempt's new phase (and reason), logging when the write fails.
    pub fn set_attempt(&self, attempt: Attempt) {
        if let Err(e) = self.record(|s| s.attempt = Some(attempt)) {
            tracing::error!(error = %e, "cannot record the update attempt");
        }
    }

    /// The status view's parts the state does not hold.
    pub fn set_waiting(&self, waiting: Option<String>) {
        self.publish(|s| s.waiting = waiting);
    }

    pub fn set_error(&self, error: Option<String>) {
        self.publish(|s| s.last_error = error);
    }

    pub fn checked(&self, source: String, error: Option<String>) {
        self.publish(|s| {
            s.source = Some(source);
            s.last_check = Some(SystemTime::now());
            s.last_error = error;
        });
    }

    /// Re-reads RAUC's view of the slots for the status (at start, and after a marking or
    /// an install).
    pub async fn refresh_slots(self: std::sync::Arc<Self>) {
        match super::slot::slots().await {
            Ok(mut slots) => self.publish(|s| {
                // RAUC knows the versions of the bundles it installed; the slot the card was
                // flashed with has none, and the booted one runs this build.
                for slot in &mut slots {
                    if slot.version.is_none() && slot.name == self.booted {
                        slot.version = Some(s.version.clone());
                    }
                }
                s.slots = slots;
            }),
            Err(e) => tracing::warn!(error = %e, "rauc status"),
        }
    }

    fn publish(&self, also: impl FnOnce(&mut UpdateStatus)) {
        let state = self.lock().clone();
        let committed = state
            .attempt
            .as_ref()
            .is_some_and(|a| a.phase == state::Phase::Committed);
        let role = match self.role {
            Role::Established => "established",
            Role::Trial if committed => "established",
            Role::Trial => "trial",
            Role::RebootPending => "reboot-pending",
        };
        let paused = self.file.read_only().map(str::to_owned);
        self.status.send_modify(|s| {
            s.booted = Some(self.booted.clone());
            s.role = Some(role);
            s.paused = paused;
            s.last_attempt = state.attempt.as_ref().map(|a| AttemptView {
                version: a.version.clone(),
                result: a.phase.as_str(),
                from_slot: a.from_slot.clone(),
                to_slot: a.to_slot.clone(),
                reason: a.reason.clone(),
                at: UNIX_EPOCH + Duration::from_secs(a.at),
            });
            also(s);
        });
    }
}
