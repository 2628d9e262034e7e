//! Request counters over sliding windows of one and five minutes, on the monotonic clock.
//!
//! One bucket per second for five minutes; a request touches one bucket, a snapshot sums
//! them. Distinct readers are counted by address (IPv6 by /64: one household, however many
//! privacy addresses it rotates through), with a cap so a flood cannot grow the map.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;
use tokio::time::Instant;

use super::classify::TrafficClass;

const WINDOW_SECS: usize = 300;
const MINUTE: u64 = 60;
/// Beyond this many distinct reader addresses in five minutes, the count saturates.
const MAX_TRACKED_CLIENTS: usize = 20_000;

#[derive(Debug, Clone, Copy, Default)]
struct Second {
    /// Seconds since the recorder started; tells a stale bucket from a current one.
    at: u64,
    requests: [u64; 3],
    bytes: u64,
    /// Responses by status class: 1xx … 5xx.
    statuses: [u64; 5],
}

#[derive(Debug)]
struct Windows {
    seconds: Vec<Second>,
    readers: HashMap<IpAddr, u64>,
    total_requests: [u64; 3],
    total_bytes: u64,
    total_statuses: [u64; 5],
}

/// The shared recorder: the site server writes, the status model reads.
#[derive(Debug)]
pub(crate) struct Traffic {
    started: Instant,
    windows: Mutex<Windows>,
}

/// Counts for one class over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ByClass {
    pub reader: u64,
    pub health_check: u64,
    pub other: u64,
}

impl ByClass {
    fn from(counts: [u64; 3]) -> Self {
        Self {
            reader: counts[0],
            health_check: counts[1],
            other: counts[2],
        }
    }
}

/// Counts by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ByStatus {
    #[serde(rename = "1xx")]
    pub informational: u64,
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirection: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

impl ByStatus {
    fn from(c: [u64; 5]) -> Self {
        Self {
            informational: c[0],
            success: c[1],
            redirection: c[2],
            client_error: c[3],
            server_error: c[4],
        }
    }
}

/// What the traffic looked like, at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrafficSnapshot {
    /// Distinct reader addresses in the last minute.
    pub readers_1m: u64,
    /// Distinct reader addresses in the last five minutes.
    pub readers_5m: u64,
    pub requests_1m: ByClass,
    pub requests_5m: ByClass,
    pub statuses_1m: ByStatus,
    /// Response bytes per second, averaged over the last minute.
    pub bytes_per_second: f64,
    /// Since the appliance started.
    pub requests_total: ByClass,
    pub bytes_total: u64,
    pub statuses_total: ByStatus,
}

impl Default for Traffic {
    fn default() -> Self {
        Self::new()
    }
}

