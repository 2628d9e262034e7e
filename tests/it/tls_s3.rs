//! The `s3` certificate source against a real S3 server (SigV4, conditional GETs): the Pi
//! starts with no certificate on its card, fetches the primary's renewals after each sync,
//! refuses bad pairs with the one in use kept, and never serves the private location.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use pi_failover::appliance::Appliance;
use pi_failover::config::{CertificateConfig, CertificateSource, Config};
use pi_failover::live::mode::Mode;
use rustls::pki_types::CertificateDer;

use crate::common::s3::S3Server;
use crate::common::{self, Fixture, TestCa};

const PREFIX: &str = "tls/example/";
const DAY: Duration = Duration::from_secs(86_400);

/// A certificate and key as the primary's deploy hook uploads them.
struct Pem {
    cert: Vec<u8>,
    key: Vec<u8>,
}

fn issue(ca: &TestCa, names: &[&str], not_before: SystemTime, not_after: SystemTime) -> Pem {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    ca.issue_valid(names, not_before, not_after, &cert, &key);
    Pem {
        cert: std::fs::read(cert).expect("cert"),
        key: std::fs::read(key).expect("key"),
    }
}

/// Valid from yesterday for `days`.
fn issue_for(ca: &TestCa, days: u32) -> Pem {
    let start = SystemTime::now() - DAY;
    issue(
        ca,
        &["localhost", "example.test"],
        start,
        start + DAY * days,
    )
}

fn upload(s3: &S3Server, pem: &Pem) {
    s3.bucket
        .put_body(&format!("{PREFIX}fullchain.pem"), pem.cert.clone());
    s3.bucket
        .put_body(&format!("{PREFIX}privkey.pem"), pem.key.clone());
}

fn leaf(pem: &Pem) -> CertificateDer<'static> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(&pem.cert).expect("pem")
}

/// The site under `site/`, the certificate under `tls/example/` of the same bucket, synced
/// every 300 ms; no certificate on the card.
fn config(f: &Fixture, s3: &S3Server) -> Config {
    s3.bucket.put_body("site/index.html", "<h1>the site</h1>");
    let mut config = f.s3_config(s3);
    config.s3.as_mut().expect("[s3]").prefix = "site/".into();
    config.tls.certificates = vec![CertificateConfig {
        source: CertificateSource::S3,
        prefix: Some(PREFIX.into()),
        ..CertificateConfig::default()
    }];
    config
        .validate(&f.path("pi-failover.toml"))
        .expect("an s3 certificate beside the site is valid");
    // Faster than a config may ask for: the test waits for several syncs.
    config.s3.as_mut().expect("[s3]").interval = Duration::from_millis(300);
    config
}

/// The certificate a new handshake gets, or the handshake's error.
async fn served(f: &Fixture, app: &Appliance) -> std::io::Result<CertificateDer<'static>> {
    f.client().leaf(app.https_addr(), "localhost").await
}

