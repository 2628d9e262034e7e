//! Limits that keep slow or hostile clients from holding the Pi's resources, and a graceful
//! shutdown that lets readers finish.

use crate::common;

mod attacks;

use std::time::{Duration, Instant};

use common::Fixture;
use pi_failover::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn short_limits(c: &mut Config) {
    c.limits.tls_handshake_timeout = Duration::from_millis(800);
    c.limits.header_read_timeout = Duration::from_millis(800);
    c.limits.idle_timeout = Duration::from_millis(800);
}

/// Reads until the server closes; returns how long that took and what was read.
async fn until_closed(
    mut stream: impl AsyncReadExt + Unpin,
    limit: Duration,
) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0) | Err(_)) => return (start.elapsed(), out),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_elapsed) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_the_tls_handshake_is_cut_off() {
    let f = Fixture::new();
    let app = f.start_with(short_limits).await;
    let tcp = TcpStream::connect(app.https_addr()).await.expect("connect");
    let (took, _) = until_closed(tcp, Duration::from_secs(5)).await;
    assert!(
        took >= Duration::from_millis(700),
        "closed too early: {took:?}"
    );
}

#[tokio::test]
async fn slowloris_headers_are_cut_off_while_readers_are_still_served() {
    let f = Fixture::new();
    f.site_file("index.html", "hi");
    let app = f.start_with(short_limits).await;
    let client = f.client();
    let mut slow = client
        .connect(app.https_addr(), "localhost", &[b"http/1.1"])
        .await;
    slow.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("start");
    let trickle = async {
        // One header byte every 100 ms: never idle, never done.
        for _ in 0..50 {
            if slow.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        slow
    };
    let reader = async {
        let r = client.get(app.https_addr(), "/").await;
        assert_eq!(r.status, 200, "a normal reader is served meanwhile");
    };
    let (slow, ()) = tokio::join!(trickle, reader);
    let (took, response) = until_closed(slow, Duration::from_secs(1)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(
        !text.contains("200 OK"),
        "the slow request must not be answered: {text}"
    );
    assert!(took < Duration::from_secs(1));
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let f = Fixture::new();
    f.site_file("index.html", "hi");
    let app = f
        .start_with(|c| {
            c.limits.idle_timeout = Duration::from_millis(800);
            c.limits.header_read_timeout = Duration::from_secs(30);
        })
        .await;
    let client = f.client();
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let tls = client.connect(app.https_addr(), "localhost", &[alpn]).await;
        let (took, _) = until_closed(tls, Duration::from_secs(5)).await;
        assert!(
            took >= Duration::from_millis(700),
            "{alpn:?} closed too early: {took:?}"
        );
    }
}

const BIG: usize = 32 * 1024 * 1024;

/// Requests `/big.bin` (BIG bytes) over a connection with a 16 KB receive window and never
/// reads: the kernel's buffers cannot swallow the body, so the server's writes really stall.
async fn start_stalled_download(
    f: &Fixture,
    addr: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("rcvbuf");
    let tcp = socket.connect(addr).await.expect("connect");
    let client = f.client();
    let mut tls = client
        .handshake(
            tcp,
            "localhost",
            client.tls_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS),
        )
        .await
        .expect("handshake");
    tls.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    tls
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_disconnected() {
    const SIZE: usize = BIG;
    let f = Fixture::new();
    f.site_file("big.bin", vec![1u8; SIZE]);
    // Linux's zero-window probing lets a stalled connection trickle a few bytes every few
    // hundred milliseconds; an idle limit below that interval makes the cut certain.
    let app = f
        .start_with(|c| {
            short_limits(c);
            c.limits.idle_timeout = Duration::from_millis(300);
        })
        .await;
    let tls = start_stalled_download(&f, app.https_addr()).await;
    // Stop reading long enough for the server's writes to stall past the idle timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, body) = until_closed(tls, Duration::from_secs(10)).await;
    assert!(body.len() < SIZE, "the stalled transfer must have been cut");
}

#[tokio::test]
async fn oversized_request_headers_get_431() {
    let f = Fixture::new();
    let app = f.start_with(|c| c.limits.max_header_bytes = 8192).await;
    let big = "a".repeat(20_000);
    let request = format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n");
    let response = common::raw_exchange(&f.client(), app.https_addr(), request.as_bytes()).await;
    assert_eq!(
        common::raw_status(&response),
        431,
        "{}",
        String::from_utf8_lossy(&response)
    );
}

/// Beyond `limits.max_connections`, a connection gets one request from the reserve and is
/// closed (the health checker's way in while the site is saturated); with the reserve taken
/// too, it waits until a place frees.
#[tokio::test]
async fn connections_beyond_the_cap_get_one_request_from_the_reserve_then_wait() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>hi</p>");
    let app = f
        .start_with(|c| {
            c.limits.max_connections = 2;
            c.limits.reserved_connections = 1;
        })
        .await;
    let client = f.client();
    let mut first = client.h1(app.https_addr()).await;
    let mut second = client.h1(app.https_addr()).await;
    assert_eq!(first.send(common::get("/")).await.status, 200);
    assert_eq!(second.send(common::get("/")).await.status, 200);

    // The reserve: one request answered, then the connection is closed.
    let mut third = client.h1(app.https_addr()).await;
    let reply = tokio::time::timeout(Duration::from_secs(2), third.send(common::get("/")))
        .await
        .expect("the reserve answers at once");
    assert_eq!(reply.status, 200);
    assert!(
        third.try_send(common::get("/")).await.is_err(),
        "a reserve connection serves one request"
    );

    // The reserve held by a connection that has sent nothing yet: the next one waits.
    let _holding_reserve = client.connect(app.https_addr(), "localhost", &[]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut waiting = client.h1(app.https_addr()).await;
    let request = tokio::spawn(async move { waiting.send(common::get("/")).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !request.is_finished(),
        "a request beyond the cap and the reserve must wait"
    );
    drop(first);
    let reply = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("it proceeds once a place frees")
        .expect("request task");
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_response_finish_and_stops_accepting() {
    let f = Fixture::new();
    let data = vec![9u8; 4 * 1024 * 1024];
    f.site_file("big.bin", &data);
    let app = f.start().await;
    let addr = app.https_addr();
    let client = f.client();
    let mut tls = client.connect(addr, "localhost", &[b"http/1.1"]).await;
    tls.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    let mut first = [0u8; 1024];
    let n = tls.read(&mut first).await.expect("response started");
    assert!(n > 0);

    let shutdown = tokio::spawn(app.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err()
            || client
                .connect_with(
                    addr,
                    "localhost",
                    client.tls_config(&[], rustls::DEFAULT_VERSIONS)
                )
                .await
                .is_err(),
        "no new connection is served after shutdown starts"
    );
    let (_, rest) = until_closed(tls, Duration::from_secs(10)).await;
    let mut response = first[..n].to_vec();
    response.extend_from_slice(&rest);
    let header_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head")
        + 4;
    assert_eq!(
        response.len() - header_end,
        data.len(),
        "the whole body arrived"
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown returns once drained")
        .expect("join");
}

#[tokio::test]
async fn shutdown_gives_up_on_a_stuck_connection_after_the_grace_period() {
    let f = Fixture::new();
    f.site_file("big.bin", vec![1u8; BIG]);
    let app = f
        .start_with(|c| {
            c.limits.shutdown_grace = Duration::from_millis(500);
            c.limits.idle_timeout = Duration::from_secs(60);
        })
        .await;
    let tls = start_stalled_download(&f, app.https_addr()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    app.shutdown().await;
    let took = start.elapsed();
    // It waited for the stuck response (so the test really had one) and then gave up.
    assert!(
        took >= Duration::from_millis(450),
        "did not wait for the stuck connection: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "did not give up after the grace period: {took:?}"
    );
    drop(tls);
}

#[tokio::test]
async fn one_address_cannot_take_every_slot() {
    let f = Fixture::new();
    f.site_file("index.html", "<p>home</p>");
    // Twice the per-address cap fills the whole Pi; the handshake timeout stays long, as an
    // attacker's silent connections would hold their slots for it.
    let app = f
        .start_with(|c| {
            c.limits.max_connections = 8;
            c.limits.max_connections_per_address = 4;
        })
        .await;
    let mut silent = Vec::new();
    for _ in 0..8 {
        silent.push(common::connect_from("127.0.0.7", app.https_addr()).await);
    }
    // The address's connections beyond its cap are closed at once...
    let mut closed = 0;
    for tcp in &mut silent {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 4, "the four over the cap");
    // ...and a reader from another address is served while the first four stay open.
    let tcp = common::connect_from("127.0.0.9", app.https_addr()).await;
    let client = f.client();
    let reader = async {
        client
            .h1_over(tcp)
            .await
            .send(common::get("/"))
            .await
            .status
    };
    let status = tokio::time::timeout(Duration::from_secs(2), reader)
        .await
        .expect("served within 2 s during the attack");
    assert_eq!(status, 200);
    drop(silent);
}
