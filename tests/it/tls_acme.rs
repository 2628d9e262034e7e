//! The `acme` certificate source against a real ACME CA (Debian's pebble, its HTTPS trusted
//! only through `directory_ca`) and a real Route 53 API (moto): the Pi starts with no
//! certificate, obtains one by DNS-01, renews it while readers are connected, keeps the TXT
//! values others wrote, removes its own, and keeps serving when the CA goes away.
#![cfg(feature = "system-tests")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pi_failover::appliance::Appliance;
use pi_failover::config::{CertificateConfig, CertificateSource, Config};
use pi_failover::live::mode::Mode;
use rustls::pki_types::CertificateDer;

use crate::common::acme::{Pebble, Route53};
use crate::common::s3::S3Server;
use crate::common::{self, Client, Fixture};

const NAMES: [&str; 2] = ["example.test", "www.example.test"];

fn config(f: &Fixture, s3: &S3Server, pebble: &Pebble, route53: &Route53) -> Config {
    s3.bucket.put_body("index.html", "<h1>the site</h1>");
    let mut config = f.s3_config(s3);
    config.tls.certificates = vec![CertificateConfig {
        source: CertificateSource::Acme,
        names: Some(NAMES.iter().map(std::string::ToString::to_string).collect()),
        directory: Some(pebble.directory.clone()),
        directory_ca: Some(pebble.directory_ca.clone()),
        contact: Some("owner@example.test".into()),
        hosted_zone_id: Some(route53.zone_id.clone()),
        route53_endpoint: Some(route53.endpoint.clone()),
        ..CertificateConfig::default()
    }];
    config
        .validate(&f.path("pi-failover.toml"))
        .expect("an acme certificate is valid");
    config
}

/// The leaf a new handshake for `example.test` gets, verified against pebble's root.
async fn served(client: &Client, app: &Appliance) -> std::io::Result<CertificateDer<'static>> {
    client.leaf(app.https_addr(), "example.test").await
}