async fn wait_served(f: &Fixture, app: &Appliance, want: &CertificateDer<'static>) {
    for _ in 0..200 {
        if served(f, app).await.ok().as_ref() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the expected certificate was not served within 20 s");
}

#[tokio::test]
async fn the_first_certificate_arrives_from_s3_and_renewals_follow_the_sync() {
    let f = Fixture::new();
    let s3 = S3Server::start().await;
    let app = Appliance::start(config(&f, &s3))
        .await
        .expect("starts with no certificate on the card");

    // Before the pair is uploaded: the health path answers over HTTP, HTTPS refuses the
    // handshake, and the status says why.
    let health = common::plain_get(app.http_addr().expect("http"), "/up.txt", "localhost").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(
        served(&f, &app).await.is_err(),
        "no certificate: no handshake"
    );
    common::wait_until(&app, "the status names the missing object", 20, |s| {
        s.mode == Mode::Error
            && s.reason.contains("s3://site/tls/example/")
            && s.reason.contains("NoSuchKey")
    })
    .await;

    // The primary's hook uploads: the next sync brings it.
    let first = issue_for(&f.ca, 90);
    upload(&s3, &first);
    wait_served(&f, &app, &leaf(&first)).await;
    let dir = app.certificates().slots()[0]
        .files_now()
        .expect("installed");
    let mode = std::fs::metadata(&dir.1).expect("key").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the key is the service's alone");

    // Unchanged objects are not downloaded again: conditional GETs answered 304.
    let downloads = s3.bucket.downloads_of(&format!("{PREFIX}privkey.pem"));
    let not_modified = s3.bucket.not_modified();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        s3.bucket.not_modified() >= not_modified + 4,
        "fetches go on, answered 304"
    );
    assert_eq!(
        s3.bucket.downloads_of(&format!("{PREFIX}privkey.pem")),
        downloads,
        "the unchanged key is not downloaded again"
    );

    // Neither the key nor the credentials reach the status.
    let json = serde_json::to_string(&**app.status().borrow()).expect("json");
    for secret in [
        "PRIVATE KEY",
        common::s3::SECRET_KEY,
        common::s3::ACCESS_KEY,
    ] {
        assert!(!json.contains(secret), "{secret} in {json}");
    }

    // A renewal while a reader holds a connection: it keeps its session, new handshakes
    // get the renewal, no request fails.
    let mut reader = f.client().h1(app.https_addr()).await;
    assert_eq!(reader.send(common::get("/")).await.status, 200);
    let renewal = issue_for(&f.ca, 120);
    upload(&s3, &renewal);
    wait_served(&f, &app, &leaf(&renewal)).await;
    assert_eq!(
        reader.send(common::get("/")).await.status,
        200,
        "the open connection survives the renewal"
    );

    // The private location is never served: not by path, not under the site.
    for path in [
        "/tls/example/privkey.pem",
        "/privkey.pem",
        "/site/privkey.pem",
    ] {
        assert_eq!(f.client().get(app.https_addr(), path).await.status, 404);
    }

    // A restart serves the stored pair at once, before any fetch.
    app.shutdown().await;
    s3.bucket
        .fail_always(Some(common::s3::Fault::InternalError));
    let app = Appliance::start(config(&f, &s3)).await.expect("restarts");
    assert_eq!(
        served(&f, &app)
            .await
            .expect("served from the data partition"),
        leaf(&renewal)
    );
    app.shutdown().await;
}

/// Each kind of bad pair a renewal hook can upload is refused with its reason, the pair in use
/// stays served and is not downloaded again; a good pair after them is taken.
#[tokio::test]
async fn bad_pairs_from_s3_are_refused_and_the_certificate_in_use_is_kept() {
    let f = Fixture::new();
    let s3 = S3Server::start().await;
    let good = issue_for(&f.ca, 90);
    upload(&s3, &good);
    let app = Appliance::start(config(&f, &s3)).await.expect("starts");
    wait_served(&f, &app, &leaf(&good)).await;

    let now = SystemTime::now();
    let other = issue_for(&f.ca, 100);
    let cases: Vec<(&str, Pem, &str)> = vec![
        (
            "a key from another certificate",
            Pem {
                cert: issue_for(&f.ca, 100).cert,
                key: other.key,
            },
            "does not belong",
        ),
        (
            "an expired certificate",
            issue(
                &f.ca,
                &["localhost", "example.test"],
                now - DAY * 90,
                now - DAY,
            ),
            "expired",
        ),
        (
            "one missing a hostname",
            issue(&f.ca, &["localhost"], now - DAY, now + DAY * 100),
            "example.test",
        ),
        (
            "one older than the one in use",
            issue(
                &f.ca,
                &["localhost", "example.test"],
                now - DAY,
                now + DAY * 30,
            ),
            "before the certificate in use",
        ),
    ];
    for (what, pem, because) in cases {
        upload(&s3, &pem);
        common::wait_until(&app, what, 20, |s| {
            s.tls[0]
                .refused
                .as_deref()
                .is_some_and(|r| r.contains(because))
                && s.tls[0]
                    .fetch
                    .as_ref()
                    .is_some_and(|f| f.failing_since.is_some())
        })
        .await;
        assert_eq!(
            served(&f, &app).await.expect("still served"),
            leaf(&good),
            "{what}: the certificate in use is kept"
        );
        // The refused pair is remembered by its ETags: asked for again, it is not downloaded.
        let downloads = s3.bucket.downloads_of(&format!("{PREFIX}fullchain.pem"));
        let not_modified = s3.bucket.not_modified();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(
            s3.bucket.not_modified() >= not_modified + 2,
            "{what}: fetching goes on"
        );
        assert_eq!(
            s3.bucket.downloads_of(&format!("{PREFIX}fullchain.pem")),
            downloads,
            "{what}: the refused pair is not downloaded again"
        );
    }
    let status = app.status().borrow().clone();
    assert_ne!(
        status.mode,
        Mode::Error,
        "a refused renewal is not an outage"
    );

    let renewal = issue_for(&f.ca, 120);
    upload(&s3, &renewal);
    wait_served(&f, &app, &leaf(&renewal)).await;
    common::wait_until(&app, "the refusal is cleared", 20, |s| {
        s.tls[0].refused.is_none()
            && s.tls[0]
                .fetch
                .as_ref()
                .is_some_and(|f| f.failing_since.is_none() && f.last_error.is_none())
    })
    .await;
    app.shutdown().await;
}

