//! How brightly the OLED shines: a pure function of the status, the time of day and the
//! config. An OLED's pixels wear with light, so a long quiet standby is dimmed and, if the
//! owner asks for it, dark at night; anything worth a glance (serving, a problem) lights it.

use std::time::{Duration, SystemTime};

use crate::live::mode::Mode;
use crate::status::Status;

/// After this long in STANDBY the panel is dimmed.
pub const DIM_AFTER: Duration = Duration::from_secs(10 * 60);

pub use crate::status::indicators::Glow;

pub use crate::config::OffHours;

/// Only a quiet STANDBY dims or darkens the panel: LIVE, DRAINING, ATTENTION and ERROR are
/// what someone walking past needs to see, at any hour.
pub fn glow(status: &Status, now: SystemTime, off_hours: Option<OffHours>) -> Glow {
    if status.mode != Mode::Standby {
        return Glow::Normal;
    }
    if off_hours.is_some_and(|o| o.contains(now)) {
        return Glow::Off;
    }
    let quiet_for = now.duration_since(status.mode_since).unwrap_or_default();
    if quiet_for > DIM_AFTER {
        Glow::Dim
    } else {
        Glow::Normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hh: u64, mm: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + hh * 3600 + mm * 60)
    }

    fn hours(text: &str) -> OffHours {
        OffHours::try_from(text.to_owned()).expect(text)
    }

    #[test]
    fn a_window_past_midnight_covers_the_night_only() {
        let night = hours("22:00-06:30");
        assert!(night.contains(at(23, 0)) && night.contains(at(0, 0)) && night.contains(at(6, 29)));
        assert!(
            !night.contains(at(6, 30)) && !night.contains(at(12, 0)) && !night.contains(at(21, 59))
        );
        let lunch = hours("12:00-13:00");
        assert!(lunch.contains(at(12, 30)) && !lunch.contains(at(13, 0)));
        assert_eq!(String::from(night), "22:00-06:30");
    }

    #[test]
    fn malformed_windows_are_refused_with_the_expected_form() {
        for bad in [
            "",
            "22-06",
            "25:00-06:00",
            "22:00-22:00",
            "22:00",
            "10:7x-11:00",
            "22:000-1:00",
        ] {
            let e = OffHours::try_from(bad.to_owned()).expect_err(bad);
            assert!(e.to_string().contains("HH:MM-HH:MM"), "{e}");
        }
    }

    #[test]
    fn only_a_quiet_standby_dims_and_off_hours_darken_only_standby() {
        let now = at(3, 0);
        let night = Some(hours("22:00-06:00"));
        let mut status = Status::example(Mode::Standby, now);
        status.mode_since = now - Duration::from_secs(60);
        assert_eq!(glow(&status, now, None), Glow::Normal, "a fresh standby");
        status.mode_since = now - DIM_AFTER - Duration::from_secs(1);
        assert_eq!(glow(&status, now, None), Glow::Dim, "ten quiet minutes");
        assert_eq!(glow(&status, now, night), Glow::Off, "off hours");
        assert_eq!(glow(&status, at(12, 0), night), Glow::Dim, "daytime");
        for mode in [Mode::Live, Mode::Draining, Mode::Attention, Mode::Error] {
            let mut status = Status::example(mode, now);
            status.mode_since = now - Duration::from_secs(86_400);
            assert_eq!(glow(&status, now, night), Glow::Normal, "{mode} at night");
        }
    }
}
