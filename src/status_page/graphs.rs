//! The history drawn: one SVG per range (the last 24 hours by the minute, the last 30 days
//! by the hour), server-rendered into the page — no JavaScript, no external assets, and it
//! scales to a phone's width.
//!
//! ```text
//!  ▮ ▮    ▮        sync marks: blue the site changed, red a sync failed
//! ┌──────────────┐
//! │ ░░░░readers░ │  LIVE and DRAINING periods shaded green across both plots
//! │ ░░░░bytes░░░ │
//! └──────────────┘
//!  ████████▒▒▒███  the primary: green up, red down, blank not known
//!  24 h ago   now
//! ```
//!
//! Every shaded run carries `data-from`/`data-to` (RFC 3339, the first and last period it
//! covers) so a test, or a curious owner, can read the times off the picture.

use std::fmt::Write as _;

use maud::{html, Markup, PreEscaped};

use crate::format::{bytes, rfc3339};
use crate::history::{hour_start, minute_start, EventKind, Live, Sample};

// A phone shows the 600 units in about 380 pixels: labels of 15 units read as 9–10 px, each
// plot is some 45 px high.
const WIDTH: f64 = 600.0;
const MARKS: (f64, f64) = (0.0, 10.0);
const READERS: (f64, f64) = (14.0, 84.0);
const BYTES: (f64, f64) = (90.0, 160.0);
const PRIMARY: (f64, f64) = (165.0, 175.0);
const HEIGHT: f64 = 196.0;
const FONT: f64 = 15.0;

/// One range to draw.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, Copy)]
pub struct Range {
    /// Seconds per column.
    pub period: u64,
    pub columns: u64,
    pub label: &'static str,
    pub half_label: &'static str,
}

pub const DAY: Range = Range {
    period: 60,
    columns: 24 * 60,
    label: "24 h ago",
    half_label: "12 h ago",
};

pub(crate) const MONTH: Range = Range {
    period: 3600,
    columns: 30 * 24,
    label: "30 d ago",
    half_label: "15 d ago",
};

/// The samples of `range` ending at `now`, with the period being lived included.
pub fn samples(live: &Live, range: Range, now: u64) -> Vec<Sample> {
    let mut out: Vec<Sample> = if range.period == 60 {
        live.history.minutes.iter().cloned().collect()
    } else {
        live.history.hours.iter().cloned().collect()
    };
    let current = if range.period == 60 {
        live.current.clone()
    } else {
        // This hour so far: its written minutes and the one being counted.
        let this_hour = hour_start(now);
        let minutes: Vec<&Sample> = live
            .history
            .minutes
            .iter()
            .filter(|m| hour_start(m.start) == this_hour)
            .filter(|m| live.current.as_ref().is_none_or(|c| c.start != m.start))
            .chain(live.current.iter())
            .collect();
        Sample::hour_of(&minutes)
    };
    if let Some(c) = current {
        out.retain(|s| s.start < c.start);
        out.push(c);
    }
    out
}

/// The SVG of one range.
pub fn render(live: &Live, range: Range, now: u64) -> Markup {
    let samples = samples(live, range, now);
    let end = if range.period == 60 {
        minute_start(now)
    } else {
        hour_start(now)
    };
    let first = end.saturating_sub((range.columns - 1) * range.period);
    let column = WIDTH / range.columns as f64;
    let x = |start: u64| (start.saturating_sub(first) / range.period) as f64 * column;
    let shown: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.start >= first && s.start <= end)
        .collect();
    let peak_readers = shown.iter().map(|s| s.readers).max().unwrap_or(0);
    let peak_bytes = shown.iter().map(|s| s.bytes_sent).max().unwrap_or(0);
    let live_runs = runs(&shown, range.period, |s| s.live_minutes > 0);
    let up_runs = runs(&shown, range.period, |s| {
        s.primary_up_minutes > 0 && s.primary_down_minutes == 0
    });
    let down_runs = runs(&shown, range.period, |s| s.primary_down_minutes > 0);
    let readers = bars(&shown, &x, column, READERS, peak_readers, |s| s.readers);
    let sent = bars(&shown, &x, column, BYTES, peak_bytes, |s| s.bytes_sent);
    let mut failed_marks: Vec<u64> = shown
        .iter()
        .filter(|s| s.sync_failures > 0)
        .map(|s| s.start)
        .collect();
    let mut changed_marks = Vec::new();
    for e in &live.history.events {
        let at = e.at - e.at % range.period;
        if at < first || at > end {
            continue;
        }
        match e.kind {
            EventKind::SiteChanged { .. } => changed_marks.push(at),
            EventKind::SyncFailed { .. } | EventKind::SyncFailing { .. } => failed_marks.push(at),
            _ => {}
        }
    }
    let per = if range.period == 60 { "minute" } else { "hour" };
    let view_box = format!("0 0 {WIDTH} {HEIGHT}");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) width="100%"
            role="img" class="history" data-range=(range.label) {
            title { "Readers and bytes sent, " (range.label) " to now, one column per " (per) }
            rect x="0" y=(READERS.0) width=(WIDTH) height=(BYTES.1 - READERS.0) fill="#fff" stroke="#ccc" stroke-width="0.5" {}
            (PreEscaped(rects("live", &live_runs, &x, column, READERS.0, BYTES.1, "#1b7f3b\" fill-opacity=\"0.18")))
            path class="readers" d=(readers) fill="#1f5fa8" {}
            path class="bytes" d=(sent) fill="#7a4fa0" {}
            (PreEscaped(rects("primary-up", &up_runs, &x, column, PRIMARY.0, PRIMARY.1, "#1b7f3b")))
            (PreEscaped(rects("primary-down", &down_runs, &x, column, PRIMARY.0, PRIMARY.1, "#b00020")))
            (PreEscaped(marks("sync-changed", &changed_marks, &x, column, "#1f5fa8")))
            (PreEscaped(marks("sync-failed", &failed_marks, &x, column, "#b00020")))
            text x="4" y=(READERS.0 + FONT) font-size=(FONT) fill="#1f5fa8" {
                "readers/min, peak " (peak_readers)
            }
            text x="4" y=(BYTES.0 + FONT) font-size=(FONT) fill="#7a4fa0" {
                "sent per " (per) ", peak " (bytes(peak_bytes))
            }
            text x="0" y=(HEIGHT - 3.0) font-size=(FONT) fill="#444" { (range.label) }
            text x=(WIDTH / 2.0) y=(HEIGHT - 3.0) font-size=(FONT) fill="#444" text-anchor="middle" { (range.half_label) }
            text x=(WIDTH) y=(HEIGHT - 3.0) font-size=(FONT) fill="#444" text-anchor="end" { "now" }
        }
    }
}

