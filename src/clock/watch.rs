//! The clock's fallback, run as root beside ntpd (`pi-failover clock watch`): while the
//! kernel reports the clock synchronised it only records so; once NTP has been silent for
//! `clock.fallback_after` since boot, it checks the time against the `clock.https_date`
//! servers every hour and steps the clock when it is more than [`STEP_THRESHOLD`] off.

use std::time::{Duration, Instant, SystemTime};

use super::https_date::{self, DateReading};
use super::state::ClockState;
use super::{kernel_synchronised, ClockSettings};

/// A coarse check steps the clock only when it is off by more than this: the `Date` header
/// has one-second resolution and the round trip adds its own error.
pub(crate) const STEP_THRESHOLD: f64 = 2.0;
/// How often the synchronisation flag is looked at.
const POLL: Duration = Duration::from_secs(10);
/// How often a working fallback checks again (the Pi's crystal drifts seconds a day).
const RECHECK: Duration = Duration::from_secs(3600);
/// How long after a check the next one is due: [`RECHECK`] after a success; after failures,
/// 30 s (at boot the network is often not up yet when NTP's allowance runs out), doubling to
/// 5 minutes.
fn next_check_after(failures: u32) -> Duration {
    if failures == 0 {
        return RECHECK;
    }
    crate::backoff::doubling(
        Duration::from_secs(30),
        failures - 1,
        Duration::from_secs(300),
    )
}

/// What to run after the clock was stepped (the image saves the time on the data
/// partition, as ntpd's hook does after its own steps).
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub after_step: Option<Vec<String>>,
}

/// Runs for ever (until the process is stopped).
pub async fn run(settings: &ClockSettings, hooks: &Hooks) {
    // The fallback is due `fallback_after` from boot, not from this process's start (it is
    // respawned after a crash).
    let fallback_due = Instant::now() + settings.fallback_after.saturating_sub(uptime());
    let mut last_check: Option<Instant> = None;
    let mut failures: u32 = 0;
    let mut last_written: Option<ClockState> = None;
    loop {
        let state = if kernel_synchronised() == Some(true) {
            last_check = None;
            failures = 0;
            Some(ClockState {
                source: "ntp".into(),
                url: None,
                checked_at: unix_now(),
                offset_seconds: None,
                last_error: None,
            })
        } else if Instant::now() < fallback_due {
            None
        } else if settings.https_date.is_empty() {
            Some(ClockState {
                source: "none".into(),
                url: None,
                checked_at: unix_now(),
                offset_seconds: None,
                last_error: Some(format!(
                    "NTP has not answered for {} and clock.https_date is empty",
                    humantime::format_duration(settings.fallback_after)
                )),
            })
        } else if last_check.is_some_and(|at| at.elapsed() < next_check_after(failures)) {
            None
        } else {
            let state = check(settings, true, hooks).await;
            last_check = Some(Instant::now());
            failures = if state.last_error.is_none() {
                0
            } else {
                failures.saturating_add(1)
            };
            Some(state)
        };
        if let Some(state) = state {
            // Rewritten when it changes, and each check: not every poll (SD-free /run, but
            // a quiet log).
            let changed = last_written.as_ref().is_none_or(|old| {
                old.source != state.source
                    || old.last_error != state.last_error
                    || old.offset_seconds != state.offset_seconds
            });
            if changed || state.source == "https-date" {
                if let Err(e) = state.write(&settings.state_file) {
                    tracing::warn!(file = %settings.state_file.display(), error = %e, "cannot record the clock's state");
                }
                last_written = Some(state);
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One fallback check: the first `https_date` server that answers gives the time; with
/// `step`, a clock further off than [`STEP_THRESHOLD`] is set to it.
pub async fn check(settings: &ClockSettings, step: bool, hooks: &Hooks) -> ClockState {
    let mut errors = Vec::new();
    for url in &settings.https_date {
        match https_date::query(url, settings.ca_file.as_deref()).await {
            Ok(reading) => {
                let offset = reading.offset_seconds();
                let mut last_error = None;
                if step && offset.abs() > STEP_THRESHOLD {
                    match step_clock(&reading) {
                        Ok(()) => {
                            tracing::warn!(
                                url,
                                offset_seconds = offset,
                                "NTP is silent: the clock was stepped to the server's Date"
                            );
                            run_hook(hooks.after_step.as_deref());
                        }
                        Err(e) => last_error = Some(format!("cannot set the clock: {e}")),
                    }
                } else {
                    tracing::info!(
                        url,
                        offset_seconds = offset,
                        "NTP is silent: the clock agrees with the server's Date"
                    );
                }
                return ClockState {
                    source: "https-date".into(),
                    url: Some(url.clone()),
                    checked_at: unix_now(),
                    offset_seconds: Some(offset),
                    last_error,
                };
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "no time from this server");
                errors.push(format!("{url}: {e}"));
            }
        }
    }
    ClockState {
        source: "none".into(),
        url: None,
        checked_at: unix_now(),
        offset_seconds: None,
        last_error: Some(errors.join("; ")),
    }
}

/// Sets the clock to the server's time, carried forward by what has passed since the
/// reading.
fn step_clock(reading: &DateReading) -> std::io::Result<()> {
    let now = SystemTime::now();
    let elapsed = now.duration_since(reading.local).unwrap_or_default();
    let target = (reading.server + elapsed)
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(std::io::Error::other)?;
    let ts = libc::timespec {
        tv_sec: target.as_secs().try_into().map_err(std::io::Error::other)?,
        tv_nsec: target.subsec_nanos().into(),
    };
    // SAFETY: a valid timespec, read by the kernel only.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &raw const ts) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn run_hook(command: Option<&[String]>) {
    let Some([program, args @ ..]) = command else {
        return;
    };
    match std::process::Command::new(program).args(args).status() {
        Ok(status) if status.success() => {}
        Ok(status) => tracing::warn!(program, %status, "the after-step hook failed"),
        Err(e) => tracing::warn!(program, error = %e, "cannot run the after-step hook"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Time since boot (CLOCK_BOOTTIME via /proc/uptime; zero where it cannot be read).
fn uptime() -> Duration {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_fallback_retries_after_30_s_doubling_to_5_minutes_a_working_one_hourly() {
        let secs: Vec<u64> = (0..=7).map(|n| next_check_after(n).as_secs()).collect();
        assert_eq!(secs, [3600, 30, 60, 120, 240, 300, 300, 300]);
        assert_eq!(next_check_after(u32::MAX).as_secs(), 300);
    }
}
