//! The appliance's configuration: one TOML file, usually on the SD card's FAT partition.
//!
//! The serde types *are* the schema: every key has exactly one declaration, its default
//! sits next to it (a section's `Default`, or for a section with required keys a `default_*`
//! beside the field), and unknown keys are rejected so a typo never silently falls back to a
//! default. `examples/pi-failover.toml` documents every key for users.
//!
//! One file per section, each with its types, defaults and `validate`: `site` (`[site]`,
//! `[listen]`), `tls`, `limits`, `sync` (`[s3]`, `[storage]`), `live` (`[live]`, `[primary]`,
//! `[status]`), `indicators` (`[led]`, `[oled]`), `clock`, `notify`, `log`, `update`. This file holds
//! the whole (`Config`), the checks across sections, parsing and the errors.
//!
//! A leaf: nothing here imports the rest of the crate (`tests/it/layers.rs`). Checks that
//! need a subsystem's own rules, and the settings subsystems are built with, are
//! `crate::settings`.
//!
//! Errors are for someone editing a file on a laptop before shipping the Pi: each one names
//! the file, the key and what to write instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod clock;
mod indicators;
mod limits;
mod live;
mod log;
mod notify;
mod site;
mod sync;
mod tls;
mod update;
pub use clock::{check_https_url, ClockConfig};
pub use indicators::{
    LedBackend, LedConfig, OffHours, OffHoursError, OledBackend, OledConfig, PanelSize,
};
pub use limits::LimitsConfig;
use live::validate_live;
pub use live::{LiveConfig, PrimaryConfig, StatusConfig};
pub use log::{log_filter, LogConfig};
pub use notify::{topic_of, NotifyConfig, NotifyFormat};
pub use site::{HstsConfig, Listen, ListenConfig, SiteConfig};
use sync::validate_s3;
pub use sync::{S3Config, StorageConfig};
pub use tls::{CertificateConfig, CertificateSource, CipherPreference, TlsConfig};
use update::validate_update;
pub use update::UpdateConfig;

/// Where `pi-failover run` looks when `--config` is not given: the FAT boot partition,
/// which the user edits from any computer before shipping the Pi.
pub const DEFAULT_CONFIG_PATH: &str = "/boot/pi-failover.toml";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub site: SiteConfig,
    #[serde(default)]
    pub listen: ListenConfig,
    pub tls: TlsConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    /// Where the site comes from. Without it, `site.root` is served as it is.
    pub s3: Option<S3Config>,
    /// How the appliance decides whether it is serving readers.
    #[serde(default)]
    pub live: LiveConfig,
    /// The primary's health URL, polled as the DNS health checker does. Optional.
    pub primary: Option<PrimaryConfig>,
    /// The local status page.
    #[serde(default)]
    pub status: StatusConfig,
    /// The status LED.
    #[serde(default)]
    pub led: LedConfig,
    /// The status OLED.
    #[serde(default)]
    pub oled: OledConfig,
    /// Where the time comes from (NTP, and an HTTPS `Date` when NTP is blocked).
    #[serde(default)]
    pub clock: ClockConfig,
    /// Messages to the owner when the Pi takes over, gives back or needs a look.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// Signed updates from the bucket; absent: the Pi never looks for one.
    pub update: Option<UpdateConfig>,
}

/// A configuration problem, phrased for the person editing the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read it: {source}. Fix: check the path, or pass --config PATH")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {problem}. Fix: {fix}")]
    Syntax {
        file: PathBuf,
        problem: String,
        fix: String,
    },
    #[error("{file}: key `{key}`: {problem}. Fix: {fix}")]
    Key {
        file: PathBuf,
        key: String,
        problem: String,
        fix: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// Reads a config file: its text, for [`parse`].
pub fn read(file: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_owned(),
        source,
    })
}

/// Parses TOML text; `file` is only used to name the source in errors. Relative paths in the
/// config are taken relative to the file's directory, so a config on the boot partition can
/// say `cert = "fullchain.pem"`.
pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax {
        file: file.to_owned(),
        problem: format!("not valid TOML: {}", e.message()),
        fix: format!(
            "correct the syntax near {}; see examples/pi-failover.toml",
            line_col(text, e.span())
        ),
    })?;
    let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let problem = inner.message().to_owned();
        let fix = fix_for(&key, &problem);
        if key.is_empty() || key == "." {
            ConfigError::Syntax {
                file: file.to_owned(),
                problem,
                fix,
            }
        } else {
            ConfigError::Key {
                file: file.to_owned(),
                key,
                problem,
                fix,
            }
        }
    })?;
    if let Some(dir) = file.parent() {
        config.resolve_relative_paths(dir);
    }
    Ok(config)
}

fn line_col(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return "the reported place".into();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("line {line}, column {col}")
}

