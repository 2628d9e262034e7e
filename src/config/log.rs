//! `[log]`: the log filter.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{key_error, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter: `error`, `warn`, `info`, `debug`, or per module
    /// (`pi_failover=debug,hyper=info`). `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

/// `log.level` (or `RUST_LOG`) as a filter: comma-separated `level` or `target=level`.
/// Stricter than tracing's own parser, which takes a bare word as a target at TRACE: a
/// misspelt level ("inof") would then switch off every other log line without a word.
pub fn log_filter(spec: &str) -> Result<tracing_subscriber::filter::Targets, String> {
    use tracing_subscriber::filter::LevelFilter;
    for directive in spec.split(',').map(str::trim) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        // tracing takes an empty level for ERROR; here it is a slip of the keyboard.
        if level.is_empty() || level.parse::<LevelFilter>().is_err() {
            return Err(format!(
                "`{directive}` does not end in a level (off, error, warn, info, debug, trace)"
            ));
        }
    }
    let targets: tracing_subscriber::filter::Targets = spec.parse().map_err(|e| format!("{e}"))?;
    // The AWS credential provider logs the access key id at INFO ("loaded base credentials
    // creds=…"): a secret-adjacent identifier in every log, on an SD card, in support mails.
    // It stays at WARN unless the spec names it.
    if spec.contains("aws_config") {
        return Ok(targets);
    }
    let cap = targets
        .default_level()
        .unwrap_or(LevelFilter::OFF)
        .min(LevelFilter::WARN);
    Ok(targets.with_target("aws_config", cap))
}

impl LogConfig {
    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
        if let Err(why) = log_filter(&self.level) {
            return Err(err(
                "log.level",
                format!("`{}` is not a log filter: {why}", self.level),
                "use error, warn, info or debug, or a list such as \"info,pi_failover=debug\"",
            ));
        }
        Ok(())
    }
}
