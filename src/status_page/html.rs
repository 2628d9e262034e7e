//! The status page: plain HTML, readable on a phone, no JavaScript and no external assets.
//! It refreshes itself every few seconds; the mode comes first, big and coloured, with why.

use std::time::SystemTime;

use maud::{html, Markup, DOCTYPE};

use super::graphs;
use crate::format::{bytes, count, duration};
use crate::indicators::glow::Glow;
use crate::status::Status;

/// Seconds between the page's own refreshes.
pub(crate) const REFRESH_SECS: u32 = 5;

const STYLE: &str = "body{font:16px/1.4 system-ui,sans-serif;margin:0 auto;max-width:46em;\
padding:0 .8em 2em;color:#111;background:#fafafa}\
.mode{padding:.8em 1em;border-radius:.4em;margin:.8em 0}\
.LIVE{background:#1b7f3b;color:#fff}.DRAINING{background:#1f5fa8;color:#fff}\
.STANDBY{background:#e6e6e6;color:#111}.ATTENTION{background:#f0b400;color:#111}\
.ERROR{background:#b00020;color:#fff}\
.mode b{font-size:2.6em;letter-spacing:.05em;display:block;line-height:1.1}\
h2{font-size:1.05em;margin:1.4em 0 .3em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.15em .4em;vertical-align:top}\
th{font-weight:600;width:40%;color:#444}.bad{color:#b00020;font-weight:600}\
footer{color:#666;font-size:.85em;margin-top:2em}\
svg.history{display:block;margin:.3em 0}.legend{font-size:.85em;color:#444}";

/// One table row: a name and its value. Values are `Markup` built with `html!`, which escapes
/// everything interpolated: text from outside (a host name, a sync error, an S3 message) can
/// only ever be text. The one `PreEscaped` is the constant style sheet.
type Row = (&'static str, Markup);

/// `token_query` is `?token=…` when the page was opened with its token (the links carry it on),
/// or empty.
pub fn render(
    status: &Status,
    token_query: &str,
    simulated_oled: bool,
    history: &crate::history::Live,
) -> String {
    let s = status;
    let now = SystemTime::now();
    let since = duration(now.duration_since(s.mode_since).map_or(0, |d| d.as_secs()));
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content={ (REFRESH_SECS) ";url=/" (token_query) };
                title { (s.mode) " · pi-failover · " (s.system.hostname) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                div #mode class={ "mode " (s.mode) } {
                    b { (s.mode) }
                    span #reason { (s.reason) }
                    br;
                    small { "for " (since) }
                }
                (section("Traffic (last minute)", &traffic_rows(s)))
                (history_section(history, now, token_query))
                (section("Site", &site_rows(s, now)))
                (section("TLS", &tls_rows(s, now)))
                @if let Some(rows) = primary_rows(s, now) { (section("Primary", &rows)) }
                @if let Some(rows) = dns_rows(s) { (section("DNS", &rows)) }
                (section("System", &system_rows(s)))
                (section("Indicators", &indicator_rows(s, token_query, simulated_oled)))
                @if let Some(rows) = notification_rows(s, now) { (section("Notifications", &rows)) }
                @if let Some(rows) = update_rows(s, now) { (section("Updates", &rows)) }
                @if !s.transitions.is_empty() {
                    h2 { "Recent changes" }
                    table {
                        @for t in &s.transitions {
                            tr {
                                th { (ago(t.at, now)) }
                                td { (t.from) " → " (t.to) ": " (t.reason) }
                            }
                        }
                    }
                }
                footer {
                    "pi-failover " (s.version) " · "
                    a href={ "/api/status" (token_query) } { "JSON" } " · "
                    a href={ "/metrics" (token_query) } { "metrics" } " · "
                    a href={ "/api/history" (token_query) } { "history" }
                    " · refreshes every " (REFRESH_SECS) " s"
                }
            }
        }
    }
    .into_string()
}

