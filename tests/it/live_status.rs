//! Knowing whether the Pi is live-serving, and the local status page that says so: real TLS
//! readers from distinct loopback addresses, a real primary that stops answering, the page
//! over plain HTTP with its access rules, and (system tests) a real browser.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{connect_from, Client, Fixture};
use pi_failover::appliance::Appliance;
use pi_failover::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36";
const ROUTE53: &str =
    "Amazon-Route53-Health-Check-Service (ref 6a1e3c2f-0000; report http://amzn.to/1vsZADi)";
const TOKEN: &str = "a-long-status-token-0123456789";

fn fast(c: &mut Config) {
    c.live.debounce = Duration::from_millis(500);
    c.live.readers = 3;
}

/// One HTTPS GET of `/` from `source`, with the site's name as SNI and Host.
async fn read_page(f: &Fixture, app: &Appliance, source: &str, agent: &str) -> u16 {
    let client: Client = f.client();
    let tcp = connect_from(source, app.https_addr()).await;
    let mut conn = client.h1_over(tcp).await;
    let request = common::request("GET", "/", &[("user-agent", agent)]);
    conn.send(request).await.status.as_u16()
}

/// A plain-HTTP GET to the status page from `source`; returns status and body.
async fn status_page(
    app: &Appliance,
    source: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let (code, body) = status_page_bytes(app, source, path, headers).await;
    (code, String::from_utf8_lossy(&body).into_owned())
}

/// A plain-HTTP GET to the status page from `source`; returns status and body bytes.
async fn status_page_bytes(
    app: &Appliance,
    source: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    let addr = app.status_addr().expect("status page on");
    common::status_page_get(addr, source, path, headers).await
}

async fn api_status(app: &Appliance) -> serde_json::Value {
    let (code, body) = status_page(app, "127.0.0.1", "/api/status", &[]).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// Polls the JSON until `holds`, or fails saying `what` with the last status after `within`.
async fn wait_for_status(
    app: &Appliance,
    what: &str,
    within: Duration,
    holds: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = api_status(app).await;
        if holds(&status) {
            return status;
        }
        assert!(
            tokio::time::Instant::now() <= deadline,
            "not {what} within {within:?}: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_mode(app: &Appliance, mode: &str, within: Duration) -> serde_json::Value {
    wait_for_status(app, mode, within, |s| s["mode"] == mode).await
}

#[tokio::test]
async fn readers_make_the_pi_live_within_the_window() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f.start_with(fast).await;
    let status = api_status(&app).await;
    assert_eq!(status["mode"], "STANDBY", "{status:#}");

    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        assert_eq!(read_page(&f, &app, source, BROWSER).await, 200);
    }
    let status = wait_for_mode(&app, "LIVE", Duration::from_secs(5)).await;
    assert_eq!(status["traffic"]["readers_1m"], 3, "{status:#}");
    assert!(status["reason"]
        .as_str()
        .unwrap_or("")
        .contains("3 readers"));
    assert_eq!(status["transitions"][0]["to"], "LIVE");
    app.shutdown().await;
}

#[tokio::test]
async fn health_checks_bots_and_bare_ip_requests_alone_keep_standby() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f.start_with(fast).await;
    for n in 2..8 {
        let source = format!("127.0.0.{n}");
        read_page(&f, &app, &source, ROUTE53).await;
        read_page(&f, &app, &source, "Mozilla/5.0 (compatible; Googlebot/2.1)").await;
    }
    // A scanner by IP, no SNI: "other".
    let raw = common::raw_exchange(
        &f.client(),
        app.https_addr(),
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!raw.is_empty());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = api_status(&app).await;
    assert_eq!(status["mode"], "STANDBY", "{status:#}");
    assert_eq!(status["traffic"]["readers_1m"], 0);
    assert_eq!(status["traffic"]["requests_1m"]["health_check"], 6);
    assert!(
        status["traffic"]["requests_1m"]["other"]
            .as_u64()
            .unwrap_or(0)
            >= 7
    );
    app.shutdown().await;
}

