//! Hostile request paths never reach a byte outside the site root. Each request is sent raw
//! over TLS, as an attacker would, so no client library normalises it first.

use crate::common;

use common::{raw_exchange, raw_status, Fixture, SECRET};

/// Paths that try to leave the root, hide a traversal in an encoding, or reach a link that
/// points outside. Every one must get 400 or 404 and no outside byte.
const HOSTILE: &[&str] = &[
    "/../outside/secret.txt",
    "/../../../../../../etc/passwd",
    "/%2e%2e/outside/secret.txt",
    "/%2E%2E/outside/secret.txt",
    "/.%2e/outside/secret.txt",
    "/%2e./outside/secret.txt",
    "/..%2foutside%2fsecret.txt",
    "/%2e%2e%2foutside%2fsecret.txt",
    "/..%5coutside%5csecret.txt",
    "/..\\outside\\secret.txt",
    "/%2e%2e%5c%2e%2e%5coutside%5csecret.txt",
    "/%252e%252e/outside/secret.txt",
    "/%252e%252e%252foutside%252fsecret.txt",
    "/%25252e%25252e/outside/secret.txt",
    "/%c0%ae%c0%ae/outside/secret.txt",
    "/%c0%af..%c0%afoutside%c0%afsecret.txt",
    "/%e0%80%ae%e0%80%ae/outside/secret.txt",
    "/%f0%80%80%ae%f0%80%80%ae/outside/secret.txt",
    "/%u002e%u002e/outside/secret.txt",
    "/a/../../outside/secret.txt",
    "/./../outside/secret.txt",
    "/index.html/../../outside/secret.txt",
    "/index.html%00/../../outside/secret.txt",
    "/..%00/outside/secret.txt",
    "/%00",
    "/secret.txt%00.html",
    "/..;/outside/secret.txt",
    "/link-out",
    "/link-out/",
    "/dir-out/secret.txt",
    "/abs-link",
    "/chain-out",
    "/C:/Windows/win.ini",
    "/c:%5cwindows%5cwin.ini",
    "/etc/passwd",
    "/%2fetc%2fpasswd",
    "//etc/passwd",
    "/.git/config",
    "/.git/../../outside/secret.txt",
    "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/a%0d%0aSet-Cookie:x=1/../../outside/secret.txt",
    "/%0a",
    "/assets/%2e%2e/%2e%2e/outside/secret.txt",
];

/// Request targets that are not origin-form paths at all.
const HOSTILE_TARGETS: &[&str] = &[
    "../outside/secret.txt",
    "outside/secret.txt",
    "*",
    "https://localhost/../outside/secret.txt",
    "https://localhost/%2e%2e/outside/secret.txt",
];

fn hostile_fixture() -> Fixture {
    let f = Fixture::new();
    f.site_file("index.html", "<h1>home</h1>");
    f.site_file("assets/main.css", "body{}");
    f.site_file(".git/config", SECRET);
    let root = f.root();
    let outside = f.path("outside");
    std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("link-out")).expect("link");
    std::os::unix::fs::symlink(&outside, root.join("dir-out")).expect("dir link");
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).expect("abs link");
    // A link to a link inside the root that itself points outside.
    std::os::unix::fs::symlink(root.join("link-out"), root.join("chain-out")).expect("chain");
    // A link that stays inside the root is fine.
    std::os::unix::fs::symlink(root.join("index.html"), root.join("home.html")).expect("ok link");
    f
}

fn assert_nothing_leaked(request: &str, response: &[u8]) {
    let text = String::from_utf8_lossy(response);
    assert!(
        !text.contains(SECRET),
        "{request}: leaked the outside file:\n{text}"
    );
    assert!(
        !text.contains("root:x:0:0"),
        "{request}: leaked /etc/passwd:\n{text}"
    );
    let status = raw_status(response);
    assert!(
        status == 400 || status == 404,
        "{request}: expected 400 or 404, got {status}:\n{text}"
    );
}

#[tokio::test]
async fn hostile_paths_get_400_or_404_and_no_outside_byte() {
    let f = hostile_fixture();
    let app = f.start().await;
    let client = f.client();
    assert!(HOSTILE.len() + HOSTILE_TARGETS.len() >= 30);
    for path in HOSTILE.iter().chain(HOSTILE_TARGETS) {
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let response = raw_exchange(&client, app.https_addr(), request.as_bytes()).await;
        assert_nothing_leaked(path, &response);
    }
}

#[tokio::test]
async fn hostile_paths_over_http2_are_refused_too() {
    let f = hostile_fixture();
    let app = f.start().await;
    let mut conn = f.client().h2(app.https_addr()).await;
    for path in HOSTILE.iter().filter(|p| p.parse::<http::Uri>().is_ok()) {
        let r = conn.send(common::get(path)).await;
        assert!(!String::from_utf8_lossy(&r.body).contains(SECRET), "{path}");
        assert!(r.status == 400 || r.status == 404, "{path}: {}", r.status);
    }
}

#[tokio::test]
async fn the_plain_http_listener_never_serves_files() {
    let f = hostile_fixture();
    let app = f.start().await;
    let http = app.http_addr().expect("http");
    for path in ["/../outside/secret.txt", "/link-out", "/index.html"] {
        let r = common::plain_get(http, path, "localhost").await;
        assert!(
            r.starts_with("HTTP/1.1 301") || r.starts_with("HTTP/1.1 400"),
            "{path}: {r}"
        );
        assert!(!r.contains(SECRET));
    }
}

#[tokio::test]
async fn links_that_stay_inside_the_root_are_served() {
    let f = hostile_fixture();
    let app = f.start().await;
    let r = f.client().get(app.https_addr(), "/home.html").await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"<h1>home</h1>");
}