/// A hint for serde's own errors (wrong type, unknown or missing key).
fn fix_for(key: &str, problem: &str) -> String {
    if problem.starts_with("unknown field") {
        return "remove the key or correct its spelling (the message lists the keys allowed here)"
            .into();
    }
    if problem.starts_with("missing field") {
        return "add the key; examples/pi-failover.toml shows every key with its meaning".into();
    }
    if key.ends_with("timeout")
        || key.ends_with("interval")
        || key.ends_with("grace")
        || key.ends_with("max_age")
    {
        return "write a duration in quotes, such as \"10s\", \"2m\" or \"365d\"".into();
    }
    "give a value of the type shown in examples/pi-failover.toml".into()
}

impl Config {
    fn resolve_relative_paths(&mut self, base: &Path) {
        let absolutize = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if let Some(root) = &mut self.site.root {
            absolutize(root);
        }
        absolutize(&mut self.storage.data_dir);
        self.clock.resolve_relative_paths(base);
        self.notify.resolve_relative_paths(base);
        if let Some(file) = self.s3.as_mut().and_then(|s3| s3.credentials_file.as_mut()) {
            absolutize(file);
        }
        for cert in &mut self.tls.certificates {
            for path in [&mut cert.cert, &mut cert.key, &mut cert.directory_ca]
                .into_iter()
                .flatten()
            {
                absolutize(path);
            }
        }
    }

    /// Checks that the files and directories the config names are there. Separate from
    /// [`Config::validate`] so the schema can be checked on a machine without them.
    pub fn check_files(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: String, problem: String, fix: &str| key_error(file, &key, problem, fix);
        if let Some(root) = &self.site.root {
            if !root.is_dir() {
                return Err(err(
                    "site.root".into(),
                    format!("`{}` is not a directory", root.display()),
                    "point it at the directory holding the built site (the one with index.html)",
                ));
            }
        }
        if let Some(file) = self.s3.as_ref().and_then(|s3| s3.credentials_file.as_ref()) {
            if !file.is_file() {
                return Err(err(
                    "s3.credentials_file".into(),
                    format!("`{}` is not a readable file", file.display()),
                    "copy the AWS credentials file next to the config, or correct the path",
                ));
            }
        }
        for (i, cert) in self.tls.certificates.iter().enumerate() {
            for (what, path) in [
                ("cert", &cert.cert),
                ("key", &cert.key),
                ("directory_ca", &cert.directory_ca),
            ] {
                let key = format!("tls.certificates[{i}].{what}");
                pem_file_is_there(file, &key, path.as_deref())?;
            }
        }
        self.clock.check_files(file)?;
        self.notify.check_files(file)
    }

    /// Checks what the types cannot: values that parse but cannot work.
    pub fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);

        match (&self.site.root, &self.s3) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "site.root",
                    "both site.root and [s3] are set".into(),
                    "remove site.root: with [s3] the site is synced into storage.data_dir",
                ))
            }
            (None, None) => {
                return Err(err(
                    "site.root",
                    "there is no site: neither site.root nor [s3] is set".into(),
                    "add an [s3] section with the bucket, or set site.root to a directory",
                ))
            }
            _ => {}
        }
        if let Some(root) = &self.site.root {
            // The appliance writes under data_dir (history, queued messages) whatever the
            // site's source: inside the served root, those files would be served, and written
            // while they are.
            let data = &self.storage.data_dir;
            if data.starts_with(root) {
                return Err(err(
                    "storage.data_dir",
                    "it is site.root or inside it: the appliance's own files would be served"
                        .into(),
                    "point storage.data_dir outside the site's directory (the Pi's /data is)",
                ));
            }
        }
        if let Some(s3) = &self.s3 {
            validate_s3(s3, file)?;
        }
        if let Some(update) = &self.update {
            validate_update(update, self.s3.as_ref(), file)?;
        }
        self.clock.validate(file)?;
        self.notify.validate(file)?;
        self.site.validate(file)?;
        validate_live(self, file)?;
        indicators::validate(&self.led, &self.oled, file)?;
        self.tls.validate(file)?;
        self.listen.validate(file)?;
        self.limits.validate(file)?;
        self.log.validate(file)?;
        Ok(())
    }

    /// What works but may surprise, for `check-config` to print: combinations of settings
    /// whose consequence is not obvious from each alone.
    pub fn advisories(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(s3) = &self.s3 {
            if let Some(secs) = s3.max_total_bytes.checked_div(s3.bandwidth_limit) {
                let full = Duration::from_secs(secs);
                if full > s3.interval {
                    notes.push(format!(
                        "s3.bandwidth_limit = {} B/s: a first sync of a site as large as s3.max_total_bytes ({} bytes) takes {}, longer than s3.interval; the Pi serves its last good generation meanwhile, and each download stays alive as long as bytes arrive (s3.stall_timeout)",
                        s3.bandwidth_limit,
                        s3.max_total_bytes,
                        humantime::format_duration(full)
                    ));
                }
            }
        }
        notes
    }

    /// The effective configuration as TOML, for `check-config`, whose output gets pasted into
    /// bug reports: the status token and the notify URL's path are replaced, and the schema
    /// holds no other secret (S3
    /// credentials stay in their own file and only its path is printed, as for the TLS key).
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        if shown.status.token.is_some() {
            shown.status.token = Some("<redacted>".into());
        }
        for cert in &mut shown.tls.certificates {
            if cert.eab_hmac_key.is_some() {
                cert.eab_hmac_key = Some("<redacted>".into());
            }
        }
        // Slack and Discord webhook URLs carry their key in the path: the host only.
        if let Some(url) = &mut shown.notify.url {
            let host: String = url.split('/').take(3).collect::<Vec<_>>().join("/");
            *url = format!("{host}/<redacted>");
        }
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot print: {e}\n"))
    }
}

