//! Facts about the machine, read from /proc and /sys. Each is optional: a fact the platform
//! does not offer (no thermal zone in a VM) is left out, not guessed.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::clock::state::ClockState;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct SystemStatus {
    pub hostname: String,
    pub uptime_seconds: Option<u64>,
    pub cpu_temperature_celsius: Option<f64>,
    pub load_average: Option<[f64; 3]>,
    pub memory_total_bytes: Option<u64>,
    pub memory_available_bytes: Option<u64>,
    /// Free space on the data partition (site generations).
    pub data_free_bytes: Option<u64>,
    pub data_total_bytes: Option<u64>,
    pub addresses: Vec<IpAddr>,
    /// The data partition is mounted read-only: the kernel found a filesystem error
    /// (`errors=remount-ro`). The site in use is still served; syncs cannot write.
    pub data_read_only: Option<bool>,
    /// Whether the kernel's clock is synchronised (NTP); `None` where it cannot be read.
    pub clock_synchronised: Option<bool>,
    /// NTP is silent, but the clock was checked against an HTTPS server's `Date` recently
    /// (`pi-failover clock watch`): right to a couple of seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_coarse: Option<CoarseClock>,
    /// NTP is silent and the HTTPS fallback failed: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_fallback_error: Option<String>,
}

/// A clock set (or confirmed) from an HTTPS `Date` header.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoarseClock {
    pub url: String,
    #[serde(with = "crate::format::json_time")]
    pub checked_at: SystemTime,
    /// How far the clock was off before the check (server minus local).
    pub offset_seconds: f64,
}

pub fn read(data_dir: &Path, clock_state: &Path) -> SystemStatus {
    let (data_free_bytes, data_total_bytes, data_read_only) = match rustix::fs::statvfs(data_dir) {
        Ok(s) => (
            Some(s.f_bavail.saturating_mul(s.f_frsize)),
            Some(s.f_blocks.saturating_mul(s.f_frsize)),
            Some(s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY)),
        ),
        Err(_) => (None, None, None),
    };
    let clock_synchronised = crate::clock::kernel_synchronised();
    let (clock_coarse, clock_fallback_error) = match clock_synchronised {
        Some(true) => (None, None),
        _ => coarse_clock(ClockState::read(clock_state), SystemTime::now()),
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    SystemStatus {
        hostname: hostname(),
        uptime_seconds: first_number("/proc/uptime").map(|s| s as u64),
        cpu_temperature_celsius: first_number("/sys/class/thermal/thermal_zone0/temp")
            .map(|milli| (milli / 100.0).round() / 10.0),
        load_average: load_average(),
        memory_total_bytes: meminfo_kb(&meminfo, "MemTotal:").map(|kb| kb * 1024),
        memory_available_bytes: meminfo_kb(&meminfo, "MemAvailable:").map(|kb| kb * 1024),
        data_free_bytes,
        data_total_bytes,
        addresses: addresses(),
        data_read_only,
        clock_synchronised,
        clock_coarse,
        clock_fallback_error,
    }
}

/// What the clock watcher's state says about an unsynchronised clock.
fn coarse_clock(
    state: Option<ClockState>,
    now: SystemTime,
) -> (Option<CoarseClock>, Option<String>) {
    let Some(state) = state else {
        return (None, None);
    };
    if state.coarse_and_fresh(now) {
        let coarse = CoarseClock {
            url: state.url.unwrap_or_default(),
            checked_at: SystemTime::UNIX_EPOCH + Duration::from_secs(state.checked_at),
            offset_seconds: state.offset_seconds.unwrap_or_default(),
        };
        return (Some(coarse), None);
    }
    (None, state.last_error)
}

pub fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn first_number(path: &str) -> Option<f64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn meminfo_kb(meminfo: &str, key: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The machine's addresses, loopback and link-local left out.
fn addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = if_addrs::get_if_addrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = interfaces
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            IpAddr::V6(v6) => !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(source: &str, checked_at: u64, error: Option<&str>) -> ClockState {
        ClockState {
            source: source.into(),
            url: Some("https://s3.eu-west-1.amazonaws.com/".into()),
            checked_at,
            offset_seconds: Some(-7.0),
            last_error: error.map(Into::into),
        }
    }

    /// An unsynchronised clock, as the watcher's record leaves it: coarse when a check worked
    /// in the last three hours, the fallback's error when it failed, nothing when there is no
    /// record (ntpd may still answer).
    #[test]
    fn the_watchers_record_says_coarse_or_why_not() {
        let at = 1_800_000_000;
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(at + 600);
        let (coarse, error) = coarse_clock(Some(state("https-date", at, None)), now);
        let coarse = coarse.expect("coarse");
        assert_eq!(coarse.offset_seconds, -7.0);
        assert_eq!(error, None);

        let stale = SystemTime::UNIX_EPOCH + Duration::from_secs(at + 4 * 3600);
        assert_eq!(
            coarse_clock(Some(state("https-date", at, None)), stale),
            (None, None)
        );

        let failed = state("none", at, Some("s3: connection refused"));
        assert_eq!(
            coarse_clock(Some(failed), now),
            (None, Some("s3: connection refused".into()))
        );
        assert_eq!(coarse_clock(None, now), (None, None));
    }
}
