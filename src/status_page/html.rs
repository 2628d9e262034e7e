//! The status page: plain HTML, readable on a phone, no JavaScript and no external assets.
//! It refreshes itself every few seconds; the mode comes first, big and coloured, with why.

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::format::{bytes, duration};
use crate::live::mode::Mode;
use crate::status::Status;

/// Seconds between the page's own refreshes.
pub const REFRESH_SECS: u32 = 5;

pub fn render(status: &Status, token_query: &str, simulated_oled: bool) -> String {
    let mut page = String::with_capacity(8 * 1024);
    let s = status;
    let (background, foreground) = colours(s.mode);
    let now = SystemTime::now();
    let _ = write!(
        page,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_SECS};url=/{token_query}">
<title>{mode} · pi-failover · {host}</title>
<style>
body{{font:16px/1.4 system-ui,sans-serif;margin:0 auto;max-width:46em;padding:0 .8em 2em;color:#111;background:#fafafa}}
.mode{{background:{background};color:{foreground};padding:.8em 1em;border-radius:.4em;margin:.8em 0}}
.mode b{{font-size:2.6em;letter-spacing:.05em;display:block;line-height:1.1}}
h2{{font-size:1.05em;margin:1.4em 0 .3em;border-bottom:1px solid #ccc}}
table{{border-collapse:collapse;width:100%}}td,th{{text-align:left;padding:.15em .4em;vertical-align:top}}
th{{font-weight:600;width:40%;color:#444}}.bad{{color:#b00020;font-weight:600}}
footer{{color:#666;font-size:.85em;margin-top:2em}}
</style></head><body>
<div class="mode" id="mode"><b>{mode}</b><span id="reason">{reason}</span><br><small>for {since}</small></div>
"#,
        mode = s.mode,
        host = escape(&s.system.hostname),
        reason = escape(&s.reason),
        since = duration(now.duration_since(s.mode_since).map_or(0, |d| d.as_secs())),
    );

    section(
        &mut page,
        "Traffic (last minute)",
        &[
            ("Readers", s.traffic.readers_1m.to_string()),
            ("Readers, last 5 minutes", s.traffic.readers_5m.to_string()),
            ("Reader requests", s.traffic.requests_1m.reader.to_string()),
            (
                "Health checks",
                s.traffic.requests_1m.health_check.to_string(),
            ),
            (
                "Other (bots, scanners, bare IP)",
                s.traffic.requests_1m.other.to_string(),
            ),
            (
                "Sent",
                format!("{}/s", bytes(s.traffic.bytes_per_second as u64)),
            ),
            (
                "Errors (5xx)",
                s.traffic.statuses_1m.server_error.to_string(),
            ),
        ],
    );

    let mut site = vec![
        ("Host names", escape(&s.site.hostnames.join(", "))),
        ("Source", s.site.source.to_owned()),
        (
            "Generation",
            escape(s.site.generation.as_deref().unwrap_or("none")),
        ),
        ("Files", s.site.files.to_string()),
    ];
    if let Some(sync) = &s.site.sync {
        site.push(("Bucket", escape(&sync.bucket)));
        site.push(("Last sync", opt_ago(sync.last_attempt, now)));
        site.push(("Last good sync", opt_ago(sync.last_success, now)));
        if let Some(e) = &sync.last_error {
            site.push((
                "Sync error",
                format!(
                    r#"<span class="bad">{} ({} in a row)</span>"#,
                    escape(e),
                    sync.consecutive_failures
                ),
            ));
        }
    }
    section(&mut page, "Site", &site);

    let tls: Vec<(&str, String)> = s
        .tls
        .iter()
        .map(|c| {
            let left = if c.days_left < 15 {
                format!(r#"<span class="bad">{} days left</span>"#, c.days_left)
            } else {
                format!("{} days left", c.days_left)
            };
            (
                "Certificate",
                format!("{} — {left}", escape(&c.names.join(", "))),
            )
        })
        .collect();
    section(&mut page, "TLS", &tls);

    if let Some(p) = &s.primary {
        let verdict = match p.up {
            Some(true) => "up".to_owned(),
            Some(false) => r#"<span class="bad">down</span>"#.to_owned(),
            None => "not known yet".to_owned(),
        };
        section(
            &mut page,
            "Primary",
            &[
                ("Health URL", escape(&p.url)),
                ("State", verdict),
                (
                    "Last check",
                    format!(
                        "{} — {}",
                        opt_ago(p.last_checked, now),
                        escape(p.last_result.as_deref().unwrap_or("-"))
                    ),
                ),
            ],
        );
    }
    if let Some(d) = &s.dns {
        let here = match d.points_here {
            Some(true) => "yes".to_owned(),
            Some(false) => "no".to_owned(),
            None => format!(
                "unknown ({})",
                escape(d.error.as_deref().unwrap_or("no answer"))
            ),
        };
        let addresses: Vec<String> = d.addresses.iter().map(ToString::to_string).collect();
        section(
            &mut page,
            "DNS",
            &[
                ("Name", escape(&d.name)),
                ("Resolves to", addresses.join(", ")),
                ("Points here", here),
            ],
        );
    }

    let sys = &s.system;
    let mut system = vec![
        ("Host name", escape(&sys.hostname)),
        (
            "Addresses",
            sys.addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("Up", sys.uptime_seconds.map_or("-".into(), duration)),
        (
            "Clock",
            match sys.clock_synchronised {
                Some(true) => "synchronised".to_owned(),
                Some(false) => r#"<span class="bad">not synchronised</span>"#.to_owned(),
                None => "-".to_owned(),
            },
        ),
    ];
    if let Some(t) = sys.cpu_temperature_celsius {
        system.push(("CPU temperature", format!("{t:.1} °C")));
    }
    if let Some([one, five, fifteen]) = sys.load_average {
        system.push(("Load", format!("{one:.2} {five:.2} {fifteen:.2}")));
    }
    if let (Some(avail), Some(total)) = (sys.memory_available_bytes, sys.memory_total_bytes) {
        system.push((
            "Memory available",
            format!("{} of {}", bytes(avail), bytes(total)),
        ));
    }
    if let (Some(free), Some(total)) = (sys.data_free_bytes, sys.data_total_bytes) {
        system.push((
            "Data partition free",
            format!("{} of {}", bytes(free), bytes(total)),
        ));
    }
    section(&mut page, "System", &system);

    let ind = &s.indicators;
    let mut indicators = vec![
        (
            "LED",
            format!("{} — {}", escape(&ind.led), led_words(s.mode)),
        ),
        (
            "OLED",
            format!(
                "{}{}",
                escape(&ind.oled),
                match ind.oled_glow {
                    crate::indicators::glow::Glow::Normal => "",
                    crate::indicators::glow::Glow::Dim => " (dimmed: a quiet standby)",
                    crate::indicators::glow::Glow::Off => " (dark: off hours)",
                }
            ),
        ),
    ];
    if let Some(p) = &ind.led_problem {
        indicators.push((
            "LED problem",
            format!(r#"<span class="bad">{}</span>"#, escape(p)),
        ));
    }
    if let Some(p) = &ind.oled_problem {
        indicators.push((
            "OLED problem",
            format!(r#"<span class="bad">{}</span>"#, escape(p)),
        ));
    }
    if simulated_oled {
        indicators.push((
            "OLED picture",
            format!(r#"<img src="/oled.png{token_query}" width="384" alt="the OLED's picture" style="max-width:100%;image-rendering:pixelated">"#),
        ));
    }
    section(&mut page, "Indicators", &indicators);

    let transitions: Vec<(String, String)> = s
        .transitions
        .iter()
        .map(|t| {
            (
                ago(t.at, now),
                format!("{} → {}: {}", t.from, t.to, escape(&t.reason)),
            )
        })
        .collect();
    if !transitions.is_empty() {
        let rows: Vec<(&str, String)> = transitions
            .iter()
            .map(|(a, b)| (a.as_str(), b.clone()))
            .collect();
        section(&mut page, "Recent changes", &rows);
    }

    let _ = write!(
        page,
        r#"<footer>pi-failover {version} · <a href="/api/status{token_query}">JSON</a> · <a href="/metrics{token_query}">metrics</a> · refreshes every {REFRESH_SECS} s</footer>
</body></html>
"#,
        version = s.version,
    );
    page
}

fn section(page: &mut String, title: &str, rows: &[(&str, String)]) {
    let _ = write!(page, "<h2>{title}</h2><table>");
    for (name, value) in rows {
        let _ = write!(page, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    page.push_str("</table>\n");
}

/// The LED's pattern in words (`indicators::led::pattern`).
fn led_words(mode: Mode) -> &'static str {
    match mode {
        Mode::Live | Mode::Draining => "solid on",
        Mode::Standby => "a short blip every 2.5 s",
        Mode::Attention => "blinking once a second",
        Mode::Error => "blinking four times a second",
    }
}

fn colours(mode: Mode) -> (&'static str, &'static str) {
    match mode {
        Mode::Live => ("#1b7f3b", "#fff"),
        Mode::Draining => ("#1f5fa8", "#fff"),
        Mode::Standby => ("#e6e6e6", "#111"),
        Mode::Attention => ("#f0b400", "#111"),
        Mode::Error => ("#b00020", "#fff"),
    }
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn ago(t: SystemTime, now: SystemTime) -> String {
    match now.duration_since(t) {
        Ok(d) => format!("{} ago", duration(d.as_secs())),
        Err(_) => "just now".to_owned(),
    }
}

fn opt_ago(t: Option<SystemTime>, now: SystemTime) -> String {
    t.map_or_else(|| "never".to_owned(), |t| ago(t, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_outside_is_escaped() {
        assert_eq!(
            escape(r#"<script>"x"&'y'"#),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;"
        );
    }
}
