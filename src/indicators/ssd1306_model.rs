//! A software SSD1306 on an I2C bus: it decodes the command and data stream a driver sends
//! (control bytes, addressing modes, column and page windows, remaps, multiplex, COM pins,
//! contrast, display on/off, charge pump) into display RAM, and says what the glass shows.
//!
//! The demo's simulated OLED and the tests drive the real `ssd1306` crate into it, so what
//! `/oled.png` shows and what the tests compare is the picture the driver's bytes make, not
//! the picture we meant to draw. It also notices what a person would see go wrong: a panel
//! configured for the wrong height (every other line garbled), scrolling, unknown commands.

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

use super::frame::Frame;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Addressing {
    Horizontal,
    Vertical,
    Page,
}

/// The model's bus error: what `linux-embedded-hal` reports for the same fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelError(pub ErrorKind);

impl embedded_hal::i2c::Error for ModelError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

#[derive(Debug, Clone)]
pub struct Ssd1306Model {
    address: u8,
    height: u32,
    ram: [[u8; 128]; 8],
    mode: Addressing,
    columns: (u8, u8),
    pages: (u8, u8),
    column: u8,
    page: u8,
    pending: Vec<u8>,
    pub display_on: bool,
    pub contrast: u8,
    pub charge_pump: bool,
    segment_remap: bool,
    com_reversed: bool,
    multiplex: u8,
    com_pins: u8,
    start_line: u8,
    offset: u8,
    inverted: bool,
    entire_on: bool,
    scrolling: bool,
    /// Configuration problems seen, in words.
    pub problems: Vec<String>,
    /// Display RAM bytes received: what the bus carried for pictures.
    pub data_bytes: usize,
}

impl Ssd1306Model {
    /// A panel of `height` rows (64 or 32) answering at `address` (0x3C or 0x3D), as it is at
    /// power-on: display off, RAM full of noise (here: a checkerboard, so a missing clear shows).
    pub fn new(address: u8, height: u32) -> Self {
        let mut ram = [[0u8; 128]; 8];
        for (p, page) in ram.iter_mut().enumerate() {
            for (c, byte) in page.iter_mut().enumerate() {
                *byte = if (p + c) % 2 == 0 { 0xAA } else { 0x55 };
            }
        }
        Self {
            address,
            height,
            ram,
            mode: Addressing::Page,
            columns: (0, 127),
            pages: (0, 7),
            column: 0,
            page: 0,
            pending: Vec::new(),
            display_on: false,
            contrast: 0x7F,
            charge_pump: false,
            segment_remap: false,
            com_reversed: false,
            multiplex: 63,
            com_pins: 0x12,
            start_line: 0,
            offset: 0,
            inverted: false,
            entire_on: false,
            scrolling: false,
            problems: Vec::new(),
            data_bytes: 0,
        }
    }

    /// What the glass shows. A module's rows and columns are wired reversed, so the upright
    /// picture is the one sent with segment remap (A1) and COM scan decrement (C8) — what
    /// every driver sends for "no rotation".
    pub fn glass(&self) -> Frame {
        let mut frame = Frame::new(128, self.height);
        if !self.display_on || !self.charge_pump {
            return frame;
        }
        let rows = u32::from(self.multiplex) + 1;
        for y in 0..self.height.min(rows) {
            let com = if self.com_reversed { y } else { rows - 1 - y };
            let ram_row = (com + u32::from(self.start_line) + u32::from(self.offset)) % 64;
            for x in 0..128u32 {
                let column = if self.segment_remap { x } else { 127 - x } as usize;
                let byte = self.ram[(ram_row / 8) as usize][column];
                let lit = self.entire_on || (byte >> (ram_row % 8)) & 1 == 1;
                frame.set(x, y, lit != self.inverted);
            }
        }
        frame
    }

