//! Where the LED pattern and the OLED picture go: the Pi's hardware, or simulations the demo
//! shows on its status page and the tests read.

use std::path::PathBuf;

/// An LED that can be switched.
pub trait Led: Send {
    fn set(&mut self, on: bool) -> Result<(), LedError>;
}

#[derive(Debug, thiserror::Error)]
pub enum LedError {
    #[error("{path}: {source} (Fix: check the LED's name under /sys/class/leds, and that the appliance may write it)")]
    Sysfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("GPIO {pin}: {message} (Fix: check the pin number, and access to /dev/gpiomem)")]
    Gpio { pin: u8, message: String },
    /// The last attempt failed this way; the next one comes shortly.
    #[error("{0}")]
    Pending(String),
}

/// A Linux LED-class device: the board's ACT LED, or one made with
/// `dtoverlay=gpio-led,gpio=17,label=status`. The kernel trigger is switched to `none` so the
/// LED is ours.
pub(crate) struct SysfsLed {
    dir: PathBuf,
    active_low: bool,
}

impl SysfsLed {
    pub fn open(dir: PathBuf, active_low: bool) -> Result<Self, LedError> {
        let trigger = dir.join("trigger");
        std::fs::write(&trigger, "none").map_err(|source| LedError::Sysfs {
            path: trigger,
            source,
        })?;
        Ok(Self { dir, active_low })
    }
}

impl Led for SysfsLed {
    fn set(&mut self, on: bool) -> Result<(), LedError> {
        let path = self.dir.join("brightness");
        let value = if on == self.active_low { "0" } else { "1" };
        std::fs::write(&path, value).map_err(|source| LedError::Sysfs { path, source })
    }
}

/// An LED on a GPIO pin through rppal (memory-mapped GPIO; works without any overlay).
pub(crate) struct GpioLed {
    pin: rppal::gpio::OutputPin,
    active_low: bool,
}

impl GpioLed {
    pub fn open(pin: u8, active_low: bool) -> Result<Self, LedError> {
        let gpio = rppal::gpio::Gpio::new().map_err(|e| LedError::Gpio {
            pin,
            message: e.to_string(),
        })?;
        let mut pin = gpio
            .get(pin)
            .map_err(|e| LedError::Gpio {
                pin,
                message: e.to_string(),
            })?
            .into_output();
        // Off when the appliance exits, however it exits short of SIGKILL.
        pin.set_reset_on_drop(true);
        Ok(Self { pin, active_low })
    }
}

impl Led for GpioLed {
    fn set(&mut self, on: bool) -> Result<(), LedError> {
        if on == self.active_low {
            self.pin.set_low();
        } else {
            self.pin.set_high();
        }
        Ok(())
    }
}

/// The demo's LED: accepts the pattern and lights nothing. The status page says the pattern
/// in words (a pure function of the mode); a page refreshed every 5 s could not show a blink.
#[derive(Clone, Copy, Default)]
pub(crate) struct SimulatedLed;

impl Led for SimulatedLed {
    fn set(&mut self, _on: bool) -> Result<(), LedError> {
        Ok(())
    }
}

/// How long a missing or failing LED or OLED waits before it is opened again.
pub(crate) const REOPEN_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Opens its LED on first use and again after a failure (at most every 30 s), so a missing
/// LED at start — or one that appears later — needs no restart.
pub(crate) struct Reopening {
    open: Box<dyn FnMut() -> Result<Box<dyn Led>, LedError> + Send>,
    led: Option<Box<dyn Led>>,
    next_try: std::time::Instant,
    last_error: Option<String>,
}

impl Reopening {
    pub fn new(open: Box<dyn FnMut() -> Result<Box<dyn Led>, LedError> + Send>) -> Self {
        Self {
            open,
            led: None,
            next_try: std::time::Instant::now(),
            last_error: None,
        }
    }
}

impl Led for Reopening {
    fn set(&mut self, on: bool) -> Result<(), LedError> {
        if self.led.is_none() {
            if std::time::Instant::now() < self.next_try {
                return Err(LedError::Pending(
                    self.last_error.clone().unwrap_or_default(),
                ));
            }
            match (self.open)() {
                Ok(led) => {
                    self.led = Some(led);
                    self.last_error = None;
                }
                Err(e) => {
                    self.next_try = std::time::Instant::now() + REOPEN_EVERY;
                    self.last_error = Some(e.to_string());
                    return Err(e);
                }
            }
        }
        let result = match self.led.as_mut() {
            Some(led) => led.set(on),
            None => Ok(()),
        };
        if let Err(e) = &result {
            self.last_error = Some(e.to_string());
            self.led = None;
            self.next_try = std::time::Instant::now() + REOPEN_EVERY;
        }
        result
    }
}
