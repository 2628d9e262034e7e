//! What the update agent remembers across reboots and across slots, on the shared data
//! partition: `<data_dir>/update/`.
//!
//! ```text
//! update/
//!   state.json          this file's `UpdateState`, replaced whole (temp, fsync, rename)
//!   trial               "SLOT SECONDS\n" while a freshly installed slot is on trial: the
//!                       watchdog (root) reboots that slot when it has not been marked good
//!                       SECONDS after its boot; removed at commit or rollback
//!   now                 the owner's `pi-failover update --now`: install without waiting
//!   bundle.raucb(.part) the bundle being downloaded and installed, deleted after
//! ```
//!
//! Both slots read and write `state.json`, and they may run different versions: it says which
//! format wrote it (`format`), and a slot that finds a newer format than it knows keeps it
//! untouched (it never writes it) and pauses updates, rather than rewriting what it does not
//! understand. A file that does not parse is kept beside as `state.json.bad`.
//!
//! What a boot makes of the last attempt is [`on_boot`], a pure function with a table test:
//! the slot that booted, compared with the slot the bundle went to, says whether this is the
//! new slot's trial, the old slot after a rollback, or an install a power cut interrupted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format this build writes.
pub const FORMAT: u32 = 1;

/// How many times one version is installed before the agent gives up on it (each interrupted
/// install counts).
pub const MAX_INSTALLS: u32 = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateState {
    pub format: u32,
    /// The ETag of the last bundle looked at (installed or refused): the same object is not
    /// downloaded again.
    #[serde(default)]
    pub seen_etag: Option<String>,
    /// Versions installed that did not hold, and why: never installed again.
    #[serde(default)]
    pub rolled_back: BTreeMap<String, String>,
    /// The last bundle looked at and what became of it.
    #[serde(default)]
    pub attempt: Option<Attempt>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub version: String,
    /// The slot that installed it (booted then), and the one it went to.
    pub from_slot: String,
    pub to_slot: String,
    pub phase: Phase,
    /// `/proc/sys/kernel/random/boot_id` of the boot that set `phase`.
    pub boot_id: String,
    /// Unix seconds when `phase` was set.
    pub at: u64,
    /// Why it was refused, failed or rolled back.
    #[serde(default)]
    pub reason: Option<String>,
    /// Installs of this version begun (an interrupted one counts).
    #[serde(default)]
    pub installs: u32,
    /// How the old slot's last sync ended when it installed (`None`: it succeeded), digits
    /// masked ([`sync_outcome`]): the new slot passes its trial by syncing, or by failing
    /// exactly as the old one did (S3 unreachable from the co-location is not the update's
    /// fault).
    #[serde(default)]
    pub sync_before: Option<String>,
    /// What the slot on trial last found wrong with itself: the reason a rollback reports.
    #[serde(default)]
    pub complaint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Downloaded and vetted; refused with `reason`.
    Refused,
    /// `rauc install` running (a power cut leaves it so).
    Installing,
    /// Installed into `to_slot`, which boots next.
    Installed,
    /// `to_slot` served, synced and was marked good.
    Committed,
    /// `to_slot` did not hold; the Pi is back on `from_slot`.
    RolledBack,
    /// The install failed or was interrupted; `reason` says which.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Installing => "installing",
            Self::Installed => "installed",
            Self::Committed => "committed",
            Self::RolledBack => "rolled-back",
            Self::Failed => "failed",
        }
    }
}

/// What this boot is, as far as updates go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// A slot that has been serving: marked good once it serves, looks for updates.
    Established,
    /// A freshly installed slot on its trial: marked good only once it serves and syncs as
    /// the old slot did ([`Attempt::sync_before`]); looks for no updates meanwhile.
    Trial,
    /// The install finished in this very boot and the reboot into the new slot has not
    /// happened (the appliance restarted first): ask for it again.
    RebootPending,
}

