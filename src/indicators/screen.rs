//! The OLED's screens: a pure function of the status and of the screen's slow clock (burn-in
//! position, page, heartbeat), drawn with embedded-graphics into a [`Frame`]. The real panel,
//! the simulated one and the docs' PNGs all show what this draws.
//!
//! Two steps: [`compose`] decides the words (tested as words), [`draw`] puts them on pixels
//! (tested as golden pictures).

use std::time::{Duration, SystemTime};

use embedded_graphics::mono_font::ascii::{FONT_10X20, FONT_6X10};
use embedded_graphics::mono_font::{MonoFont, MonoTextStyle};
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};
use embedded_graphics::text::{Baseline, Text};

use super::frame::Frame;
use crate::format::{bytes, count, duration};
use crate::live::mode::Mode;
use crate::status::Status;

pub use crate::config::PanelSize;

/// How long each page of a screen with more to say than fits stays up.
pub(crate) const PAGE_EVERY: Duration = Duration::from_secs(4);
/// How often the content moves to its next burn-in position.
pub(crate) const SHIFT_EVERY: Duration = Duration::from_secs(60);

/// The screen's slow clock: where the content sits, which page is up, and the heartbeat dot
/// that blinks once a second so a frozen appliance never looks like a working one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    pub shift: u64,
    pub page: u64,
    pub heartbeat: bool,
}

impl Tick {
    /// The clock after the panel has been running for `uptime`.
    pub fn after(uptime: Duration) -> Tick {
        let secs = uptime.as_secs();
        Tick {
            shift: secs / SHIFT_EVERY.as_secs(),
            page: secs / PAGE_EVERY.as_secs(),
            heartbeat: secs % 2 == 1,
        }
    }
}

/// The four positions the content moves through, one step a minute, so no pixel is lit
/// for years on end.
pub(crate) fn shift(phase: u64) -> (i32, i32) {
    match phase % 4 {
        0 => (0, 0),
        1 => (1, 0),
        2 => (1, 1),
        _ => (0, 1),
    }
}

/// Characters of a small-font line: 21 fit across (6 px each), the last two columns are
/// the heartbeat dot's.
const LINE: usize = 20;

/// The words of one screen, before they become pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The mode word, dark on a lit band across the top.
    pub banner: Option<String>,
    /// Small lines above the big word (the host name).
    pub header: Option<String>,
    /// A big word without a band (STANDBY: calm, not alarming).
    pub big: Option<String>,
    /// The small lines under the band or the big word: this page's.
    pub lines: Vec<String>,
    /// "page of pages" when there is more than one.
    pub page: Option<(usize, usize)>,
}

/// What the screen says for this status, on this page.
pub(crate) fn compose(status: &Status, size: PanelSize, page: u64, now: SystemTime) -> Layout {
    let for_how_long = duration(
        now.duration_since(status.mode_since)
            .map_or(0, |d| d.as_secs()),
    );
    let ip = status
        .system
        .addresses
        .first()
        .map_or_else(|| "no address".to_owned(), ToString::to_string);
    let site = match status.site.generation.as_deref() {
        Some(generation) => format!("gen {generation}"),
        None => format!("{} files", status.site.files),
    };
    let readers = format!(
        "{}/min",
        count(status.traffic.readers_1m, "reader", "readers")
    );
    let sent = format!("{}/s sent", bytes(status.traffic.bytes_per_second as u64));
    let since = format!("for {for_how_long}");
    let banner = |lines: Vec<String>, per_page: usize| {
        paged(
            Layout {
                banner: Some(status.mode.as_str().to_owned()),
                header: None,
                big: None,
                lines: Vec::new(),
                page: None,
            },
            lines,
            per_page,
            page,
        )
    };
    let tall = size == PanelSize::W128H64;
    match status.mode {
        Mode::Live | Mode::Draining if tall => banner(vec![readers, sent, since], 3),
        Mode::Live | Mode::Draining => banner(vec![readers, format!("{sent} {since}"), ip], 1),
        Mode::Standby => {
            let standby = Layout {
                banner: None,
                header: tall.then(|| clip(&status.system.hostname, LINE)),
                big: Some("STANDBY".to_owned()),
                lines: Vec::new(),
                page: None,
            };
            let lines = vec![sync_line(status, now), site, ip];
            paged(standby, lines, if tall { 3 } else { 1 }, page)
        }
        Mode::Attention | Mode::Error => {
            let lines = wrap(&status.reason, LINE);
            banner(lines, if tall { 3 } else { 1 })
        }
    }
}

