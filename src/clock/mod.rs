//! The Pi's time. It has no real-time clock: at boot the clock starts from the time saved on
//! the data partition (`/etc/init.d/S05clock`), BusyBox ntpd corrects it (servers from
//! `clock.ntp_servers`), and where a site blocks NTP, [`watch`] (run as root by
//! `pi-failover clock watch`) takes the time from an HTTPS server's `Date` header instead
//! ([`https_date`]): coarse (about a second), but enough for certificates, S3 signing and the
//! status, which a clock months behind after a long power-off is not.
//!
//! Who does what: ntpd and the watcher run as root (setting the clock needs CAP_SYS_TIME,
//! which the internet-facing appliance never holds); the watcher records what it did in
//! `clock.state_file` ([`state`]), and the appliance reads that and the kernel's own
//! synchronisation flag ([`kernel_synchronised`]) for the status.

pub mod https_date;
pub mod state;
pub mod watch;

use std::path::PathBuf;
use std::time::Duration;

use crate::config::Config;

/// What the clock subsystem needs, built from `[clock]` (and `[s3]` for the default source).
#[derive(Debug, Clone)]
pub struct ClockSettings {
    pub ntp_servers: Vec<String>,
    /// HTTPS URLs tried in order for a `Date`; empty: no fallback.
    pub https_date: Vec<String>,
    pub ca_file: Option<PathBuf>,
    pub fallback_after: Duration,
    pub state_file: PathBuf,
}

impl ClockSettings {
    pub fn new(config: &Config) -> Self {
        let c = &config.clock;
        let https_date = match &c.https_date {
            Some(urls) => urls.clone(),
            // The endpoint the site is synced from: reachable whenever the Pi is useful.
            None => match &config.s3 {
                Some(s3) => match &s3.endpoint {
                    Some(endpoint) if endpoint.starts_with("https://") => vec![endpoint.clone()],
                    Some(_) => Vec::new(),
                    None => vec![format!("https://s3.{}.amazonaws.com/", s3.region)],
                },
                None => Vec::new(),
            },
        };
        Self {
            ntp_servers: c.ntp_servers.clone(),
            https_date,
            ca_file: c.ca_file.clone(),
            fallback_after: c.fallback_after,
            state_file: c.state_file.clone(),
        }
    }
}

/// Whether the kernel's clock is synchronised (an NTP daemon disciplines it), from
/// adjtimex(2) with no changes: TIME_ERROR or STA_UNSYNC mean it is free-running. `None`
/// where it cannot be read. A step by [`watch`] leaves it unsynchronised: that one is coarse.
pub(crate) fn kernel_synchronised() -> Option<bool> {
    // SAFETY: a zeroed timex with modes = 0 only reads the kernel's state into it.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&raw mut tx) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}