/// The graphs and the latest events.
fn history_section(history: &crate::history::Live, now: SystemTime, token_query: &str) -> Markup {
    let at = crate::history::observe::unix(now);
    let events: Vec<&crate::history::Event> = history.history.events.iter().rev().take(8).collect();
    html! {
        h2 { "Last 24 hours" }
        (graphs::render(history, graphs::DAY, at))
        h2 { "Last 30 days" }
        (graphs::render(history, graphs::MONTH, at))
        (graphs::legend())
        @if let Some(why) = &history.not_written {
            p { (bad(format_args!("History not saved: {why}"))) }
        }
        @if !events.is_empty() {
            h2 { "Events" }
            table {
                @for e in events {
                    tr {
                        th { (ago(std::time::UNIX_EPOCH + std::time::Duration::from_secs(e.at), now)) }
                        td { (e.text) }
                    }
                }
            }
            p { a href={ "/api/history" (token_query) } { "all of it as JSON" } }
        }
    }
}

fn section(title: &str, rows: &[Row]) -> Markup {
    html! {
        h2 { (title) }
        table {
            @for (name, value) in rows {
                tr { th { (name) } td { (value) } }
            }
        }
    }
}

/// Plain text, escaped.
fn text(value: impl std::fmt::Display) -> Markup {
    html! { (value) }
}

/// Text that needs a reader's attention, escaped.
fn bad(value: impl std::fmt::Display) -> Markup {
    html! { span.bad { (value) } }
}

fn traffic_rows(s: &Status) -> Vec<Row> {
    let t = &s.traffic;
    vec![
        ("Readers", text(t.readers_1m)),
        ("Readers, last 5 minutes", text(t.readers_5m)),
        ("Reader requests", text(t.requests_1m.reader)),
        ("Health checks", text(t.requests_1m.health_check)),
        ("Other (bots, scanners, bare IP)", text(t.requests_1m.other)),
        (
            "Sent",
            text(format_args!("{}/s", bytes(t.bytes_per_second as u64))),
        ),
        ("Errors (5xx)", text(t.statuses_1m.server_error)),
    ]
}

fn site_rows(s: &Status, now: SystemTime) -> Vec<Row> {
    let mut rows = vec![
        ("Host names", text(s.site.hostnames.join(", "))),
        ("Source", text(s.site.source)),
        (
            "Generation",
            text(s.site.generation.as_deref().unwrap_or("none")),
        ),
        ("Files", text(s.site.files)),
    ];
    if let Some(sync) = &s.site.sync {
        rows.push(("Bucket", text(&sync.bucket)));
        rows.push(("Last sync", text(opt_ago(sync.last_attempt, now))));
        rows.push(("Last good sync", text(opt_ago(sync.last_success, now))));
        if let Some(e) = &sync.last_error {
            rows.push((
                "Sync error",
                bad(format_args!("{e} ({} in a row)", sync.consecutive_failures)),
            ));
        }
    }
    rows
}

fn tls_rows(s: &Status, now: SystemTime) -> Vec<Row> {
    let mut rows = Vec::new();
    for c in &s.tls {
        let served = match (c.days_left, c.names.is_empty()) {
            (Some(days), false) => {
                let left = count(days, "day left", "days left");
                let names = c.names.join(", ");
                if c.expiring {
                    html! { (names) " — " span.bad { (left) } }
                } else {
                    html! { (names) " — " (left) }
                }
            }
            _ => bad("none yet"),
        };
        rows.push(("Certificate", served));
        rows.push(("From", text(format_args!("{} ({})", c.origin, c.source))));
        if let Some(why) = &c.refused {
            rows.push(("New certificate refused", bad(why)));
        }
        if let Some(fetch) = &c.fetch {
            rows.push((
                "Fetched",
                text(format_args!(
                    "last success {}; next {}",
                    opt_ago(fetch.last_success, now),
                    fetch
                        .next_attempt
                        .map_or("at the next sync".to_owned(), |t| {
                            httpdate::fmt_http_date(t)
                        })
                )),
            ));
            if let Some(e) = &fetch.last_error {
                rows.push(("Fetch error", bad(e)));
            }
        }
    }
    rows
}

