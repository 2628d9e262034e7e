//! The appliance's configuration: one TOML file, usually on the SD card's FAT partition.
//!
//! The serde types below *are* the schema: every key has exactly one declaration, its default
//! sits next to it, and unknown keys are rejected so a typo never silently falls back to a
//! default. `examples/pi-failover.toml` documents every key for users.
//!
//! Errors are for someone editing a file on a laptop before shipping the Pi: each one names
//! the file, the key and what to write instead.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod clock;
mod indicators;
mod notify;
pub use clock::{check_https_url, ClockConfig};
pub use indicators::{
    LedBackend, LedConfig, OffHours, OffHoursError, OledBackend, OledConfig, PanelSize,
};
pub use notify::{topic_of, NotifyConfig, NotifyFormat};

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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// Distinct reader addresses within the last minute that make the Pi LIVE.
    #[serde(default = "default_live_readers")]
    pub readers: u32,
    /// How long a new mode must hold before the Pi switches to it (ERROR switches at once).
    #[serde(default = "default_live_debounce", with = "humantime_serde")]
    pub debounce: Duration,
    /// User-Agent substrings of health checkers besides the built-in ones (Route 53,
    /// Cloudflare, UptimeRobot, Pingdom), e.g. your own monitoring.
    #[serde(default)]
    pub health_checkers: Vec<String>,
    /// This Pi's public addresses. With them, the Pi resolves the site's first host name and
    /// says whether DNS points here.
    #[serde(default)]
    pub public_addresses: Vec<std::net::IpAddr>,
    #[serde(default = "default_dns_interval", with = "humantime_serde")]
    pub dns_interval: Duration,
    /// Failed syncs in a row before the mode says ATTENTION.
    #[serde(default = "default_sync_failures")]
    pub sync_failures: u32,
    /// A certificate expiring within this period means ATTENTION.
    #[serde(default = "default_cert_warning", with = "humantime_serde")]
    pub certificate_warning: Duration,
    /// An unsynchronised clock means ATTENTION. For the Pi, which has no real-time clock;
    /// off for the demo, whose host's clock is its operating system's business.
    #[serde(default = "default_true")]
    pub clock_check: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        Self {
            readers: default_live_readers(),
            debounce: default_live_debounce(),
            health_checkers: Vec::new(),
            public_addresses: Vec::new(),
            dns_interval: default_dns_interval(),
            sync_failures: default_sync_failures(),
            certificate_warning: default_cert_warning(),
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
#[serde(deny_unknown_fields)]
pub struct StatusConfig {
    /// The status page's own plain-HTTP listener; `"off"` disables it.
    #[serde(default = "default_status_listen")]
    pub listen: Listen,
    /// Networks allowed without the token. Default: loopback and private ranges.
    #[serde(default = "default_status_allow")]
    pub allow: Vec<ipnet::IpNet>,
    /// A bearer token that lets any address in (`Authorization: Bearer …` or `?token=…`).
    #[serde(default)]
    pub token: Option<String>,
    /// Names the page may be asked for by, besides IP addresses, `localhost` and the Pi's
    /// own host name (with `.local`). A request for any other `Host` needs the token, so a
    /// web page on the LAN cannot read the status through a name it rebinds to the Pi.
    #[serde(default)]
    pub hostnames: Vec<String>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            listen: default_status_listen(),
            allow: default_status_allow(),
            token: None,
            hostnames: Vec::new(),
        }
    }
}

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
#[serde(deny_unknown_fields)]
pub struct HstsConfig {
    /// `0s` turns the header off.
    #[serde(default = "default_hsts_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

impl Default for HstsConfig {
    fn default() -> Self {
        Self {
            max_age: default_hsts_max_age(),
            include_subdomains: false,
            preload: false,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    #[serde(default = "default_https_listen")]
    pub https: SocketAddr,
    /// Plain HTTP: the health path plus a redirect to HTTPS. `"off"` disables it.
    #[serde(default = "default_http_listen")]
    pub http: Listen,
}

impl Default for ListenConfig {
    fn default() -> Self {
        Self {
            https: default_https_listen(),
            http: default_http_listen(),
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

/// Which cipher suite the server picks among those a client offers (`tls.cipher_preference`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CipherPreference {
    /// ChaCha20-Poly1305 first on a CPU without AES instructions (every Pi before the Pi 5,
    /// where AES-GCM in software costs several times as much); the client's order otherwise.
    #[default]
    Auto,
    /// The client's order, always.
    Client,
    /// ChaCha20-Poly1305 first, always.
    Chacha20,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// One or more certificate chains. A client's SNI picks the one whose names match; the
    /// first is used for clients without SNI or with an unknown name.
    pub certificates: Vec<CertificateConfig>,
    /// How often the certificate files are checked for changes (SIGHUP reloads at once).
    #[serde(default = "default_watch_interval", with = "humantime_serde")]
    pub watch_interval: Duration,
    /// Which cipher suite wins when a client offers several.
    #[serde(default)]
    pub cipher_preference: CipherPreference,
    /// A certificate source (`s3`) failing for longer than this puts the Pi in ATTENTION;
    /// it keeps serving the certificate it has meanwhile.
    #[serde(default = "default_source_failing_attention", with = "humantime_serde")]
    pub attention_after_failing: Duration,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// Where the certificate comes from: `files` (PEM files on the card, the default) or `s3`
    /// (fetched from a private prefix the primary's renewal hook uploads to).
    #[serde(default)]
    pub source: CertificateSource,
    /// `files`: the certificate followed by its intermediates (Let's Encrypt's fullchain.pem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// `files`: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC, PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// `s3`: the bucket holding `fullchain.pem` and `privkey.pem`; `s3.bucket` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// `s3`: the prefix they are under, e.g. "tls/example.com/"; never under `s3.prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// `acme`: the names the certificate is for; `site.hostnames` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// `acme`: "letsencrypt" (the default), "letsencrypt-staging", or a directory URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<String>,
    /// `acme`: PEM certificates trusted for the directory's HTTPS besides the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_ca: Option<PathBuf>,
    /// `acme`: an e-mail address for the CA's expiry and policy mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// `acme`: External Account Binding key ID, for CAs that require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab_kid: Option<String>,
    /// `acme`: External Account Binding HMAC key, base64url as the CA gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eab_hmac_key: Option<String>,
    /// `acme`: the Route 53 hosted zone holding the names' `_acme-challenge` records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_zone_id: Option<String>,
    /// `acme`: Route 53's API endpoint, when not AWS's (a test server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route53_endpoint: Option<String>,
}

impl CertificateConfig {
    /// A certificate from PEM files.
    pub fn files(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            cert: Some(cert),
            key: Some(key),
            ..Self::default()
        }
    }
}

/// `tls.certificates[].source`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificateSource {
    #[default]
    Files,
    S3,
    Acme,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Connections beyond this wait in the kernel's accept queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client address (an IPv6 client by its /64) may hold at once; its
    /// further connections are closed at once, so one host cannot take every slot.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// TLS handshakes in progress at once, counted apart from established connections so
    /// clients that connect and say nothing cannot take the slots of those being served;
    /// more wait in the kernel's accept queue.
    #[serde(default = "default_max_handshakes")]
    pub max_handshakes: usize,
    /// Connections kept for when `max_connections` are all taken: each answers one request
    /// with short timeouts and closes, so the DNS health check and readers' first page still
    /// get through while the site is saturated.
    #[serde(default = "default_reserved_connections")]
    pub reserved_connections: usize,
    /// Descriptors kept open for the files being served, shared by all responses (a response
    /// waiting for its client holds none).
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
    /// Response bytes one connection may have read from files and not yet handed to TLS,
    /// across all its streams: memory per connection, whatever windows a client announces.
    #[serde(default = "default_max_buffered_bytes_per_connection")]
    pub max_buffered_bytes_per_connection: usize,
    #[serde(default = "default_handshake_timeout", with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// Time allowed for a request's headers to arrive. For HTTP/1.1, hyper also runs this
    /// timer while a kept-alive connection waits for its next request, so it is the
    /// effective keep-alive time there.
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request and no response byte moving on for this long is closed.
    /// Control traffic (HTTP/2 PING, SETTINGS, WINDOW_UPDATE) does not count.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A response that moves no byte for this long (its client reads nothing, or keeps the
    /// HTTP/2 window shut) closes its connection, even while other streams on it move.
    #[serde(default = "default_send_timeout", with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Largest request head (request line plus headers) accepted.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    #[serde(default = "default_h2_streams")]
    pub h2_max_concurrent_streams: u32,
    /// On SIGTERM, how long in-flight requests may take to finish.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_connections_per_address(),
            max_handshakes: default_max_handshakes(),
            reserved_connections: default_reserved_connections(),
            max_open_files: default_max_open_files(),
            max_buffered_bytes_per_connection: default_max_buffered_bytes_per_connection(),
            tls_handshake_timeout: default_handshake_timeout(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            send_timeout: default_send_timeout(),
            max_header_bytes: default_max_header_bytes(),
            h2_max_concurrent_streams: default_h2_streams(),
            shutdown_grace: default_shutdown_grace(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The writable data partition: site generations live in `<data_dir>/site/`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// Only keys under this prefix are synced; the prefix is not part of the local path.
    #[serde(default)]
    pub prefix: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// For S3-compatible stores (MinIO, Garage, R2, B2, ...): e.g. "https://minio.lan:9000".
    pub endpoint: Option<String>,
    /// Address buckets as `endpoint/bucket` instead of `bucket.endpoint`.
    #[serde(default)]
    pub path_style: bool,
    /// An AWS shared-credentials file (`[default]` with `aws_access_key_id` and
    /// `aws_secret_access_key`). Without it: the environment, then the SDK's default chain.
    pub credentials_file: Option<PathBuf>,
    /// The profile to use in `credentials_file`.
    #[serde(default = "default_profile")]
    pub profile: String,
    #[serde(default = "default_sync_interval", with = "humantime_serde")]
    pub interval: Duration,
    /// A random delay up to this much is added to each interval, so several Pis do not
    /// hit the bucket in step.
    #[serde(default = "default_sync_jitter", with = "humantime_serde")]
    pub jitter: Duration,
    /// Downloads in flight at once.
    #[serde(default = "default_sync_concurrency")]
    pub concurrency: usize,
    /// Download bandwidth limit in bytes per second; 0 means no limit.
    #[serde(default)]
    pub bandwidth_limit: u64,
    /// Time allowed for a request's answer to start (a LIST page, or a GET's headers)
    /// before it is retried.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// A download that receives no byte for this long is retried. It times the network
    /// only, not the bandwidth limiter: a large object on a thin uplink is not a stall.
    #[serde(default = "default_stall_timeout", with = "humantime_serde")]
    pub stall_timeout: Duration,
    #[serde(default = "default_max_objects")]
    pub max_objects: usize,
    #[serde(default = "default_max_total_bytes")]
    pub max_total_bytes: u64,
    /// A sync that would leave less free space than this on the data partition is refused.
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// Largest share of the site one sync may delete (0.0 to 1.0).
    #[serde(default = "default_max_delete_fraction")]
    pub max_delete_fraction: f64,
    /// Accept an empty listing (and so an empty site).
    #[serde(default)]
    pub allow_empty: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter: `error`, `warn`, `info`, `debug`, or per module
    /// (`pi_failover=debug,hyper=info`). `RUST_LOG` overrides it.
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: default_log_level(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_live_readers() -> u32 {
    3
}
fn default_live_debounce() -> Duration {
    Duration::from_secs(15)
}
fn default_dns_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_sync_failures() -> u32 {
    3
}
fn default_cert_warning() -> Duration {
    Duration::from_secs(14 * 24 * 3600)
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
fn default_status_listen() -> Listen {
    Listen::On(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 8080)))
}
fn default_status_allow() -> Vec<ipnet::IpNet> {
    [
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
    .collect()
}
fn default_powered_by() -> String {
    "raspberry-pi".into()
}
fn default_health_path() -> String {
    "/up.txt".into()
}
fn default_hsts_max_age() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}
// `[::]`: IPv6 and IPv4 readers on one dual-stack socket (src/listener/).
fn default_https_listen() -> SocketAddr {
    SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 443))
}
fn default_http_listen() -> Listen {
    Listen::On(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 80)))
}
fn default_source_failing_attention() -> Duration {
    Duration::from_secs(2 * 86_400)
}

fn default_watch_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_max_connections() -> usize {
    1024
}
fn default_max_connections_per_address() -> usize {
    // A browser opens one HTTP/2 connection or up to 6 HTTP/1.1 ones; room for an office
    // behind one NAT address, far from the 1,024 of the whole Pi.
    32
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_send_timeout() -> Duration {
    // nginx's send_timeout.
    Duration::from_secs(60)
}
fn default_max_handshakes() -> usize {
    // A handshake costs the Pi ~2 ms of CPU: 64 at once is more than it completes in the
    // handshake timeout's tenth, and few enough that silent clients cost little.
    64
}
fn default_reserved_connections() -> usize {
    16
}
fn default_max_open_files() -> usize {
    256
}
fn default_max_buffered_bytes_per_connection() -> usize {
    // Four 16 KB chunks: enough to keep a fast reader's pipe full (measured, docs/benchmarks.md).
    64 * 1024
}
fn default_max_header_bytes() -> usize {
    16 * 1024
}
fn default_h2_streams() -> u32 {
    64
}
fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/data")
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_profile() -> String {
    "default".into()
}
fn default_sync_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_sync_jitter() -> Duration {
    Duration::from_secs(30)
}
fn default_sync_concurrency() -> usize {
    4
}
fn default_stall_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_max_objects() -> usize {
    100_000
}
fn default_max_total_bytes() -> u64 {
    2_000_000_000
}
fn default_min_free_bytes() -> u64 {
    100_000_000
}
fn default_max_delete_fraction() -> f64 {
    0.5
}
fn default_log_level() -> String {
    "info".into()
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
        self.clock.validate(file)?;
        self.notify.validate(file)?;
        if self.site.hostnames.is_empty() {
            return Err(err(
                "site.hostnames",
                "the list is empty".into(),
                "list the names readers use, e.g. [\"example.com\", \"www.example.com\"]",
            ));
        }
        for name in &self.site.hostnames {
            if !is_valid_hostname(name) {
                return Err(err(
                    "site.hostnames",
                    format!("`{name}` is not a host name"),
                    "write bare names such as \"example.com\": no scheme, port or path",
                ));
            }
        }
        for name in &self.status.hostnames {
            if !is_valid_hostname(name) {
                return Err(err(
                    "status.hostnames",
                    format!("`{name}` is not a host name"),
                    "write bare names such as \"pi.lan\": no scheme, port or path",
                ));
            }
        }
        for name in &self.site.redirect_hosts {
            if !is_valid_hostname(name) {
                return Err(err(
                    "site.redirect_hosts",
                    format!("`{name}` is not a host name"),
                    "write bare names such as \"shop.example.com\": no scheme, port or path",
                ));
            }
        }
        if http::HeaderValue::from_str(&self.site.powered_by).is_err() {
            return Err(err(
                "site.powered_by",
                "the value cannot be sent in an HTTP header".into(),
                "use printable ASCII, e.g. \"raspberry-pi\"",
            ));
        }
        for (name, value) in &self.site.headers {
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
        validate_live(self, file)?;
        if self.tls.certificates.is_empty() {
            return Err(err(
                "tls.certificates",
                "no certificate is configured".into(),
                "add a [[tls.certificates]] table with `cert` and `key` paths, or `source = \"s3\"` and a `prefix`",
            ));
        }
        if self.tls.watch_interval < Duration::from_millis(50) {
            return Err(err(
                "tls.watch_interval",
                "shorter than 50ms".into(),
                "use a few seconds, e.g. \"10s\"",
            ));
        }
        if let Listen::On(http) = self.listen.http {
            if http == self.listen.https && http.port() != 0 {
                return Err(err(
                    "listen.http",
                    "it is the same address as listen.https".into(),
                    "use another port (80 is usual), or \"off\"",
                ));
            }
        }
        let l = &self.limits;
        if l.max_connections == 0 {
            return Err(err(
                "limits.max_connections",
                "0 would refuse every reader".into(),
                "use a positive number; 1024 suits a Pi",
            ));
        }
        if l.max_connections_per_address == 0 || l.max_connections_per_address > l.max_connections {
            return Err(err(
                "limits.max_connections_per_address",
                format!(
                    "{} per address with limits.max_connections = {}",
                    l.max_connections_per_address, l.max_connections
                ),
                "use 1 to limits.max_connections; 32 lets an office behind one address in and keeps one host from taking every slot",
            ));
        }
        for (key, value, fix) in [
            (
                "limits.max_handshakes",
                l.max_handshakes,
                "use a positive number; 64 is the default",
            ),
            (
                "limits.max_open_files",
                l.max_open_files,
                "use a positive number; 256 is the default",
            ),
        ] {
            if value == 0 {
                return Err(err(key, "0 would refuse every reader".into(), fix));
            }
        }
        if l.max_header_bytes < 1024 {
            return Err(err(
                "limits.max_header_bytes",
                format!(
                    "{} bytes is too small for real browsers",
                    l.max_header_bytes
                ),
                "use at least 8192; 16384 is the default",
            ));
        }
        if l.h2_max_concurrent_streams == 0 {
            return Err(err(
                "limits.h2_max_concurrent_streams",
                "0 would make HTTP/2 unusable".into(),
                "use a positive number; 64 is the default",
            ));
        }
        for (key, value) in [
            ("limits.tls_handshake_timeout", l.tls_handshake_timeout),
            ("limits.header_read_timeout", l.header_read_timeout),
            ("limits.idle_timeout", l.idle_timeout),
            ("limits.send_timeout", l.send_timeout),
        ] {
            if value.is_zero() {
                return Err(err(
                    key,
                    "a zero timeout would cut every connection".into(),
                    "use a duration such as \"10s\"",
                ));
            }
        }
        if let Err(why) = log_filter(&self.log.level) {
            return Err(err(
                "log.level",
                format!("`{}` is not a log filter: {why}", self.log.level),
                "use error, warn, info or debug, or a list such as \"info,pi_failover=debug\"",
            ));
        }
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

fn validate_live(config: &Config, file: &Path) -> Result<(), ConfigError> {
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
    indicators::validate(&config.led, &config.oled, file)?;
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

fn validate_s3(s3: &S3Config, file: &Path) -> Result<(), ConfigError> {
    let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
    let valid_bucket = (3..=63).contains(&s3.bucket.len())
        && s3
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid_bucket {
        return Err(err(
            "s3.bucket",
            format!("`{}` is not a bucket name", s3.bucket),
            "write the bucket's name only (3-63 lowercase letters, digits, dots, dashes), no s3:// or path",
        ));
    }
    if s3.prefix.starts_with('/') {
        return Err(err(
            "s3.prefix",
            "starts with /".into(),
            "write the key prefix without a leading slash, e.g. \"site/\"",
        ));
    }
    if let Some(endpoint) = &s3.endpoint {
        let ok = endpoint
            .parse::<http::Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !ok {
            return Err(err(
                "s3.endpoint",
                format!("`{endpoint}` is not an http(s) URL"),
                "write the store's URL, e.g. \"https://s3.eu-central-003.backblazeb2.com\"",
            ));
        }
    }
    if s3.concurrency == 0 || s3.concurrency > 64 {
        return Err(err(
            "s3.concurrency",
            format!("{} downloads at once", s3.concurrency),
            "use 1 to 64; 4 suits a Pi on a thin uplink",
        ));
    }
    if s3.interval < Duration::from_secs(1) {
        return Err(err(
            "s3.interval",
            "shorter than a second".into(),
            "use minutes, e.g. \"5m\"",
        ));
    }
    if s3.request_timeout.is_zero() {
        return Err(err(
            "s3.request_timeout",
            "a zero timeout fails every request".into(),
            "use a duration such as \"60s\"",
        ));
    }
    if s3.stall_timeout < Duration::from_secs(1) {
        return Err(err(
            "s3.stall_timeout",
            format!(
                "{:?} without a byte fails downloads on any hiccup",
                s3.stall_timeout
            ),
            "use a duration such as \"30s\"",
        ));
    }
    // The limiter lets a download through in pieces of up to 64 KiB; below this rate each
    // piece waits longer than S3 and most proxies keep a silent connection open.
    const MIN_BANDWIDTH: u64 = 4 * 1024;
    if s3.bandwidth_limit != 0 && s3.bandwidth_limit < MIN_BANDWIDTH {
        return Err(err(
            "s3.bandwidth_limit",
            format!(
                "{} bytes per second: the connection sits idle between pieces long enough to be dropped",
                s3.bandwidth_limit
            ),
            "use at least 4096 (4 KiB/s), or 0 for no limit",
        ));
    }
    if !(0.0..=1.0).contains(&s3.max_delete_fraction) {
        return Err(err(
            "s3.max_delete_fraction",
            format!("{} is not a fraction", s3.max_delete_fraction),
            "use a number from 0.0 to 1.0, e.g. 0.5",
        ));
    }
    if s3.max_objects == 0 {
        return Err(err(
            "s3.max_objects",
            "0 allows no site at all".into(),
            "use a number above the site's file count, e.g. 100000",
        ));
    }
    Ok(())
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

pub fn key_error(file: &Path, key: &str, problem: String, fix: &str) -> ConfigError {
    ConfigError::Key {
        file: file.to_owned(),
        key: key.to_owned(),
        problem,
        fix: fix.to_owned(),
    }
}

pub fn is_valid_hostname(name: &str) -> bool {
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

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::On(addr) => write!(f, "{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("/boot/pi-failover.toml"))
    }

    const MINIMAL: &str = r#"
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