/// `check-config` refuses a certificate location the site sync could reach.
#[test]
fn a_certificate_prefix_under_the_site_is_refused() {
    let f = Fixture::new();
    let file = f.path("pi-failover.toml");
    for (site_prefix, cert_prefix, refused) in [
        ("", "tls/", true),
        ("site/", "site/tls/", true),
        ("site", "site-tls/", true),
        ("site/", "tls/", false),
        ("site/", "", false),
    ] {
        let text = format!(
            r#"
            [site]
            hostnames = ["example.test"]
            [s3]
            bucket = "site-bucket"
            prefix = "{site_prefix}"
            [[tls.certificates]]
            source = "s3"
            prefix = "{cert_prefix}"
            "#
        );
        let config = pi_failover::config::parse(&text, &file).expect("parses");
        let result = config
            .validate(&file)
            .and_then(|()| pi_failover::settings::check(&config, &file));
        assert_eq!(
            result.is_err(),
            refused,
            "site {site_prefix:?}, certificates {cert_prefix:?}: {result:?}"
        );
        if let Err(e) = result {
            let text = e.to_string();
            assert!(
                text.contains("tls.certificates[0].prefix") && text.contains("private key"),
                "{text}"
            );
        }
    }
}

/// Keys that do not belong to a source name it and the fix.
#[test]
fn a_certificate_entry_names_the_key_its_source_lacks_or_does_not_use() {
    let f = Fixture::new();
    let file = f.path("pi-failover.toml");
    for (entry, key) in [
        ("cert = \"c.pem\"", "tls.certificates[0].key"),
        (
            "source = \"s3\"\nprefix = \"tls/\"\ncert = \"c.pem\"",
            "tls.certificates[0].cert",
        ),
        ("source = \"s3\"", "tls.certificates[0].prefix"),
    ] {
        let text = format!(
            "[site]\nhostnames = [\"example.test\"]\n[s3]\nbucket = \"site-bucket\"\nprefix = \"site/\"\n[[tls.certificates]]\n{entry}\n"
        );
        let config = pi_failover::config::parse(&text, &file).expect("parses");
        let e = config
            .validate(&file)
            .and_then(|()| pi_failover::settings::check(&config, &file))
            .expect_err(entry)
            .to_string();
        assert!(e.contains(key), "{entry}: {e}");
    }
    let text = "[site]\nroot = \".\"\nhostnames = [\"example.test\"]\n[[tls.certificates]]\nsource = \"s3\"\nprefix = \"tls/\"\n";
    let config = pi_failover::config::parse(text, &file).expect("parses");
    let e = config
        .validate(&file)
        .and_then(|()| pi_failover::settings::check(&config, &file))
        .expect_err("no [s3]")
        .to_string();
    assert!(e.contains("[s3]"), "{e}");
}
