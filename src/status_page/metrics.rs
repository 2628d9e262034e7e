//! `/metrics`: the status in Prometheus' text exposition format (version 0.0.4).

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::live::mode::Mode;
use crate::status::Status;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn render(s: &Status) -> String {
    let mut m = Metrics {
        text: String::with_capacity(4096),
        family: "",
    };
    m.family(
        "pi_failover_mode",
        "gauge",
        "1 for the current mode, 0 for the others.",
    );
    for mode in [
        Mode::Live,
        Mode::Draining,
        Mode::Standby,
        Mode::Attention,
        Mode::Error,
    ] {
        m.sample(
            &[("mode", mode.as_str())],
            f64::from(u8::from(s.mode == mode)),
        );
    }
    m.family(
        "pi_failover_readers",
        "gauge",
        "Distinct reader addresses in the window.",
    );
    m.sample(&[("window", "1m")], s.traffic.readers_1m as f64);
    m.sample(&[("window", "5m")], s.traffic.readers_5m as f64);
    m.family(
        "pi_failover_requests_total",
        "counter",
        "Requests answered, by class.",
    );
    let totals = s.traffic.requests_total;
    for (class, n) in [
        ("reader", totals.reader),
        ("health_check", totals.health_check),
        ("other", totals.other),
    ] {
        m.sample(&[("class", class)], n as f64);
    }
    m.family(
        "pi_failover_responses_total",
        "counter",
        "Responses, by status class.",
    );
    let st = s.traffic.statuses_total;
    for (code, n) in [
        ("1xx", st.informational),
        ("2xx", st.success),
        ("3xx", st.redirection),
        ("4xx", st.client_error),
        ("5xx", st.server_error),
    ] {
        m.sample(&[("code", code)], n as f64);
    }
    m.family(
        "pi_failover_response_bytes_total",
        "counter",
        "Response body bytes sent.",
    );
    m.sample(&[], s.traffic.bytes_total as f64);
    m.family(
        "pi_failover_site_files",
        "gauge",
        "Files in the served generation.",
    );
    m.sample(&[], s.site.files as f64);
    if let Some(sync) = &s.site.sync {
        m.family(
            "pi_failover_sync_consecutive_failures",
            "gauge",
            "Failed syncs in a row.",
        );
        m.sample(&[], f64::from(sync.consecutive_failures));
        if let Some(t) = sync.last_success {
            m.family(
                "pi_failover_sync_last_success_timestamp_seconds",
                "gauge",
                "When the last sync succeeded.",
            );
            m.sample(&[], unix(t));
        }
    }
    m.family(
        "pi_failover_certificate_expiry_timestamp_seconds",
        "gauge",
        "When each certificate expires.",
    );
    for c in &s.tls {
        if let Some(not_after) = c.not_after {
            let name = c.names.first().map_or("", String::as_str);
            m.sample(&[("name", name)], unix(not_after));
        }
    }
    if let Some(up) = s.primary.as_ref().and_then(|p| p.up) {
        m.family(
            "pi_failover_primary_up",
            "gauge",
            "The primary's health check verdict.",
        );
        m.sample(&[], f64::from(u8::from(up)));
    }
    if let Some(here) = s.dns.as_ref().and_then(|d| d.points_here) {
        m.family(
            "pi_failover_dns_points_here",
            "gauge",
            "DNS resolves the site to this Pi.",
        );
        m.sample(&[], f64::from(u8::from(here)));
    }
    let sys = &s.system;
    for (name, help, value) in [
        (
            "pi_failover_uptime_seconds",
            "Time since boot.",
            sys.uptime_seconds.map(|v| v as f64),
        ),
        (
            "pi_failover_cpu_temperature_celsius",
            "SoC temperature.",
            sys.cpu_temperature_celsius,
        ),
        (
            "pi_failover_memory_available_bytes",
            "MemAvailable.",
            sys.memory_available_bytes.map(|v| v as f64),
        ),
        (
            "pi_failover_data_free_bytes",
            "Free space on the data partition.",
            sys.data_free_bytes.map(|v| v as f64),
        ),
        (
            "pi_failover_clock_synchronised",
            "1 when NTP has set the clock.",
            sys.clock_synchronised.map(|v| f64::from(u8::from(v))),
        ),
        (
            "pi_failover_clock_coarse",
            "1 when NTP is silent and the clock was checked against an HTTPS Date instead.",
            sys.clock_synchronised
                .map(|_| f64::from(u8::from(sys.clock_coarse.is_some()))),
        ),
        (
            "pi_failover_data_read_only",
            "1 when the data partition went read-only after a filesystem error.",
            sys.data_read_only.map(|v| f64::from(u8::from(v))),
        ),
    ] {
        if let Some(value) = value {
            m.family(name, "gauge", help);
            m.sample(&[], value);
        }
    }
    m.text
}

/// The text being written, and the family its next samples belong to (a sample is always
/// written under its family's HELP and TYPE, so the name is said once).
struct Metrics {
    text: String,
    family: &'static str,
}

impl Metrics {
    fn family(&mut self, name: &'static str, kind: &str, help: &str) {
        self.family = name;
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(self.family);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{v}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs() as f64)
}
