//! The LED and the OLED: views of the status model, like the status page. The LED pattern and
//! the OLED picture are pure functions of the status (`led`, `screen`); the tasks here only
//! carry them to the hardware — or to the simulations the demo shows — and never let a
//! missing or failing part disturb serving: a problem is a line in the status, retried.

pub mod backends;
pub mod frame;
pub mod glow;
pub mod led;
pub mod oled;
pub mod screen;
#[cfg(feature = "demo")]
pub mod ssd1306_model;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::status::Status;
use backends::{Led, REOPEN_EVERY};
use frame::Frame;
use oled::{Panel, PanelError};
use screen::PanelSize;

/// The simulated OLED's bus (the demo's panel), for the status page's `/oled.png`.
#[cfg(feature = "demo")]
pub type SimulatedOled = ssd1306_model::ModelBus;

/// Built without the demo there is no simulated OLED: no value of this type exists.
#[cfg(not(feature = "demo"))]
#[derive(Debug, Clone)]
pub enum SimulatedOled {}

/// The simulated panel's glass as a PNG, `scale` screen pixels per panel pixel.
pub(crate) fn simulated_png(oled: &SimulatedOled, scale: u32) -> Result<Vec<u8>, String> {
    #[cfg(feature = "demo")]
    return oled
        .model()
        .glass()
        .to_png(scale)
        .map_err(|e| e.to_string());
    #[cfg(not(feature = "demo"))]
    {
        let _ = scale;
        match *oled {}
    }
}

pub use crate::status::indicators::{IndicatorStatus, SharedIndicatorStatus};

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
                        () = shutdown.cancelled() => {
                            let _ = led.set(false);
                            return;
                        }
                        () = tokio::time::sleep_until(until) => break,
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

const LOOK_EVERY: Duration = Duration::from_millis(250);

/// The two moments of the way down: `shutdown` starts it (the LED goes off, the OLED says
/// STOPPING while connections drain), `drained` ends it (the OLED goes dark). Both are
/// cancelled by [`crate::appliance::Appliance::shutdown`].
#[derive(Clone, Default)]
pub struct Stop {
    pub shutdown: CancellationToken,
    pub drained: CancellationToken,
    /// The longest the OLED waits for `drained` (the appliance's shutdown grace, and a bit).
    pub grace: Duration,
}

/// What the OLED loop needs to know about its panel.
#[derive(Debug, Clone, Copy)]
pub struct OledSettings {
    pub size: PanelSize,
    pub off_hours: Option<glow::OffHours>,
}

/// Drives the OLED until shutdown, on a blocking thread (a whole frame is ~25 ms of I2C at
/// 400 kHz, by arithmetic): a few times a second it draws the status and sends what changed
/// (`Panel::show`: the heartbeat dot's few bytes once a second). Says STOPPING while the
/// appliance drains, then blank and off.
pub fn run_oled<I: embedded_hal::i2c::I2c + Send + 'static>(
    mut open: OpenPanel<I>,
    settings: OledSettings,
    mut status: watch::Receiver<Arc<Status>>,
    shared: SharedIndicatorStatus,
    stop: Stop,
) {
    let started = Instant::now();
    let mut shown = Shown::default();
    let mut panel: Option<Panel<I>> = None;
    let mut next_open = Instant::now();
    loop {
        if stop.shutdown.is_cancelled() {
            break;
        }
        // The status model is gone without a shutdown: the runtime is going away and would
        // otherwise wait for this thread forever.
        if status.has_changed().is_err() {
            break;
        }
        if panel.is_none() && Instant::now() >= next_open {
            match open() {
                Ok(p) => {
                    panel = Some(p);
                    shown = Shown::default();
                    note(&shared, |s| s.oled_problem = None);
                }
                Err(e) => {
                    next_open = Instant::now() + REOPEN_EVERY;
                    note(&shared, |s| s.oled_problem = Some(e.to_string()));
                }
            }
        }
        if let Some(p) = panel.as_mut() {
            let current = status.borrow_and_update().clone();
            let now = SystemTime::now();
            let tick = screen::Tick::after(started.elapsed());
            let glow = glow::glow(&current, now, settings.off_hours);
            let frame = screen::render(&current, settings.size, tick, now);
            match shown.update(p, glow, frame) {
                Ok(Some(glow)) => note(&shared, |s| s.oled_glow = glow),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "OLED; opening it again in 30 s");
                    note(&shared, |s| s.oled_problem = Some(e.to_string()));
                    panel = None;
                    next_open = Instant::now() + REOPEN_EVERY;
                }
            }
        }
        std::thread::sleep(LOOK_EVERY);
    }
    let Some(p) = panel.as_mut() else { return };
    if stop.shutdown.is_cancelled() {
        let _ = shown.update(
            p,
            glow::Glow::Normal,
            screen::stopping(settings.size, screen::Tick::default()),
        );
        let until = Instant::now() + stop.grace;
        while !stop.drained.is_cancelled() && Instant::now() < until {
            std::thread::sleep(LOOK_EVERY / 5);
        }
    }
    // Dark, so a stopped appliance (or a halted Pi, whose 3.3 V rail stays up) never shows
    // a mode it is no longer in.
    let _ = p.show(&Frame::new(128, settings.size.height()));
    let _ = p.set_on(false);
}