/// A stand-in for the primary's web server, answering its health path until dropped.
async fn primary() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_primary_that_stops_answering_turns_standby_into_attention() {
    let (addr, server) = primary().await;
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f
        .start_with(|c| {
            fast(c);
            c.primary = Some(pi_failover::config::PrimaryConfig {
                url: format!("http://{addr}/up.txt"),
                host: Some("example.test".into()),
                interval: Duration::from_millis(200),
                timeout: Duration::from_millis(150),
                threshold: 2,
            });
        })
        .await;
    let status = wait_for_status(&app, "primary up", Duration::from_secs(5), |s| {
        s["primary"]["up"] == true
    })
    .await;
    assert_eq!(status["mode"], "STANDBY", "{status:#}");
    server.abort();
    let _ = server.await;
    let status = wait_for_mode(&app, "ATTENTION", Duration::from_secs(5)).await;
    assert_eq!(status["primary"]["up"], false);
    assert!(
        status["reason"]
            .as_str()
            .unwrap_or("")
            .contains("primary is down"),
        "{status:#}"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn the_status_page_answers_the_allow_list_or_the_token_and_nobody_else() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f
        .start_with(|c| {
            c.status.allow = vec!["127.0.0.1/32".parse().expect("net")];
            c.status.token = Some(TOKEN.into());
        })
        .await;
    assert_eq!(status_page(&app, "127.0.0.1", "/", &[]).await.0, 200);
    for path in ["/", "/api/status", "/metrics"] {
        let (code, body) = status_page(&app, "127.0.0.9", path, &[]).await;
        assert_eq!(code, 403, "{path} from outside the allow-list");
        assert!(
            !body.contains("STANDBY"),
            "a refusal says nothing about the Pi"
        );
    }
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        status_page(
            &app,
            "127.0.0.9",
            "/api/status",
            &[("Authorization", &bearer)]
        )
        .await
        .0,
        200
    );
    assert_eq!(
        status_page(&app, "127.0.0.9", &format!("/?token={TOKEN}"), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        status_page(&app, "127.0.0.9", "/?token=wrong-token-0123456789", &[])
            .await
            .0,
        403
    );
    // The public HTTPS listener never serves the status page.
    let reply = f.client().get(app.https_addr(), "/api/status").await;
    assert_eq!(reply.status, 404);

    // DNS rebinding: a page on the LAN makes its own name resolve to the Pi; the browser, on
    // an allowed address, then asks with that name. Only the token opens the page to it.
    let rebound = [("Host", "rebind.evil.example:8080")];
    assert_eq!(
        status_page(&app, "127.0.0.1", "/api/status", &rebound)
            .await
            .0,
        403
    );
    assert_eq!(
        status_page(
            &app,
            "127.0.0.1",
            &format!("/api/status?token={TOKEN}"),
            &rebound
        )
        .await
        .0,
        200
    );
    app.shutdown().await;
}

/// With no token, nothing outside `status.allow` can ever be let in: the kernel drops those
/// SYNs, so to a scanner the port looks filtered rather than answering 403 (issue 15, item
/// 10). A token lets any address in, so then every address reaches the page and is refused
/// there without it.
#[tokio::test]
async fn without_a_token_the_status_port_is_filtered_to_the_allow_list() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let within = Duration::from_millis(700);
    for token in [None, Some(TOKEN)] {
        let app = f
            .start_with(|c| {
                c.status.allow = vec!["127.0.0.1/32".parse().expect("net")];
                c.status.token = token.map(String::from);
            })
            .await;
        let status = app.status_addr().expect("status page on");
        assert_eq!(status_page(&app, "127.0.0.1", "/", &[]).await.0, 200);
        let dropped = common::syn_is_dropped("127.0.0.9", status, within).await;
        assert_eq!(dropped, token.is_none(), "token {token:?}");
        if token.is_some() {
            assert_eq!(status_page(&app, "127.0.0.9", "/", &[]).await.0, 403);
        }
        // The site's own listener is never filtered.
        assert_eq!(read_page(&f, &app, "127.0.0.9", "curl/8").await, 200);
        app.shutdown().await;
    }
}

