//! Shared helpers for the integration tests: a site on disk, certificates from a test CA,
//! an appliance started in-process on loopback ports, and a real rustls + hyper client.

#[cfg(feature = "system-tests")]
pub mod acme;
pub mod fault_proxy;
pub mod process;
pub mod s3;
pub mod webhook;

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use pi_failover::appliance::Appliance;
use pi_failover::config::{self, Config};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Taken by the tests that load the machine or measure time, memory or a child's resources
/// (the soak, the power cuts, the attacks, the sync's memory, the booted image): no two of
/// them overlap in the one test binary. Each had a binary of its own before, which cargo ran
/// alone; the other tests still run beside them as they did beside each other. An async lock
/// works across the tests' separate runtimes.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    ALONE.lock().await
}

/// [`exclusive`] for a test that is not async.
#[cfg(feature = "image-tests")]
pub fn exclusive_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    ALONE.blocking_lock()
}

/// A byte string that must never appear in a response: it lives outside the site root.
pub const SECRET: &str = "OUTSIDE-THE-ROOT-d41d8cd98f00b204";

/// A temporary directory with `site/` (the root), `outside/secret.txt`, and certificates.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub ca: TestCa,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("site")).expect("site dir");
        std::fs::create_dir_all(dir.path().join("outside")).expect("outside dir");
        std::fs::write(dir.path().join("outside/secret.txt"), SECRET).expect("secret");
        let fixture = Self {
            dir,
            ca: TestCa::new(),
        };
        fixture.ca.issue_to(
            &["localhost", "example.test"],
            &fixture.path("cert.pem"),
            &fixture.path("key.pem"),
        );
        fixture
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn root(&self) -> PathBuf {
        self.path("site")
    }

    /// Writes a file under the site root, creating directories.
    pub fn site_file(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, contents).expect("write");
        path
    }

    /// A config for this fixture on loopback with free ports, before `tweak`.
    pub fn config(&self) -> Config {
        let text = format!(
            r#"
            [site]
            root = "{root}"
            hostnames = ["localhost", "example.test"]
            [listen]
            https = "127.0.0.1:0"
            http = "127.0.0.1:0"
            [status]
            listen = "127.0.0.1:0"
            [storage]
            data_dir = "{data}"
            [live]
            clock_check = false

            [tls]
            watch_interval = "100ms"
            [[tls.certificates]]
            cert = "{cert}"
            key = "{key}"
            "#,
            root = self.root().display(),
            data = self.path("data").display(),
            cert = self.path("cert.pem").display(),
            key = self.path("key.pem").display(),
        );
        let file = self.path("pi-failover.toml");
        let config = config::parse(&text, &file).expect("test config parses");
        config.validate(&file).expect("test config is valid");
        pi_failover::settings::check(&config, &file).expect("test config is valid");
        config
    }

    /// A config that syncs the site from `server` into `data/` instead of serving `site/`.
    pub fn s3_config(&self, server: &s3::S3Server) -> Config {
        server.write_credentials(&self.path("aws-credentials"));
        let text = format!(
            r#"
            [site]
            hostnames = ["localhost", "example.test"]
            [listen]
            https = "127.0.0.1:0"
            http = "127.0.0.1:0"
            [storage]
            data_dir = "data"
            [s3]
            bucket = "{bucket}"
            endpoint = "{endpoint}"
            path_style = true
            credentials_file = "aws-credentials"
            interval = "1h"
            jitter = "0s"
            request_timeout = "5s"
            [status]
            listen = "127.0.0.1:0"
            [live]
            clock_check = false

            [tls]
            watch_interval = "100ms"
            [[tls.certificates]]
            cert = "cert.pem"
            key = "key.pem"
            "#,
            bucket = s3::BUCKET,
            endpoint = server.endpoint(),
        );
        let file = self.path("pi-failover.toml");
        std::fs::write(&file, &text).expect("write config");
        let config = config::parse(&text, &file).expect("s3 config parses");
        config.validate(&file).expect("s3 config is valid");
        pi_failover::settings::check(&config, &file).expect("s3 config is valid");
        config
    }

    pub async fn start(&self) -> Appliance {
        self.start_with(|_| {}).await
    }

    pub async fn start_with(&self, tweak: impl FnOnce(&mut Config)) -> Appliance {
        let mut config = self.config();
        tweak(&mut config);
        Appliance::start(config).await.expect("appliance starts")
    }

    pub fn client(&self) -> Client {
        Client::new(vec![self.ca.cert_der()])
    }
}