/// What a boot of `booted` (with `boot_id`) makes of `state`: the state to write back (when it
/// changed) and the role of this boot.
pub fn on_boot(state: &UpdateState, booted: &str, boot_id: &str, now: u64) -> (UpdateState, Role) {
    let mut next = state.clone();
    let Some(attempt) = next.attempt.as_mut() else {
        return (next, Role::Established);
    };
    let role = match attempt.phase {
        Phase::Refused | Phase::Committed | Phase::RolledBack | Phase::Failed => Role::Established,
        Phase::Installing if attempt.boot_id == boot_id => Role::Established,
        Phase::Installing if booted == attempt.to_slot => {
            // The appliance went down while RAUC's service finished the install on its own,
            // and the Pi rebooted into the new slot: its trial, as after a whole install.
            attempt.phase = Phase::Installed;
            Role::Trial
        }
        Phase::Installing => {
            // A power cut or a crash in the middle of `rauc install`: RAUC had marked the
            // target slot bad before writing it, so this is the old slot. Forget the ETag so
            // the bundle is fetched and installed again (up to MAX_INSTALLS).
            attempt.phase = Phase::Failed;
            attempt.reason = Some(format!(
                "the install into slot {} was interrupted (power cut or restart)",
                attempt.to_slot
            ));
            boot_id.clone_into(&mut attempt.boot_id);
            attempt.at = now;
            next.seen_etag = None;
            Role::Established
        }
        Phase::Installed if booted == attempt.to_slot => Role::Trial,
        Phase::Installed if booted == attempt.from_slot && attempt.boot_id == boot_id => {
            Role::RebootPending
        }
        Phase::Installed if booted == attempt.from_slot => {
            // The boot counter gave up on the new slot and brought the Pi back here.
            let reason = attempt.complaint.clone().unwrap_or_else(|| {
                format!(
                    "slot {} never served (it did not start, or did not answer its own health check)",
                    attempt.to_slot
                )
            });
            attempt.phase = Phase::RolledBack;
            attempt.reason = Some(reason.clone());
            boot_id.clone_into(&mut attempt.boot_id);
            attempt.at = now;
            next.rolled_back.insert(attempt.version.clone(), reason);
            Role::Established
        }
        Phase::Installed => Role::Established,
    };
    (next, role)
}

/// A sync's outcome as the trial compares it: `None` for success, else its message with every
/// digit masked (addresses, ports, counts and times differ between two tries of the same
/// failure).
pub fn sync_outcome(error: Option<&str>) -> Option<String> {
    error.map(|e| {
        e.chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect()
    })
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} was written by a newer pi-failover (format {1}, this one knows {FORMAT}): kept as it is, and updates are paused on this slot")]
    Newer(PathBuf, u32),
}

/// The state file of a data directory, as read at start.
pub struct StateFile {
    dir: PathBuf,
    /// Why it must not be written (a newer format), if so.
    read_only: Option<String>,
}

impl StateFile {
    /// `<data_dir>/update`.
    pub fn dir(data_dir: &Path) -> PathBuf {
        data_dir.join("update")
    }

    /// Reads the state (an absent file is a fresh one); a newer format is read as far as it
    /// goes and never written; a file that does not parse is moved aside.
    pub fn open(data_dir: &Path) -> Result<(Self, UpdateState), StateError> {
        let dir = Self::dir(data_dir);
        std::fs::create_dir_all(&dir).map_err(|source| StateError::Io {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join("state.json");
        let fresh = UpdateState {
            format: FORMAT,
            ..UpdateState::default()
        };
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((
                    Self {
                        dir,
                        read_only: None,
                    },
                    fresh,
                ))
            }
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let format = serde_json::from_slice::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64));
        match (format, serde_json::from_slice::<UpdateState>(&text)) {
            (Some(format), parsed) if format > u64::from(FORMAT) => {
                let format = u32::try_from(format).unwrap_or(u32::MAX);
                let why = StateError::Newer(path, format).to_string();
                tracing::warn!("{why}");
                Ok((
                    Self {
                        dir,
                        read_only: Some(why),
                    },
                    parsed.unwrap_or(fresh),
                ))
            }
            (_, Ok(state)) => Ok((
                Self {
                    dir,
                    read_only: None,
                },
                state,
            )),
            (_, Err(e)) => {
                let aside = dir.join("state.json.bad");
                tracing::error!(error = %e, aside = %aside.display(), "the update state does not parse; starting afresh");
                std::fs::rename(&path, &aside).map_err(|source| StateError::Io {
                    path: aside.clone(),
                    source,
                })?;
                Ok((
                    Self {
                        dir,
                        read_only: None,
                    },
                    fresh,
                ))
            }
        }
    }

    /// Why this slot must not write the state (it was written by a newer format).
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Replaces the state whole: a power cut leaves the old one or the new one.
    pub fn save(&self, state: &UpdateState) -> Result<(), StateError> {
        if let Some(why) = &self.read_only {
            return Err(StateError::Io {
                path: self.path("state.json"),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.clone()),
            });
        }
        let mut state = state.clone();
        state.format = FORMAT;
        let io = |source| StateError::Io {
            path: self.path("state.json"),
            source,
        };
        let bytes = serde_json::to_vec_pretty(&state).map_err(|e| io(e.into()))?;
        write_whole(&self.dir, "state.json", &bytes).map_err(io)
    }
}

pub use crate::data_format::write_whole;

