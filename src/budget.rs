//! The resources a configuration may use at most, derived from its limits: what
//! `check-config` prints and what the appliance checks against the process's descriptor
//! limit before it starts.
//!
//! Descriptors: every socket the listeners can hold (connections, the reserve, handshakes in
//! progress, the status page's), the served files' shared cache (`site::open_files`; a
//! response holds no descriptor of its own), and a fixed allowance for everything else.
//! Before issue 13 a response held its file open for its whole life and nothing raised the
//! soft limit of 1,024, while `max_connections` alone was 1,024.
//!
//! Memory: the response bytes each connection may buffer (`pacing::ByteBudget`) plus what TLS
//! and HTTP/2 keep per connection, times the connections; and the small files held whole in
//! memory, shared by every connection (`site::open_files`).

use std::fmt;

use crate::config::LimitsConfig;

/// Connections the status page serves at once (`status_page`).
pub(crate) const STATUS_CONNECTIONS: usize = 32;

/// Descriptors besides sockets and served files: listeners, the runtime's epoll and
/// eventfds, standard streams, the signal pipe, the LED and OLED devices, DNS lookups, the
/// certificate watcher, and the sync (per download: a connection, the file written, the two
/// compressed siblings).
const FIXED_DESCRIPTORS: u64 = 64;
const DESCRIPTORS_PER_DOWNLOAD: u64 = 4;

/// What one connection holds besides its response bytes, at most: rustls's record buffers
/// (its unsent-records limit is 64 KiB, plus a received record), hyper's and h2's read and
/// write buffers, header tables and per-stream state. Measured, not guessed: 32 connections
/// with 64 never-read streams each grew the server by 8.3 MB (about 260 KB a connection,
/// response bytes included; debug build, glibc) in `serve_limits::attacks`.
pub(crate) const CONNECTION_OVERHEAD: u64 = 256 * 1024;

/// Response-body reads in progress at the same instant can each hold a descriptor that the
/// cache has just evicted: one per runtime thread.
const READS_IN_FLIGHT: u64 = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Sockets: connections (site and reserve), handshakes, the status page, listeners' own
    /// are in the fixed part.
    pub sockets: u64,
    pub files: u64,
    pub fixed: u64,
    /// The most site connections at once (established and reserve).
    pub connections: u64,
    pub per_connection_bytes: u64,
}

impl Budget {
    /// The budget of `limits`, with `downloads` S3 downloads at once (0 without a sync).
    pub fn of(limits: &LimitsConfig, downloads: usize) -> Self {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        let connections = n(limits.max_connections).saturating_add(n(limits.reserved_connections));
        Self {
            sockets: connections
                .saturating_add(n(limits.max_handshakes))
                .saturating_add(n(STATUS_CONNECTIONS)),
            files: n(limits.max_open_files).saturating_add(READS_IN_FLIGHT),
            fixed: FIXED_DESCRIPTORS
                .saturating_add(n(downloads).saturating_mul(DESCRIPTORS_PER_DOWNLOAD)),
            connections,
            per_connection_bytes: n(limits.max_buffered_bytes_per_connection)
                .saturating_add(CONNECTION_OVERHEAD),
        }
    }

    /// Descriptors the process may need at once.
    pub fn descriptors(&self) -> u64 {
        self.sockets
            .saturating_add(self.files)
            .saturating_add(self.fixed)
    }

    /// Memory every connection's buffers may take at once, in bytes.
    pub(crate) fn connection_memory(&self) -> u64 {
        self.connections.saturating_mul(self.per_connection_bytes)
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "descriptors: at most {} = {} sockets (limits.max_connections + reserved_connections + max_handshakes + {} for the status page) + {} served files (limits.max_open_files + {} reads in flight) + {} for listeners, logs, devices and the sync",
            self.descriptors(),
            self.sockets,
            STATUS_CONNECTIONS,
            self.files,
            READS_IN_FLIGHT,
            self.fixed
        )?;
        write!(
            f,
            "connection memory: at most {} MiB = {} connections x ({} KiB of response bytes (limits.max_buffered_bytes_per_connection) + {} KiB of TLS and HTTP buffers); and {} MiB of small files held in memory for all of them",
            self.connection_memory().div_ceil(1024 * 1024),
            self.connections,
            (self.per_connection_bytes - CONNECTION_OVERHEAD) / 1024,
            CONNECTION_OVERHEAD / 1024,
            crate::site::open_files::SMALL_FILES_TOTAL / (1024 * 1024)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_fit_the_smallest_hard_limit_a_pi_starts_with() {
        let budget = Budget::of(&LimitsConfig::default(), 4);
        // Linux's default hard RLIMIT_NOFILE for init and its children is 4,096.
        assert!(budget.descriptors() <= 4096, "{budget}");
        assert!(
            budget.descriptors() > 1024,
            "the old soft limit was too small: {budget}"
        );
        // The default connections' buffers, every one under attack at once, fit a 1 GB Pi.
        assert!(budget.connection_memory() <= 384 * 1024 * 1024, "{budget}");
    }

    #[test]
    fn it_grows_with_each_limit() {
        let base = Budget::of(&LimitsConfig::default(), 0);
        let mut more = LimitsConfig::default();
        more.max_open_files += 100;
        assert_eq!(Budget::of(&more, 0).descriptors(), base.descriptors() + 100);
        let mut more = LimitsConfig::default();
        more.max_connections += 10;
        let grown = Budget::of(&more, 0);
        assert_eq!(grown.descriptors(), base.descriptors() + 10);
        assert_eq!(
            grown.connection_memory(),
            base.connection_memory() + 10 * base.per_connection_bytes
        );
    }
}
