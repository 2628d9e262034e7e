//! How the site is served: the behaviour a reader's browser and a DNS health checker see,
//! modelled on nginx serving a Jekyll `_site/`.

use crate::common;

use common::{get, request, Fixture};
use http::StatusCode;

fn jekyll_site() -> Fixture {
    let f = Fixture::new();
    f.site_file("index.html", "<h1>home</h1>");
    f.site_file("about/index.html", "<h1>about</h1>");
    f.site_file("404.html", "<h1>custom not found</h1>");
    f.site_file("assets/main.css", "body{color:red}");
    f.site_file("assets/app.js", "console.log(1)");
    f.site_file("feed.xml", "<rss/>");
    f.site_file("img/photo.jpg", [0xffu8, 0xd8, 0xff, 0xe0]);
    f.site_file("up.txt", "");
    f
}

#[tokio::test]
async fn root_serves_index_html_with_validators() {
    let f = jekyll_site();
    let app = f.start().await;
    let r = f.client().get(app.https_addr(), "/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"<h1>home</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("content-length"), Some("13"));
    let etag = r.header("etag").expect("ETag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );
    assert!(r.header("last-modified").is_some());
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
}

#[tokio::test]
async fn directory_with_trailing_slash_serves_its_index() {
    let f = jekyll_site();
    let app = f.start().await;
    let r = f.client().get(app.https_addr(), "/about/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"<h1>about</h1>");
}

#[tokio::test]
async fn directory_without_slash_redirects_permanently_keeping_the_query() {
    let f = jekyll_site();
    let app = f.start().await;
    let r = f.client().get(app.https_addr(), "/about?ref=x").await;
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("location"), Some("/about/?ref=x"));
    assert_eq!(r.header("x-powered-by"), Some("raspberry-pi"));
}

#[tokio::test]
async fn a_doubled_slash_never_redirects_to_another_host() {
    // `Location: //about/` is a redirect to the host `about` (an open redirect).
    let f = jekyll_site();
    let app = f.start().await;
    for (path, location) in [
        ("//about", "/about/"),
        ("///about?x=1", "/about/?x=1"),
        ("/%2Fabout", ""),
        ("//./about", ""),
    ] {
        let r = f.client().get(app.https_addr(), path).await;
        if location.is_empty() {
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
            continue;
        }
        assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY, "{path}");
        assert_eq!(r.header("location"), Some(location), "{path}");
    }
}

#[tokio::test]
async fn missing_file_gets_the_sites_404_page_with_status_404() {
    let f = jekyll_site();
    let app = f.start().await;
    let r = f.client().get(app.https_addr(), "/no/such/page.html").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(&r.body[..], b"<h1>custom not found</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-powered-by"), Some("raspberry-pi"));
}

#[tokio::test]
async fn missing_file_without_a_404_page_gets_a_plain_404() {
    let f = Fixture::new();
    f.site_file("index.html", "x");
    let app = f.start().await;
    let r = f.client().get(app.https_addr(), "/nope").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[tokio::test]
async fn content_type_follows_the_extension_with_utf8_on_text() {
    let f = jekyll_site();
    let app = f.start().await;
    let client = f.client();
    for (path, expected) in [
        ("/assets/main.css", "text/css; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/feed.xml", "text/xml; charset=utf-8"),
        ("/img/photo.jpg", "image/jpeg"),
    ] {
        let r = client.get(app.https_addr(), path).await;
        assert_eq!(r.header("content-type"), Some(expected), "{path}");
    }
}

#[tokio::test]
async fn every_response_carries_the_powered_by_and_security_headers() {
    let f = jekyll_site();
    let app = f.start().await;
    let mut conn = f.client().h1(app.https_addr()).await;
    let ok = conn.send(get("/")).await;
    let etag = ok.header("etag").expect("etag").to_owned();
    let responses = [
        ok,
        conn.send(request("GET", "/", &[("if-none-match", &etag)]))
            .await,
        conn.send(get("/missing")).await,
        conn.send(get("/about")).await,
        conn.send(request("POST", "/", &[])).await,
        conn.send(get("/%2e%2e/x")).await,
        conn.send(request("GET", "/img/photo.jpg", &[("range", "bytes=9-")]))
            .await,
    ];
    let statuses: Vec<u16> = responses.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [200, 304, 404, 301, 405, 400, 416]);
    for r in &responses {
        assert_eq!(
            r.header("x-powered-by"),
            Some("raspberry-pi"),
            "status {}",
            r.status
        );
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "status {}",
            r.status
        );
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000"),
            "status {}",
            r.status
        );
    }
}

