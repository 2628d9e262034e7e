//! The TLS face: protocol versions, ALPN, key types, SNI, and certificate reload while
//! serving.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::{get, Client, Fixture};
use pi_failover::config::CertificateConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

fn fixture_cert(name: &str) -> CertificateDer<'static> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    CertificateDer::from_pem_file(path).expect("fixture cert")
}

fn peer_cert(
    tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .expect("server sent a chain")[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn tls13_and_tls12_are_both_accepted() {
    let f = Fixture::new();
    f.site_file("index.html", "hi");
    let app = f.start().await;
    let client = f.client();
    for (version, expected) in [
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
    ] {
        let tls = client
            .connect_with(
                app.https_addr(),
                "localhost",
                client.tls_config(&[b"http/1.1"], &[version]),
            )
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expected));
    }
}

#[tokio::test]
async fn alpn_offers_h2_and_http11() {
    let f = Fixture::new();
    let app = f.start().await;
    let client = f.client();
    let h2 = client
        .connect(app.https_addr(), "localhost", &[b"h2", b"http/1.1"])
        .await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let h1 = client
        .connect(app.https_addr(), "localhost", &[b"http/1.1"])
        .await;
    assert_eq!(h1.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    // A client without ALPN speaks HTTP/1.1.
    let r = client.get(app.https_addr(), "/up.txt").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn rsa_pkcs1_and_ec_sec1_keys_from_openssl_are_served() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for kind in ["rsa", "ec"] {
        let f = Fixture::new();
        let app = f
            .start_with(|c| {
                c.tls.certificates = vec![CertificateConfig::files(
                    fixtures.join(format!("{kind}-cert.pem")),
                    fixtures.join(format!("{kind}-key.pem")),
                )];
            })
            .await;
        let client = Client::new(vec![fixture_cert(&format!("{kind}-cert.pem"))]);
        let r = client.get(app.https_addr(), "/up.txt").await;
        assert_eq!(r.status, 200, "{kind}");
    }
}

#[tokio::test]
async fn ed25519_keys_are_served() {
    let f = Fixture::new();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed25519 key");
    f.ca.issue_with_key(&["localhost"], key, &f.path("ed.pem"), &f.path("ed.key"));
    let app = f
        .start_with(|c| {
            c.tls.certificates = vec![CertificateConfig::files(f.path("ed.pem"), f.path("ed.key"))];
        })
        .await;
    let r = f.client().get(app.https_addr(), "/up.txt").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn sni_picks_the_certificate_for_each_hostname() {
    let f = Fixture::new();
    f.ca.issue_to(&["blog.test"], &f.path("blog.pem"), &f.path("blog.key"));
    f.ca.issue_to(&["*.shop.test"], &f.path("shop.pem"), &f.path("shop.key"));
    let app = f
        .start_with(|c| {
            for name in ["blog", "shop"] {
                c.tls.certificates.push(CertificateConfig::files(
                    f.path(&format!("{name}.pem")),
                    f.path(&format!("{name}.key")),
                ));
            }
        })
        .await;
    let client = f.client();
    let der = |p: &str| CertificateDer::from_pem_file(f.path(p)).expect("pem");
    // The client verifies each chain against the SNI name, so a wrong pick fails the handshake.
    let blog = client.connect(app.https_addr(), "blog.test", &[]).await;
    assert_eq!(peer_cert(&blog), der("blog.pem"));
    let shop = client.connect(app.https_addr(), "www.shop.test", &[]).await;
    assert_eq!(peer_cert(&shop), der("shop.pem"));
    let default = client.connect(app.https_addr(), "localhost", &[]).await;
    assert_eq!(peer_cert(&default), der("cert.pem"));
}

// The fixtures were made with:
//   openssl req -x509 -newkey rsa:2048 -nodes -keyout k8.pem -out rsa-cert.pem -days 36500 \
//     -subj /CN=localhost -addext "subjectAltName=DNS:localhost,DNS:rsa.test" \
//     -addext "basicConstraints=critical,CA:FALSE"
//   openssl rsa -in k8.pem -traditional -out rsa-key.pem
//   openssl ecparam -name prime256v1 -genkey -noout -out ec-key.pem
//   openssl req -x509 -key ec-key.pem -out ec-cert.pem -days 36500 -subj /CN=localhost \
//     -addext "subjectAltName=DNS:localhost,DNS:ec.test" -addext "basicConstraints=critical,CA:FALSE"

/// Waits for the watcher (100 ms interval in tests) to pick the change up.
async fn until(mut condition: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 5 s");
}

#[tokio::test]
async fn renewed_certificate_is_used_by_new_handshakes_while_open_connections_keep_working() {
    let f = Fixture::new();
    f.site_file("index.html", "hi");
    let app = f.start().await;
    let client = f.client();
    let old = CertificateDer::from_pem_file(f.path("cert.pem")).expect("pem");

    let mut open = client.h1(app.https_addr()).await;
    assert_eq!(open.send(get("/")).await.status, 200);

    // Renew: a new key and certificate written over the old files, as certbot's deploy hook
    // or a copy to the boot partition would.
    f.ca.issue_to(
        &["localhost", "example.test"],
        &f.path("cert.pem"),
        &f.path("key.pem"),
    );
    let new = CertificateDer::from_pem_file(f.path("cert.pem")).expect("pem");
    assert_ne!(old, new);

    until(async || {
        let tls = client.connect(app.https_addr(), "localhost", &[]).await;
        peer_cert(&tls) == new
    })
    .await;
    assert_eq!(
        open.send(get("/")).await.status,
        200,
        "the open connection survives the reload"
    );
}

#[tokio::test]
async fn a_broken_new_certificate_is_rejected_and_the_old_one_stays() {
    let f = Fixture::new();
    let app = f.start().await;
    let client = f.client();
    let old = CertificateDer::from_pem_file(f.path("cert.pem")).expect("pem");
    let old_pem = std::fs::read(f.path("cert.pem")).expect("read");

    std::fs::write(f.path("cert.pem"), "-----BEGIN CERTIFICATE-----\ngarbage\n").expect("write");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tls = client.connect(app.https_addr(), "localhost", &[]).await;
    assert_eq!(peer_cert(&tls), old);

    // A key that does not match the certificate is refused as well.
    std::fs::write(f.path("cert.pem"), &old_pem).expect("restore cert");
    let other = tempfile::tempdir().expect("tmp");
    f.ca.issue_to(
        &["localhost"],
        &other.path().join("c.pem"),
        &other.path().join("k.pem"),
    );
    std::fs::copy(other.path().join("k.pem"), f.path("key.pem")).expect("copy");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.certificates().reload().is_err(),
        "mismatched key must be refused"
    );
    let tls = client.connect(app.https_addr(), "localhost", &[]).await;
    assert_eq!(peer_cert(&tls), old);
}

#[tokio::test]
async fn certificate_expiry_and_names_are_known() {
    let f = Fixture::new();
    let app = f.start().await;
    let infos = app.certificates().infos();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].names, ["localhost", "example.test"]);
    assert!(!infos[0].expires_within(Duration::from_secs(86400)));
}