/// The default listeners are dual-stack (`[::]`, issue 15: they were IPv4-only while the guide
/// has the owner publish AAAA records): IPv6 readers get the site, and an IPv4 client, which
/// such a socket sees as `::ffff:127.0.0.1`, is still known by its IPv4 address.
#[tokio::test]
async fn dual_stack_listeners_serve_both_families_and_know_ipv4_clients_as_ipv4() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f
        .start_with(|c| {
            c.listen.https = "[::]:0".parse().expect("address");
            c.status.listen = pi_failover::config::Listen::On("[::]:0".parse().expect("address"));
            c.status.allow = vec!["127.0.0.1/32".parse().expect("net")];
        })
        .await;
    let status = app.status_addr().expect("status page on");
    assert_eq!(status_page(&app, "127.0.0.1", "/", &[]).await.0, 200);
    for outside in ["127.0.0.9", "::1"] {
        assert!(
            common::syn_is_dropped(outside, status, Duration::from_millis(700)).await,
            "{outside} is outside status.allow: its SYN is dropped"
        );
    }
    for source in ["127.0.0.1", "::1"] {
        assert_eq!(
            read_page(&f, &app, source, "Mozilla/5.0").await,
            200,
            "from {source}"
        );
    }
    app.shutdown().await;
}

/// 32 connections from an address outside the allow-list, pipelining requests and never
/// reading, once held every permit of the status page (issue 13, item 4): the owner and the
/// LAN got nothing. Now a 403 closes its connection and one address holds at most a few.
#[tokio::test]
async fn refused_clients_cannot_lock_the_owner_out_of_the_status_page() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f
        .start_with(|c| {
            c.status.allow = vec!["127.0.0.1/32".parse().expect("net")];
            c.status.token = Some(TOKEN.into());
        })
        .await;
    let addr = app.status_addr().expect("status page on");
    let pipelined = format!("GET /api/status HTTP/1.1\r\nHost: {addr}\r\n\r\n").repeat(2000);
    let mut attackers = Vec::new();
    for _ in 0..40 {
        let mut tcp = connect_from("127.0.0.9", addr).await;
        // Written, never read: the socket buffers fill and the server's writes would block.
        let _ = tokio::time::timeout(
            Duration::from_millis(200),
            tcp.write_all(pipelined.as_bytes()),
        )
        .await;
        attackers.push(tcp);
    }
    let bearer = format!("Bearer {TOKEN}");
    let owner = async {
        (
            status_page(&app, "127.0.0.1", "/api/status", &[]).await.0,
            status_page(
                &app,
                "127.0.0.10",
                "/api/status",
                &[("Authorization", &bearer)],
            )
            .await
            .0,
        )
    };
    let answers = tokio::time::timeout(Duration::from_secs(2), owner)
        .await
        .expect("the LAN and the owner are answered within 2 s during the attack");
    assert_eq!(answers, (200, 200));
    drop(attackers);
    app.shutdown().await;
}

/// The status page has a gate of its own (`server::admission`): an attack that takes every
/// place of the site's listeners, the reserve with them, leaves the owner's page answering.
#[tokio::test]
async fn the_status_page_answers_while_the_site_connections_are_all_taken() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f
        .start_with(|c| {
            c.limits.max_connections = 4;
            c.limits.reserved_connections = 1;
            c.limits.max_connections_per_address = 8;
            c.status.allow = vec!["127.0.0.1/32".parse().expect("net")];
        })
        .await;
    let http = app.http_addr().expect("plain HTTP on");
    // Kept-alive connections that have sent nothing: each holds a place until idle_timeout.
    let mut attackers = Vec::new();
    for _ in 0..8 {
        attackers.push(connect_from("127.0.0.9", http).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The site is full: a reader's request waits...
    let site = tokio::time::timeout(Duration::from_millis(500), async {
        let mut tcp = connect_from("127.0.0.10", http).await;
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut byte = [0u8; 1];
        tcp.read(&mut byte).await
    })
    .await;
    assert!(site.is_err(), "the site's places and reserve are all taken");
    // ...and the status page answers at once.
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        status_page(&app, "127.0.0.1", "/api/status", &[]),
    )
    .await
    .expect("the status page answers during the attack");
    assert_eq!(answer.0, 200);
    drop(attackers);
    app.shutdown().await;
}