    fn receive(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            let control = bytes[i];
            i += 1;
            let continuation = control & 0x80 != 0;
            let data = control & 0x40 != 0;
            if control & 0x3F != 0 {
                self.problems
                    .push(format!("control byte {control:#04x} has low bits set"));
            }
            if continuation {
                // Co = 1: one byte, then another control byte.
                if let Some(&b) = bytes.get(i) {
                    self.byte(b, data);
                    i += 1;
                }
            } else {
                for &b in &bytes[i..] {
                    self.byte(b, data);
                }
                return;
            }
        }
    }

    fn byte(&mut self, b: u8, data: bool) {
        if data {
            self.data_bytes += 1;
            self.data(b);
        } else {
            self.pending.push(b);
            if self.pending.len() > args(self.pending[0]) {
                let command = std::mem::take(&mut self.pending);
                self.command(&command);
            }
        }
    }

    fn data(&mut self, b: u8) {
        self.ram[usize::from(self.page & 7)][usize::from(self.column & 127)] = b;
        match self.mode {
            Addressing::Horizontal => {
                self.column += 1;
                if self.column > self.columns.1 {
                    self.column = self.columns.0;
                    self.page = if self.page >= self.pages.1 {
                        self.pages.0
                    } else {
                        self.page + 1
                    };
                }
            }
            Addressing::Vertical => {
                self.page += 1;
                if self.page > self.pages.1 {
                    self.page = self.pages.0;
                    self.column = if self.column >= self.columns.1 {
                        self.columns.0
                    } else {
                        self.column + 1
                    };
                }
            }
            Addressing::Page => self.column = (self.column + 1) & 127,
        }
    }

    fn command(&mut self, c: &[u8]) {
        let arg = |i: usize| c.get(i).copied().unwrap_or(0);
        match c[0] {
            0xAE => self.display_on = false,
            0xAF => {
                self.display_on = true;
                self.check_panel();
            }
            0x81 => self.contrast = arg(1),
            0x20 => {
                self.mode = match arg(1) & 3 {
                    0 => Addressing::Horizontal,
                    1 => Addressing::Vertical,
                    _ => Addressing::Page,
                }
            }
            0x21 => {
                self.columns = (arg(1) & 127, arg(2) & 127);
                self.column = self.columns.0;
            }
            0x22 => {
                self.pages = (arg(1) & 7, arg(2) & 7);
                self.page = self.pages.0;
            }
            0xA0 => self.segment_remap = false,
            0xA1 => self.segment_remap = true,
            0xC0 => self.com_reversed = false,
            0xC8 => self.com_reversed = true,
            0xA4 => self.entire_on = false,
            0xA5 => self.entire_on = true,
            0xA6 => self.inverted = false,
            0xA7 => self.inverted = true,
            0xA8 => self.multiplex = arg(1) & 63,
            0xD3 => self.offset = arg(1) & 63,
            0xDA => self.com_pins = arg(1),
            0x8D => self.charge_pump = arg(1) & 0x04 != 0,
            0x2E => self.scrolling = false,
            0x2F => {
                self.scrolling = true;
                self.problems.push("scrolling switched on".into());
            }
            0x40..=0x7F => self.start_line = c[0] & 63,
            0xB0..=0xB7 => self.page = c[0] & 7,
            0x00..=0x0F => self.column = (self.column & 0xF0) | (c[0] & 0x0F),
            0x10..=0x1F => self.column = ((c[0] & 0x07) << 4) | (self.column & 0x0F),
            // Clock, precharge, VCOMH, IREF, scroll setup, NOP: no effect on the picture.
            0xD5 | 0xD9 | 0xDB | 0xAD | 0x26 | 0x27 | 0x29 | 0x2A | 0xA3 | 0xE3 => {}
            other => self.problems.push(format!("unknown command {other:#04x}")),
        }
    }

    /// A display switched on with settings that do not fit this panel.
    fn check_panel(&mut self) {
        if u32::from(self.multiplex) + 1 != self.height {
            self.problems.push(format!(
                "multiplex ratio {} does not match the panel's {} rows",
                u32::from(self.multiplex) + 1,
                self.height
            ));
        }
        let expected = if self.height == 64 { 0x12 } else { 0x02 };
        if self.com_pins != expected {
            self.problems.push(format!(
                "COM pins {:#04x} for a {}-row panel (expected {expected:#04x}): every other line garbled",
                self.com_pins, self.height
            ));
        }
        if !self.charge_pump {
            self.problems
                .push("display on with the charge pump off: the panel stays dark".into());
        }
    }
}

/// Arguments that follow each command byte.
fn args(command: u8) -> usize {
    match command {
        0x81 | 0x20 | 0xA8 | 0xD3 | 0xD5 | 0xD9 | 0xDA | 0xDB | 0x8D | 0xAD => 1,
        0x21 | 0x22 | 0xA3 => 2,
        0x29 | 0x2A => 5,
        0x26 | 0x27 => 6,
        _ => 0,
    }
}

/// The bus a driver owns, with the panel behind it shared: the driver writes, the status
/// page (`/oled.png`) and the tests look at the glass.
#[derive(Debug, Clone)]
pub struct ModelBus(std::sync::Arc<std::sync::Mutex<Ssd1306Model>>);

impl ModelBus {
    pub fn new(model: Ssd1306Model) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(model)))
    }

    /// The panel as it is now (a copy).
    pub fn model(&self) -> Ssd1306Model {
        match self.0.lock() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl ErrorType for ModelBus {
    type Error = ModelError;
}

impl I2c for ModelBus {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), Self::Error> {
        let mut model = self.0.lock().map_err(|_| ModelError(ErrorKind::Other))?;
        model.transaction(address, operations)
    }
}

impl Ssd1306Model {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ModelError> {
        if address != self.address {
            return Err(ModelError(ErrorKind::NoAcknowledge(
                NoAcknowledgeSource::Address,
            )));
        }
        for op in operations {
            match op {
                Operation::Write(bytes) => self.receive(bytes),
                // The SSD1306 over I2C is write-only.
                Operation::Read(buf) => buf.fill(0),
            }
        }
        Ok(())
    }
}