/// What the panel shows now, so only changes go over the bus. Display on/off and contrast
/// are separate settings of the panel: dark keeps the contrast it had.
struct Shown {
    glow: Option<glow::Glow>,
    on: bool,
    dimmed: bool,
    frame: Option<Frame>,
}

impl Default for Shown {
    /// A freshly opened panel: on, at normal brightness, cleared.
    fn default() -> Self {
        Self {
            glow: None,
            on: true,
            dimmed: false,
            frame: None,
        }
    }
}

impl Shown {
    /// Brings the panel to `glow` and `frame`; returns the glow when it changed.
    fn update<I: embedded_hal::i2c::I2c>(
        &mut self,
        panel: &mut Panel<I>,
        glow: glow::Glow,
        frame: Frame,
    ) -> Result<Option<glow::Glow>, PanelError> {
        use glow::Glow;
        let on = glow != Glow::Off;
        if on {
            // The picture first, so turning on never flashes the stale one.
            if self.frame.as_ref() != Some(&frame) {
                panel.show(&frame)?;
                self.frame = Some(frame);
            }
            let dim = glow == Glow::Dim;
            if dim != self.dimmed {
                panel.set_dim(dim)?;
                self.dimmed = dim;
            }
        }
        if on != self.on {
            panel.set_on(on)?;
            self.on = on;
        }
        let changed = self.glow != Some(glow);
        self.glow = Some(glow);
        Ok(changed.then_some(glow))
    }
}