fn primary_rows(s: &Status, now: SystemTime) -> Option<Vec<Row>> {
    let p = s.primary.as_ref()?;
    let state = match p.up {
        Some(true) => text("up"),
        Some(false) => bad("down"),
        None => text("not known yet"),
    };
    Some(vec![
        ("Health URL", text(&p.url)),
        ("State", state),
        (
            "Last check",
            text(format_args!(
                "{} — {}",
                opt_ago(p.last_checked, now),
                p.last_result.as_deref().unwrap_or("-")
            )),
        ),
    ])
}

fn dns_rows(s: &Status) -> Option<Vec<Row>> {
    let d = s.dns.as_ref()?;
    let here = match d.points_here {
        Some(true) => text("yes"),
        Some(false) => text("no"),
        None => text(format_args!(
            "unknown ({})",
            d.error.as_deref().unwrap_or("no answer")
        )),
    };
    Some(vec![
        ("Name", text(&d.name)),
        ("Resolves to", text(joined(&d.addresses))),
        ("Points here", here),
    ])
}

fn system_rows(s: &Status) -> Vec<Row> {
    let sys = &s.system;
    let mut rows = vec![
        ("Host name", text(&sys.hostname)),
        ("Addresses", text(joined(&sys.addresses))),
        ("Up", text(sys.uptime_seconds.map_or("-".into(), duration))),
        (
            "Clock",
            match (
                sys.clock_synchronised,
                &sys.clock_coarse,
                &sys.clock_fallback_error,
            ) {
                (Some(true), _, _) => text("synchronised (NTP)"),
                (_, Some(c), _) => text(format_args!(
                    "coarse: NTP is silent; checked against {} at {} ({:+.0} s)",
                    c.url,
                    humantime::format_rfc3339_seconds(c.checked_at),
                    c.offset_seconds
                )),
                (Some(false), _, Some(e)) => {
                    bad(format_args!("not synchronised; HTTPS fallback: {e}"))
                }
                (Some(false), _, None) => bad("not synchronised"),
                (None, _, _) => text("-"),
            },
        ),
    ];
    if let Some(t) = sys.cpu_temperature_celsius {
        rows.push(("CPU temperature", text(format_args!("{t:.1} °C"))));
    }
    if let Some([one, five, fifteen]) = sys.load_average {
        rows.push((
            "Load",
            text(format_args!("{one:.2} {five:.2} {fifteen:.2}")),
        ));
    }
    if let (Some(avail), Some(total)) = (sys.memory_available_bytes, sys.memory_total_bytes) {
        rows.push((
            "Memory available",
            text(format_args!("{} of {}", bytes(avail), bytes(total))),
        ));
    }
    if let (Some(free), Some(total)) = (sys.data_free_bytes, sys.data_total_bytes) {
        rows.push((
            "Data partition free",
            text(format_args!("{} of {}", bytes(free), bytes(total))),
        ));
    }
    if sys.data_read_only == Some(true) {
        rows.push((
            "Data partition",
            bad("read-only after a filesystem error: syncs cannot write; a reboot repairs it"),
        ));
    }
    rows
}

fn indicator_rows(s: &Status, token_query: &str, simulated_oled: bool) -> Vec<Row> {
    let ind = &s.indicators;
    let glow = match ind.oled_glow {
        Glow::Normal => "",
        Glow::Dim => " (dimmed: a quiet standby)",
        Glow::Off => " (dark: off hours)",
    };
    let mut rows = vec![
        (
            "LED",
            text(format_args!(
                "{} — {}",
                ind.led,
                crate::indicators::led::describe(&crate::indicators::led::pattern(s.mode))
            )),
        ),
        ("OLED", text(format_args!("{}{glow}", ind.oled))),
    ];
    if let Some(p) = &ind.led_problem {
        rows.push(("LED problem", bad(p)));
    }
    if let Some(p) = &ind.oled_problem {
        rows.push(("OLED problem", bad(p)));
    }
    if simulated_oled {
        rows.push((
            "OLED picture",
            html! {
                img src={ "/oled.png" (token_query) } width="384" alt="the OLED's picture"
                    style="max-width:100%;image-rendering:pixelated";
            },
        ));
    }
    rows
}