/// Fills `layout` with the `page`th group of `per_page` lines (pages cycle).
fn paged(mut layout: Layout, lines: Vec<String>, per_page: usize, page: u64) -> Layout {
    let pages = lines.len().div_ceil(per_page).max(1);
    let index = (page % pages as u64) as usize;
    layout.lines = lines
        .iter()
        .skip(index * per_page)
        .take(per_page)
        .map(|line| clip(line, LINE))
        .collect();
    layout.page = (pages > 1).then_some((index + 1, pages));
    layout
}

/// The screen for this status at this tick.
pub fn render(status: &Status, size: PanelSize, tick: Tick, now: SystemTime) -> Frame {
    draw(&compose(status, size, tick.page, now), size, tick)
}

/// Shown while the appliance drains its connections on the way down; the panel goes dark
/// when it has stopped.
pub fn stopping(size: PanelSize, tick: Tick) -> Frame {
    let layout = Layout {
        banner: Some("STOPPING".to_owned()),
        header: None,
        big: None,
        lines: vec![if size == PanelSize::W128H64 {
            "finishing requests".to_owned()
        } else {
            "not serving".to_owned()
        }],
        page: None,
    };
    draw(&layout, size, tick)
}

/// Puts a layout on pixels: the band or the big word on top, the small lines under it.
pub(crate) fn draw(layout: &Layout, size: PanelSize, tick: Tick) -> Frame {
    let mut frame = Frame::new(128, size.height());
    let (dx, dy) = shift(tick.shift);
    let mut pen = Pen {
        frame: &mut frame,
        dx,
        dy,
    };
    let tall = size == PanelSize::W128H64;
    let mut y = 0;
    if let Some(word) = &layout.banner {
        pen.banner(word);
        y = if tall { 25 } else { 22 };
    } else {
        if let Some(header) = &layout.header {
            pen.small(0, 0, header);
            y = 11;
        }
        if let Some(big) = &layout.big {
            pen.big(0, y, big);
            y += 21;
        }
    }
    let pitch = if tall && layout.banner.is_none() {
        // STANDBY: hostname, big word and three lines share 64 rows.
        10
    } else {
        11
    };
    for (i, line) in layout.lines.iter().enumerate() {
        pen.small(0, y + pitch * i as i32, line);
    }
    if let Some((page, pages)) = layout.page {
        pen.page_mark(&format!("{page}/{pages}"), layout.banner.is_some());
    }
    if tick.heartbeat {
        // In the bottom-right corner, moving with the content so it wears no pixel alone.
        let h = size.height() as i32;
        let _ = Rectangle::new(Point::new(125 + dx, h - 3 + dy), Size::new(2, 2))
            .into_styled(PrimitiveStyle::with_fill(BinaryColor::On))
            .draw(&mut frame);
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

    /// "2/3" at the top right: dark in the band, lit on a screen without one.
    fn page_mark(&mut self, mark: &str, in_band: bool) {
        let x = 126 - 6 * mark.chars().count() as i32;
        let color = if in_band {
            BinaryColor::Off
        } else {
            BinaryColor::On
        };
        self.text(x, if in_band { 6 } else { 0 }, mark, &FONT_6X10, color);
    }
}

fn clip(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// Words into lines of at most `width` characters; a word longer than a line (a URL) is
/// broken across lines rather than cut, so nothing of the reason is lost.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let chars: Vec<char> = word.chars().collect();
        for piece in chars.chunks(width.max(1)) {
            if !line.is_empty() && line.chars().count() + 1 + piece.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.extend(piece);
        }
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

    fn example(mode: Mode) -> (Status, SystemTime) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        (Status::example(mode, now), now)
    }

    #[test]
    fn a_long_reason_cycles_through_pages_and_says_which_page_is_up() {
        let (mut status, now) = example(Mode::Attention);
        status.reason = "the primary https://www.example.com/up.txt answered 503 three times; \
                         DNS still points at the primary; no readers here yet"
            .to_owned();
        let lines = wrap(&status.reason, LINE);
        assert_eq!(lines.len(), 7, "{lines:?}");
        assert_eq!(
            lines.concat().replace(' ', ""),
            status.reason.replace(' ', ""),
            "the URL is broken across lines, not cut"
        );
        let first = compose(&status, PanelSize::W128H64, 0, now);
        let second = compose(&status, PanelSize::W128H64, 1, now);
        let third = compose(&status, PanelSize::W128H64, 2, now);
        assert_eq!(first.lines, lines[..3]);
        assert_eq!(second.lines, lines[3..6]);
        assert_eq!(third.lines, lines[6..]);
        assert_eq!((first.page, third.page), (Some((1, 3)), Some((3, 3))));
        assert_eq!(
            compose(&status, PanelSize::W128H64, 3, now),
            first,
            "pages cycle"
        );

        let short: Vec<_> = (0..7)
            .map(|page| compose(&status, PanelSize::W128H32, page, now).lines)
            .collect();
        assert_eq!(
            short.concat(),
            lines,
            "one line a page on 128x32, nothing lost"
        );
    }

    #[test]
    fn a_reason_that_fits_has_no_page_mark() {
        let (status, now) = example(Mode::Attention);
        let layout = compose(&status, PanelSize::W128H64, 7, now);
        assert_eq!(layout.page, None);
        assert_eq!(layout.lines.concat().len() + 2, status.reason.len());
    }

    #[test]
    fn standby_on_a_short_panel_pages_through_sync_generation_and_address() {
        let (status, now) = example(Mode::Standby);
        let pages: Vec<_> = (0..3)
            .map(|page| compose(&status, PanelSize::W128H32, page, now))
            .collect();
        assert!(pages[0].lines[0].starts_with("sync ok"), "{:?}", pages[0]);
        assert!(pages[1].lines[0].starts_with("gen "), "{:?}", pages[1]);
        assert_eq!(pages[2].lines[0], status.system.addresses[0].to_string());
        assert!(pages.iter().all(|p| p.big.as_deref() == Some("STANDBY")));
    }

    #[test]
    fn the_heartbeat_lights_only_the_corner_dot_in_every_mode_and_position() {
        let all = [
            Mode::Live,
            Mode::Draining,
            Mode::Standby,
            Mode::Attention,
            Mode::Error,
        ];
        for (mode, size, shift) in all.iter().flat_map(|m| {
            [PanelSize::W128H64, PanelSize::W128H32]
                .into_iter()
                .flat_map(move |size| (0..4).map(move |shift| (*m, size, shift)))
        }) {
            let (status, now) = example(mode);
            let tick = Tick {
                shift,
                ..Tick::default()
            };
            let still = render(&status, size, tick, now);
            let beat = render(
                &status,
                size,
                Tick {
                    heartbeat: true,
                    ..tick
                },
                now,
            );
            let h = size.height();
            let at = format!("{mode} {size:?} shift {shift}");
            assert_eq!(beat.lit(), still.lit() + 4, "{at}: the dot touches nothing");
            for y in 0..h {
                for x in 0..128 {
                    if beat.get(x, y) != still.get(x, y) {
                        assert!(x >= 125 && y >= h - 3, "{at}: ({x}, {y}) is no corner");
                    }
                }
            }
        }
    }

    #[test]
    fn the_clock_moves_a_page_every_four_seconds_and_beats_every_second() {
        let at = |secs| Tick::after(Duration::from_secs(secs));
        assert_eq!(at(0), Tick::default());
        assert_eq!((at(3).page, at(4).page, at(9).page), (0, 1, 2));
        assert_eq!((at(1).heartbeat, at(2).heartbeat), (true, false));
        assert_eq!((at(59).shift, at(60).shift), (0, 1));
    }

    #[test]
    fn the_content_moves_through_four_positions() {
        let positions: Vec<_> = (0..8).map(shift).collect();
        assert_eq!(positions[..4], positions[4..]);
        let distinct: std::collections::HashSet<_> = positions.iter().collect();
        assert_eq!(distinct.len(), 4);
    }
}