/// A renewal that goes wrong never reaches readers (issue 12, validation before use): an
/// expired or early certificate, one out of order, one missing a name the certificate in use
/// covers, one older than it. Each is refused with its reason, the reason is kept for the
/// status page, new handshakes keep getting the certificate in use; a good renewal then goes
/// through and clears the reason.
#[tokio::test]
async fn a_bad_renewal_is_refused_with_its_reason_and_the_certificate_in_use_kept() {
    type Issue<'a> = Box<dyn Fn() + 'a>;
    use std::time::SystemTime;
    let day = |n: i64| {
        let now = SystemTime::now();
        let delta = Duration::from_secs(n.unsigned_abs() * 86_400);
        if n < 0 {
            now - delta
        } else {
            now + delta
        }
    };
    let f = Fixture::new();
    let (cert, key) = (f.path("cert.pem"), f.path("key.pem"));
    let both = ["localhost", "example.test"];
    f.ca.issue_valid(&both, day(-1), day(60), &cert, &key);
    let app = f
        .start_with(|c| c.tls.watch_interval = Duration::from_secs(3600))
        .await;
    let client = f.client();
    let in_use = CertificateDer::from_pem_file(&cert).expect("pem");

    let other = tempfile::tempdir().expect("tmp");
    let stranger = other.path().join("stranger.pem");
    stranger_certificate(&stranger);
    let cases: Vec<(&str, Issue, &str)> = vec![
        (
            "expired",
            Box::new(|| f.ca.issue_valid(&both, day(-90), day(-1), &cert, &key)),
            "expired",
        ),
        (
            "early",
            Box::new(|| f.ca.issue_valid(&both, day(5), day(95), &cert, &key)),
            "not valid yet",
        ),
        (
            "out of order",
            Box::new(|| {
                f.ca.issue_valid(&both, day(-1), day(90), &cert, &key);
                let mut chain = std::fs::read(&cert).expect("read");
                chain.extend(std::fs::read(&stranger).expect("read stranger"));
                std::fs::write(&cert, chain).expect("write");
            }),
            "out of order at certificate 1",
        ),
        (
            "missing a name",
            Box::new(|| {
                f.ca.issue_valid(&["localhost"], day(-1), day(90), &cert, &key);
            }),
            "does not cover example.test",
        ),
        (
            "older",
            Box::new(|| f.ca.issue_valid(&both, day(-1), day(30), &cert, &key)),
            "before the certificate in use",
        ),
    ];
    for (what, issue, reason) in cases {
        issue();
        let e = app.certificates().reload().expect_err(what);
        assert!(e.to_string().contains(reason), "{what}: {e}");
        let refused = app.certificates().refused().unwrap_or_default();
        assert!(
            refused.contains(reason),
            "{what}: the status shows {refused:?}"
        );
        let tls = client.connect(app.https_addr(), "localhost", &[]).await;
        assert_eq!(
            peer_cert(&tls),
            in_use,
            "{what}: the certificate in use is kept"
        );
    }

    f.ca.issue_valid(&both, day(-1), day(90), &cert, &key);
    app.certificates().reload().expect("a good renewal");
    assert_eq!(app.certificates().refused(), None);
    let renewed = CertificateDer::from_pem_file(&cert).expect("pem");
    let tls = client.connect(app.https_addr(), "localhost", &[]).await;
    assert_eq!(peer_cert(&tls), renewed, "new handshakes get the renewal");
}