/// The legend under the graphs, in words and colours.
pub(crate) fn legend() -> Markup {
    html! {
        p.legend {
            span style="background:#1b7f3b33" { "LIVE or DRAINING" } " · "
            span style="color:#1f5fa8" { "■ readers" } " · "
            span style="color:#7a4fa0" { "■ bytes sent" } " · primary "
            span style="color:#1b7f3b" { "■ up" } " "
            span style="color:#b00020" { "■ down" } " · sync "
            span style="color:#1f5fa8" { "▮ site changed" } " "
            span style="color:#b00020" { "▮ failed" }
        }
    }
}

/// One `<rect>` per run, spanning `top..bottom`, with the run's first and last period. Written
/// by hand rather than by `html!` per kind: everything in it is a number, a time or a constant
/// (nothing to escape), and one function is smaller in the Pi's binary than four loops.
fn rects(
    class: &str,
    runs: &[(u64, u64)],
    x: &impl Fn(u64) -> f64,
    column: f64,
    top: f64,
    bottom: f64,
    fill: &str,
) -> String {
    let mut out = String::new();
    for (from, to) in runs {
        let _ = write!(
            out,
            r#"<rect class="{class}" x="{}" y="{}" width="{}" height="{}" fill="{fill}" data-from="{}" data-to="{}"></rect>"#,
            num(x(*from)),
            num(top),
            num(x(*to) - x(*from) + column),
            num(bottom - top),
            rfc3339(*from),
            rfc3339(*to),
        );
    }
    out
}

/// One thin `<rect>` above the plots per sync mark.
fn marks(class: &str, at: &[u64], x: &impl Fn(u64) -> f64, column: f64, fill: &str) -> String {
    let mut out = String::new();
    for t in at {
        let _ = write!(
            out,
            r#"<rect class="{class}" x="{}" y="{}" width="{}" height="{}" fill="{fill}" data-at="{}"></rect>"#,
            num(x(*t)),
            num(MARKS.0),
            num(column.max(1.5)),
            num(MARKS.1 - MARKS.0),
            rfc3339(*t),
        );
    }
    out
}

/// Runs of consecutive periods for which `on` holds: (first start, last start).
fn runs(samples: &[&Sample], period: u64, on: impl Fn(&Sample) -> bool) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in samples.iter().filter(|s| on(s)) {
        match out.last_mut() {
            Some((_, last)) if *last + period == s.start => *last = s.start,
            _ => out.push((s.start, s.start)),
        }
    }
    out
}

/// One bar per period with a value, as a single path (a day of minutes is one element).
fn bars(
    samples: &[&Sample],
    x: &impl Fn(u64) -> f64,
    column: f64,
    (top, bottom): (f64, f64),
    peak: u64,
    value: impl Fn(&Sample) -> u64,
) -> String {
    let mut d = String::new();
    if peak == 0 {
        return d;
    }
    let height = bottom - top;
    for s in samples {
        let v = value(s);
        if v == 0 {
            continue;
        }
        let h = (v as f64 / peak as f64 * height).max(0.8);
        let _ = write!(
            d,
            "M{} {}h{}v{}h-{}z",
            num(x(s.start)),
            num(bottom),
            num(column),
            num(-h),
            num(column)
        );
    }
    d
}

