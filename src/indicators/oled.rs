//! The OLED panel through the `ssd1306` driver, on any embedded-hal I2C bus: `I2cdev` on the
//! Pi, the software SSD1306 in the demo and the tests.

use display_interface::DisplayError;
use ssd1306::mode::BufferedGraphicsMode;
use ssd1306::prelude::*;
use ssd1306::{I2CDisplayInterface, Ssd1306};

use super::frame::Frame;
use super::screen::PanelSize;

type Driver<I, S> = Ssd1306<I2CInterface<I>, S, BufferedGraphicsMode<S>>;

/// One panel of either size; the driver's size is a type, the config's a value. (There is
/// one panel per appliance: the 512 bytes the smaller variant leaves unused don't matter.)
#[allow(clippy::large_enum_variant)]
enum Driven<I> {
    Tall(Driver<I, DisplaySize128x64>),
    Short(Driver<I, DisplaySize128x32>),
}

/// One panel and the picture it shows, so a new picture sends only the pixels that changed
/// (the driver sends the rectangle its changed pixels span: for the heartbeat dot, a few
/// bytes instead of the whole 1 KB).
pub struct Panel<I> {
    driver: Driven<I>,
    shown: Frame,
}

#[derive(Debug, thiserror::Error)]
pub enum PanelError {
    #[error("the OLED does not answer on the I2C bus ({0:?}). Fix: check the wiring (SDA pin 3, SCL pin 5), oled.address (0x3C or 0x3D) and oled.size")]
    Display(DisplayError),
    #[error("{path}: {message}. Fix: enable I2C (dtparam=i2c_arm=on) and let the appliance use the bus, or set [oled] backend = \"off\"")]
    Open {
        path: std::path::PathBuf,
        message: String,
    },
}

impl<I: embedded_hal::i2c::I2c> Panel<I> {
    /// Initialises the panel and clears it at once: its RAM holds noise at power-on.
    pub fn open(
        i2c: I,
        address: u8,
        size: PanelSize,
        rotate_180: bool,
    ) -> Result<Self, PanelError> {
        let interface = I2CDisplayInterface::new_custom_address(i2c, address);
        let rotation = if rotate_180 {
            DisplayRotation::Rotate180
        } else {
            DisplayRotation::Rotate0
        };
        let driver = match size {
            PanelSize::W128H64 => Driven::Tall(
                Ssd1306::new(interface, DisplaySize128x64, rotation).into_buffered_graphics_mode(),
            ),
            PanelSize::W128H32 => Driven::Short(
                Ssd1306::new(interface, DisplaySize128x32, rotation).into_buffered_graphics_mode(),
            ),
        };
        let mut panel = Panel {
            driver,
            shown: Frame::new(128, size.height()),
        };
        panel.init_cleared()?;
        Ok(panel)
    }

    /// Init, then the whole (blank) buffer sent: `clear_buffer` marks all of it changed.
    fn init_cleared(&mut self) -> Result<(), PanelError> {
        fn run<I: embedded_hal::i2c::I2c, S: DisplaySize>(
            d: &mut Driver<I, S>,
        ) -> Result<(), DisplayError> {
            d.init()?;
            d.clear_buffer();
            d.flush()
        }
        match &mut self.driver {
            Driven::Tall(d) => run(d),
            Driven::Short(d) => run(d),
        }
        .map_err(PanelError::Display)
    }

    /// Puts `frame` on the glass, sending only the pixels that differ from the one shown.
    pub fn show(&mut self, frame: &Frame) -> Result<(), PanelError> {
        fn draw<I: embedded_hal::i2c::I2c, S: DisplaySize>(
            d: &mut Driver<I, S>,
            shown: &Frame,
            frame: &Frame,
        ) -> Result<(), DisplayError> {
            for y in 0..frame.height() {
                for x in 0..frame.width() {
                    let lit = frame.get(x, y);
                    if lit != shown.get(x, y) {
                        d.set_pixel(x, y, lit);
                    }
                }
            }
            d.flush()
        }
        match &mut self.driver {
            Driven::Tall(d) => draw(d, &self.shown, frame),
            Driven::Short(d) => draw(d, &self.shown, frame),
        }
        .map_err(PanelError::Display)?;
        self.shown = frame.clone();
        Ok(())
    }

    /// Dim for a long standby; normal otherwise.
    pub fn set_dim(&mut self, dim: bool) -> Result<(), PanelError> {
        let level = if dim {
            Brightness::DIMMEST
        } else {
            Brightness::NORMAL
        };
        match &mut self.driver {
            Driven::Tall(d) => d.set_brightness(level),
            Driven::Short(d) => d.set_brightness(level),
        }
        .map_err(PanelError::Display)
    }

    /// Display off: nothing lit, RAM kept. Sent on exit so a dead process never leaves "LIVE".
    pub fn set_on(&mut self, on: bool) -> Result<(), PanelError> {
        match &mut self.driver {
            Driven::Tall(d) => d.set_display_on(on),
            Driven::Short(d) => d.set_display_on(on),
        }
        .map_err(PanelError::Display)
    }
}