#[tokio::test]
async fn powered_by_hsts_and_extra_headers_follow_the_config() {
    let f = jekyll_site();
    let app = f
        .start_with(|c| {
            c.site.powered_by = "standby-pi-2".into();
            c.site.hsts.max_age = std::time::Duration::from_secs(600);
            c.site.hsts.include_subdomains = true;
            c.site
                .headers
                .insert("Referrer-Policy".into(), "no-referrer".into());
        })
        .await;
    let r = f.client().get(app.https_addr(), "/").await;
    assert_eq!(r.header("x-powered-by"), Some("standby-pi-2"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=600; includeSubDomains")
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
}

#[tokio::test]
async fn hsts_can_be_switched_off() {
    let f = jekyll_site();
    let app = f
        .start_with(|c| c.site.hsts.max_age = std::time::Duration::ZERO)
        .await;
    let r = f.client().get(app.https_addr(), "/").await;
    assert_eq!(r.header("strict-transport-security"), None);
}

#[tokio::test]
async fn if_none_match_and_if_modified_since_answer_304() {
    let f = jekyll_site();
    let app = f.start().await;
    let mut conn = f.client().h1(app.https_addr()).await;
    let first = conn.send(get("/assets/main.css")).await;
    let etag = first.header("etag").expect("etag").to_owned();
    let modified = first
        .header("last-modified")
        .expect("last-modified")
        .to_owned();

    let by_etag = conn
        .send(request(
            "GET",
            "/assets/main.css",
            &[("if-none-match", &etag)],
        ))
        .await;
    assert_eq!(by_etag.status, StatusCode::NOT_MODIFIED);
    assert!(by_etag.body.is_empty());
    assert_eq!(by_etag.header("etag"), Some(etag.as_str()));

    let weak = format!("W/{etag}");
    let by_weak = conn
        .send(request(
            "GET",
            "/assets/main.css",
            &[("if-none-match", &weak)],
        ))
        .await;
    assert_eq!(
        by_weak.status,
        StatusCode::NOT_MODIFIED,
        "If-None-Match compares weakly"
    );

    let by_date = conn
        .send(request(
            "GET",
            "/assets/main.css",
            &[("if-modified-since", &modified)],
        ))
        .await;
    assert_eq!(by_date.status, StatusCode::NOT_MODIFIED);

    let other = conn
        .send(request(
            "GET",
            "/assets/main.css",
            &[("if-none-match", "\"other\"")],
        ))
        .await;
    assert_eq!(other.status, StatusCode::OK);

    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let both = conn
        .send(request(
            "GET",
            "/assets/main.css",
            &[
                ("if-none-match", "\"other\""),
                ("if-modified-since", &modified),
            ],
        ))
        .await;
    assert_eq!(both.status, StatusCode::OK);

    let old = conn
        .send(request(
            "GET",
            "/assets/main.css",
            &[("if-modified-since", "Thu, 01 Jan 1970 00:00:00 GMT")],
        ))
        .await;
    assert_eq!(old.status, StatusCode::OK);
}

#[tokio::test]
async fn etag_changes_when_the_file_changes() {
    let f = jekyll_site();
    let app = f.start().await;
    let before = f.client().get(app.https_addr(), "/").await;
    std::thread::sleep(std::time::Duration::from_millis(20));
    f.site_file("index.html", "<h1>home, edited</h1>");
    let after = f.client().get(app.https_addr(), "/").await;
    assert_eq!(&after.body[..], b"<h1>home, edited</h1>");
    assert_ne!(before.header("etag"), after.header("etag"));
}

#[tokio::test]
async fn ranges_answer_206_416_or_the_whole_file() {
    let f = Fixture::new();
    let data: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    f.site_file("blob.bin", &data);
    let app = f.start().await;
    let mut conn = f.client().h1(app.https_addr()).await;

    let r = conn
        .send(request("GET", "/blob.bin", &[("range", "bytes=10-19")]))
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(&r.body[..], &data[10..20]);

    let r = conn
        .send(request("GET", "/blob.bin", &[("range", "bytes=-5")]))
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], &data[995..]);

    let r = conn
        .send(request("GET", "/blob.bin", &[("range", "bytes=990-5000")]))
        .await;
    assert_eq!(r.header("content-range"), Some("bytes 990-999/1000"));

    let r = conn
        .send(request("GET", "/blob.bin", &[("range", "bytes=1000-")]))
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));

    let r = conn
        .send(request("GET", "/blob.bin", &[("range", "lines=1-2")]))
        .await;
    assert_eq!(r.status, StatusCode::OK, "an unparseable Range is ignored");
    assert_eq!(r.body.len(), 1000);

    let r = conn
        .send(request("GET", "/blob.bin", &[("range", "bytes=0-1,5-6")]))
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "several ranges are answered whole"
    );
    assert_eq!(r.body.len(), 1000);
}