/// A self-signed certificate of another issuer, to paste after a leaf.
fn stranger_certificate(path: &Path) {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["stranger.example".to_string()])
        .expect("params")
        .self_signed(&key)
        .expect("self-signed");
    std::fs::write(path, cert.pem()).expect("write");
}

/// `tls.cipher_preference`: a client that lists AES-GCM first (as rustls and most browsers
/// do) gets it when the server honours its order, and ChaCha20-Poly1305 when the server puts
/// that first (`chacha20`, or `auto` on a CPU without AES instructions: the choice between
/// the two is `tls::prefers_chacha`, table-tested in the library).
#[tokio::test]
async fn the_cipher_preference_decides_between_aes_gcm_and_chacha20() {
    use pi_failover::config::CipherPreference;
    let expected_auto = if pi_failover::tls::cpu_has_aes() {
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384
    } else {
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    };
    for (preference, expected) in [
        (
            CipherPreference::Client,
            rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
        (
            CipherPreference::Chacha20,
            rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        ),
        (CipherPreference::Auto, expected_auto),
    ] {
        let f = Fixture::new();
        let app = f.start_with(|c| c.tls.cipher_preference = preference).await;
        let tls = f.client().connect(app.https_addr(), "localhost", &[]).await;
        let suite = tls
            .get_ref()
            .1
            .negotiated_cipher_suite()
            .expect("negotiated")
            .suite();
        assert_eq!(suite, expected, "{preference:?}");
        app.shutdown().await;
    }
}

/// The check the appliance makes of its own listener before the booted slot is marked good
/// (`update::self_check`): the health path and a page answer 200 over HTTPS, with the
/// certificate the appliance serves; a redirect passes only where one is allowed (the front
/// page); a page that is not there is not a pass; none of it counts as a reader.
#[tokio::test]
async fn the_appliance_checks_its_own_listener_as_a_reader() {
    use pi_failover::update::self_check::{get_ok, SelfCheckError};
    let f = Fixture::new();
    f.site_file("index.html", "<p>home</p>");
    f.site_file("blog/index.html", "<p>posts</p>");
    let app = f.start().await;
    let certs = app.certificates().clone();
    let check =
        |path: &'static str, wanted| get_ok(app.https_addr(), "localhost", path, wanted, &certs);
    for path in ["/up.txt", "/"] {
        check(path, 200..=200)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
    }
    // A redirect (the directory without its slash) passes where one is allowed, not where a
    // page must answer.
    check("/blog", 200..=399)
        .await
        .expect("a redirect may answer");
    match check("/blog", 200..=200).await {
        Err(SelfCheckError::Status(_, line)) => assert!(line.contains(" 30"), "{line}"),
        other => panic!("a redirect passed for a page: {other:?}"),
    }
    match check("/not-there.html", 200..=399).await {
        Err(SelfCheckError::Status(_, line)) => assert!(line.contains("404"), "{line}"),
        other => panic!("a missing page passed the check: {other:?}"),
    }
    // Counted as health checks, never as readers: a boot must not look like a reader.
    let mut status = app.status();
    let counted = tokio::time::timeout(
        Duration::from_secs(15),
        status.wait_for(|s| {
            let t = s.traffic.requests_total;
            t.health_check + t.reader + t.other >= 5
        }),
    )
    .await
    .expect("the status counts the five checks")
    .expect("status")
    .traffic
    .requests_total;
    assert_eq!(
        (counted.reader, counted.health_check),
        (0, 5),
        "{counted:?}"
    );
    app.shutdown().await;
}
