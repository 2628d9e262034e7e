//! `[site]` and `[listen]`: what is served, under which names and headers, and where.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{is_valid_hostname, key_error, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Directory holding the built site (a Jekyll `_site/`), when the site is not synced
    /// from S3. With `[s3]` the site lives in generations under `storage.data_dir`.
    pub root: Option<PathBuf>,
    /// The names readers use for the site. The first one is used in redirects when a request
    /// carries no usable Host.
    pub hostnames: Vec<String>,
    /// Hosts other than `hostnames` that an object's website-redirect metadata may send
    /// readers to (`https://shop.example.com/…`). Any other host is ignored with a warning
    /// in the sync report: the bucket's writer is trusted with the site, not with where its
    /// readers go.
    #[serde(default)]
    pub redirect_hosts: Vec<String>,
    /// Value of the `X-Powered-By` header on every response.
    #[serde(default = "default_powered_by")]
    pub powered_by: String,
    /// The path DNS health checkers fetch; always answered, over HTTPS and plain HTTP.
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// Serve files and directories whose name starts with a dot (`.git/`, `.env`).
    #[serde(default)]
    pub serve_dotfiles: bool,
    #[serde(default)]
    pub hsts: HstsConfig,
    /// Extra headers added to every response, e.g. `Referrer-Policy`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HstsConfig {
    /// `0s` turns the header off.
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    pub include_subdomains: bool,
    pub preload: bool,
}

impl Default for HstsConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(365 * 24 * 3600),
            include_subdomains: false,
            preload: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenConfig {
    pub https: SocketAddr,
    /// Plain HTTP: the health path plus a redirect to HTTPS. `"off"` disables it.
    pub http: Listen,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            // `[::]`: IPv6 and IPv4 readers on one dual-stack socket (src/listener/).
            https: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 443)),
            http: Listen::On(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80))),
        }
    }
}

/// A listener that can be switched off with the string `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    On(SocketAddr),
}

impl Listen {
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(addr) => Some(addr),
        }
    }
}

impl Serialize for Listen {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        text.parse().map(Listen::On).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not an address:port such as \"0.0.0.0:80\" or \"[::]:80\", nor \"off\""
            ))
        })
    }
}

fn default_powered_by() -> String {
    "raspberry-pi".into()
}
fn default_health_path() -> String {
    "/up.txt".into()
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::On(addr) => write!(f, "{addr}"),
        }
    }
}

impl SiteConfig {
    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
        if self.hostnames.is_empty() {
            return Err(err(
                "site.hostnames",
                "the list is empty".into(),
                "list the names readers use, e.g. [\"example.com\", \"www.example.com\"]",
            ));
        }
        for name in &self.hostnames {
            if !is_valid_hostname(name) {
                return Err(err(
                    "site.hostnames",
                    format!("`{name}` is not a host name"),
                    "write bare names such as \"example.com\": no scheme, port or path",
                ));
            }
        }
        for name in &self.redirect_hosts {
            if !is_valid_hostname(name) {
                return Err(err(
                    "site.redirect_hosts",
                    format!("`{name}` is not a host name"),
                    "write bare names such as \"shop.example.com\": no scheme, port or path",
                ));
            }
        }
        if http::HeaderValue::from_str(&self.powered_by).is_err() {
            return Err(err(
                "site.powered_by",
                "the value cannot be sent in an HTTP header".into(),
                "use printable ASCII, e.g. \"raspberry-pi\"",
            ));
        }
        for (name, value) in &self.headers {
            let key = format!("site.headers.{name}");
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                err(
                    &key,
                    format!("`{name}` is not a header name"),
                    "use letters, digits and dashes, e.g. \"Referrer-Policy\"",
                )
            })?;
            if http::HeaderValue::from_str(value).is_err() {
                return Err(err(
                    &key,
                    "the value cannot be sent in an HTTP header".into(),
                    "use printable ASCII without line breaks",
                ));
            }
        }
        Ok(())
    }
}

impl ListenConfig {
    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
        if let Listen::On(http) = self.http {
            if http == self.https && http.port() != 0 {
                return Err(err(
                    "listen.http",
                    "it is the same address as listen.https".into(),
                    "use another port (80 is usual), or \"off\"",
                ));
            }
        }
        Ok(())
    }
}
