//! The LED and the OLED: views of the status model, like the status page. The LED pattern and
//! the OLED picture are pure functions of the status (`led`, `screen`); the tasks here only
//! carry them to the hardware — or to the simulations the demo shows — and never let a
//! missing or failing part disturb serving: a problem is a line in the status, retried.

pub mod backends;
pub mod frame;
pub mod led;
pub mod oled;
pub mod screen;
pub mod ssd1306_model;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::live::mode::Mode;
use crate::status::Status;
use backends::Led;
use frame::Frame;
use oled::{Panel, PanelError};
use screen::PanelSize;

/// What the indicators are doing, for the status page.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndicatorStatus {
    /// `sysfs /sys/class/leds/ACT`, `gpio 17`, `simulated` or `off`.
    pub led: String,
    pub led_problem: Option<String>,
    pub oled: String,
    pub oled_problem: Option<String>,
    pub oled_dimmed: bool,
}

/// Shared between the indicator tasks (writers) and the status collector (reader).
pub type SharedIndicatorStatus = Arc<Mutex<IndicatorStatus>>;

fn note(shared: &SharedIndicatorStatus, change: impl FnOnce(&mut IndicatorStatus)) {
    if let Ok(mut s) = shared.lock() {
        change(&mut s);
    }
}

/// Plays the mode's pattern until the mode changes, then the next one; off on shutdown.
pub async fn drive_led(
    mut status: watch::Receiver<Arc<Status>>,
    mut led: Box<dyn Led>,
    shared: SharedIndicatorStatus,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    loop {
        let mode = status.borrow_and_update().mode;
        'pattern: loop {
            for (on, how_long) in led::pattern(mode) {
                match led.set(on) {
                    Ok(()) if failing => {
                        failing = false;
                        note(&shared, |s| s.led_problem = None);
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "status LED");
                        note(&shared, |s| s.led_problem = Some(e.to_string()));
                    }
                    Err(_) => {}
                }
                // The status is republished every second: wait out the step unless the mode
                // itself changes.
                let until = tokio::time::Instant::now() + how_long;
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => {
                            let _ = led.set(false);
                            return;
                        }
                        _ = tokio::time::sleep_until(until) => break,
                        changed = status.changed() => {
                            if changed.is_err() {
                                let _ = led.set(false);
                                return;
                            }
                            if status.borrow_and_update().mode != mode {
                                break 'pattern;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How the OLED task opens its panel (again, after a failure).
pub type OpenPanel<I> = Box<dyn FnMut() -> Result<Panel<I>, PanelError> + Send>;

/// After this long in STANDBY the panel is dimmed.
pub const DIM_AFTER: Duration = Duration::from_secs(10 * 60);
const REOPEN_EVERY: Duration = Duration::from_secs(30);

/// Drives the OLED until shutdown, on a blocking thread (a frame is ~100 ms of I2C): a few
/// times a second it draws the status, and sends the frame only when the picture changed.
/// Blank and off on shutdown.
pub fn run_oled<I: embedded_hal::i2c::I2c + Send + 'static>(
    mut open: OpenPanel<I>,
    size: PanelSize,
    mut status: watch::Receiver<Arc<Status>>,
    shared: SharedIndicatorStatus,
    shutdown: CancellationToken,
) {
    {
        let started = std::time::Instant::now();
        let mut panel: Option<Panel<I>> = None;
        let mut last: Option<Frame> = None;
        let mut dimmed = false;
        let mut next_open = std::time::Instant::now();
        // Ends on shutdown, or when the status model is gone (the runtime is going away and
        // would otherwise wait for this thread forever).
        while !shutdown.is_cancelled() && status.has_changed().is_ok() {
            if panel.is_none() && std::time::Instant::now() >= next_open {
                match open() {
                    Ok(p) => {
                        panel = Some(p);
                        last = None;
                        dimmed = false;
                        note(&shared, |s| s.oled_problem = None);
                    }
                    Err(e) => {
                        next_open = std::time::Instant::now() + REOPEN_EVERY;
                        note(&shared, |s| s.oled_problem = Some(e.to_string()));
                    }
                }
            }
            // A new status comes once a second; drawing between them would repeat the frame.
            let fresh = last.is_none() || status.has_changed().unwrap_or(false);
            if let (Some(p), true) = (panel.as_mut(), fresh) {
                let current = status.borrow_and_update().clone();
                let now = SystemTime::now();
                let phase = started.elapsed().as_secs() / 60;
                let frame = screen::render(&current, size, phase, now);
                let dim = current.mode == Mode::Standby
                    && now.duration_since(current.mode_since).unwrap_or_default() > DIM_AFTER;
                let mut result = Ok(());
                if dim != dimmed {
                    result = p.set_dim(dim);
                    dimmed = dim;
                    note(&shared, |s| s.oled_dimmed = dim);
                }
                if result.is_ok() && last.as_ref() != Some(&frame) {
                    result = p.show(&frame);
                    last = Some(frame);
                }
                if let Err(e) = result {
                    tracing::warn!(error = %e, "OLED; opening it again in 30 s");
                    note(&shared, |s| s.oled_problem = Some(e.to_string()));
                    panel = None;
                    next_open = std::time::Instant::now() + REOPEN_EVERY;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        if let Some(p) = panel.as_mut() {
            let _ = p.show(&Frame::new(128, size.height()));
            let _ = p.set_on(false);
        }
    }
}

/// Starts the LED and OLED as the config says. Returns the simulated OLED's bus, if that is
/// the one configured, for the status page's `/oled.png`.
pub fn start(
    config: &crate::config::Config,
    status: &watch::Receiver<Arc<Status>>,
    shared: &SharedIndicatorStatus,
    tracker: &tokio_util::task::TaskTracker,
    shutdown: &CancellationToken,
) -> Option<ssd1306_model::ModelBus> {
    use crate::config::{LedBackend, OledBackend};
    use backends::{GpioLed, Reopening, SimulatedLed, SysfsLed};

    let c = config.led.clone();
    let (name, led): (String, Option<Box<dyn Led>>) = match c.backend {
        LedBackend::Off => ("off".into(), None),
        LedBackend::Simulated => ("simulated".into(), Some(Box::new(SimulatedLed::default()))),
        LedBackend::Sysfs => (
            format!("sysfs {}", c.path.display()),
            Some(Box::new(Reopening::new(Box::new(move || {
                SysfsLed::open(c.path.clone(), c.active_low).map(|l| Box::new(l) as Box<dyn Led>)
            })))),
        ),
        LedBackend::Gpio => (
            format!("GPIO {}", c.gpio),
            Some(Box::new(Reopening::new(Box::new(move || {
                GpioLed::open(c.gpio, c.active_low).map(|l| Box::new(l) as Box<dyn Led>)
            })))),
        ),
    };
    note(shared, |s| s.led = name);
    if let Some(led) = led {
        tracker.spawn(drive_led(
            status.clone(),
            led,
            shared.clone(),
            shutdown.clone(),
        ));
    }

    let o = config.oled.clone();
    let (status, shared, shutdown) = (status.clone(), shared.clone(), shutdown.clone());
    match o.backend {
        OledBackend::Off => {
            note(&shared, |s| s.oled = "off".into());
            None
        }
        OledBackend::Simulated => {
            note(&shared, |s| {
                s.oled = format!("simulated {}", size_name(o.size))
            });
            let bus = ssd1306_model::ModelBus::new(ssd1306_model::Ssd1306Model::new(
                o.address,
                o.size.height(),
            ));
            let panel_bus = bus.clone();
            let open: OpenPanel<ssd1306_model::ModelBus> =
                Box::new(move || Panel::open(panel_bus.clone(), o.address, o.size, o.rotate_180));
            tracker.spawn_blocking(move || run_oled(open, o.size, status, shared, shutdown));
            Some(bus)
        }
        OledBackend::I2c => {
            note(&shared, |s| {
                s.oled = format!(
                    "{} {} at {:#04x}",
                    size_name(o.size),
                    o.bus.display(),
                    o.address
                )
            });
            let open: OpenPanel<linux_embedded_hal::I2cdev> = Box::new(move || {
                let bus =
                    linux_embedded_hal::I2cdev::new(&o.bus).map_err(|e| PanelError::Open {
                        path: o.bus.clone(),
                        message: e.to_string(),
                    })?;
                Panel::open(bus, o.address, o.size, o.rotate_180)
            });
            tracker.spawn_blocking(move || run_oled(open, o.size, status, shared, shutdown));
            None
        }
    }
}

fn size_name(size: PanelSize) -> &'static str {
    match size {
        PanelSize::W128H64 => "128x64",
        PanelSize::W128H32 => "128x32",
    }
}
