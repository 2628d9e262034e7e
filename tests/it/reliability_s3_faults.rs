//! The sync over a network that misbehaves: a TCP proxy between the appliance's sync and a
//! real S3 server cuts, stalls, corrupts or answers object downloads in the server's place.
//!
//! Every case is specified the same way, on a running appliance whose sync loop runs every
//! second: a fault that happens a couple of times and then heals is retried and ends in the
//! new generation, every file byte for byte right; a fault that does not heal fails the sync,
//! leaves the generation being served untouched (same id, same bytes over HTTPS), and
//! `/api/status` says what went wrong; once the network heals, the next sync completes.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::fault_proxy::{Fault, FaultProxy, Plan};
use common::s3::{S3Server, StoredObject};
use common::{Client, Fixture};
use pi_failover::appliance::Appliance;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The sync's timeouts in these tests: for an answer to start (`s3.request_timeout`; the
/// SDK's read timeout is the same value) and for the next body byte (`s3.stall_timeout`).
/// A stall must outlast them to count as one.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
const STALL: Duration = Duration::from_secs(4);
/// Long enough for a sync that retries every download five times with backoff.
const SYNC_DEADLINE: Duration = Duration::from_secs(60);

/// The site: pages, a stylesheet and a binary, each larger than any cut point below.
const KEYS: &[&str] = &[
    "index.html",
    "about/index.html",
    "assets/site.css",
    "img/photo.bin",
];

/// Each generation's files say which generation they belong to.
fn body(key: &str, generation: u32) -> Vec<u8> {
    if key.ends_with(".bin") {
        (0..20_000u32)
            .map(|i| (i.wrapping_mul(31).wrapping_add(generation * 7)) as u8)
            .collect()
    } else {
        format!("<p>generation {generation} of {key}</p>\n")
            .repeat(150)
            .into_bytes()
    }
}

fn generation_id(generation: u32) -> String {
    format!("{generation:06}")
}

/// An appliance syncing through the proxy, serving generation 1.
struct Rig {
    f: Fixture,
    s3: S3Server,
    proxy: FaultProxy,
    app: Appliance,
    client: Client,
}

impl Rig {
    async fn start() -> Self {
        let f = Fixture::new();
        let s3 = S3Server::start().await;
        let proxy = FaultProxy::start(s3.addr).await;
        let mut config = f.s3_config(&s3);
        let sync = config.s3.as_mut().expect("[s3]");
        sync.endpoint = Some(proxy.endpoint());
        sync.interval = Duration::from_secs(1);
        sync.request_timeout = REQUEST_TIMEOUT;
        sync.stall_timeout = REQUEST_TIMEOUT;
        publish(&s3, 1);
        let app = Appliance::start(config).await.expect("appliance starts");
        let rig = Self {
            client: f.client(),
            f,
            s3,
            proxy,
            app,
        };
        rig.wait_for_generation(1).await;
        rig
    }

