//! Syncing the site from a real S3 server (SigV4 over HTTP on loopback) into atomic
//! generations, and serving what was synced.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use common::s3::{Fault, S3Server, StoredObject};
use common::Fixture;
use pi_failover::config::Config;
use pi_failover::sync::key::KeyRejection;
use pi_failover::sync::{SyncError, Syncer};

const PAGE: &str = "<!doctype html><title>Home</title><p>The standby Pi keeps this page.</p>\n";

fn html(n: usize) -> String {
    PAGE.repeat(n)
}

struct Setup {
    f: Fixture,
    s3: S3Server,
    config: Config,
}

impl Setup {
    async fn new() -> Self {
        let f = Fixture::new();
        let s3 = S3Server::start().await;
        let config = f.s3_config(&s3);
        Self { f, s3, config }
    }

    async fn syncer(&self) -> Syncer {
        Syncer::new(&self.config)
            .await
            .expect("syncer")
            .expect("[s3] is configured")
    }

    fn served(&self, key: &str) -> PathBuf {
        self.f.path("data/site/current/files").join(key)
    }

    fn read(&self, key: &str) -> Vec<u8> {
        std::fs::read(self.served(key)).unwrap_or_else(|e| panic!("{key}: {e}"))
    }

    fn seed_site(&self) {
        let b = &self.s3.bucket;
        b.put(
            "index.html",
            StoredObject::new(html(20))
                .content_type("text/html")
                .cache_control("max-age=600"),
        );
        b.put(
            "about/index.html",
            StoredObject::new(html(3)).content_type("text/html"),
        );
        b.put(
            "assets/main.css",
            StoredObject::new("body{color:#123}\n".repeat(50)).content_type("text/x-c++"),
        );
        b.put(
            "assets/photo.jpg",
            StoredObject::new(vec![0xd8u8; 3000]).content_type("image/jpeg"),
        );
        b.put("up.txt", StoredObject::new(""));
    }
}

#[tokio::test]
async fn a_full_sync_copies_the_bucket_exactly_with_precompressed_siblings() {
    let t = Setup::new().await;
    t.seed_site();
    let report = t.syncer().await.sync_once(false).await.expect("sync");
    assert!(report.switched);
    assert_eq!((report.listed, report.added, report.kept), (5, 5, 0));
    for key in t.s3.bucket.keys() {
        assert_eq!(
            t.read(&key),
            t.s3.bucket.object(&key).expect("object").body,
            "{key}"
        );
    }
    assert!(t.served("index.html.br").is_file() && t.served("index.html.gz").is_file());
    assert!(
        !t.served("assets/photo.jpg.gz").exists(),
        "JPEG is not compressed"
    );
    assert!(
        !t.served("up.txt.gz").exists(),
        "tiny files are not compressed"
    );
}

#[tokio::test]
async fn a_noop_sync_sends_list_requests_only() {
    let t = Setup::new().await;
    t.seed_site();
    let syncer = t.syncer().await;
    let first = syncer.sync_once(false).await.expect("first sync");
    let before = t.s3.bucket.requests();
    let again = syncer.sync_once(false).await.expect("no-op sync");
    let after = t.s3.bucket.requests();
    assert!(!again.switched);
    assert_eq!(again.generation, first.generation);
    assert_eq!((again.list_requests, again.get_requests), (1, 0));
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 0),
        "the server saw one LIST and no GET"
    );
}

#[tokio::test]
async fn listings_are_paginated() {
    let t = Setup::new().await;
    for i in 0..2500 {
        t.s3.bucket
            .put_body(&format!("p/{i:05}.txt"), format!("{i}"));
    }
    let report = t.syncer().await.sync_once(false).await.expect("sync");
    assert_eq!(report.listed, 2500);
    assert_eq!(report.list_requests, 3);
    assert_eq!(t.read("p/02499.txt"), b"2499");
}

