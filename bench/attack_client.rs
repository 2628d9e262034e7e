//! The attacks of issue 13 as a client can make them, and the reader who must still be
//! served meanwhile. Shared by the attack tests (`tests/it/serve_limits/attacks.rs`) and the
//! benchmark (`examples/attack.rs`, run by `bench/attack.sh` against pi-failover and nginx).
//!
//! Each attack connects from a loopback source address of its own (the whole 127/8 is local),
//! so per-address limits see it as one host, and the reader comes from another.

#![allow(dead_code)] // the test and the benchmark each use their own subset

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The server under attack.
#[derive(Debug, Clone)]
pub struct Target {
    pub https: SocketAddr,
    pub http: Option<SocketAddr>,
    /// SNI and Host.
    pub host: String,
}

/// A TCP connection from `source` (a loopback address) to `to`.
pub async fn tcp_from(source: &str, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    let ip = source
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "source address"))?;
    socket.bind(SocketAddr::new(ip, 0))?;
    socket.connect(to).await
}

/// Accepts any certificate: the attacker and the probe measure the server's behaviour, not
/// its certificate (the demo's and nginx's are self-signed).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(alpn: &[u8]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

async fn tls_from<IO>(io: IO, target: &Target, alpn: &[u8]) -> io::Result<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(target.host.clone())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "server name"))?;
    TlsConnector::from(tls_config(alpn)).connect(name, io).await
}

/// An IO whose reads stop once `stop` is set: a client that stops reading its socket while
/// the server has data for it (the kernel's buffers fill, then the server's own).
pub struct StopReading<IO> {
    inner: IO,
    stop: Arc<AtomicBool>,
}

impl<IO: AsyncRead + Unpin> AsyncRead for StopReading<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.stop.load(Ordering::Relaxed) {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for StopReading<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What an HTTP/2 attacker's connection does after its handshake.
#[derive(Debug, Clone, Copy)]
pub enum H2Attack {
    /// Opens `streams` requests for the path with a zero flow-control window and sends a
    /// PING every `ping_every`: each stream waits for window for ever.
    ZeroWindow { streams: u32, ping_every: Duration },
    /// Raises both windows to 2^31−1, opens `streams` requests, then never reads again.
    NeverRead { streams: u32 },
    /// No request at all; a PING every `ping_every` to look alive.
    IdlePing { ping_every: Duration },
}

/// Attacking connections, held until dropped; counts those the server has closed.
pub struct Held {
    tasks: Vec<JoinHandle<()>>,
    closed: Arc<AtomicUsize>,
    opened: usize,
}

impl Held {
    /// Connections the server closed (or never let in).
    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }

