//! The owner's view over time: the history kept across restarts and a SIGKILL (the real
//! binary), and messages to a real HTTPS receiver with its own CA — once per event, retried
//! while it fails or is down, queued across a restart, and never in the readers' way.

use crate::common;
use std::time::Duration;

use common::webhook::{Answer, Webhook};
use common::{connect_from, Fixture};
use pi_failover::appliance::Appliance;
use pi_failover::config::Config;

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0";

/// LIVE on the first reader, quickly; messages to `hook` trusting the fixture's CA.
fn live_and_notify(f: &Fixture, url: &str) -> impl FnOnce(&mut Config) {
    let ca = f.path("ca.pem");
    std::fs::write(&ca, f.ca.cert_pem()).expect("ca");
    let url = url.to_owned();
    move |c: &mut Config| {
        c.live.debounce = Duration::from_millis(300);
        c.live.readers = 1;
        c.notify.url = Some(url);
        c.notify.ca_file = Some(ca);
        c.notify.name = Some("pi-test".into());
        c.notify.status_url = Some("http://192.0.2.10:8081/".into());
    }
}

/// One reader's page view, from `source`.
async fn read(f: &Fixture, app: &Appliance, source: &str) -> u16 {
    let tcp = connect_from(source, app.https_addr()).await;
    let mut conn = f.client().h1_over(tcp).await;
    let request = common::request("GET", "/", &[("user-agent", BROWSER)]);
    conn.send(request).await.status.as_u16()
}

async fn status_json(app: &Appliance, path: &str) -> serde_json::Value {
    let addr = app.status_addr().expect("status page on");
    let (code, body) = common::status_page_get(addr, "127.0.0.1", path, &[]).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("JSON")
}