async fn wait_served_other_than(
    client: &Client,
    app: &Appliance,
    old: Option<&CertificateDer<'static>>,
    secs: u64,
) -> CertificateDer<'static> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(leaf) = served(client, app).await {
            if Some(&leaf) != old {
                return leaf;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new certificate served within {secs} s: {:#?}",
            app.status().borrow().tls
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_pi_obtains_and_renews_its_own_certificate_without_a_dropped_request() {
    // 24-second certificates: renewal is due at two thirds, about 16 s after issuance.
    let pebble = Arc::new(Pebble::start(Duration::from_secs(24)).await);
    let route53 = Route53::start(pebble.clone()).await;
    // The primary is validating the same name at this moment: its value must survive.
    route53
        .put_txt("_acme-challenge.example.test", &["the-primary's-token"])
        .await;
    let f = Fixture::new();
    let s3 = S3Server::start().await;
    let app = Appliance::start(config(&f, &s3, &pebble, &route53))
        .await
        .expect("starts with no certificate");
    let client = Client::new(vec![pebble.root().await]);

    // Before the first certificate: the health path answers, HTTPS waits, the status says so.
    let health = common::plain_get(app.http_addr().expect("http"), "/up.txt", "localhost").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let early = app.status().borrow().clone();
    if early.tls[0].not_after.is_none() {
        assert_eq!(early.mode, Mode::Error, "{}", early.reason);
        assert_eq!(early.tls[0].origin, pebble.directory);
    }

    let first = wait_served_other_than(&client, &app, None, 60).await;
    let sets = route53.txt_sets().await;
    assert_eq!(
        sets.get("_acme-challenge.example.test"),
        Some(&vec!["\"the-primary's-token\"".to_owned()]),
        "the primary's value survives, ours is gone: {sets:?}"
    );
    assert!(
        !sets.contains_key("_acme-challenge.www.example.test"),
        "a set we created alone is removed whole: {sets:?}"
    );
    common::wait_until(&app, "the status shows the ACME certificate", 10, |s| {
        let c = &s.tls[0];
        c.source == "acme"
            && c.names.iter().any(|n| n == "www.example.test")
            && c.fetch.as_ref().is_some_and(|f| {
                f.last_success.is_some() && f.next_attempt.is_some_and(|t| t > SystemTime::now())
            })
    })
    .await;

    // Readers keep reading through the renewal: one kept-alive connection and a new
    // connection every few hundred milliseconds; not one request may fail.
    let failures = Arc::new(AtomicU64::new(0));
    let served_ok = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let readers = {
        let (client, failures, served_ok, stop) = (
            client.clone(),
            failures.clone(),
            served_ok.clone(),
            stop.clone(),
        );
        let addr = app.https_addr();
        tokio::spawn(async move {
            let mut kept = client.h1_to(addr, "example.test").await;
            while !stop.is_cancelled() {
                let fresh = async {
                    let mut c = client.h1_to(addr, "example.test").await;
                    c.send(common::get("/")).await.status
                };
                let (a, b) = (kept.try_send(common::get("/")).await, fresh.await);
                for ok in [a.is_ok_and(|r| r.status == 200), b == 200] {
                    if ok {
                        served_ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            kept
        })
    };
    let renewed = wait_served_other_than(&client, &app, Some(&first), 60).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let mut kept = readers.await.expect("readers");
    assert_eq!(
        kept.send(common::get("/")).await.status,
        200,
        "the connection opened before the renewal still serves"
    );
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no request failed");
    assert!(served_ok.load(Ordering::Relaxed) > 10);
    assert_ne!(first, renewed);

    // The CA goes away: attempts fail with a reason and back off; the certificate in use
    // stays served until it expires.
    pebble.stop();
    common::wait_until(&app, "a failed renewal is shown", 60, |s| {
        s.tls[0].fetch.as_ref().is_some_and(|f| {
            f.failing_since.is_some()
                && f.last_error.is_some()
                && f.next_attempt.is_some_and(|t| t > SystemTime::now())
        })
    })
    .await;
    assert_eq!(
        served(&client, &app).await.expect("still served"),
        renewed,
        "the certificate in use is kept"
    );
    let json = serde_json::to_string(&**app.status().borrow()).expect("json");
    assert!(!json.contains("PRIVATE KEY"), "{json}");
    app.shutdown().await;
}

/// A challenge the CA cannot see fails the order, and the values written are removed all the
/// same; an appliance stopped mid-order leaves a record of it that the next start cleans up
/// before it obtains its certificate.
#[tokio::test]
async fn a_failed_or_interrupted_order_leaves_no_txt_record_behind() {
    let pebble = Arc::new(Pebble::start(Duration::from_secs(3600)).await);
    let route53 = Route53::start(pebble.clone()).await;
    route53.paused.store(true, Ordering::Relaxed);
    let f = Fixture::new();
    let s3 = S3Server::start().await;

    // The CA never sees the value: the order fails, the values go, the status says why.
    let app = Appliance::start(config(&f, &s3, &pebble, &route53))
        .await
        .expect("starts");
    common::wait_until(&app, "the failed order is shown", 60, |s| {
        s.tls[0].fetch.as_ref().is_some_and(|f| {
            f.last_error
                .as_deref()
                .is_some_and(|e| e.contains("invalid"))
        })
    })
    .await;
    let sets = route53.txt_sets().await;
    assert!(
        sets.keys()
            .all(|name| !name.starts_with("_acme-challenge.")),
        "no challenge value left behind: {sets:?}"
    );
    app.shutdown().await;

    // Stopped while its values are in DNS: the next start removes them, then succeeds.
    let config_again = config(&f, &s3, &pebble, &route53);
    let dir = pi_failover::settings::certificate_slots(&config_again).expect("valid")[0]
        .managed_dir
        .clone()
        .expect("a managed slot");
    let _ = std::fs::remove_file(dir.join("order.json"));
    route53.hold.store(true, Ordering::Relaxed);
    let app = Appliance::start(config_again.clone())
        .await
        .expect("starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while route53.txt_sets().await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no TXT written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.shutdown().await;
    let leaked = route53.txt_sets().await;
    let recorded = std::fs::read_to_string(dir.join("order.json")).expect("order.json");
    assert!(
        !leaked.is_empty(),
        "stopped mid-order, with its value in DNS"
    );
    for values in leaked.values() {
        for value in values {
            assert!(
                recorded.contains(value.trim_matches('"')),
                "every value in DNS is recorded in order.json before it is written: {recorded}"
            );
        }
    }
    route53.hold.store(false, Ordering::Relaxed);
    route53.paused.store(false, Ordering::Relaxed);
    let app = Appliance::start(config_again).await.expect("restarts");
    let client = Client::new(vec![pebble.root().await]);
    wait_served_other_than(&client, &app, None, 60).await;
    let sets = route53.txt_sets().await;
    assert!(
        sets.keys()
            .all(|name| !name.starts_with("_acme-challenge.")),
        "nothing left behind after the restart: {sets:?}"
    );
    assert!(
        !dir.join("order.json").exists(),
        "the finished order is forgotten"
    );
    app.shutdown().await;
}

/// A CA that requires External Account Binding: without it the status says so and nothing is
/// issued; with the key ID and HMAC key its console gives, the account binds and the
/// certificate comes.
#[tokio::test]
async fn external_account_binding_is_sent_when_configured() {
    const KID: &str = "kid-1";
    const HMAC: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let pebble = Arc::new(Pebble::start_with(Duration::from_secs(3600), Some((KID, HMAC))).await);
    let route53 = Route53::start(pebble.clone()).await;
    let f = Fixture::new();
    let s3 = S3Server::start().await;
    let client = Client::new(vec![pebble.root().await]);

    let app = Appliance::start(config(&f, &s3, &pebble, &route53))
        .await
        .expect("starts");
    common::wait_until(&app, "the CA's refusal is shown", 30, |s| {
        s.tls[0].fetch.as_ref().is_some_and(|f| {
            f.last_error
                .as_deref()
                .is_some_and(|e| e.contains("externalAccountRequired"))
        })
    })
    .await;
    assert!(served(&client, &app).await.is_err(), "nothing issued");
    app.shutdown().await;

    let mut with_eab = config(&f, &s3, &pebble, &route53);
    with_eab.tls.certificates[0].eab_kid = Some(KID.into());
    with_eab.tls.certificates[0].eab_hmac_key = Some(HMAC.into());
    with_eab
        .validate(&f.path("pi-failover.toml"))
        .expect("valid with EAB");
    let app = Appliance::start(with_eab).await.expect("starts");
    wait_served_other_than(&client, &app, None, 60).await;
    app.shutdown().await;
}