/// This boot's id (`/proc/sys/kernel/random/boot_id`): tells a restart of the appliance from
/// a reboot.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(phase: Phase, boot_id: &str) -> UpdateState {
        UpdateState {
            format: FORMAT,
            seen_etag: Some("\"e1\"".into()),
            rolled_back: BTreeMap::new(),
            attempt: Some(Attempt {
                version: "0.3.0".into(),
                from_slot: "A".into(),
                to_slot: "B".into(),
                phase,
                boot_id: boot_id.into(),
                at: 100,
                reason: None,
                installs: 1,
                sync_before: None,
                complaint: None,
            }),
        }
    }

    /// Every phase, booted from either slot, in the same boot or a later one.
    #[test]
    fn what_a_boot_makes_of_the_last_attempt() {
        use Phase::*;
        use Role::*;
        // (phase, booted, boot, role, phase after, rolled back, etag kept)
        let table = [
            (Refused, "A", "b2", Established, Refused, false, true),
            (Committed, "B", "b2", Established, Committed, false, true),
            (RolledBack, "A", "b2", Established, RolledBack, false, true),
            (Failed, "A", "b2", Established, Failed, false, true),
            // A power cut during the install: retried.
            (Installing, "A", "b2", Established, Failed, false, false),
            // The appliance restarted while RAUC still installs: nothing to conclude yet.
            (Installing, "A", "b1", Established, Installing, false, true),
            // ... and RAUC's service finished it alone; the Pi rebooted into the new slot.
            (Installing, "B", "b2", Trial, Installed, false, true),
            (Installed, "B", "b2", Trial, Installed, false, true),
            (Installed, "B", "b3", Trial, Installed, false, true),
            (Installed, "A", "b1", RebootPending, Installed, false, true),
            // Back on the old slot after a reboot: the boot counter gave up on B.
            (Installed, "A", "b2", Established, RolledBack, true, true),
            // A slot that is neither (a third one, a development machine): nothing changes.
            (Installed, "C", "b2", Established, Installed, false, true),
        ];
        for (phase, booted, boot, role, after, rolled_back, etag_kept) in table {
            let before = attempt(phase, "b1");
            let (next, got) = on_boot(&before, booted, boot, 200);
            let case = format!("{phase:?} booted {booted} in {boot}");
            assert_eq!(got, role, "{case}");
            let a = next.attempt.as_ref().expect("attempt kept");
            assert_eq!(a.phase, after, "{case}");
            assert_eq!(
                next.rolled_back.contains_key("0.3.0"),
                rolled_back,
                "{case}"
            );
            assert_eq!(next.seen_etag.is_some(), etag_kept, "{case}");
            if after == phase {
                assert_eq!(next, before, "{case}: nothing to write");
            }
        }
        let (fresh, role) = on_boot(&UpdateState::default(), "A", "b1", 0);
        assert_eq!((fresh, role), (UpdateState::default(), Established));
    }

    #[test]
    fn a_rollback_reports_what_the_new_slot_last_complained_of() {
        let mut state = attempt(Phase::Installed, "b1");
        if let Some(a) = state.attempt.as_mut() {
            a.complaint = Some("GET /up.txt: answered 503".into());
        }
        let (next, _) = on_boot(&state, "A", "b2", 200);
        assert_eq!(
            next.rolled_back.get("0.3.0").map(String::as_str),
            Some("GET /up.txt: answered 503")
        );
        let (silent, _) = on_boot(&attempt(Phase::Installed, "b1"), "A", "b2", 200);
        assert!(
            silent.rolled_back["0.3.0"].contains("slot B never served"),
            "{silent:?}"
        );
    }

    #[test]
    fn two_tries_of_the_same_failure_compare_equal() {
        assert_eq!(
            sync_outcome(Some("connecting to 10.0.2.100:9000: refused after 3 tries")),
            sync_outcome(Some("connecting to 10.0.2.100:9001: refused after 4 tries"))
        );
        assert_ne!(sync_outcome(Some("403 Forbidden")), sync_outcome(None));
    }

    #[test]
    fn the_state_survives_a_round_trip_and_a_newer_format_is_never_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (file, fresh) = StateFile::open(dir.path()).expect("open");
        assert_eq!(fresh.format, FORMAT);
        let state = attempt(Phase::Installed, "b1");
        file.save(&state).expect("save");
        let (_, read) = StateFile::open(dir.path()).expect("reopen");
        assert_eq!(read, state);

        // A newer slot wrote format 2 with fields this one does not know.
        let path = dir.path().join("update/state.json");
        let newer = r#"{"format": 2, "seen_etag": "\"e9\"", "channels": ["beta"]}"#;
        std::fs::write(&path, newer).expect("write");
        let (file, read) = StateFile::open(dir.path()).expect("open newer");
        assert!(
            file.read_only().is_some_and(|w| w.contains("format 2")),
            "{:?}",
            file.read_only()
        );
        assert_eq!(read.seen_etag.as_deref(), Some("\"e9\""));
        assert!(file.save(&state).is_err(), "a newer format was overwritten");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), newer);

        // Garbage is moved aside, not lost.
        std::fs::write(&path, "{not json").expect("write");
        let (file, read) = StateFile::open(dir.path()).expect("open garbage");
        assert!(file.read_only().is_none());
        assert_eq!(read.attempt, None);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("update/state.json.bad")).expect("aside"),
            "{not json"
        );
    }
}