    pub fn opened(&self) -> usize {
        self.opened
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// `connections` HTTP/2 connections from `source`, each making `attack` on `path`.
pub async fn h2_attack(
    target: &Target,
    source: &str,
    connections: usize,
    path: &str,
    attack: H2Attack,
) -> Held {
    let closed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (target, source, path) = (target.clone(), source.to_owned(), path.to_owned());
        let closed = closed.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tasks.push(tokio::spawn(async move {
            let _ = one_h2_attack(&target, &source, &path, attack, ready_tx).await;
            closed.fetch_add(1, Ordering::Relaxed);
        }));
        // One at a time, so the server sees them arrive as a client makes them.
        let _ = tokio::time::timeout(Duration::from_secs(5), ready_rx).await;
    }
    Held {
        tasks,
        closed,
        opened: connections,
    }
}

async fn one_h2_attack(
    target: &Target,
    source: &str,
    path: &str,
    attack: H2Attack,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let stop = Arc::new(AtomicBool::new(false));
    let tcp = tcp_from(source, target.https).await?;
    let tls = tls_from(tcp, target, b"h2").await?;
    let io = StopReading {
        inner: tls,
        stop: stop.clone(),
    };
    let mut builder = h2::client::Builder::new();
    builder.max_concurrent_reset_streams(0);
    match attack {
        H2Attack::ZeroWindow { .. } => {
            builder.initial_window_size(0);
        }
        H2Attack::NeverRead { .. } => {
            builder
                .initial_window_size(i32::MAX as u32)
                .initial_connection_window_size(i32::MAX as u32);
        }
        H2Attack::IdlePing { .. } => {}
    }
    let (mut sender, mut connection) = builder.handshake::<_, Bytes>(io).await?;
    let mut ping_pong = connection.ping_pong();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut responses = Vec::new();
    let streams = match attack {
        H2Attack::ZeroWindow { streams, .. } | H2Attack::NeverRead { streams } => streams,
        H2Attack::IdlePing { .. } => 0,
    };
    for _ in 0..streams {
        sender = sender.ready().await?;
        let request = http::Request::get(format!("https://{}{path}", target.host)).body(())?;
        let (response, _) = sender.send_request(request, true)?;
        responses.push(response);
    }
    if let H2Attack::NeverRead { .. } = attack {
        // Long enough for the requests to leave and the server to start answering.
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
    }
    let _ = ready.send(());
    let ping_every = match attack {
        H2Attack::ZeroWindow { ping_every, .. } | H2Attack::IdlePing { ping_every } => {
            Some(ping_every)
        }
        H2Attack::NeverRead { .. } => None,
    };
    match (ping_every, ping_pong.as_mut()) {
        (Some(every), Some(pp)) => loop {
            if driver.is_finished() {
                break;
            }
            if pp.ping(h2::Ping::opaque()).await.is_err() {
                break;
            }
            tokio::time::sleep(every).await;
        },
        _ => {
            let _ = driver.await;
        }
    }
    drop(responses);
    Ok(())
}

/// `connections` TCP connections from `source` that send nothing; each reconnects as soon as
/// the server closes it.
pub fn silent_tcp(target: &Target, source: &str, connections: usize) -> Held {
    let closed = Arc::new(AtomicUsize::new(0));
    let tasks = (0..connections)
        .map(|_| {
            let (addr, source, closed) = (target.https, source.to_owned(), closed.clone());
            tokio::spawn(async move {
                loop {
                    if let Ok(mut tcp) = tcp_from(&source, addr).await {
                        let mut buf = [0u8; 1024];
                        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                    }
                    closed.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        })
        .collect();
    Held {
        tasks,
        closed,
        opened: connections,
    }
}

/// A reader's GET over a fresh HTTPS connection (HTTP/1.1), from `source`: the time until
/// the whole response was read, or `None` when it failed or took longer than `limit`.
pub async fn https_get(
    target: &Target,
    source: &str,
    path: &str,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let exchange = async {
        let tcp = tcp_from(source, target.https).await.ok()?;
        let mut tls = tls_from(tcp, target, b"http/1.1").await.ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            target.host
        );
        tls.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        response.starts_with(b"HTTP/1.1 200").then_some(())
    };
    tokio::time::timeout(limit, exchange).await.ok()??;
    Some(started.elapsed())
}

/// The health path over plain HTTP from `source`, as a DNS health checker asks for it.
pub async fn http_get(
    target: &Target,
    source: &str,
    path: &str,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    let addr = target.http?;
    let exchange = async {
        let mut tcp = tcp_from(source, addr).await.ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            target.host
        );
        tcp.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        let _ = tcp.read_to_end(&mut response).await;
        response.starts_with(b"HTTP/1.1 200").then_some(())
    };
    tokio::time::timeout(limit, exchange).await.ok()??;
    Some(started.elapsed())
}

/// Runs `probe` every `every` until `stop` completes; the latencies (`None`: failed).
pub async fn probe_during<F, Fut>(
    every: Duration,
    stop: impl Future<Output = ()>,
    mut probe: F,
) -> Vec<Option<Duration>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<Duration>>,
{
    let mut results = Vec::new();
    tokio::pin!(stop);
    loop {
        let next = tokio::time::sleep(every);
        results.push(probe().await);
        tokio::select! {
            () = &mut stop => return results,
            () = next => {}
        }
    }
}

/// Resident memory and open descriptors of the processes `pids` (a server and its workers).
pub fn footprint(pids: &[u32]) -> (u64, usize) {
    let mut rss_kb = 0;
    let mut fds = 0;
    for pid in pids {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            rss_kb += status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        fds += std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, std::iter::Iterator::count);
    }
    (rss_kb, fds)
}