#[tokio::test]
async fn the_page_json_and_metrics_show_the_facts_and_no_secrets() {
    let s3 = common::s3::S3Server::start().await;
    s3.bucket.put_body("index.html", "<p>synced</p>");
    let f = Fixture::new();
    let mut config = f.s3_config(&s3);
    config.status.token = Some(TOKEN.into());
    let app = Appliance::start(config).await.expect("start");
    wait_for_status(&app, "synced", Duration::from_secs(10), |s| {
        !s["site"]["generation"].is_null()
    })
    .await;
    let status = wait_for_mode(&app, "STANDBY", Duration::from_secs(5)).await;
    assert_eq!(status["schema"], 2);
    assert_eq!(status["site"]["source"], "s3");
    assert_eq!(status["site"]["files"], 1);
    assert_eq!(status["site"]["sync"]["bucket"], common::s3::BUCKET);
    assert!(status["tls"][0]["days_left"].as_i64().unwrap_or(0) > 0);
    assert!(status["system"]["uptime_seconds"].as_u64().is_some());

    let (_, html) = status_page(&app, "127.0.0.1", "/", &[]).await;
    assert!(
        html.contains(r#"id="mode" class="mode STANDBY"><b>STANDBY</b>"#),
        "{html}"
    );
    let (_, metrics) = status_page(&app, "127.0.0.1", "/metrics", &[]).await;
    assert!(
        metrics.contains("pi_failover_mode{mode=\"STANDBY\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE pi_failover_requests_total counter"));

    let (_, json) = status_page(&app, "127.0.0.1", "/api/status", &[]).await;
    let key = std::fs::read_to_string(f.path("key.pem")).expect("key");
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    for view in [&html, &json, &metrics] {
        for secret in [
            common::s3::SECRET_KEY,
            common::s3::ACCESS_KEY,
            "aws-credentials",
            TOKEN,
        ] {
            assert!(!view.contains(secret), "{secret} shown");
        }
        assert!(!view.contains(&key_body[..40]), "key material shown");
    }
    app.shutdown().await;
}

/// The OLED's picture as the status page serves it, at one panel pixel per pixel.
async fn oled_picture(app: &Appliance) -> pi_failover::indicators::frame::Frame {
    let (code, png) = status_page_bytes(app, "127.0.0.1", "/oled.png", &[]).await;
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&png));
    let scaled = pi_failover::indicators::frame::Frame::from_png(&png).expect("a PNG");
    let mut frame =
        pi_failover::indicators::frame::Frame::new(scaled.width() / 3, scaled.height() / 3);
    for y in 0..frame.height() {
        for x in 0..frame.width() {
            frame.set(x, y, scaled.get(x * 3, y * 3));
        }
    }
    frame
}

