//! What the indicators (the LED and the OLED) are doing, as the status reports it: written by
//! the indicator tasks, read by the status collector.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// The OLED's brightness: dimmed when nobody reads, off in the owner's off hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Glow {
    #[default]
    Normal,
    Dim,
    /// Display off (its RAM kept): off hours in STANDBY.
    Off,
}

/// What the indicators are doing, for the status page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndicatorStatus {
    /// `sysfs /sys/class/leds/ACT`, `gpio 17`, `simulated` or `off`.
    pub led: String,
    pub led_problem: Option<String>,
    pub oled: String,
    pub oled_problem: Option<String>,
    pub oled_glow: Glow,
}

/// Shared between the indicator tasks (writers) and the status collector (reader).
pub type SharedIndicatorStatus = Arc<Mutex<IndicatorStatus>>;
