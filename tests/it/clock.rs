//! The clock's HTTPS fallback (src/clock/): the time from a server's `Date` when NTP is
//! blocked, verified against a certificate checked at its own time (a Pi off for months
//! boots with a clock months behind), and refused when anything about the server is wrong.

use std::path::Path;
use std::time::{Duration, SystemTime};

use pi_failover::clock::watch::{self, Hooks};
use pi_failover::clock::ClockSettings;

use crate::common::{Fixture, TestCa};

/// `common::date_server` for `localhost`: its URL.
async fn date_server(
    dir: &Path,
    ca: &TestCa,
    names: &[&str],
    validity: (SystemTime, SystemTime),
    ahead: Duration,
) -> String {
    let port = crate::common::date_server(dir, ca, names, validity, ahead).await;
    format!("https://localhost:{port}/")
}

const DAY: Duration = Duration::from_secs(86_400);

fn settings(url: &str, ca_file: Option<&Path>) -> ClockSettings {
    ClockSettings {
        ntp_servers: Vec::new(),
        https_date: vec![url.to_owned()],
        ca_file: ca_file.map(Path::to_path_buf),
        fallback_after: Duration::from_secs(300),
        state_file: std::env::temp_dir().join("unused-clock.json"),
    }
}

#[tokio::test]
async fn a_servers_date_is_taken_although_its_certificate_is_not_valid_by_this_clock() {
    let f = Fixture::new();
    let ca_file = f.path("ca.pem");
    std::fs::write(&ca_file, f.ca.cert_pem()).expect("write CA");
    // This host's clock is "months behind": the server's certificate starts in 30 days, and
    // its Date is 60 days ahead. A verifier at the local clock would refuse the handshake.
    let now = SystemTime::now();
    let url = date_server(
        f.dir.path(),
        &f.ca,
        &["localhost"],
        (now + 30 * DAY, now + 120 * DAY),
        60 * DAY,
    )
    .await;
    let state = watch::check(&settings(&url, Some(&ca_file)), false, &Hooks::default()).await;
    assert_eq!(state.source, "https-date", "{state:?}");
    assert_eq!(state.last_error, None);
    let offset = state.offset_seconds.expect("an offset");
    assert!(
        (offset - (60 * DAY).as_secs_f64()).abs() < 5.0,
        "the offset is the server's 60 days: {offset}"
    );
}

#[tokio::test]
async fn a_date_outside_the_servers_own_certificate_is_refused() {
    let f = Fixture::new();
    let ca_file = f.path("ca.pem");
    std::fs::write(&ca_file, f.ca.cert_pem()).expect("write CA");
    let now = SystemTime::now();
    let url = date_server(
        f.dir.path(),
        &f.ca,
        &["localhost"],
        (now - DAY, now + DAY),
        400 * DAY,
    )
    .await;
    let state = watch::check(&settings(&url, Some(&ca_file)), false, &Hooks::default()).await;
    assert_eq!(state.source, "none");
    let error = state.last_error.expect("an error");
    assert!(error.contains("outside its own certificate"), "{error}");
}

#[tokio::test]
async fn a_server_with_the_wrong_name_or_an_untrusted_ca_gives_no_time() {
    let f = Fixture::new();
    let ca_file = f.path("ca.pem");
    std::fs::write(&ca_file, f.ca.cert_pem()).expect("write CA");
    let now = SystemTime::now();
    let wrong_name = date_server(
        f.dir.path(),
        &f.ca,
        &["other.example"],
        (now - DAY, now + DAY),
        Duration::ZERO,
    )
    .await;
    let state = watch::check(
        &settings(&wrong_name, Some(&ca_file)),
        false,
        &Hooks::default(),
    )
    .await;
    assert_eq!(state.source, "none", "wrong name: {state:?}");

    let untrusted = date_server(
        f.dir.path(),
        &f.ca,
        &["localhost"],
        (now - DAY, now + DAY),
        Duration::ZERO,
    )
    .await;
    let state = watch::check(&settings(&untrusted, None), false, &Hooks::default()).await;
    assert_eq!(state.source, "none", "untrusted CA: {state:?}");
    let error = state.last_error.expect("an error");
    assert!(error.contains("TLS"), "{error}");
}

/// `pi-failover clock check` asks the configured server and prints the offset;
/// `clock ntp-servers` prints what the image's ntpd is started with.
#[tokio::test]
async fn the_clock_commands_print_the_offset_and_the_ntp_servers() {
    let f = Fixture::new();
    std::fs::write(f.path("ca.pem"), f.ca.cert_pem()).expect("write CA");
    let now = SystemTime::now();
    let url = date_server(
        f.dir.path(),
        &f.ca,
        &["localhost"],
        (now - DAY, now + DAY),
        Duration::from_secs(3600),
    )
    .await;
    f.site_file("index.html", "hello");
    let config = f.path("pi-failover.toml");
    std::fs::write(
        &config,
        format!(
            r#"
            [site]
            root = "site"
            hostnames = ["localhost"]
            [[tls.certificates]]
            cert = "cert.pem"
            key = "key.pem"
            [clock]
            ntp_servers = ["ntp.example.net", "192.0.2.1"]
            https_date = ["{url}"]
            ca_file = "ca.pem"
            "#
        ),
    )
    .expect("write config");
    let bin = env!("CARGO_BIN_EXE_pi-failover");
    let out = tokio::process::Command::new(bin)
        .args(["clock", "ntp-servers", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ntp.example.net\n192.0.2.1\n"
    );

    let out = tokio::process::Command::new(bin)
        .args(["clock", "check", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    // `Date` has whole seconds: 3600 s ahead reads as 3599 or 3600.
    assert!(
        stdout.contains(&url) && (stdout.contains("+3599 s") || stdout.contains("+3600 s")),
        "{stdout}"
    );

    // A server name that is an option of ntpd's command line is a config error naming the key.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .expect("read")
            .replace("\"ntp.example.net\"", "\"-S/bin/sh\""),
    )
    .expect("write config");
    let out = tokio::process::Command::new(bin)
        .args(["clock", "ntp-servers", "--config"])
        .arg(&config)
        .output()
        .await
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("clock.ntp_servers"),
        "{out:?}"
    );
}