#[tokio::test]
async fn the_simulated_oled_and_led_follow_the_mode_on_the_status_page() {
    use pi_failover::config::{LedBackend, OledBackend};
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f
        .start_with(|c| {
            fast(c);
            c.led.backend = LedBackend::Simulated;
            c.oled.backend = OledBackend::Simulated;
        })
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let standby = oled_picture(&app).await;
    assert_eq!((standby.width(), standby.height()), (128, 64));
    assert!(standby.lit() > 100, "the STANDBY screen is drawn");
    let (_, html) = status_page(&app, "127.0.0.1", "/", &[]).await;
    assert!(html.contains(r#"<img src="/oled.png""#), "{html}");
    assert!(
        html.contains("a short blip every 2.5 s"),
        "the LED's STANDBY pattern is shown"
    );

    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        read_page(&f, &app, source, BROWSER).await;
    }
    wait_for_mode(&app, "LIVE", Duration::from_secs(5)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let live = loop {
        let picture = oled_picture(&app).await;
        // The LIVE screen starts with a lit band across the top.
        if (2..120).all(|x| picture.get(x, 2)) {
            break picture;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the OLED never showed LIVE"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_ne!(live, standby);
    let (_, html) = status_page(&app, "127.0.0.1", "/", &[]).await;
    assert!(html.contains("solid on"), "the LED's LIVE pattern is shown");
    app.shutdown().await;
}

#[cfg(feature = "system-tests")]
#[tokio::test]
async fn the_page_renders_the_mode_in_a_real_browser() {
    // Debian's package, which .ci/run installs.
    let chromium = common::require_tool("chromium");
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f.start_with(fast).await;
    let url = format!("http://{}/", app.status_addr().expect("status"));
    let profile = f.path("chromium-profile");
    let out = tokio::process::Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--virtual-time-budget=2000", "--dump-dom"])
        .arg(&url)
        .output()
        .await
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains(r#"id="mode" class="mode STANDBY"><b>STANDBY</b>"#),
        "the browser's DOM shows the mode; stderr: {}\n{dom}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dom.contains("Readers"), "{dom}");
    // The history's two graphs, drawn inline: the browser parsed them into SVG elements.
    assert_eq!(
        dom.matches(r#"<svg xmlns="http://www.w3.org/2000/svg""#)
            .count(),
        2,
        "{dom}"
    );
    assert!(dom.contains("Last 30 days"), "{dom}");
    app.shutdown().await;
}

#[tokio::test]
async fn a_sync_refused_for_bad_credentials_says_why_but_never_shows_them() {
    let s3 = common::s3::S3Server::start().await;
    s3.bucket.put_body("index.html", "<p>synced</p>");
    let f = Fixture::new();
    let config = f.s3_config(&s3);
    // The owner pasted the wrong secret: S3 refuses every signature, and its error pages and
    // the SDK's messages are exactly where credentials could leak into the status.
    let wrong_secret = "WRONGSECRET-0123456789abcdef";
    std::fs::write(
        f.path("aws-credentials"),
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {wrong_secret}\n",
            common::s3::ACCESS_KEY
        ),
    )
    .expect("credentials");
    let app = Appliance::start(config).await.expect("start");
    let status = wait_for_status(&app, "a failed sync", Duration::from_secs(15), |s| {
        !s["site"]["sync"]["last_error"].is_null()
    })
    .await;
    let error = status["site"]["sync"]["last_error"].as_str().unwrap_or("");
    assert!(
        error.to_lowercase().contains("signature") || error.contains("403"),
        "the reason names the refusal: {error}"
    );
    let (_, html) = status_page(&app, "127.0.0.1", "/", &[]).await;
    let (_, metrics) = status_page(&app, "127.0.0.1", "/metrics", &[]).await;
    let json = status.to_string();
    for view in [&html, &json, &metrics] {
        for secret in [
            wrong_secret,
            common::s3::SECRET_KEY,
            common::s3::ACCESS_KEY,
            "aws-credentials",
        ] {
            assert!(!view.contains(secret), "{secret} shown in {view}");
        }
    }
    app.shutdown().await;
}

/// The status page's answers beyond GET, whatever serves its routes: HEAD is GET without the
/// body, another method gets 405 naming the allowed ones, an unknown path 404; every answer
/// (the refusal and the 405 included) is uncached, unframed and unsniffed.
#[tokio::test]
async fn the_status_page_answers_head_other_methods_and_unknown_paths_with_its_headers() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let app = f
        .start_with(|c| {
            c.status.allow = vec!["127.0.0.1/32".parse().expect("net")];
            // With a token the packet filter lets others reach the page, to be refused there.
            c.status.token = Some(TOKEN.into());
        })
        .await;
    let addr = app.status_addr().expect("status page on");
    let ask = |source: &'static str, method: &'static str, path: &'static str| async move {
        let (head, body) = common::status_page_request(addr, source, method, path, &[]).await;
        (
            head.to_ascii_lowercase(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    let always = [
        "cache-control: no-store",
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "content-security-policy: default-src 'none'",
    ];
    let (get, get_body) = ask("127.0.0.1", "GET", "/api/status").await;
    let (head, head_body) = ask("127.0.0.1", "HEAD", "/api/status").await;
    assert!(
        get.starts_with("http/1.1 200") && get_body.contains("\"mode\""),
        "{get}"
    );
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head_body.is_empty(), "HEAD has no body: {head_body:?}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let (post, _) = ask("127.0.0.1", "POST", "/api/status").await;
    assert!(post.starts_with("http/1.1 405"), "{post}");
    let allow = post
        .lines()
        .find_map(|l| l.strip_prefix("allow: "))
        .unwrap_or_default()
        .replace(' ', "");
    assert!(
        allow.split(',').any(|m| m == "get") && allow.split(',').any(|m| m == "head"),
        "{post}"
    );
    let (missing, _) = ask("127.0.0.1", "GET", "/nothing-here").await;
    assert!(missing.starts_with("http/1.1 404"), "{missing}");
    let (refused, refused_body) = ask("127.0.0.9", "POST", "/api/status").await;
    assert!(refused.starts_with("http/1.1 403"), "{refused}");
    assert!(!refused_body.contains("STANDBY"), "{refused_body}");
    for (what, head) in [
        ("GET", &get),
        ("405", &post),
        ("404", &missing),
        ("403", &refused),
    ] {
        for header in always {
            assert!(head.contains(header), "{what} lacks {header}: {head}");
        }
    }
    app.shutdown().await;
}
