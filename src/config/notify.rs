//! `[notify]`: where the Pi sends a message when it takes over, gives back, or needs its
//! owner (`src/notify/`). A section of its own with its defaults and checks; it imports
//! nothing from the crate but its parent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{check_https_url, key_error, pem_file_is_there, ConfigError};

/// What the receiver expects the body to look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// A JSON document of our own (docs/status-api.md, "Notifications").
    #[default]
    Generic,
    /// ntfy's JSON publishing: `url` is the topic's URL (`https://ntfy.sh/my-topic`).
    Ntfy,
    /// A Slack incoming webhook.
    Slack,
    /// A Discord channel webhook.
    Discord,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The `https://` URL messages are POSTed to. Unset: no messages (the history is kept
    /// all the same). Often a secret (Slack and Discord put the key in it): it is never shown
    /// on the status page or written to the log, only its host.
    pub url: Option<String>,
    pub format: NotifyFormat,
    /// Which Pi, said in every message. Unset: the host name.
    pub name: Option<String>,
    /// The status page as the owner reaches it (a VPN address, a LAN name): every message
    /// links to it.
    pub status_url: Option<String>,
    /// Extra CA certificates (PEM) for the receiver, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// A sync failing for this long sends a message (readers get the last good copy meanwhile).
    #[serde(with = "humantime_serde")]
    pub sync_failing_after: Duration,
    /// At most this many messages an hour; more wait their turn (a flapping primary must not
    /// flood a phone).
    pub max_per_hour: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            url: None,
            format: NotifyFormat::Generic,
            name: None,
            status_url: None,
            ca_file: None,
            sync_failing_after: Duration::from_secs(2 * 3600),
            max_per_hour: 12,
        }
    }
}

impl NotifyConfig {
    pub(super) fn resolve_relative_paths(&mut self, base: &Path) {
        if let Some(ca) = &mut self.ca_file {
            if ca.is_relative() {
                *ca = base.join(&*ca);
            }
        }
    }

    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        if let Some(url) = &self.url {
            if let Err(problem) = check_https_url(url) {
                // The URL may hold a key: the error shows its scheme and host only.
                let shown = url.split('/').take(3).collect::<Vec<_>>().join("/");
                return Err(key_error(
                    file,
                    "notify.url",
                    format!("`{shown}…`: {problem}"),
                    "write the receiver's https URL, such as \"https://ntfy.sh/my-pi-topic\"",
                ));
            }
            if self.format == NotifyFormat::Ntfy && topic_of(url).is_none() {
                return Err(key_error(
                    file,
                    "notify.url",
                    "an ntfy URL ends with the topic".into(),
                    "write the topic's URL, such as \"https://ntfy.sh/my-pi-topic\"",
                ));
            }
        }
        if let Some(name) = &self.name {
            if name.trim().is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
                return Err(key_error(
                    file,
                    "notify.name",
                    format!("{name:?} is empty, longer than 64 bytes or holds control characters"),
                    "write a short name such as \"pi in Frankfurt\", or remove the key to use the host name",
                ));
            }
        }
        if let Some(url) = &self.status_url {
            let ok = url
                .parse::<http::Uri>()
                .ok()
                .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
                .is_some_and(|u| u.host().is_some());
            if !ok {
                return Err(key_error(
                    file,
                    "notify.status_url",
                    format!("`{url}` is not an http(s) URL"),
                    "write the status page's URL as you open it, such as \"http://192.168.1.50:8081/\"",
                ));
            }
        }
        if self.sync_failing_after < Duration::from_secs(60) {
            return Err(key_error(
                file,
                "notify.sync_failing_after",
                format!(
                    "{:?} would send a message for a single retry",
                    self.sync_failing_after
                ),
                "write at least \"1m\"; the default is \"2h\"",
            ));
        }
        if !(1..=600).contains(&self.max_per_hour) {
            return Err(key_error(
                file,
                "notify.max_per_hour",
                format!("{} is outside 1..=600", self.max_per_hour),
                "write a number from 1 to 600; the default is 12",
            ));
        }
        Ok(())
    }

    /// The files the section names are there.
    pub(super) fn check_files(&self, file: &Path) -> Result<(), ConfigError> {
        pem_file_is_there(file, "notify.ca_file", self.ca_file.as_deref())
    }
}

/// An ntfy URL's topic: its last path segment.
pub fn topic_of(url: &str) -> Option<&str> {
    let path = url.split_once("://")?.1.split_once('/')?.1;
    let topic = path.trim_end_matches('/').rsplit('/').next()?;
    (!topic.is_empty() && !topic.contains(['?', '#'])).then_some(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ntfy_url_names_its_topic_last() {
        assert_eq!(topic_of("https://ntfy.sh/my-pi"), Some("my-pi"));
        assert_eq!(topic_of("https://n.example/base/pi/"), Some("pi"));
        assert_eq!(topic_of("https://ntfy.sh/"), None);
        assert_eq!(topic_of("https://ntfy.sh"), None);
    }

    #[test]
    fn a_wrong_key_is_named_and_the_url_never_shown_whole() {
        let file = Path::new("/boot/pi-failover.toml");
        let bad = NotifyConfig {
            url: Some("http://hooks.slack.com/services/T000/B000/SECRET".into()),
            ..NotifyConfig::default()
        };
        let e = bad.validate(file).expect_err("plain http").to_string();
        assert!(e.contains("notify.url"), "{e}");
        assert!(!e.contains("SECRET"), "{e}");
        let slow = NotifyConfig {
            max_per_hour: 0,
            ..NotifyConfig::default()
        };
        let e = slow.validate(file).expect_err("zero").to_string();
        assert!(e.contains("notify.max_per_hour"), "{e}");
    }
}
