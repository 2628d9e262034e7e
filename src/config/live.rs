//! `[live]`, `[primary]` and `[status]`: how the Pi decides it is serving readers
//! (`src/live/`), the primary it watches, and who may read its status page.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{is_valid_hostname, key_error, Config, ConfigError, Listen};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    /// Distinct reader addresses within the last minute that make the Pi LIVE.
    pub readers: u32,
    /// How long a new mode must hold before the Pi switches to it (ERROR switches at once).
    #[serde(with = "humantime_serde")]
    pub debounce: Duration,
    /// User-Agent substrings of health checkers besides the built-in ones (Route 53,
    /// Cloudflare, UptimeRobot, Pingdom), e.g. your own monitoring.
    pub health_checkers: Vec<String>,
    /// This Pi's public addresses. With them, the Pi resolves the site's first host name and
    /// says whether DNS points here.
    pub public_addresses: Vec<std::net::IpAddr>,
    #[serde(with = "humantime_serde")]
    pub dns_interval: Duration,
    /// Failed syncs in a row before the mode says ATTENTION.
    pub sync_failures: u32,
    /// A certificate expiring within this period means ATTENTION.
    #[serde(with = "humantime_serde")]
    pub certificate_warning: Duration,
    /// An unsynchronised clock means ATTENTION. For the Pi, which has no real-time clock;
    /// off for the demo, whose host's clock is its operating system's business.
    pub clock_check: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            readers: 3,
            debounce: Duration::from_secs(15),
            health_checkers: Vec::new(),
            public_addresses: Vec::new(),
            dns_interval: Duration::from_secs(60),
            sync_failures: 3,
            certificate_warning: Duration::from_secs(14 * 24 * 3600),
            clock_check: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrimaryConfig {
    /// `http://` or `https://` URL of the primary's health path, by IP address as Route 53
    /// checks it (the DNS name points at the Pi after failover).
    pub url: String,
    /// Host header (and TLS server name) sent with the probe.
    pub host: Option<String>,
    #[serde(default = "default_probe_interval", with = "humantime_serde")]
    pub interval: Duration,
    #[serde(default = "default_probe_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive results that change the verdict (Route 53's default is 3).
    #[serde(default = "default_probe_threshold")]
    pub threshold: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// The status page's own plain-HTTP listener; `"off"` disables it.
    pub listen: Listen,
    /// Networks allowed without the token. Default: loopback and private ranges.
    pub allow: Vec<ipnet::IpNet>,
    /// A bearer token that lets any address in (`Authorization: Bearer …` or `?token=…`).
    pub token: Option<String>,
    /// Names the page may be asked for by, besides IP addresses, `localhost` and the Pi's
    /// own host name (with `.local`). A request for any other `Host` needs the token, so a
    /// web page on the LAN cannot read the status through a name it rebinds to the Pi.
    pub hostnames: Vec<String>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            listen: Listen::On(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 8080))),
            allow: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "169.254.0.0/16",
                "fc00::/7",
                "fe80::/10",
            ]
            .iter()
            .filter_map(|net| net.parse().ok())
            .collect(),
            token: None,
            hostnames: Vec::new(),
        }
    }
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_probe_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_probe_threshold() -> u32 {
    3
}

pub(super) fn validate_live(config: &Config, file: &Path) -> Result<(), ConfigError> {
    let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
    if config.live.readers == 0 {
        return Err(err(
            "live.readers",
            "0 would make the Pi LIVE with no readers".into(),
            "use 1 or more; 3 distinct readers a minute is the default",
        ));
    }
    if let Some(primary) = &config.primary {
        let ok = primary.url.parse::<http::Uri>().ok().filter(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some()
        });
        if ok.is_none() {
            return Err(err(
                "primary.url",
                format!("`{}` is not an http:// or https:// URL", primary.url),
                "write the primary's health URL, e.g. \"https://203.0.113.10/up.txt\"",
            ));
        }
        if primary.threshold == 0 {
            return Err(err(
                "primary.threshold",
                "0 results cannot decide anything".into(),
                "use 1 or more; 3 is what Route 53 uses",
            ));
        }
        if primary.timeout.is_zero() || primary.timeout >= primary.interval {
            return Err(err(
                "primary.timeout",
                "the timeout must be above zero and shorter than primary.interval".into(),
                "e.g. timeout = \"5s\" with interval = \"30s\"",
            ));
        }
    }
    for name in &config.status.hostnames {
        if !is_valid_hostname(name) {
            return Err(err(
                "status.hostnames",
                format!("`{name}` is not a host name"),
                "write bare names such as \"pi.lan\": no scheme, port or path",
            ));
        }
    }
    if let Some(token) = &config.status.token {
        if token.len() < 16 || http::HeaderValue::from_str(token).is_err() {
            return Err(err(
                "status.token",
                "the token is shorter than 16 characters or not printable ASCII".into(),
                "use a long random string, e.g. the output of `openssl rand -hex 16`",
            ));
        }
    }
    Ok(())
}
