//! `[limits]`: the budget every connection, handshake and open file is held to (the Pi
//! faces the internet with one small CPU).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{key_error, ConfigError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Connections one client address (an IPv6 client by its /64) may hold at once; its
    /// further connections are closed at once, so one host cannot take every slot.
    pub max_connections_per_address: usize,
    /// TLS handshakes in progress at once, counted apart from established connections so
    /// clients that connect and say nothing cannot take the slots of those being served;
    /// more wait in the kernel's accept queue.
    pub max_handshakes: usize,
    /// Connections kept for when `max_connections` are all taken: each answers one request
    /// with short timeouts and closes, so the DNS health check and readers' first page still
    /// get through while the site is saturated.
    pub reserved_connections: usize,
    /// Descriptors kept open for the files being served, shared by all responses (a response
    /// waiting for its client holds none).
    pub max_open_files: usize,
    /// Response bytes one connection may have read from files and not yet handed to TLS,
    /// across all its streams: memory per connection, whatever windows a client announces.
    pub max_buffered_bytes_per_connection: usize,
    #[serde(with = "humantime_serde")]
    pub tls_handshake_timeout: Duration,
    /// Time allowed for a request's headers to arrive. For HTTP/1.1, hyper also runs this
    /// timer while a kept-alive connection waits for its next request, so it is the
    /// effective keep-alive time there.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection with no request and no response byte moving on for this long is closed.
    /// Control traffic (HTTP/2 PING, SETTINGS, WINDOW_UPDATE) does not count.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A response that moves no byte for this long (its client reads nothing, or keeps the
    /// HTTP/2 window shut) closes its connection, even while other streams on it move.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Largest request head (request line plus headers) accepted.
    pub max_header_bytes: usize,
    pub h2_max_concurrent_streams: u32,
    /// On SIGTERM, how long in-flight requests may take to finish.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            // A browser opens one HTTP/2 connection or up to 6 HTTP/1.1 ones; room for an
            // office behind one NAT address, far from the 1,024 of the whole Pi.
            max_connections_per_address: 32,
            // A handshake costs the Pi ~2 ms of CPU: 64 at once is more than it completes in
            // the handshake timeout's tenth, and few enough that silent clients cost little.
            max_handshakes: 64,
            reserved_connections: 16,
            max_open_files: 256,
            // Four 16 KB chunks: enough to keep a fast reader's pipe full (measured,
            // docs/benchmarks.md).
            max_buffered_bytes_per_connection: 64 * 1024,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            // nginx's send_timeout.
            send_timeout: Duration::from_secs(60),
            max_header_bytes: 16 * 1024,
            h2_max_concurrent_streams: 64,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
        let l = self;
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
        Ok(())
    }
}