impl Traffic {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            windows: Mutex::new(Windows {
                seconds: vec![Second::default(); WINDOW_SECS],
                readers: HashMap::new(),
                total_requests: [0; 3],
                total_bytes: 0,
                total_statuses: [0; 5],
            }),
        }
    }

    fn now_secs(&self) -> u64 {
        // Offset by one so that bucket `at == 0` always means "never written".
        Instant::now().duration_since(self.started).as_secs() + 1
    }

    /// Records one answered request.
    pub fn record(&self, class: TrafficClass, client: IpAddr, status: u16, bytes: u64) {
        let now = self.now_secs();
        let Ok(mut w) = self.windows.lock() else {
            return;
        };
        let slot = &mut w.seconds[(now as usize) % WINDOW_SECS];
        if slot.at != now {
            *slot = Second {
                at: now,
                ..Second::default()
            };
        }
        let status_class = usize::from(status / 100).clamp(1, 5) - 1;
        slot.requests[class.index()] += 1;
        slot.bytes += bytes;
        slot.statuses[status_class] += 1;
        w.total_requests[class.index()] += 1;
        w.total_bytes += bytes;
        w.total_statuses[status_class] += 1;
        if class == TrafficClass::Reader {
            if w.readers.len() >= MAX_TRACKED_CLIENTS {
                let oldest = now.saturating_sub(WINDOW_SECS as u64);
                w.readers.retain(|_, seen| *seen > oldest);
            }
            if w.readers.len() < MAX_TRACKED_CLIENTS || w.readers.contains_key(&client_key(client))
            {
                w.readers.insert(client_key(client), now);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> TrafficSnapshot {
        let now = self.now_secs();
        let Ok(mut w) = self.windows.lock() else {
            return TrafficSnapshot::default();
        };
        let five_min_ago = now.saturating_sub(WINDOW_SECS as u64);
        let minute_ago = now.saturating_sub(MINUTE);
        w.readers.retain(|_, seen| *seen > five_min_ago);
        let (mut requests_1m, mut requests_5m, mut statuses_1m, mut bytes_1m) =
            ([0u64; 3], [0u64; 3], [0u64; 5], 0u64);
        for s in w
            .seconds
            .iter()
            .filter(|s| s.at > five_min_ago && s.at <= now)
        {
            for (i, n) in s.requests.iter().enumerate() {
                requests_5m[i] += n;
                if s.at > minute_ago {
                    requests_1m[i] += n;
                }
            }
            if s.at > minute_ago {
                bytes_1m += s.bytes;
                for (i, n) in s.statuses.iter().enumerate() {
                    statuses_1m[i] += n;
                }
            }
        }
        TrafficSnapshot {
            readers_1m: w
                .readers
                .values()
                .filter(|seen| **seen > minute_ago)
                .count() as u64,
            readers_5m: w.readers.len() as u64,
            requests_1m: ByClass::from(requests_1m),
            requests_5m: ByClass::from(requests_5m),
            statuses_1m: ByStatus::from(statuses_1m),
            bytes_per_second: bytes_1m as f64 / MINUTE as f64,
            requests_total: ByClass::from(w.total_requests),
            bytes_total: w.total_bytes,
            statuses_total: ByStatus::from(w.total_statuses),
        }
    }
}

/// IPv4 addresses as they are; IPv6 by their /64. Peers arrive canonical (an IPv4 client of
/// a dual-stack listener as IPv4: `listener::canonical`, at accept).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[tokio::test(start_paused = true)]
    async fn readers_are_distinct_addresses_over_one_and_five_minutes() {
        let t = Traffic::new();
        t.record(TrafficClass::Reader, ip("198.51.100.1"), 200, 1000);
        t.record(TrafficClass::Reader, ip("198.51.100.1"), 200, 1000);
        t.record(TrafficClass::Reader, ip("2001:db8::1"), 200, 500);
        t.record(TrafficClass::Reader, ip("2001:db8::2"), 304, 0);
        t.record(TrafficClass::HealthCheck, ip("54.1.2.3"), 200, 0);
        t.record(TrafficClass::Other, ip("192.0.2.9"), 404, 10);
        let s = t.snapshot();
        assert_eq!(s.readers_1m, 2, "one IPv4 reader, one IPv6 /64");
        assert_eq!(
            s.requests_1m,
            ByClass {
                reader: 4,
                health_check: 1,
                other: 1
            }
        );
        assert_eq!(s.statuses_1m.success, 4);
        assert_eq!(s.statuses_1m.redirection, 1);
        assert_eq!(s.statuses_1m.client_error, 1);
        assert!((s.bytes_per_second - 2510.0 / 60.0).abs() < 1e-9);

        tokio::time::advance(Duration::from_secs(90)).await;
        let s = t.snapshot();
        assert_eq!(
            (s.readers_1m, s.readers_5m),
            (0, 2),
            "gone from the minute, not the five"
        );
        assert_eq!(s.requests_1m, ByClass::default());
        assert_eq!(s.requests_5m.reader, 4);

        tokio::time::advance(Duration::from_secs(240)).await;
        let s = t.snapshot();
        assert_eq!((s.readers_5m, s.requests_5m.reader), (0, 0));
        assert_eq!(s.requests_total.reader, 4, "totals never slide");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_is_reused_only_after_the_window_has_passed_it() {
        let t = Traffic::new();
        t.record(TrafficClass::Reader, ip("198.51.100.1"), 200, 1);
        tokio::time::advance(Duration::from_secs(WINDOW_SECS as u64)).await;
        t.record(TrafficClass::Reader, ip("198.51.100.2"), 200, 1);
        let s = t.snapshot();
        assert_eq!(
            s.requests_5m.reader, 1,
            "the old second was cleared, not added to"
        );
        assert_eq!(s.readers_5m, 1);
    }
}