#[tokio::test]
async fn added_changed_and_deleted_objects_make_a_new_generation_reusing_unchanged_files() {
    let t = Setup::new().await;
    t.seed_site();
    let syncer = t.syncer().await;
    syncer.sync_once(false).await.expect("first");
    let unchanged_inode = std::fs::metadata(t.served("assets/photo.jpg"))
        .expect("meta")
        .ino();

    t.s3.bucket.put(
        "about/index.html",
        StoredObject::new(html(3).replace("Home", "Hame")).content_type("text/html"),
    );
    t.s3.bucket.put_body("new.html", "<p>new</p>");
    t.s3.bucket.delete("assets/main.css");
    let report = syncer.sync_once(false).await.expect("second");
    assert_eq!(
        (report.added, report.changed, report.removed, report.kept),
        (1, 1, 1, 3)
    );
    assert_eq!(report.get_requests, 2);
    assert!(
        t.read("about/index.html").windows(4).any(|w| w == b"Hame"),
        "a same-size edit is caught"
    );
    assert!(!t.served("assets/main.css").exists());
    assert!(!t.served("assets/main.css.gz").exists());
    assert_eq!(
        std::fs::metadata(t.served("assets/photo.jpg"))
            .expect("meta")
            .ino(),
        unchanged_inode,
        "unchanged files are hard links, not copies"
    );
    assert!(
        t.served("index.html.br").is_file(),
        "kept files keep their siblings"
    );
}

#[tokio::test]
async fn multipart_objects_are_synced_by_their_opaque_etag() {
    let t = Setup::new().await;
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    t.s3.bucket
        .put("big.bin", StoredObject::new(body.clone()).multipart(3));
    let syncer = t.syncer().await;
    syncer.sync_once(false).await.expect("sync");
    assert_eq!(t.read("big.bin"), body);
    assert!(!syncer.sync_once(false).await.expect("again").switched);
}

#[tokio::test]
async fn hostile_keys_are_skipped_counted_and_never_written() {
    let t = Setup::new().await;
    t.seed_site();
    let long = "x".repeat(300);
    let hostile = [
        "../escape.html",
        "a/../../escape.html",
        "/abs.html",
        "dir/",
        "a//b.html",
        "back\\slash.html",
        "nul\0.html",
        &long,
    ];
    for key in hostile {
        t.s3.bucket.put_body(key, "HOSTILE");
    }
    t.s3.bucket.put_body("page", "file");
    t.s3.bucket.put_body("page/index.html", "dir");
    let report = t
        .syncer()
        .await
        .sync_once(false)
        .await
        .expect("sync goes on");
    assert_eq!(report.skipped.len(), hostile.len() + 1);
    assert!(report
        .skipped
        .iter()
        .any(|s| s.key == "page" && s.reason == KeyRejection::FileDirectoryConflict));
    assert_eq!(t.read("page/index.html"), b"dir");
    // Nothing anywhere under the test's directory but the synced site holds the marker.
    let mut stack = vec![t.f.dir.path().to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("ls").flatten() {
            let path = entry.path();
            if entry.file_type().expect("type").is_dir() {
                stack.push(path);
            } else if entry.file_type().expect("type").is_file() {
                assert_ne!(
                    std::fs::read(&path).unwrap_or_default(),
                    b"HOSTILE",
                    "{}",
                    path.display()
                );
            }
        }
    }
}

#[tokio::test]
async fn transient_faults_are_retried_to_success() {
    for fault in [
        Fault::InternalError,
        Fault::SlowDown,
        Fault::Truncate,
        Fault::Corrupt,
    ] {
        let t = Setup::new().await;
        t.s3.bucket.put("index.html", StoredObject::new(html(20)));
        t.s3.bucket.fail_next(&[fault, fault]);
        let report = t
            .syncer()
            .await
            .sync_once(false)
            .await
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert!(report.switched, "{fault:?}");
        assert_eq!(
            t.read("index.html"),
            html(20).as_bytes(),
            "{fault:?}: verified bytes"
        );
    }
}

/// A clock that is `offset_secs` away from the real one, as a Pi's is before NTP answers.
#[derive(Debug)]
struct WrongClock {
    offset_secs: i64,
}

impl pi_failover::sync::TimeSource for WrongClock {
    fn now(&self) -> std::time::SystemTime {
        let now = std::time::SystemTime::now();
        let by = Duration::from_secs(self.offset_secs.unsigned_abs());
        if self.offset_secs < 0 {
            now - by
        } else {
            now + by
        }
    }
}