/// Starts the LED and OLED as the config says. Returns the simulated OLED's bus, if that is
/// the one configured, for the status page's `/oled.png`.
pub fn start(
    config: &crate::config::Config,
    status: &watch::Receiver<Arc<Status>>,
    shared: &SharedIndicatorStatus,
    tracker: &tokio_util::task::TaskTracker,
    stop: &Stop,
) -> Option<SimulatedOled> {
    use crate::config::{LedBackend, OledBackend};
    use backends::{GpioLed, Reopening, SimulatedLed, SysfsLed};

    let c = config.led.clone();
    let (name, led): (String, Option<Box<dyn Led>>) = match c.backend {
        LedBackend::Off => ("off".into(), None),
        LedBackend::Simulated => ("simulated".into(), Some(Box::new(SimulatedLed))),
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
            stop.shutdown.clone(),
        ));
    }

    let o = config.oled.clone();
    let settings = OledSettings {
        size: o.size,
        off_hours: o.off_hours_utc,
    };
    let (status, shared, stop) = (status.clone(), shared.clone(), stop.clone());
    match o.backend {
        OledBackend::Off => {
            note(&shared, |s| s.oled = "off".into());
            None
        }
        #[cfg(feature = "demo")]
        OledBackend::Simulated => {
            note(&shared, |s| s.oled = format!("simulated {}", o.size.name()));
            let bus = ssd1306_model::ModelBus::new(ssd1306_model::Ssd1306Model::new(
                o.address,
                o.size.height(),
            ));
            let panel_bus = bus.clone();
            let open: OpenPanel<ssd1306_model::ModelBus> =
                Box::new(move || Panel::open(panel_bus.clone(), o.address, o.size, o.rotate_180));
            tracker.spawn_blocking(move || run_oled(open, settings, status, shared, stop));
            Some(bus)
        }
        // The configuration refuses it in such a build; shown plainly should that change.
        #[cfg(not(feature = "demo"))]
        OledBackend::Simulated => {
            note(&shared, |s| s.oled = "simulated: not in this build".into());
            None
        }
        OledBackend::I2c => {
            note(&shared, |s| {
                s.oled = format!(
                    "{} {} at {:#04x}",
                    o.size.name(),
                    o.bus.display(),
                    o.address
                );
            });
            let open: OpenPanel<linux_embedded_hal::I2cdev> = Box::new(move || {
                let bus =
                    linux_embedded_hal::I2cdev::new(&o.bus).map_err(|e| PanelError::Open {
                        path: o.bus.clone(),
                        message: e.to_string(),
                    })?;
                Panel::open(bus, o.address, o.size, o.rotate_180)
            });
            tracker.spawn_blocking(move || run_oled(open, settings, status, shared, stop));
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SwitchOffError {
    #[error("status LED: {0}")]
    Led(#[from] backends::LedError),
    #[error("OLED: {0}")]
    Oled(#[from] PanelError),
}

/// Switches the configured LED off and the OLED dark, once, outside a running appliance
/// (`pi-failover indicators-off`). Simulated and absent ones need nothing.
pub fn switch_off(config: &crate::config::Config) -> Vec<SwitchOffError> {
    use crate::config::{LedBackend, OledBackend};
    let mut problems = Vec::new();
    let led = &config.led;
    let led_off = match led.backend {
        LedBackend::Sysfs => backends::SysfsLed::open(led.path.clone(), led.active_low)
            .and_then(|mut l| l.set(false)),
        LedBackend::Gpio => {
            backends::GpioLed::open(led.gpio, led.active_low).and_then(|mut l| l.set(false))
        }
        LedBackend::Simulated | LedBackend::Off => Ok(()),
    };
    if let Err(e) = led_off {
        problems.push(e.into());
    }
    let o = &config.oled;
    if o.backend == OledBackend::I2c {
        let dark = linux_embedded_hal::I2cdev::new(&o.bus)
            .map_err(|e| PanelError::Open {
                path: o.bus.clone(),
                message: e.to_string(),
            })
            .and_then(|bus| Panel::open(bus, o.address, o.size, o.rotate_180))
            .and_then(|mut panel| panel.set_on(false));
        if let Err(e) = dark {
            problems.push(e.into());
        }
    }
    problems
}

#[cfg(all(test, feature = "demo"))]
mod tests {
    use super::glow::Glow;
    use super::ssd1306_model::{ModelBus, Ssd1306Model};
    use super::*;

    #[test]
    fn a_panel_dimmed_then_dark_comes_back_at_normal_brightness() {
        // STANDBY for hours (dim), then off hours (dark), then a reader at night (LIVE).
        let bus = ModelBus::new(Ssd1306Model::new(0x3C, 64));
        let mut panel = Panel::open(bus.clone(), 0x3C, PanelSize::W128H64, false).expect("open");
        let normal = bus.model().contrast;
        let mut picture = Frame::new(128, 64);
        picture.set(10, 10, true);
        let mut shown = Shown::default();
        let mut go = |glow| {
            shown
                .update(&mut panel, glow, picture.clone())
                .expect("update")
        };

        assert_eq!(
            go(Glow::Normal),
            Some(Glow::Normal),
            "the first glow is reported"
        );
        assert_eq!(go(Glow::Normal), None, "no change, nothing reported");
        go(Glow::Dim);
        assert!(bus.model().contrast < normal);
        go(Glow::Off);
        assert!(!bus.model().display_on);
        go(Glow::Normal);
        let model = bus.model();
        assert!(model.display_on);
        assert_eq!(model.contrast, normal, "not left at the dim contrast");
        assert_eq!(model.glass().lit(), 1);
    }
}
