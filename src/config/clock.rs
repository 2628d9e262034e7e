//! `[clock]`: where the Pi, which has no real-time clock, gets the time (`src/clock/`).
//!
//! `clock::ClockSettings::new` reads it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{key_error, pem_file_is_there, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// NTP servers for BusyBox ntpd (`/etc/init.d/S48ntpd` asks `pi-failover clock
    /// ntp-servers`): names or addresses, UDP port 123.
    pub ntp_servers: Vec<String>,
    /// HTTPS URLs whose `Date` header sets the clock when NTP has not answered for
    /// `fallback_after` (a site that blocks UDP 123). Unset: the S3 endpoint the site comes
    /// from (the Pi reaches it anyway). `[]`: no fallback.
    pub https_date: Option<Vec<String>>,
    /// Extra CA certificates (PEM) for the `https_date` servers, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// How long the kernel's clock may stay unsynchronised (from boot) before the HTTPS
    /// fallback steps in.
    #[serde(with = "humantime_serde")]
    pub fallback_after: Duration,
    /// Where `pi-failover clock watch` (root) records what it did, for the status page.
    pub state_file: PathBuf,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            ntp_servers: ["0", "1", "2", "3"]
                .iter()
                .map(|n| format!("{n}.pool.ntp.org"))
                .collect(),
            https_date: None,
            ca_file: None,
            fallback_after: Duration::from_secs(300),
            state_file: PathBuf::from("/run/pi-failover/clock.json"),
        }
    }
}

impl ClockConfig {
    pub(super) fn resolve_relative_paths(&mut self, base: &Path) {
        if let Some(ca) = &mut self.ca_file {
            if ca.is_relative() {
                *ca = base.join(&*ca);
            }
        }
    }

    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        for server in &self.ntp_servers {
            // Each becomes an argument of ntpd's command line: a name, never an option.
            if server.is_empty()
                || server.starts_with('-')
                || !server
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
            {
                return Err(key_error(
                    file,
                    "clock.ntp_servers",
                    format!("`{server}` is not a host name or address"),
                    "write names such as \"ntp.example.net\" or addresses such as \"192.0.2.1\"",
                ));
            }
        }
        for url in self.https_date.iter().flatten() {
            if let Err(problem) = check_https_url(url) {
                return Err(key_error(
                    file,
                    "clock.https_date",
                    format!("`{url}`: {problem}"),
                    "write https URLs such as \"https://s3.eu-west-1.amazonaws.com/\"",
                ));
            }
        }
        if self.fallback_after < Duration::from_secs(10) {
            return Err(key_error(
                file,
                "clock.fallback_after",
                format!("{:?} leaves NTP no time to answer", self.fallback_after),
                "write at least \"10s\"; the default is \"5m\"",
            ));
        }
        Ok(())
    }

    /// The files the section names are there (the clock's commands check only these).
    pub fn check_files(&self, file: &Path) -> Result<(), ConfigError> {
        pem_file_is_there(file, "clock.ca_file", self.ca_file.as_deref())
    }
}

/// An `https://host[:port]/…` URL, or what is wrong with it.
pub fn check_https_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("not a URL ({e})"))?;
    if uri.scheme_str() != Some("https") {
        return Err("not https (the Date of a plain-HTTP answer could be anyone's)".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    Ok(())
}