#[tokio::test]
async fn if_range_gives_the_range_only_for_the_same_version() {
    let f = Fixture::new();
    f.site_file("blob.bin", vec![7u8; 100]);
    let app = f.start().await;
    let mut conn = f.client().h1(app.https_addr()).await;
    let full = conn.send(get("/blob.bin")).await;
    let etag = full.header("etag").expect("etag").to_owned();
    let modified = full.header("last-modified").expect("date").to_owned();

    let same = conn
        .send(request(
            "GET",
            "/blob.bin",
            &[("range", "bytes=0-9"), ("if-range", &etag)],
        ))
        .await;
    assert_eq!(same.status, StatusCode::PARTIAL_CONTENT);
    let same_date = conn
        .send(request(
            "GET",
            "/blob.bin",
            &[("range", "bytes=0-9"), ("if-range", &modified)],
        ))
        .await;
    assert_eq!(same_date.status, StatusCode::PARTIAL_CONTENT);
    let changed = conn
        .send(request(
            "GET",
            "/blob.bin",
            &[("range", "bytes=0-9"), ("if-range", "\"old-version\"")],
        ))
        .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body.len(), 100);
}

#[tokio::test]
async fn precompressed_siblings_are_chosen_by_accept_encoding() {
    let f = Fixture::new();
    f.site_file("page.html", "plain body");
    f.site_file("page.html.gz", "gzip body");
    f.site_file("page.html.br", "brotli body");
    f.site_file("only-gz.css", "css");
    f.site_file("only-gz.css.gz", "gz css");
    let app = f.start().await;
    let mut conn = f.client().h1(app.https_addr()).await;

    let br = conn
        .send(request(
            "GET",
            "/page.html",
            &[("accept-encoding", "gzip, deflate, br")],
        ))
        .await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(&br.body[..], b"brotli body");
    assert_eq!(br.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));

    let gz = conn
        .send(request("GET", "/page.html", &[("accept-encoding", "gzip")]))
        .await;
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(&gz.body[..], b"gzip body");

    let plain = conn.send(get("/page.html")).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(&plain.body[..], b"plain body");
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));

    let refused = conn
        .send(request(
            "GET",
            "/page.html",
            &[("accept-encoding", "br;q=0, gzip;q=0")],
        ))
        .await;
    assert_eq!(&refused.body[..], b"plain body");

    let fallback = conn
        .send(request(
            "GET",
            "/only-gz.css",
            &[("accept-encoding", "br, gzip")],
        ))
        .await;
    assert_eq!(fallback.header("content-encoding"), Some("gzip"));

    // Each representation has its own validator, so caches never mix them up.
    assert_ne!(br.header("etag"), gz.header("etag"));
    assert_ne!(gz.header("etag"), plain.header("etag"));

    let no_variants = conn.send(request("GET", "/only-gz.css.gz", &[])).await;
    assert_eq!(no_variants.header("vary"), None);
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let f = jekyll_site();
    let app = f.start().await;
    let mut conn = f.client().h1(app.https_addr()).await;
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = conn.send(request(method, "/", &[])).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[tokio::test]
async fn head_matches_get_without_a_body_over_http1_and_http2() {
    let f = Fixture::new();
    f.site_file("index.html", vec![b'x'; 40_000]);
    let app = f.start().await;
    let client = f.client();
    let get_reply = client.h1(app.https_addr()).await.send(get("/")).await;
    let h1 = client
        .h1(app.https_addr())
        .await
        .send(request("HEAD", "/", &[]))
        .await;
    let h2 = client
        .h2(app.https_addr())
        .await
        .send(request("HEAD", "/", &[]))
        .await;
    for head in [&h1, &h2] {
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), Some("40000"));
        assert_eq!(head.header("etag"), get_reply.header("etag"));
    }
    assert_eq!(h2.version, http::Version::HTTP_2);
}

