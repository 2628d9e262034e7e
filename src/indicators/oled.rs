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
pub enum Panel<I> {
    Tall(Driver<I, DisplaySize128x64>),
    Short(Driver<I, DisplaySize128x32>),
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
        let mut panel = match size {
            PanelSize::W128H64 => Panel::Tall(
                Ssd1306::new(interface, DisplaySize128x64, rotation).into_buffered_graphics_mode(),
            ),
            PanelSize::W128H32 => Panel::Short(
                Ssd1306::new(interface, DisplaySize128x32, rotation).into_buffered_graphics_mode(),
            ),
        };
        panel.init()?;
        panel.show(&Frame::new(128, size.height()))?;
        Ok(panel)
    }

    fn init(&mut self) -> Result<(), PanelError> {
        match self {
            Panel::Tall(d) => d.init(),
            Panel::Short(d) => d.init(),
        }
        .map_err(PanelError::Display)
    }

    /// Sends the whole frame (the driver only sends the rows that changed since the last one).
    pub fn show(&mut self, frame: &Frame) -> Result<(), PanelError> {
        fn draw<I: embedded_hal::i2c::I2c, S: DisplaySize>(
            d: &mut Driver<I, S>,
            frame: &Frame,
        ) -> Result<(), DisplayError> {
            d.clear_buffer();
            for y in 0..frame.height() {
                for x in 0..frame.width() {
                    if frame.get(x, y) {
                        d.set_pixel(x, y, true);
                    }
                }
            }
            d.flush()
        }
        match self {
            Panel::Tall(d) => draw(d, frame),
            Panel::Short(d) => draw(d, frame),
        }
        .map_err(PanelError::Display)
    }

    /// Dim for a long standby; normal otherwise.
    pub fn set_dim(&mut self, dim: bool) -> Result<(), PanelError> {
        let level = if dim {
            Brightness::DIMMEST
        } else {
            Brightness::NORMAL
        };
        match self {
            Panel::Tall(d) => d.set_brightness(level),
            Panel::Short(d) => d.set_brightness(level),
        }
        .map_err(PanelError::Display)
    }

    /// Display off: nothing lit, RAM kept. Sent on exit so a dead process never leaves "LIVE".
    pub fn set_on(&mut self, on: bool) -> Result<(), PanelError> {
        match self {
            Panel::Tall(d) => d.set_display_on(on),
            Panel::Short(d) => d.set_display_on(on),
        }
        .map_err(PanelError::Display)
    }
}