/// `path`, when the config names one at `key`, is a file (a PEM next to the config).
fn pem_file_is_there(file: &Path, key: &str, path: Option<&Path>) -> Result<(), ConfigError> {
    match path {
        Some(p) if !p.is_file() => Err(key_error(
            file,
            key,
            format!("`{}` is not a readable file", p.display()),
            "copy the PEM file next to the config, or correct the path",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn key_error(file: &Path, key: &str, problem: String, fix: &str) -> ConfigError {
    ConfigError::Key {
        file: file.to_owned(),
        key: key.to_owned(),
        problem,
        fix: fix.to_owned(),
    }
}

pub(crate) fn is_valid_hostname(name: &str) -> bool {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/boot/pi-failover.toml"))
    }

    /// The smallest valid config, for the tests of this crate (`settings` too).
    pub(crate) const MINIMAL: &str = r#"
        [site]
        root = "/srv/site"
        hostnames = ["example.com"]
        [[tls.certificates]]
        cert = "fullchain.pem"
        key = "privkey.pem"
    "#;

    /// The appliance writes under data_dir in every mode: a data_dir in the served root would
    /// publish its history and write files readers are being served.
    #[test]
    fn a_data_dir_inside_the_served_root_is_refused() {
        for data_dir in ["/srv/site", "/srv/site/data"] {
            let text = format!("{MINIMAL}\n[storage]\ndata_dir = \"{data_dir}\"\n");
            let c = parse_str(&text).expect("parses");
            let e = c
                .validate(Path::new("/boot/pi-failover.toml"))
                .expect_err(data_dir)
                .to_string();
            assert!(e.contains("storage.data_dir"), "{e}");
        }
        let beside = format!("{MINIMAL}\n[storage]\ndata_dir = \"/srv/data\"\n");
        let c = parse_str(&beside).expect("parses");
        c.validate(Path::new("/boot/pi-failover.toml"))
            .expect("beside the root is fine");
    }

    #[test]
    fn the_printed_config_never_shows_the_notify_urls_key() {
        let text = format!(
            "{MINIMAL}\n[notify]\nurl = \"https://hooks.slack.com/services/T0/B0/KEY-0123\"\nformat = \"slack\"\n"
        );
        let c = parse_str(&text).expect("parses");
        c.validate(Path::new("/boot/pi-failover.toml"))
            .expect("valid");
        let shown = c.to_toml();
        assert!(!shown.contains("KEY-0123"), "{shown}");
        assert!(
            shown.contains("https://hooks.slack.com/<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn the_printed_config_never_shows_the_status_token() {
        let text = format!("{MINIMAL}\n[status]\ntoken = \"0123456789abcdef-secret\"\n");
        let c = parse_str(&text).expect("parses");
        assert_eq!(c.status.token.as_deref(), Some("0123456789abcdef-secret"));
        let shown = c.to_toml();
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn the_printed_config_never_shows_the_acme_account_binding_key() {
        let text = r#"
            [site]
            root = "/srv/site"
            hostnames = ["example.com"]
            [[tls.certificates]]
            source = "acme"
            hosted_zone_id = "Z1"
            eab_kid = "kid-1"
            eab_hmac_key = "c2VjcmV0LWhtYWMta2V5"
        "#;
        let c = parse_str(text).expect("parses");
        let shown = c.to_toml();
        assert!(!shown.contains("c2VjcmV0LWhtYWMta2V5"), "{shown}");
        assert!(
            shown.contains("kid-1") && shown.contains("<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn a_short_status_token_is_refused_with_the_fix() {
        let text = format!("{MINIMAL}\n[status]\ntoken = \"short\"\n");
        let c = parse_str(&text).expect("parses");
        let e = c
            .validate(Path::new("pi-failover.toml"))
            .expect_err("too short");
        let message = e.to_string();
        assert!(
            message.contains("status.token") && message.contains("openssl rand"),
            "{message}"
        );
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = parse_str(MINIMAL).expect("minimal config parses");
        assert_eq!(c.site.powered_by, "raspberry-pi");
        assert_eq!(c.site.health_path, "/up.txt");
        // Dual-stack: IPv6 readers too (the guide has the owner publish AAAA records).
        assert_eq!(c.listen.https, "[::]:443".parse().expect("address"));
        assert_eq!(
            c.listen.http.addr(),
            Some("[::]:80".parse().expect("address"))
        );
        assert_eq!(
            c.status.listen.addr(),
            Some("[::]:8080".parse().expect("address"))
        );
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(15));
    }

    #[test]
    fn relative_paths_are_relative_to_the_config_file() {
        let c = parse_str(MINIMAL).expect("parses");
        assert_eq!(
            c.tls.certificates[0].cert.as_deref(),
            Some(Path::new("/boot/fullchain.pem"))
        );
        assert_eq!(c.site.root.as_deref(), Some(Path::new("/srv/site")));
    }

    #[test]
    fn unknown_key_is_named_with_its_section() {
        let text = MINIMAL.replace("[site]", "[site]\nrooot = \"x\"");
        let e = parse_str(&text).expect_err("typo must be rejected");
        assert_eq!(e.key(), Some("site.rooot"));
        let msg = e.to_string();
        assert!(msg.contains("/boot/pi-failover.toml"), "{msg}");
        assert!(msg.contains("Fix:"), "{msg}");
    }

    #[test]
    fn wrong_type_names_the_key_and_the_fix() {
        let text = format!("{MINIMAL}\n[limits]\nidle_timeout = 60\n");
        let e = parse_str(&text).expect_err("number is not a duration");
        assert_eq!(e.key(), Some("limits.idle_timeout"));
        assert!(e.to_string().contains("\"10s\""), "{e}");
    }

    #[test]
    fn a_log_level_is_a_level_or_a_list_of_target_levels() {
        for good in [
            "info",
            "warn,pi_failover=debug",
            "off",
            "pi_failover::sync=trace",
        ] {
            assert!(log_filter(good).is_ok(), "{good}");
        }
        // tracing alone would read "inof" as a target and log nothing else at all.
        for bad in ["inof", "info,hyper", "pi_failover=loud", ""] {
            let text = format!("{MINIMAL}\n[log]\nlevel = \"{bad}\"\n");
            let e = parse_str(&text)
                .and_then(|c| c.validate(Path::new("/boot/pi-failover.toml")))
                .expect_err(bad);
            assert_eq!(e.key(), Some("log.level"), "{bad}");
            assert!(e.to_string().contains("info,pi_failover=debug"), "{e}");
        }
    }

    #[test]
    fn http_listener_can_be_switched_off() {
        let text = format!("{MINIMAL}\n[listen]\nhttp = \"off\"\n");
        assert_eq!(parse_str(&text).expect("parses").listen.http, Listen::Off);
        let bad = format!("{MINIMAL}\n[listen]\nhttp = \"port 80\"\n");
        let e = parse_str(&bad).expect_err("not an address");
        assert_eq!(e.key(), Some("listen.http"));
    }

    #[test]
    fn broken_toml_points_at_the_line() {
        let e = parse_str("[site\nroot = 1").expect_err("syntax error");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn hostnames_are_bare_names() {
        assert!(is_valid_hostname("example.com"));
        assert!(is_valid_hostname("127.0.0.1"));
        assert!(is_valid_hostname("localhost"));
        assert!(!is_valid_hostname("https://example.com"));
        assert!(!is_valid_hostname("example.com:443"));
        assert!(!is_valid_hostname("-bad.example"));
    }

    #[test]
    fn the_aws_credential_provider_never_logs_the_key_id_by_default() {
        use tracing::Level;
        let creds = "aws_config::profile::credentials";
        for spec in ["info", "debug", "warn,pi_failover=debug"] {
            let filter = log_filter(spec).expect("filter");
            assert!(!filter.would_enable(creds, &Level::INFO), "{spec}");
            assert!(
                filter.would_enable("pi_failover::sync", &Level::WARN),
                "{spec}"
            );
        }
        let quiet = log_filter("error").expect("filter");
        assert!(
            !quiet.would_enable(creds, &Level::WARN),
            "never louder than asked"
        );
        let asked = log_filter("info,aws_config=debug").expect("filter");
        assert!(asked.would_enable(creds, &Level::INFO), "named: obeyed");
    }
}
