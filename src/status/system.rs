//! Facts about the machine, read from /proc and /sys. Each is optional: a fact the platform
//! does not offer (no thermal zone in a VM) is left out, not guessed.

use std::net::IpAddr;
use std::path::Path;

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
    /// Whether the kernel's clock is synchronised (NTP); `None` where it cannot be read.
    pub clock_synchronised: Option<bool>,
}

pub fn read(data_dir: &Path) -> SystemStatus {
    let (data_free_bytes, data_total_bytes) = match rustix::fs::statvfs(data_dir) {
        Ok(s) => (
            Some(s.f_bavail.saturating_mul(s.f_frsize)),
            Some(s.f_blocks.saturating_mul(s.f_frsize)),
        ),
        Err(_) => (None, None),
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
        clock_synchronised: clock_synchronised(),
    }
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

/// adjtimex(2) with no changes: TIME_ERROR or STA_UNSYNC mean the clock is free-running.
fn clock_synchronised() -> Option<bool> {
    // SAFETY: a zeroed timex with modes = 0 only reads the kernel's state into it.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(state != libc::TIME_ERROR && tx.status & libc::STA_UNSYNC == 0)
}