    async fn api_status(&self) -> serde_json::Value {
        let addr = self.app.status_addr().expect("status page on");
        let mut tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect status");
        // The Host a browser on the LAN sends: the page refuses other names without the token.
        let request =
            format!("GET /api/status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).await.expect("read");
        let at = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        serde_json::from_slice(&raw[at + 4..]).expect("status JSON")
    }

    fn current_on_disk(&self) -> PathBuf {
        std::fs::read_link(self.f.path("data/site/current")).expect("`current` link")
    }

    /// Every file of `generation`, byte for byte, over HTTPS and on disk.
    async fn assert_serves(&self, generation: u32) {
        let mut conn = self.client.h1(self.app.https_addr()).await;
        for key in KEYS {
            let reply = conn.send(common::get(&format!("/{key}"))).await;
            assert_eq!(reply.status, 200, "/{key}");
            assert!(
                reply.body == body(key, generation),
                "/{key} is served as generation {generation}, byte for byte"
            );
            let on_disk =
                std::fs::read(self.f.path("data/site/current/files").join(key)).expect("on disk");
            assert!(
                on_disk == body(key, generation),
                "{key} on disk is generation {generation}"
            );
        }
        assert_eq!(
            self.current_on_disk(),
            PathBuf::from("generations").join(generation_id(generation))
        );
    }

    /// Waits until the status reports `generation` synced without error and HTTPS serves it.
    async fn wait_for_generation(&self, generation: u32) {
        let id = generation_id(generation);
        let deadline = tokio::time::Instant::now() + SYNC_DEADLINE;
        loop {
            let status = self.api_status().await;
            let sync = &status["site"]["sync"];
            let switched = status["site"]["generation"] == id.as_str()
                && sync["last_error"].is_null()
                && sync["consecutive_failures"] == 0;
            // The status is recorded just before the new index is swapped in.
            let served = switched
                && self
                    .client
                    .get(self.app.https_addr(), "/index.html")
                    .await
                    .body
                    == body("index.html", generation);
            if served {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "generation {id} not served within {SYNC_DEADLINE:?}: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.assert_serves(generation).await;
    }

    /// Waits for the status to show a failed sync; returns its reason.
    async fn wait_for_failure(&self) -> (String, serde_json::Value) {
        let deadline = tokio::time::Instant::now() + SYNC_DEADLINE;
        loop {
            let status = self.api_status().await;
            if let Some(error) = status["site"]["sync"]["last_error"].as_str() {
                return (error.to_owned(), status);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no failed sync within {SYNC_DEADLINE:?}: {status:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn publish(s3: &S3Server, generation: u32) {
    for key in KEYS {
        let object = StoredObject::new(body(key, generation));
        let object = if key.ends_with(".bin") {
            // Uploaded in two parts: its ETag is not an MD5 of its bytes.
            object.content_type("application/octet-stream").multipart(2)
        } else if key.ends_with(".css") {
            object.content_type("text/css")
        } else {
            object.content_type("text/html")
        };
        s3.bucket.put(key, object);
    }
}

/// The whole specification for one fault, on one appliance:
/// 1. the fault hits the next `transient` downloads, then heals → generation 2, whole;
/// 2. the fault hits every download → the sync fails, generation 2 stays served, byte for
///    byte, and the status names the fault (one of `reason_mentions`, case-insensitive);
/// 3. the network heals → the next sync serves generation 3.
async fn fault_is_retried_or_fails_visibly(fault: Fault, transient: u32, reason_mentions: &[&str]) {
    let rig = Rig::start().await;

    rig.proxy.set(Plan::Next(fault, transient));
    let before = rig.proxy.injected();
    publish(&rig.s3, 2);
    rig.wait_for_generation(2).await;
    assert_eq!(
        rig.proxy.injected() - before,
        u64::from(transient),
        "{fault:?}: every transient fault was met, and retried past"
    );

    rig.proxy.set(Plan::Always(fault));
    publish(&rig.s3, 3);
    let (reason, status) = rig.wait_for_failure().await;
    eprintln!("{fault:?} always: status site.sync.last_error = {reason:?}");
    let lower = reason.to_ascii_lowercase();
    assert!(
        reason_mentions
            .iter()
            .any(|m| lower.contains(&m.to_ascii_lowercase())),
        "{fault:?}: the status names what went wrong ({reason_mentions:?}): {reason}"
    );
    assert!(
        KEYS.iter().any(|key| reason.contains(key)),
        "{fault:?}: the status names the object: {reason}"
    );
    let sync = &status["site"]["sync"];
    assert!(
        sync["consecutive_failures"].as_u64().unwrap_or(0) >= 1,
        "{status:#}"
    );
    assert!(!sync["last_success"].is_null(), "{status:#}");
    assert_eq!(status["site"]["generation"], generation_id(2), "{status:#}");
    rig.assert_serves(2).await;

    rig.proxy.set(Plan::PassThrough);
    rig.wait_for_generation(3).await;
    rig.app.shutdown().await;
}

#[tokio::test]
async fn a_connection_cut_mid_body_is_retried_and_a_persistent_one_fails_visibly() {
    fault_is_retried_or_fails_visibly(
        Fault::CutBody(1000),
        2,
        &["body interrupted", "truncated body"],
    )
    .await;
}

#[tokio::test]
async fn a_response_that_never_starts_times_out_and_is_retried_or_fails_visibly() {
    fault_is_retried_or_fails_visibly(
        Fault::StallHead(STALL),
        2,
        &["timed out", "timeout", "no answer within"],
    )
    .await;
}

#[tokio::test]
async fn a_body_that_stalls_midway_times_out_and_is_retried_or_fails_visibly() {
    fault_is_retried_or_fails_visibly(
        Fault::StallBody {
            after: 1000,
            stall: STALL,
        },
        2,
        &["no byte for", "s3.stall_timeout"],
    )
    .await;
}

#[tokio::test]
async fn a_bare_http_500_is_retried_or_fails_visibly() {
    fault_is_retried_or_fails_visibly(Fault::Http500, 2, &["500"]).await;
}

#[tokio::test]
async fn a_bare_http_503_is_retried_or_fails_visibly() {
    fault_is_retried_or_fails_visibly(Fault::Http503, 2, &["503"]).await;
}

#[tokio::test]
async fn s3_slowdown_is_retried_or_fails_visibly() {
    fault_is_retried_or_fails_visibly(Fault::SlowDown, 2, &["SlowDown"]).await;
}

#[tokio::test]
async fn a_corrupted_body_is_caught_by_its_md5_and_never_served() {
    // Every object's first download corrupted, the multipart one (whose ETag is the MD5 of
    // its parts' MD5s) included: each is caught and fetched again.
    let every_object = u32::try_from(KEYS.len()).expect("few keys");
    fault_is_retried_or_fails_visibly(Fault::Corrupt, every_object, &["corrupt body"]).await;
}

/// A Pi often starts before its network (a USB Ethernet chip that registers late, a switch
/// slower to boot after a power cut): its first sync fails at once. The booted-image test
/// found the old loop then waited a whole `s3.interval` (an hour here) before trying again,
/// serving nothing meanwhile. A failed sync is retried after 10 s, doubling.
#[tokio::test]
async fn a_first_sync_that_fails_is_retried_in_seconds_not_after_the_interval() {
    let f = Fixture::new();
    let s3 = S3Server::start().await;
    publish(&s3, 1);
    s3.bucket
        .fail_always(Some(common::s3::Fault::InternalError));
    let mut config = f.s3_config(&s3);
    let sync = config.s3.as_mut().expect("[s3]");
    sync.interval = Duration::from_secs(3600);
    sync.jitter = Duration::ZERO;
    sync.request_timeout = REQUEST_TIMEOUT;
    let app = Appliance::start(config).await.expect("appliance starts");
    let client = f.client();

    // The first sync fails (S3 answers 500 to every try of every download), then the
    // network "comes up".
    let mut sync = app.sync_status();
    tokio::time::timeout(SYNC_DEADLINE, sync.wait_for(|s| s.consecutive_failures > 0))
        .await
        .expect("the first sync fails within the deadline")
        .expect("sync status");
    s3.bucket.fail_always(None);

    let healed = tokio::time::Instant::now();
    loop {
        let reply = client.get(app.https_addr(), "/index.html").await;
        if reply.status == 200 && reply.body == body("index.html", 1) {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(45),
            "not served within 45 s of S3 answering again (s3.interval is an hour): status {}",
            reply.status
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    app.shutdown().await;
}