/// Polls `path` on the status page until `holds`, or fails with the last answer.
async fn wait_for_json(
    app: &Appliance,
    path: &str,
    within: Duration,
    holds: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let json = status_json(app, path).await;
        if holds(&json) {
            return json;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {json:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for(what: &str, within: Duration, mut holds: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !holds() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not {what} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Pi goes LIVE: the receiver gets exactly one message, in the generic format, naming the
/// Pi and the mode and linking the status page; the status says it was sent.
#[tokio::test]
async fn going_live_sends_one_message() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let hook = Webhook::start(&f.ca, f.dir.path(), Answer::Ok).await;
    let app = f.start_with(live_and_notify(&f, &hook.url())).await;
    assert_eq!(read(&f, &app, "127.0.0.2").await, 200);
    wait_for("a message", Duration::from_secs(10), || {
        !hook.received().is_empty()
    })
    .await;
    // Readers keep coming: LIVE is one event, however many readers.
    for _ in 0..5 {
        read(&f, &app, "127.0.0.3").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:#?}");
    let m = &got[0];
    assert_eq!(m.path, "/hook");
    assert_eq!(m.content_type, "application/json");
    assert_eq!(m.body["pi"], "pi-test");
    assert_eq!(m.body["kind"], "mode");
    assert_eq!(m.body["mode"], "LIVE");
    assert_eq!(m.body["link"], "http://192.0.2.10:8081/");
    assert!(
        m.body["text"]
            .as_str()
            .unwrap_or("")
            .contains("STANDBY → LIVE"),
        "{m:#?}"
    );
    let status = status_json(&app, "/api/status").await;
    assert_eq!(status["notifications"]["sent"], 1, "{status:#}");
    assert_eq!(
        status["notifications"]["receiver"],
        format!("localhost:{}", hook.addr.port())
    );
    assert!(
        !status.to_string().contains("/hook"),
        "the URL is never shown whole"
    );
    app.shutdown().await;
}

/// A receiver that answers 500, then one that is down and comes back: the message arrives,
/// once, after the retries.
#[tokio::test]
async fn a_failing_or_absent_receiver_gets_the_message_when_it_recovers() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let hook = Webhook::start(&f.ca, f.dir.path(), Answer::FailFirst(1)).await;
    let app = f.start_with(live_and_notify(&f, &hook.url())).await;
    read(&f, &app, "127.0.0.2").await;
    wait_for("a retried message", Duration::from_secs(20), || {
        !hook.received().is_empty()
    })
    .await;
    assert_eq!(hook.requests(), 2, "one 500, one delivery");
    app.shutdown().await;

    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let port = common::free_port();
    let url = format!("https://localhost:{port}/hook");
    let app = f.start_with(live_and_notify(&f, &url)).await;
    read(&f, &app, "127.0.0.2").await;
    wait_for_json(&app, "/api/status", Duration::from_secs(10), |s| {
        s["notifications"]["queued"] == 1 && s["notifications"]["last_error"].is_string()
    })
    .await;
    let hook = Webhook::start_at(&f.ca, f.dir.path(), Answer::Ok, port).await;
    wait_for(
        "the message after the receiver came up",
        Duration::from_secs(30),
        || !hook.received().is_empty(),
    )
    .await;
    assert_eq!(hook.received().len(), 1);
    app.shutdown().await;
}

/// Messages born while the receiver is down wait on the data partition: a restart does not
/// lose them, and the next run delivers them with their original time.
#[tokio::test]
async fn messages_wait_on_the_data_partition_across_a_restart() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let port = common::free_port();
    let url = format!("https://localhost:{port}/hook");
    let app = f.start_with(live_and_notify(&f, &url)).await;
    read(&f, &app, "127.0.0.2").await;
    let queue = f.path("data/notify");
    wait_for("a queued message on disk", Duration::from_secs(10), || {
        std::fs::read_dir(&queue).is_ok_and(|d| d.count() == 1)
    })
    .await;
    let born = std::time::SystemTime::now();
    app.shutdown().await;

    let hook = Webhook::start_at(&f.ca, f.dir.path(), Answer::Ok, port).await;
    let app = f.start_with(live_and_notify(&f, &url)).await;
    wait_for("the queued message", Duration::from_secs(10), || {
        !hook.received().is_empty()
    })
    .await;
    let m = &hook.received()[0];
    assert_eq!(m.body["mode"], "LIVE");
    let at = humantime::parse_rfc3339(m.body["at"].as_str().expect("at")).expect("time");
    assert!(at <= born, "the message keeps the time of its event");
    wait_for("an empty queue", Duration::from_secs(5), || {
        std::fs::read_dir(&queue).is_ok_and(|d| d.count() == 0)
    })
    .await;
    app.shutdown().await;
}

/// A receiver that takes the request and never answers holds the notifier, not the readers:
/// pages keep coming back at once while the message hangs.
#[tokio::test]
async fn a_receiver_that_never_answers_does_not_slow_readers() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let hook = Webhook::start(&f.ca, f.dir.path(), Answer::Hold).await;
    let app = f.start_with(live_and_notify(&f, &hook.url())).await;
    read(&f, &app, "127.0.0.2").await;
    wait_for(
        "the receiver holding the message",
        Duration::from_secs(10),
        || hook.requests() == 1,
    )
    .await;
    let mut slowest = Duration::ZERO;
    for i in 0..50 {
        let started = tokio::time::Instant::now();
        assert_eq!(read(&f, &app, &format!("127.0.1.{}", i + 1)).await, 200);
        slowest = slowest.max(started.elapsed());
    }
    assert!(hook.received().is_empty(), "still held");
    // Generous: a debug build on a loaded CI machine. Blocked, each would wait 20 s.
    assert!(slowest < Duration::from_secs(2), "slowest page {slowest:?}");
    let status = status_json(&app, "/api/status").await;
    assert_eq!(status["mode"], "LIVE");
    app.shutdown().await;
}

/// The history as the page draws it: the minute being lived counts the readers at once,
/// and the events say the Pi started and went LIVE.
#[tokio::test]
async fn the_history_counts_the_minute_being_lived() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f
        .start_with(|c| {
            c.live.debounce = Duration::from_millis(300);
            c.live.readers = 1;
        })
        .await;
    for i in 0..3 {
        read(&f, &app, &format!("127.0.0.{}", i + 2)).await;
    }
    let history = wait_for_json(&app, "/api/history", Duration::from_secs(10), |h| {
        h["events"].as_array().is_some_and(|e| e.len() == 2)
    })
    .await;
    assert_eq!(history["schema"], 1);
    // The reads may straddle a minute's end: count the closed minutes with the current one.
    let minutes: Vec<&serde_json::Value> = history["minutes"]
        .as_array()
        .expect("minutes")
        .iter()
        .chain(std::iter::once(&history["current_minute"]))
        .collect();
    let sum = |key: &str| minutes.iter().filter_map(|m| m[key].as_u64()).sum::<u64>();
    assert_eq!(sum("reader_requests"), 3, "{history:#}");
    assert!(sum("bytes_sent") > 0, "{history:#}");
    assert_eq!(history["current_minute"]["live_minutes"], 1, "{history:#}");
    let kinds: Vec<&str> = history["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["boot", "mode"], "{history:#}");
    app.shutdown().await;
}

/// The real binary, stopped by SIGTERM and then by SIGKILL: what it counted survives both,
/// the journal stays readable, and the next start says how the last run ended.
#[tokio::test]
async fn the_history_survives_a_restart_and_a_sigkill() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let config = f.path("history.toml");
    std::fs::write(
        &config,
            "[site]\nroot = \"site\"\nhostnames = [\"localhost\"]\n[listen]\nhttps = \"127.0.0.1:0\"\nhttp = \"off\"\n\
             [status]\nlisten = \"off\"\n[storage]\ndata_dir = \"data\"\n[live]\nclock_check = false\n\
             [[tls.certificates]]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n",
    )
    .expect("config");
    let client = f.client();
    let journal = f.path("data/history/journal");

    let (running, served) = common::process::run_appliance(&config);
    let addr = served
        .recv_timeout(Duration::from_secs(20))
        .expect("serving");
    for _ in 0..4 {
        let tcp = connect_from("127.0.0.5", addr).await;
        let mut conn = client.h1_over(tcp).await;
        let r = conn
            .send(common::request("GET", "/", &[("user-agent", BROWSER)]))
            .await;
        assert_eq!(r.status, 200);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut child = running;
    // SAFETY: kill(2) on the child we spawned.
    let pid = i32::try_from(child.0.id()).expect("pid");
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let exit = child.0.wait().expect("wait");
    assert!(exit.success(), "{exit:?}");

    let read_back = |path: &std::path::Path| {
        pi_failover::history::journal::Journal::open(path)
            .expect("journal opens")
            .1
    };
    let after_term = read_back(&journal);
    let requests: u64 = after_term
        .history
        .minutes
        .iter()
        .map(|m| m.reader_requests)
        .sum();
    assert_eq!(
        requests, 4,
        "the four reader requests, in the minutes written"
    );
    let kinds = |h: &pi_failover::history::History| -> Vec<&'static str> {
        h.events.iter().map(|e| e.kind.name()).collect()
    };
    assert_eq!(kinds(&after_term.history), ["boot", "shutdown"]);

    let (running, served) = common::process::run_appliance(&config);
    served
        .recv_timeout(Duration::from_secs(20))
        .expect("serving again");
    // The boot is written at once, so a SIGKILL now finds it on disk.
    running.cut();
    let after_kill = read_back(&journal);
    assert_eq!(after_kill.torn_bytes, 0);
    let requests: u64 = after_kill
        .history
        .minutes
        .iter()
        .map(|m| m.reader_requests)
        .sum();
    assert_eq!(requests, 4, "nothing counted before is lost");

    let (running, served) = common::process::run_appliance(&config);
    served
        .recv_timeout(Duration::from_secs(20))
        .expect("serving a third time");
    let after = read_back(&journal);
    assert_eq!(
        kinds(&after.history),
        ["boot", "shutdown", "boot", "unclean_shutdown", "boot"]
    );
    running.cut();
}

/// `pi-failover notify --test`: one message now, and the receiver's verdict in the exit
/// status and words; a wrong URL names the key.
#[tokio::test]
async fn notify_test_sends_one_message_and_says_when_it_is_refused() {
    let f = Fixture::new();
    f.site_file("index.html", "hi");
    std::fs::write(f.path("ca.pem"), f.ca.cert_pem()).expect("ca");
    let config_for = |url: &str, format: &str| {
        let path = f.path("notify.toml");
        std::fs::write(
            &path,
            format!(
                "[site]\nroot = \"site\"\nhostnames = [\"localhost\"]\n\
                 [[tls.certificates]]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
                 [notify]\nurl = \"{url}\"\nformat = \"{format}\"\nca_file = \"ca.pem\"\nname = \"pi-cli\"\n"
            ),
        )
        .expect("config");
        path
    };
    let run = |config: std::path::PathBuf| async move {
        tokio::process::Command::new(common::process::BIN)
            .args(["notify", "--test", "--config"])
            .arg(config)
            .output()
            .await
            .expect("run notify --test")
    };

    let hook = Webhook::start(&f.ca, f.dir.path(), Answer::Ok).await;
    let url = format!("https://localhost:{}/my-topic", hook.addr.port());
    let out = run(config_for(&url, "ntfy")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/", "ntfy's JSON publishing posts to the root");
    assert_eq!(got[0].body["topic"], "my-topic");
    assert_eq!(got[0].body["title"], "pi-cli: test message");

    let refusing = Webhook::start(&f.ca, f.dir.path(), Answer::NotFound).await;
    let out = run(config_for(&refusing.url(), "slack")).await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("answered 404"), "{said}");

    let out = run(config_for(
        "http://hooks.example/services/SECRET",
        "generic",
    ))
    .await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("notify.url") && !said.contains("SECRET"),
        "{said}"
    );
}