#[tokio::test]
async fn a_wrong_local_clock_is_corrected_from_the_servers_date() {
    let since_1970 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    // Two hours behind, a day ahead, and a Pi that booted at the epoch with no saved clock.
    for offset_secs in [-2 * 3600, 24 * 3600, -since_1970] {
        let t = Setup::new().await;
        t.seed_site();
        let clock = pi_failover::sync::SharedTimeSource::new(WrongClock { offset_secs });
        let syncer = Syncer::with_clock(&t.config, Some(clock))
            .await
            .expect("syncer")
            .expect("[s3] is configured");
        let report = syncer
            .sync_once(false)
            .await
            .unwrap_or_else(|e| panic!("clock off by {offset_secs} s: {e}"));
        assert!(report.switched);
        assert_eq!(t.read("index.html"), html(20).as_bytes());
        let refused = t.s3.forbidden.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            refused >= 1,
            "the server refused the first request signed {offset_secs} s off, then the corrected retry"
        );
        // The skew is learnt once per client: the next sync signs right the first time.
        syncer.sync_once(false).await.expect("second sync");
        assert_eq!(
            t.s3.forbidden.load(std::sync::atomic::Ordering::Relaxed),
            refused,
            "no more refusals once the skew is known"
        );
    }
}

#[tokio::test]
async fn a_failed_sync_leaves_the_current_generation_untouched() {
    let t = Setup::new().await;
    t.seed_site();
    let syncer = t.syncer().await;
    let good = syncer.sync_once(false).await.expect("good sync").generation;
    let before = t.read("index.html");

    t.s3.bucket.put("index.html", StoredObject::new(html(21)));
    t.s3.bucket.fail_always(Some(Fault::Corrupt));
    let err = syncer
        .sync_once(false)
        .await
        .expect_err("persistent corruption fails the sync");
    assert!(err.to_string().contains("corrupt"), "{err}");
    t.s3.bucket.fail_always(None);
    assert_eq!(syncer.store().current_id(), good);
    assert_eq!(t.read("index.html"), before);
    assert_eq!(
        std::fs::read_dir(t.f.path("data/site/staging"))
            .expect("ls")
            .count(),
        0,
        "no leftovers"
    );

    let next = syncer.sync_once(false).await.expect("recovers");
    assert!(next.switched);
    assert_eq!(t.read("index.html"), html(21).as_bytes());
}

#[tokio::test]
async fn an_emptied_bucket_or_mass_deletion_is_refused() {
    let t = Setup::new().await;
    t.seed_site();
    let syncer = t.syncer().await;
    let good = syncer.sync_once(false).await.expect("sync").generation;

    t.s3.bucket.clear();
    assert!(matches!(
        syncer.sync_once(false).await,
        Err(SyncError::Plan(_))
    ));
    t.seed_site();
    for key in ["index.html", "about/index.html", "assets/main.css"] {
        t.s3.bucket.delete(key);
    }
    let err = syncer.sync_once(false).await.expect_err("60 % deleted");
    assert!(err.to_string().contains("max_delete_fraction"), "{err}");
    assert_eq!(syncer.store().current_id(), good);
    assert!(t.served("index.html").is_file());
}

#[tokio::test]
async fn a_dry_run_plans_without_writing() {
    let t = Setup::new().await;
    t.seed_site();
    let report = t.syncer().await.sync_once(true).await.expect("dry run");
    assert_eq!(report.added, 5);
    assert_eq!(report.get_requests, 0);
    assert!(!t.served("index.html").exists());
}