/// A coordinate, short: two decimals at most, no trailing zeros.
fn num(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Event, Record};
    use crate::live::mode::Mode;
    use quick_xml::events::Event as Xml;

    /// The elements of `class` in the SVG, by their attributes.
    fn elements(svg: &str, class: &str) -> Vec<std::collections::HashMap<String, String>> {
        let mut reader = quick_xml::Reader::from_str(svg);
        let mut out = Vec::new();
        loop {
            match reader.read_event().expect("well-formed SVG") {
                Xml::Eof => break,
                Xml::Start(e) | Xml::Empty(e) => {
                    let attrs: std::collections::HashMap<String, String> = e
                        .attributes()
                        .map(|a| {
                            let a = a.expect("attribute");
                            (
                                String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                                String::from_utf8_lossy(&a.value).into_owned(),
                            )
                        })
                        .collect();
                    if attrs.get("class").map(String::as_str) == Some(class) {
                        out.push(attrs);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// A day in which the Pi was LIVE from 10:00 to 10:29 and 14:00 to 14:04 (UTC): the
    /// 24-hour graph shades exactly those minutes, at the x the minutes sit at, and the
    /// primary's band is red over the same minutes.
    #[test]
    fn the_day_graph_shades_the_live_minutes_and_nothing_else() {
        let day = 1_800_057_600; // 2027-01-16T00:00:00Z
        let now = day + 23 * 3600 + 59 * 60 + 30;
        let mut live = Live::default();
        for i in 0..(24 * 60) {
            let start = day + i * 60;
            let hour = i / 60;
            let minute = i % 60;
            let serving = (hour == 10 && minute < 30) || (hour == 14 && minute < 5);
            let mut s = Sample::empty(start, if serving { Mode::Live } else { Mode::Standby });
            s.live_minutes = u32::from(serving);
            s.readers = if serving { 5 } else { 0 };
            s.bytes_sent = if serving { 1_000_000 } else { 0 };
            s.primary_down_minutes = u32::from(serving);
            s.primary_up_minutes = u32::from(!serving);
            live.history.apply(Record::Minute(s));
        }
        live.history.apply(Record::Event(Event::new(
            day + 12 * 3600 + 7,
            EventKind::SiteChanged {
                added: 1,
                changed: 0,
                removed: 0,
                generation: None,
            },
            "changed",
        )));
        let svg = render(&live, DAY, now).into_string();
        let shaded = elements(&svg, "live");
        let spans: Vec<(&str, &str)> = shaded
            .iter()
            .map(|a| (a["data-from"].as_str(), a["data-to"].as_str()))
            .collect();
        assert_eq!(
            spans,
            [
                ("2027-01-16T10:00:00Z", "2027-01-16T10:29:00Z"),
                ("2027-01-16T14:00:00Z", "2027-01-16T14:04:00Z")
            ]
        );
        let column = WIDTH / (24.0 * 60.0);
        let x: f64 = shaded[0]["x"].parse().expect("x");
        let width: f64 = shaded[0]["width"].parse().expect("width");
        assert!((x - 600.0 * column).abs() < 0.01, "x {x}");
        assert!((width - 30.0 * column).abs() < 0.01, "width {width}");
        let down = elements(&svg, "primary-down");
        assert_eq!(down.len(), 2);
        assert_eq!(down[1]["data-from"], "2027-01-16T14:00:00Z");
        assert_eq!(elements(&svg, "primary-up").len(), 3);
        let marks = elements(&svg, "sync-changed");
        assert_eq!(marks.len(), 1);
        assert_eq!(marks[0]["data-at"], "2027-01-16T12:00:00Z");
        assert_eq!(elements(&svg, "readers").len(), 1, "bars are one path");
    }

    /// The 30-day graph includes the hour being lived, from its minutes so far.
    #[test]
    fn the_month_graph_counts_the_hour_being_lived() {
        let hour = 1_800_057_600 + 5 * 3600;
        let now = hour + 10 * 60 + 5;
        let mut live = Live::default();
        for i in 0..10 {
            let mut s = Sample::empty(hour + i * 60, Mode::Live);
            s.live_minutes = 1;
            s.readers = i;
            live.history.apply(Record::Minute(s));
        }
        let mut current = Sample::empty(hour + 600, Mode::Live);
        current.live_minutes = 1;
        current.readers = 42;
        live.current = Some(current);
        let month = samples(&live, MONTH, now);
        assert_eq!(month.len(), 1);
        assert_eq!(month[0].start, hour);
        assert_eq!(month[0].live_minutes, 11);
        assert_eq!(month[0].readers, 42);
        let svg = render(&live, MONTH, now).into_string();
        let shaded = elements(&svg, "live");
        assert_eq!(shaded.len(), 1);
        assert_eq!(shaded[0]["data-from"], "2027-01-16T05:00:00Z");
    }
}