/// A throwaway certificate authority that issues ECDSA P-256 leaf certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
    pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pi-failover test CA");
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA's certificate as PEM (a trust bundle file).
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.der.clone()
    }

    /// Writes a leaf certificate for `names` and its key as PEM files.
    pub fn issue_to(&self, names: &[&str], cert_path: &Path, key_path: &Path) {
        self.issue_with_key(
            names,
            KeyPair::generate().expect("leaf key"),
            cert_path,
            key_path,
        );
    }

    /// A leaf for `names` valid from `not_before` to `not_after` (renewals, expired and
    /// early certificates).
    pub fn issue_valid(
        &self,
        names: &[&str],
        not_before: std::time::SystemTime,
        not_after: std::time::SystemTime,
        cert_path: &Path,
        key_path: &Path,
    ) {
        let mut params = leaf_params(names);
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        self.sign_and_write(
            params,
            KeyPair::generate().expect("leaf key"),
            cert_path,
            key_path,
        );
    }

    pub fn issue_with_key(&self, names: &[&str], key: KeyPair, cert_path: &Path, key_path: &Path) {
        self.sign_and_write(leaf_params(names), key, cert_path, key_path);
    }

    fn sign_and_write(
        &self,
        params: CertificateParams,
        key: KeyPair,
        cert_path: &Path,
        key_path: &Path,
    ) {
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        std::fs::write(cert_path, cert.pem()).expect("write cert");
        std::fs::write(key_path, key.serialize_pem()).expect("write key");
    }
}

fn leaf_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(std::string::ToString::to_string).collect();
    CertificateParams::new(names).expect("leaf params")
}