#[tokio::test]
async fn the_appliance_serves_what_it_synced_with_the_objects_headers() {
    let t = Setup::new().await;
    t.seed_site();
    t.s3.bucket
        .put("old-page.html", StoredObject::new("").redirect("/about/"));
    t.s3.bucket.put(
        "data.json",
        StoredObject::new(r#"{"a":1}"#)
            .content_type("application/json")
            .content_encoding("identity"),
    );
    let app = pi_failover::appliance::Appliance::start(t.config.clone())
        .await
        .expect("start");
    let client = t.f.client();
    let mut served = false;
    for _ in 0..100 {
        if client.get(app.https_addr(), "/").await.status == 200 {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the first sync is served");
    let mut conn = client.h1(app.https_addr()).await;
    let home = conn.send(common::get("/")).await;
    assert_eq!(home.header("cache-control"), Some("max-age=600"));
    assert_eq!(home.header("x-powered-by"), Some("raspberry-pi"));
    let css = conn.send(common::get("/assets/main.css")).await;
    assert_eq!(
        css.header("content-type"),
        Some("text/css; charset=utf-8"),
        "s3cmd's wrong type is corrected"
    );
    let br = conn
        .send(common::request("GET", "/", &[("accept-encoding", "br")]))
        .await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    let moved = conn.send(common::get("/old-page.html")).await;
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some("/about/"));
    let json = conn.send(common::get("/data.json")).await;
    assert_eq!(json.header("content-encoding"), Some("identity"));

    let status = app.sync_status().borrow().clone();
    assert!(status.last_success.is_some() && status.last_error.is_none());
    assert_eq!(status.generation.as_deref(), Some("000001"));
    let report = status.last_report.expect("report");
    assert_eq!((report.added, report.get_requests), (7, 7));
    app.shutdown().await;
}

#[tokio::test]
async fn the_bandwidth_limit_holds_downloads_back() {
    let mut t = Setup::new().await;
    t.config.s3.as_mut().expect("s3").bandwidth_limit = 100_000;
    t.s3.bucket.put_body("blob.bin", vec![7u8; 300_000]);
    let report = t.syncer().await.sync_once(false).await.expect("sync");
    // 300 kB at 100 kB/s, less the limiter's 64 kB burst: at least two seconds.
    assert!(
        report.duration >= Duration::from_secs(2),
        "took {:?}",
        report.duration
    );
    assert_eq!(t.read("blob.bin").len(), 300_000);
}

#[tokio::test]
async fn readers_never_see_a_missing_file_or_a_mixed_body_across_many_switches() {
    let t = Setup::new().await;
    let version = |n: usize| format!("<p>version {n:04}</p>\n").repeat(2000);
    t.s3.bucket.put("index.html", StoredObject::new(version(0)));
    t.s3.bucket
        .put("stable.css", StoredObject::new("body{}\n".repeat(300)));
    let app = pi_failover::appliance::Appliance::start(t.config.clone())
        .await
        .expect("start");
    let client = t.f.client();
    for _ in 0..100 {
        if client.get(app.https_addr(), "/").await.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let syncer = t.syncer().await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let addr = app.https_addr();
        let client = client.clone();
        tokio::spawn(async move {
            let mut conn = client.h1(addr).await;
            let mut seen = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for path in ["/", "/stable.css"] {
                    let r = conn.send(common::get(path)).await;
                    assert_eq!(r.status, 200, "{path} must never be missing");
                    if path == "/" {
                        let body = String::from_utf8(r.body.to_vec()).expect("utf8");
                        let first = &body[..20];
                        assert!(
                            body == first.repeat(2000),
                            "one version per body, never a mix"
                        );
                    }
                    seen += 1;
                }
            }
            seen
        })
    };
    for n in 1..=20 {
        t.s3.bucket.put("index.html", StoredObject::new(version(n)));
        assert!(syncer.sync_once(false).await.expect("sync").switched);
        app.reload().await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let requests = reader.await.expect("reader saw no error");
    assert!(
        requests > 20,
        "the reader kept reading during the switches ({requests})"
    );
    assert_eq!(
        client.get(app.https_addr(), "/").await.body,
        version(20).as_bytes()
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_sync_killed_midway_leaves_the_site_whole_and_the_next_one_completes() {
    let t = Setup::new().await;
    t.seed_site();
    let syncer = t.syncer().await;
    let good = syncer
        .sync_once(false)
        .await
        .expect("first sync")
        .generation;
    let good_index = t.read("index.html");

    // The next sync is slow (each GET stalls), and is killed while it downloads.
    for i in 0..30 {
        t.s3.bucket
            .put_body(&format!("posts/{i}/index.html"), html(2));
    }
    t.s3.bucket.put("index.html", StoredObject::new(html(30)));
    t.s3.bucket
        .fail_always(Some(Fault::Stall(Duration::from_millis(200))));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pi-failover"))
        .args(["sync", "--once", "--config"])
        .arg(t.f.path("pi-failover.toml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sync");
    let staging = t.f.path("data/site/staging");
    for _ in 0..100 {
        if std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    t.s3.bucket.fail_always(None);

    assert_eq!(
        syncer.store().current_id(),
        good,
        "the killed sync switched nothing"
    );
    assert_eq!(
        t.read("index.html"),
        good_index,
        "the served site is the old one, whole"
    );
    let report = syncer
        .sync_once(false)
        .await
        .expect("the next sync completes");
    assert!(report.switched);
    assert_eq!(t.read("index.html"), html(30).as_bytes());
    assert_eq!(t.read("posts/29/index.html"), html(2).as_bytes());
    assert_eq!(
        std::fs::read_dir(&staging).expect("ls").count(),
        0,
        "leftovers removed"
    );
}