#[tokio::test]
async fn http2_serves_the_same_site() {
    let f = jekyll_site();
    let app = f.start().await;
    let mut conn = f.client().h2(app.https_addr()).await;
    let r = conn.send(get("/about/")).await;
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(&r.body[..], b"<h1>about</h1>");
    assert_eq!(r.header("x-powered-by"), Some("raspberry-pi"));
    let missing = conn.send(get("/missing")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn large_files_arrive_whole_and_intact() {
    let f = Fixture::new();
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    f.site_file("big.bin", &data);
    let app = f.start().await;
    let client = f.client();
    let h1 = client.get(app.https_addr(), "/big.bin").await;
    assert_eq!(h1.body.len(), data.len());
    assert!(h1.body[..] == data[..], "h1 body intact");
    let h2 = client
        .h2(app.https_addr())
        .await
        .send(get("/big.bin"))
        .await;
    assert!(h2.body[..] == data[..], "h2 body intact");
}

#[tokio::test]
async fn health_path_is_answered_empty_and_uncached_even_without_the_file() {
    let f = Fixture::new(); // no up.txt, not even an index
    let app = f.start().await;
    let https = f.client().get(app.https_addr(), "/up.txt").await;
    assert_eq!(https.status, StatusCode::OK);
    assert!(https.body.is_empty());
    assert_eq!(https.header("cache-control"), Some("no-store"));
    assert_eq!(https.header("x-powered-by"), Some("raspberry-pi"));

    let plain = common::plain_get(app.http_addr().expect("http"), "/up.txt", "localhost").await;
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(
        plain
            .to_ascii_lowercase()
            .contains("cache-control: no-store"),
        "{plain}"
    );
    assert!(
        plain
            .to_ascii_lowercase()
            .contains("x-powered-by: raspberry-pi"),
        "{plain}"
    );
}

#[tokio::test]
async fn health_path_is_configurable() {
    let f = jekyll_site();
    let app = f
        .start_with(|c| c.site.health_path = "/health".into())
        .await;
    let r = f.client().get(app.https_addr(), "/health").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn plain_http_redirects_everything_else_to_https() {
    let f = jekyll_site();
    let app = f.start().await;
    let http = app.http_addr().expect("http listener");
    let port = app.https_addr().port();
    let r = common::plain_get(http, "/about/?q=1", "example.test").await;
    assert!(r.starts_with("HTTP/1.1 301"), "{r}");
    assert!(
        r.contains(&format!("location: https://example.test:{port}/about/?q=1")),
        "{r}"
    );

    // The asterisk form is no path: it goes to the home page, not to `https://host*`.
    let mut tcp = tokio::net::TcpStream::connect(http).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(
        &mut tcp,
        b"OPTIONS * HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut r = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut tcp, &mut r)
        .await
        .expect("read");
    assert!(
        r.contains(&format!("location: https://example.test:{port}/\r\n")),
        "{r}"
    );

    // A Host that is not one of ours is not echoed into the Location.
    let r = common::plain_get(http, "/", "evil.example").await;
    assert!(
        r.contains(&format!("location: https://localhost:{port}/")),
        "{r}"
    );
    assert!(!r.contains("evil"), "{r}");
    assert!(r
        .to_ascii_lowercase()
        .contains("x-powered-by: raspberry-pi"));
    assert!(
        !r.to_ascii_lowercase().contains("strict-transport-security"),
        "no HSTS over plain HTTP"
    );
}

#[tokio::test]
async fn dotfiles_are_hidden_unless_configured() {
    let f = jekyll_site();
    f.site_file(".git/config", "[core]");
    f.site_file(".env", "TOKEN=1");
    f.site_file(".well-known/security.txt", "Contact: mailto:x@example.test");
    let app = f.start().await;
    let client = f.client();
    assert_eq!(
        client.get(app.https_addr(), "/.git/config").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.get(app.https_addr(), "/.env").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client
            .get(app.https_addr(), "/.well-known/security.txt")
            .await
            .status,
        StatusCode::OK
    );
    drop(app);

    let app = f.start_with(|c| c.site.serve_dotfiles = true).await;
    assert_eq!(
        client.get(app.https_addr(), "/.env").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn files_added_later_appear_after_a_reload() {
    let f = jekyll_site();
    let app = f.start().await;
    f.site_file("new.html", "new");
    assert_eq!(
        f.client().get(app.https_addr(), "/new.html").await.status,
        StatusCode::NOT_FOUND
    );
    app.reload().await;
    assert_eq!(
        f.client().get(app.https_addr(), "/new.html").await.status,
        StatusCode::OK
    );
}
