//! The OLED's screens: a pure function of the status (and of the burn-in shift), drawn with
//! embedded-graphics into a [`Frame`]. The real panel, the simulated one and the docs' PNGs
//! all show what this draws.

use std::time::SystemTime;

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

use super::frame::Frame;
use crate::live::mode::Mode;
use crate::status::Status;
use crate::status_page::html::{bytes, duration};

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
}

/// The four positions the content moves through, one step a minute, so no pixel is lit
/// for years on end.
pub fn shift(phase: u64) -> (i32, i32) {
    match phase % 4 {
        0 => (0, 0),
        1 => (1, 0),
        2 => (1, 1),
        _ => (0, 1),
    }
}

pub fn render(status: &Status, size: PanelSize, phase: u64, now: SystemTime) -> Frame {
    let mut frame = Frame::new(128, size.height());
    let (dx, dy) = shift(phase);
    let mut pen = Pen {
        frame: &mut frame,
        dx,
        dy,
    };
    let for_how_long = duration(
        now.duration_since(status.mode_since)
            .map_or(0, |d| d.as_secs()),
    );
    let ip = status
        .system
        .addresses
        .first()
        .map_or_else(|| "no address".to_owned(), ToString::to_string);
    match (status.mode, size) {
        (Mode::Live | Mode::Draining, PanelSize::W128H64) => {
            pen.banner(status.mode.as_str());
            pen.small(0, 25, &format!("{} readers/min", status.traffic.readers_1m));
            pen.small(
                0,
                36,
                &format!("{}/s sent", bytes(status.traffic.bytes_per_second as u64)),
            );
            pen.small(0, 47, &format!("for {for_how_long}"));
        }
        (Mode::Live | Mode::Draining, PanelSize::W128H32) => {
            pen.banner(status.mode.as_str());
            pen.small(
                0,
                22,
                &format!("{} readers/min {}", status.traffic.readers_1m, ip),
            );
        }
        (Mode::Standby, PanelSize::W128H64) => {
            pen.small(0, 0, &clip(&status.system.hostname, 21));
            pen.big(0, 11, "STANDBY");
            pen.small(0, 32, &sync_line(status, now));
            pen.small(
                0,
                43,
                &match status.site.generation.as_deref() {
                    Some(generation) => format!("gen {generation}"),
                    None => format!("{} files", status.site.files),
                },
            );
            pen.small(0, 53, &ip);
        }
        (Mode::Standby, PanelSize::W128H32) => {
            pen.big(0, 0, "STANDBY");
            pen.small(0, 21, &ip);
        }
        (Mode::Attention | Mode::Error, PanelSize::W128H64) => {
            pen.banner(status.mode.as_str());
            for (i, line) in wrap(&status.reason, 21).iter().take(3).enumerate() {
                pen.small(0, 25 + 11 * i as i32, line);
            }
        }
        (Mode::Attention | Mode::Error, PanelSize::W128H32) => {
            pen.banner(status.mode.as_str());
            pen.small(0, 22, &clip(&status.reason, 21));
        }
    }
    frame
}

fn sync_line(status: &Status, now: SystemTime) -> String {
    match status.site.sync.as_ref() {
        None => "site from disk".to_owned(),
        Some(sync) => match (sync.last_error.as_ref(), sync.last_success) {
            (Some(_), _) => format!("SYNC FAILED x{}", sync.consecutive_failures),
            (None, Some(at)) => format!(
                "sync ok {} ago",
                duration(now.duration_since(at).map_or(0, |d| d.as_secs()))
            ),
            (None, None) => "first sync...".to_owned(),
        },
    }
}

struct Pen<'a> {
    frame: &'a mut Frame,
    dx: i32,
    dy: i32,
}

impl Pen<'_> {
    fn text(&mut self, x: i32, y: i32, text: &str, font: &MonoFont<'_>, color: BinaryColor) {
        let style = MonoTextStyle::new(font, color);
        let _ = Text::with_baseline(
            text,
            Point::new(x + 1 + self.dx, y + self.dy),
            style,
            Baseline::Top,
        )
        .draw(self.frame);
    }

    fn small(&mut self, x: i32, y: i32, text: &str) {
        self.text(x, y, text, &FONT_6X10, BinaryColor::On);
    }

    fn big(&mut self, x: i32, y: i32, text: &str) {
        self.text(x, y, text, &FONT_10X20, BinaryColor::On);
    }

    /// The mode word, dark on a lit band across the top: readable from across the room.
    fn banner(&mut self, word: &str) {
        let band = Rectangle::new(Point::new(self.dx, self.dy), Size::new(127, 21));
        let _ = band
            .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
            .draw(self.frame);
        self.text(3, 1, word, &FONT_10X20, BinaryColor::Off);
    }
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Words into lines of at most `width` characters (longer words are cut).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let word = clip(word, width);
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_wrap_at_word_boundaries() {
        assert_eq!(
            wrap("the primary is down but no readers have arrived", 21),
            ["the primary is down", "but no readers have", "arrived"]
        );
    }

    #[test]
    fn the_content_moves_through_four_positions() {
        let positions: Vec<_> = (0..8).map(shift).collect();
        assert_eq!(positions[..4], positions[4..]);
        let distinct: std::collections::HashSet<_> = positions.iter().collect();
        assert_eq!(distinct.len(), 4);
    }
}