/// A TLS server side (ring) for the PEM chain and key at these paths: the test's own HTTPS
/// servers (the clock's `Date`, the owner's webhook).
pub fn tls_acceptor(cert: &Path, key: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    let chain = CertificateDer::pem_file_iter(cert)
        .expect("cert")
        .collect::<Result<Vec<_>, _>>()
        .expect("cert parses");
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A port of 127.0.0.1 nothing listens on now (a receiver that is down, a guest's forward).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A plain-HTTP GET to the status page at `addr` from the loopback address `source`, named
/// by its address as a browser on the LAN does unless `headers` has a Host; status and body.
pub async fn status_page_get(
    addr: SocketAddr,
    source: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<u8>) {
    let (head, body) = status_page_request(addr, source, "GET", path, headers).await;
    (raw_status(head.as_bytes()), body)
}

/// [`status_page_get`] with any method (an empty body); the head as sent (status line and
/// headers) and the body.
pub async fn status_page_request(
    addr: SocketAddr,
    source: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, Vec<u8>) {
    let mut tcp = connect_from(source, addr).await;
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if method != "GET" && method != "HEAD" {
        req.push_str("Content-Length: 0\r\n");
    }
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        let _ = write!(req, "Host: {addr}\r\n");
    }
    for (name, value) in headers {
        let _ = write!(req, "{name}: {value}\r\n");
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.expect("read");
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let head = String::from_utf8_lossy(&raw[..end.unwrap_or(raw.len())]).into_owned();
    let body = end.map_or_else(Vec::new, |at| raw[at + 4..].to_vec());
    (head, body)
}

/// An HTTPS server on 127.0.0.1 whose every answer carries a `Date` `ahead` of this clock (a
/// clock source for `pi-failover clock`), with a leaf from `ca` for `names` valid from
/// `validity.0` to `validity.1`. Returns its port.
pub async fn date_server(
    dir: &Path,
    ca: &TestCa,
    names: &[&str],
    validity: (std::time::SystemTime, std::time::SystemTime),
    ahead: std::time::Duration,
) -> u16 {
    let (cert, key) = (dir.join("date-cert.pem"), dir.join("date-key.pem"));
    ca.issue_valid(names, validity.0, validity.1, &cert, &key);
    let acceptor = tls_acceptor(&cert, &key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let date = httpdate::fmt_http_date(std::time::SystemTime::now() + ahead);
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nDate: {date}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = tls.write_all(answer.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    port
}

/// A real TLS client: rustls (ring), trusting only the given roots.
#[derive(Clone)]
pub struct Client {
    roots: Vec<CertificateDer<'static>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Client {
    pub fn new(roots: Vec<CertificateDer<'static>>) -> Self {
        Self { roots }
    }

    pub fn tls_config(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut store = rustls::RootCertStore::empty();
        for root in &self.roots {
            store.add(root.clone()).expect("add root");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    /// Opens a TLS connection with SNI `name`, offering `alpn`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        name: &str,
        alpn: &[&[u8]],
    ) -> TlsStream<TcpStream> {
        self.connect_with(addr, name, self.tls_config(alpn, rustls::DEFAULT_VERSIONS))
            .await
            .expect("TLS connect")
    }

    pub async fn connect_with(
        &self,
        addr: SocketAddr,
        name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        self.handshake(tcp, name, config).await
    }

    /// A TLS handshake over an already connected socket.
    pub async fn handshake(
        &self,
        tcp: TcpStream,
        name: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let server_name = ServerName::try_from(name.to_owned()).expect("server name");
        TlsConnector::from(config).connect(server_name, tcp).await
    }

    /// An HTTP/1.1 connection that can carry several requests.
    pub async fn h1(&self, addr: SocketAddr) -> H1 {
        self.h1_to(addr, "localhost").await
    }

    /// The leaf certificate a new handshake for `name` gets (verified against the roots), or
    /// the handshake's error.
    pub async fn leaf(
        &self,
        addr: SocketAddr,
        name: &str,
    ) -> std::io::Result<CertificateDer<'static>> {
        let config = self.tls_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let tls = self.connect_with(addr, name, config).await?;
        Ok(tls.get_ref().1.peer_certificates().expect("a chain")[0].clone())
    }

    /// An HTTP/1.1 connection to the site name `name` (SNI and certificate check).
    pub async fn h1_to(&self, addr: SocketAddr, name: &str) -> H1 {
        let tls = self.connect(addr, name, &[b"http/1.1"]).await;
        h1_over(tls).await
    }

    /// An HTTP/1.1 connection over a socket already connected (from [`connect_from`]).
    pub async fn h1_over(&self, tcp: TcpStream) -> H1 {
        let config = self.tls_config(&[b"http/1.1"], rustls::DEFAULT_VERSIONS);
        let tls = self
            .handshake(tcp, "localhost", config)
            .await
            .expect("TLS handshake");
        h1_over(tls).await
    }

    /// An HTTP/2 connection (ALPN h2).
    pub async fn h2(&self, addr: SocketAddr) -> H2 {
        let tls = self.connect(addr, "localhost", &[b"h2"]).await;
        assert_eq!(
            tls.get_ref().1.alpn_protocol(),
            Some(&b"h2"[..]),
            "server must accept h2"
        );
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(conn);
        H2 { sender }
    }

    /// One GET over a fresh HTTP/1.1 connection.
    pub async fn get(&self, addr: SocketAddr, path: &str) -> Reply {
        self.h1(addr).await.send(get(path)).await
    }
}

async fn h1_over(tls: TlsStream<TcpStream>) -> H1 {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    H1 { sender }
}

/// Waits until the appliance's status model meets `condition`, at most `secs` seconds; says
/// what it waited for, the mode and the certificates' state when it gives up.
pub async fn wait_until(
    app: &Appliance,
    what: &str,
    secs: u64,
    mut condition: impl FnMut(&pi_failover::status::Status) -> bool,
) {
    let mut status = app.status();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if condition(&status.borrow_and_update()) {
            return;
        }
        if tokio::time::timeout_at(deadline, status.changed())
            .await
            .is_err()
        {
            let s = status.borrow();
            panic!(
                "{what}: not within {secs} s; {} {}; {:#?}",
                s.mode, s.reason, s.tls
            );
        }
    }
}

/// A TCP connection to `to` from the loopback address `source` (the whole 127/8 is ours).
/// A connection from `source` (IPv4 or IPv6) to `to`; a wildcard `to` (a listener on
/// `[::]` or `0.0.0.0`) is reached through the loopback address of `source`'s family.
pub async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    try_connect_from(source, to).await.expect("connect")
}

/// Whether a SYN from `source` to `to` goes unanswered (a packet filter dropped it): the
/// connect neither completes nor is refused within `within`.
pub async fn syn_is_dropped(source: &str, to: SocketAddr, within: std::time::Duration) -> bool {
    tokio::time::timeout(within, try_connect_from(source, to))
        .await
        .is_err()
}

/// [`connect_from`], with the connect's error for the caller.
pub async fn try_connect_from(source: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let source: std::net::IpAddr = source.parse().expect("ip");
    let socket = match source {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .expect("socket");
    socket
        .bind(SocketAddr::new(source, 0))
        .expect("bind source address");
    let to = if to.ip().is_unspecified() {
        let loopback = match source {
            std::net::IpAddr::V4(_) => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            std::net::IpAddr::V6(_) => std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        };
        SocketAddr::new(loopback, to.port())
    } else {
        to
    };
    socket.connect(to).await
}

pub fn get(path: &str) -> Request<Empty<Bytes>> {
    request("GET", path, &[])
}

pub fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Empty::new()).expect("request")
}

pub struct H1 {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl H1 {
    pub async fn send(&mut self, req: Request<Empty<Bytes>>) -> Reply {
        self.try_send(req).await.expect("h1 request")
    }

    pub async fn try_send(&mut self, req: Request<Empty<Bytes>>) -> Result<Reply, hyper::Error> {
        self.sender.ready().await?;
        let response = self.sender.send_request(req).await?;
        collect(response).await
    }
}

pub struct H2 {
    sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
}

impl H2 {
    pub async fn send(&mut self, req: Request<Empty<Bytes>>) -> Reply {
        // h2 requests carry the authority in the URI.
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        parts.uri = format!("https://localhost{path}").parse().expect("uri");
        parts.headers.remove("host");
        self.sender.ready().await.expect("h2 ready");
        let response = self
            .sender
            .send_request(Request::from_parts(parts, body))
            .await
            .expect("h2 request");
        collect(response).await.expect("h2 body")
    }
}

async fn collect(response: hyper::Response<hyper::body::Incoming>) -> Result<Reply, hyper::Error> {
    let (parts, body) = response.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
        version: parts.version,
    })
}

/// Sends raw request bytes over TLS and returns everything the server sent until it closed.
/// Hostile paths go through here: a client library would normalise or refuse them.
pub async fn raw_exchange(client: &Client, addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut tls = client.connect(addr, "localhost", &[b"http/1.1"]).await;
    tls.write_all(request).await.expect("write request");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut out),
    )
    .await;
    out
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(response: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(response);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A plain-HTTP GET over TCP (the redirect listener), returning status and headers.
pub async fn plain_get(addr: SocketAddr, path: &str, host: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.expect("read");
    out
}

/// The path of a system tool a `system-tests` test needs. Opted in and missing, the test
/// fails loudly: it never skips.
#[cfg(feature = "system-tests")]
pub fn require_tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("`{name}` is needed by the system tests but is not installed; .ci/run installs it (apt-get install {name})"))
}