fn notification_rows(s: &Status, now: SystemTime) -> Option<Vec<Row>> {
    let n = s.notifications.as_ref()?;
    let mut rows = vec![
        (
            "Receiver",
            text(format_args!("{} ({})", n.receiver, n.format)),
        ),
        (
            "Sent",
            text(format_args!(
                "{} since start; last {}",
                n.sent,
                opt_ago(n.last_sent, now)
            )),
        ),
    ];
    if n.queued > 0 {
        rows.push((
            "Waiting",
            text(count(n.queued as u64, "message", "messages")),
        ));
    }
    if let Some(e) = &n.last_error {
        rows.push(("Delivery error", bad(e)));
    }
    if n.given_up + n.dropped > 0 {
        rows.push((
            "Not delivered",
            bad(format_args!(
                "{} given up, {} pushed out of a full queue",
                n.given_up, n.dropped
            )),
        ));
    }
    Some(rows)
}

/// The slots and the last update: shown on a card booted from a slot.
fn update_rows(s: &Status, now: SystemTime) -> Option<Vec<Row>> {
    let u = &s.update;
    let booted = u.booted.as_ref()?;
    let mut rows = vec![(
        "Running",
        text(format_args!(
            "{} from slot {booted} ({})",
            u.version,
            u.role.unwrap_or("established")
        )),
    )];
    for slot in &u.slots {
        rows.push((
            "Slot",
            text(format_args!(
                "{}: {}, {}{}",
                slot.name,
                slot.state,
                slot.boot_status,
                slot.version
                    .as_deref()
                    .map(|v| format!(", bundle {v}"))
                    .unwrap_or_default()
            )),
        ));
    }
    if let Some(source) = &u.source {
        rows.push((
            "Looks at",
            text(format_args!(
                "{source}; last {}",
                opt_ago(u.last_check, now)
            )),
        ));
    }
    if let Some(e) = &u.last_error {
        rows.push(("Check error", bad(e)));
    }
    if let Some(waiting) = &u.waiting {
        rows.push(("Waiting", text(waiting)));
    }
    if let Some(a) = &u.last_attempt {
        let line = format!(
            "{} {} (slot {} → {}) {}{}",
            a.version,
            a.result,
            a.from_slot,
            a.to_slot,
            ago(a.at, now),
            a.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        let trouble = matches!(a.result, "rolled-back" | "failed" | "refused");
        rows.push(("Last update", if trouble { bad(line) } else { text(line) }));
    }
    if let Some(p) = &u.paused {
        rows.push(("Paused", bad(p)));
    }
    Some(rows)
}

fn joined<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
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
    use crate::status::Status;
    use std::time::Duration;

    #[test]
    fn text_from_the_outside_is_shown_as_text_never_as_markup() {
        let now = SystemTime::now();
        let mut status = Status::example(crate::live::mode::Mode::Attention, now);
        let hostile = r#"<script>alert("x")</script>&'"#;
        status.reason = hostile.to_owned();
        status.system.hostname = hostile.to_owned();
        if let Some(sync) = status.site.sync.as_mut() {
            sync.last_error = Some(hostile.to_owned());
        }
        let page = render(&status, "", false, &crate::history::Live::default());
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;'"));
    }

    #[test]
    fn the_page_opened_with_its_token_keeps_it_on_every_link() {
        let now = SystemTime::now() - Duration::from_secs(1);
        let page = render(
            &Status::example(crate::live::mode::Mode::Live, now),
            "?token=a%26b",
            true,
            &crate::history::Live::default(),
        );
        for link in [
            r#"content="5;url=/?token=a%26b""#,
            r#"href="/api/status?token=a%26b""#,
            r#"href="/metrics?token=a%26b""#,
            r#"src="/oled.png?token=a%26b""#,
        ] {
            assert!(page.contains(link), "{link} missing from {page}");
        }
    }
}
