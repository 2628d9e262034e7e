//! `[led]` and `[oled]`: the indicators on the Pi (`src/indicators/`), with the panel sizes
//! and the daily dark window they are configured with.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{key_error, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedBackend {
    /// A Linux LED-class device (`led.path`): the board's ACT LED, or a `gpio-led` overlay.
    Sysfs,
    /// A GPIO pin (`led.gpio`, BCM numbering) through rppal.
    Gpio,
    /// Shown on the status page only (the demo).
    Simulated,
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedConfig {
    pub backend: LedBackend,
    pub path: PathBuf,
    pub gpio: u8,
    /// The LED lights when the line is low (or, for the Pi 5's ACT LED, brightness 0).
    pub active_low: bool,
}

impl Default for LedConfig {
    fn default() -> Self {
        Self {
            backend: LedBackend::Sysfs,
            path: PathBuf::from("/sys/class/leds/ACT"),
            gpio: 17,
            active_low: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OledBackend {
    /// An SSD1306 on the I2C bus `oled.bus`.
    I2c,
    /// Drawn on the status page only (the demo).
    Simulated,
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OledConfig {
    pub backend: OledBackend,
    pub bus: PathBuf,
    /// 0x3C, or 0x3D with the module's SA0 jumper moved (TOML: `address = 0x3C`).
    pub address: u8,
    pub size: PanelSize,
    /// For a panel mounted upside down.
    pub rotate_180: bool,
    /// A daily window in UTC, e.g. "22:00-06:30", when the panel is dark in STANDBY (it
    /// lights for LIVE or a problem at any hour).
    pub off_hours_utc: Option<OffHours>,
}

impl Default for OledConfig {
    fn default() -> Self {
        Self {
            backend: OledBackend::I2c,
            bus: PathBuf::from("/dev/i2c-1"),
            address: 0x3C,
            size: PanelSize::W128H64,
            rotate_180: false,
            off_hours_utc: None,
        }
    }
}

/// Panel sizes the appliance drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PanelSize {
    #[serde(rename = "128x64")]
    W128H64,
    #[serde(rename = "128x32")]
    W128H32,
}

impl PanelSize {
    pub fn height(self) -> u32 {
        match self {
            PanelSize::W128H64 => 64,
            PanelSize::W128H32 => 32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PanelSize::W128H64 => "128x64",
            PanelSize::W128H32 => "128x32",
        }
    }
}

/// A daily window, in UTC, written `"22:00-06:30"`; it may run past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OffHours {
    /// Minutes after midnight UTC.
    from: u32,
    to: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a time window; write \"HH:MM-HH:MM\" in UTC, e.g. \"22:00-06:30\"")]
pub struct OffHoursError(String);

impl TryFrom<String> for OffHours {
    type Error = OffHoursError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let minutes = |hhmm: &str| -> Option<u32> {
            let (h, m) = hhmm.trim().split_once(':')?;
            if !(1..=2).contains(&h.len()) || m.len() != 2 {
                return None;
            }
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let window = text
            .split_once('-')
            .and_then(|(from, to)| Some((minutes(from)?, minutes(to)?)));
        match window {
            Some((from, to)) if from != to => Ok(OffHours { from, to }),
            _ => Err(OffHoursError(text)),
        }
    }
}

impl From<OffHours> for String {
    fn from(o: OffHours) -> String {
        format!(
            "{:02}:{:02}-{:02}:{:02}",
            o.from / 60,
            o.from % 60,
            o.to / 60,
            o.to % 60
        )
    }
}

impl OffHours {
    pub fn contains(self, now: SystemTime) -> bool {
        let secs = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let minute = ((secs % 86_400) / 60) as u32;
        if self.from < self.to {
            (self.from..self.to).contains(&minute)
        } else {
            minute >= self.from || minute < self.to
        }
    }
}

pub(super) fn validate(led: &LedConfig, oled: &OledConfig, file: &Path) -> Result<(), ConfigError> {
    let err = |key: &str, problem: String, fix: &str| key_error(file, key, problem, fix);
    if led.gpio > 27 {
        return Err(err(
            "led.gpio",
            format!("GPIO {} is not on the 40-pin header", led.gpio),
            "use a BCM GPIO number from 2 to 27, e.g. 17 (pin 11)",
        ));
    }
    if cfg!(not(feature = "demo")) && oled.backend == OledBackend::Simulated {
        return Err(err(
            "oled.backend",
            "\"simulated\" is the demo's panel, and this build has no demo".into(),
            "use \"i2c\" for a panel on the Pi, or \"off\"",
        ));
    }
    if !(0x08..=0x77).contains(&oled.address) {
        return Err(err(
            "oled.address",
            format!("{:#04x} is not a 7-bit I2C address", oled.address),
            "use 0x3C, or 0x3D for a module with its SA0 jumper moved (0x78/0x7A are the 8-bit forms)",
        ));
    }
    Ok(())
}
