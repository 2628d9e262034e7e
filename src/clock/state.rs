//! What the clock watcher last did, in `clock.state_file` (on `/run`, a tmpfs: it describes
//! this boot only). Written by root with a rename, read by the unprivileged appliance.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The clock as the watcher last found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockState {
    /// `"ntp"`: the kernel reports the clock synchronised; `"https-date"`: it was not, and
    /// the time was checked against `url`'s `Date` (and stepped when more than
    /// [`super::watch::STEP_THRESHOLD`] off); `"none"`: neither has worked yet this boot.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// When this was found, as seconds since the epoch (after any step).
    pub checked_at: u64,
    /// How far the clock was off before a step (server minus local), in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_seconds: Option<f64>,
    /// The last failure of the HTTPS fallback, if its last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// How long a coarse check is trusted: the watcher repeats it every hour while NTP stays
/// silent, so an older one means the watcher stopped.
pub(crate) const COARSE_FRESH_FOR: Duration = Duration::from_secs(3 * 3600);

impl ClockState {
    /// The state in `path`, if there is a readable one.
    pub fn read(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Writes the state whole (a temporary file renamed over it), readable by everyone.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, path)
    }

    /// A recent successful HTTPS check: the clock is right to about a second although
    /// the kernel says it is not synchronised.
    pub(crate) fn coarse_and_fresh(&self, now: SystemTime) -> bool {
        let checked = SystemTime::UNIX_EPOCH + Duration::from_secs(self.checked_at);
        self.source == "https-date"
            && self.last_error.is_none()
            && now.duration_since(checked).unwrap_or_default() < COARSE_FRESH_FOR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coarse_check_is_trusted_for_three_hours_and_only_when_it_worked() {
        let at = 1_800_000_000;
        let state = ClockState {
            source: "https-date".into(),
            url: Some("https://s3.eu-west-1.amazonaws.com/".into()),
            checked_at: at,
            offset_seconds: Some(412.5),
            last_error: None,
        };
        let t = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert!(state.coarse_and_fresh(t(at + 60)));
        assert!(!state.coarse_and_fresh(t(at + 3 * 3600 + 1)));
        let failed = ClockState {
            last_error: Some("connection refused".into()),
            ..state.clone()
        };
        assert!(!failed.coarse_and_fresh(t(at + 60)));
        let ntp = ClockState {
            source: "ntp".into(),
            ..state
        };
        assert!(!ntp.coarse_and_fresh(t(at + 60)));
    }

    #[test]
    fn the_state_survives_a_write_and_a_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run/clock.json");
        let state = ClockState {
            source: "none".into(),
            url: None,
            checked_at: 5,
            offset_seconds: None,
            last_error: Some("no https_date source".into()),
        };
        state.write(&path).expect("writes");
        assert_eq!(ClockState::read(&path), Some(state));
    }
}
