//! Sockets: the accept loops for HTTPS and plain HTTP, and the limits that keep a slow or
//! hostile client from holding the Pi's few resources.
//!
//! We own the accept loop (rather than `axum::serve`) because the limits live here:
//! - a connection cap shared by both listeners (excess clients wait in the kernel backlog);
//! - a TLS handshake timeout (no hyper setting covers a client that stalls before HTTP);
//! - hyper's header-read timeout, which only works with a timer installed;
//! - an idle timeout: a connection that moves no byte either way for that long is closed,
//!   which also cuts readers that stopped reading a response;
//! - bounded buffers per connection, so memory does not grow with response size.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::LimitsConfig;
use crate::live::classify::{Classifier, RequestFacts};
use crate::live::traffic::Traffic;
use crate::site::body::Body;
use crate::site::{handler, Site};

/// What every connection task shares.
#[derive(Clone)]
pub struct ServerContext {
    pub site: Arc<Site>,
    pub limits: LimitsConfig,
    pub connections: Arc<Semaphore>,
    /// Connections by client address (`limits.max_connections_per_address`).
    pub per_address: Arc<crate::per_address::PerAddress>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    /// Every answered request is classified and counted here, for the status model.
    pub traffic: Arc<Traffic>,
    pub classifier: Arc<Classifier>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

/// Accepts HTTPS connections until shutdown.
pub async fn serve_https(listener: TcpListener, acceptor: TlsAcceptor, ctx: ServerContext) {
    accept_loop(listener, ctx, move |tcp, peer, ctx| {
        let acceptor = acceptor.clone();
        async move {
            let handshake =
                tokio::time::timeout(ctx.limits.tls_handshake_timeout, acceptor.accept(tcp));
            let tls = match handshake.await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let sni: Option<Arc<str>> = tls.get_ref().1.server_name().map(Arc::from);
            serve_connection(tls, h2, Scheme::Https, sni, peer, ctx).await;
        }
    })
    .await;
}

/// Accepts plain HTTP connections (health path and redirects) until shutdown.
pub async fn serve_http(listener: TcpListener, ctx: ServerContext) {
    accept_loop(listener, ctx, |tcp, peer, ctx| {
        serve_connection(tcp, false, Scheme::Http, None, peer, ctx)
    })
    .await;
}

/// The listener's next connection, or `None` once `shutdown` is cancelled. Accept errors
/// (EMFILE and friends) back off instead of spinning; the client retries.
pub async fn accept_next(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(e) => {
                    tracing::warn!(error = %e, addr = ?listener.local_addr().ok(), "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

async fn accept_loop<F, Fut>(listener: TcpListener, ctx: ServerContext, on_connection: F)
where
    F: Fn(TcpStream, SocketAddr, ServerContext) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    while let Some((tcp, peer)) = accept_next(&listener, &ctx.shutdown).await {
        // Before the global permit: an address at its cap must not hold one while it waits.
        let Some(slot) = ctx.per_address.admit(peer.ip()) else {
            tracing::debug!(%peer, "closed: the address holds limits.max_connections_per_address already");
            drop(tcp);
            continue;
        };
        // The permit is taken after accept, not before: a listener waiting for its next
        // client must not hold one. At the cap, this loop stops accepting and further
        // clients wait in the kernel's backlog.
        let permit = tokio::select! {
            _ = ctx.shutdown.cancelled() => return,
            permit = ctx.connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let _ = tcp.set_nodelay(true);
        let task = on_connection(tcp, peer, ctx.clone());
        ctx.tracker.spawn(async move {
            task.await;
            drop(permit);
            drop(slot);
        });
    }
}

async fn serve_connection<I>(
    io: I,
    h2: bool,
    scheme: Scheme,
    sni: Option<Arc<str>>,
    peer: SocketAddr,
    ctx: ServerContext,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let site = ctx.site.clone();
    let (traffic, classifier) = (ctx.traffic.clone(), ctx.classifier.clone());
    let service = service_fn(move |req: hyper::Request<Incoming>| {
        let response = match scheme {
            Scheme::Https => handler::https(&site, &req),
            Scheme::Http => handler::http(&site, &req),
        };
        record(
            &traffic,
            &classifier,
            &req,
            &response,
            scheme,
            sni.as_deref(),
            peer,
        );
        std::future::ready(Ok::<hyper::Response<Body>, Infallible>(response))
    });

    let limits = &ctx.limits;
    let result = if h2 {
        let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.h2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            // hyper's default lets each stream queue 400 KB; a Pi has better uses for it.
            .max_send_buf_size(64 * 1024);
        let conn = builder.serve_connection(io, service);
        drive(conn, &activity, &ctx, |c| c.graceful_shutdown()).await
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(true)
            // One buffer size bounds both the request head and the response bytes queued per
            // connection (hyper stops pulling the body when it is full).
            .max_buf_size(limits.max_header_bytes.max(8 * 1024));
        let conn = builder.serve_connection(io, service);
        drive(conn, &activity, &ctx, |c| c.graceful_shutdown()).await
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Counts the request by class for the status model. The bytes are what the response
/// announces: a reader who hangs up early is counted as served.
fn record<B>(
    traffic: &Traffic,
    classifier: &Classifier,
    req: &hyper::Request<B>,
    response: &hyper::Response<Body>,
    scheme: Scheme,
    sni: Option<&str>,
    peer: SocketAddr,
) {
    let header =
        |name: http::header::HeaderName| req.headers().get(name).and_then(|v| v.to_str().ok());
    let class = classifier.classify(&RequestFacts {
        sni,
        // HTTP/2 carries the host in the :authority pseudo-header, which hyper puts in the URI.
        host: req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| header(http::header::HOST)),
        method: Some(req.method()),
        user_agent: header(http::header::USER_AGENT),
        path: req.uri().path(),
        tls: scheme == Scheme::Https,
    });
    let bytes = if req.method() == http::Method::HEAD {
        0
    } else {
        response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(0)
    };
    traffic.record(class, peer.ip(), response.status().as_u16(), bytes);
}

/// Runs a hyper connection to its end, closing it when idle and draining it on shutdown.
async fn drive<C, E>(
    conn: C,
    activity: &Activity,
    ctx: &ServerContext,
    graceful: impl FnOnce(Pin<&mut C>),
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    let mut conn = std::pin::pin!(conn);
    let idle = ctx.limits.idle_timeout;
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = activity.idle_for(idle) => return Ok(()),
        _ = ctx.shutdown.cancelled() => graceful(conn.as_mut()),
    }
    // Draining: in-flight responses finish; the appliance bounds the total wait.
    tokio::select! {
        result = conn.as_mut() => result,
        _ = activity.idle_for(idle) => Ok(()),
    }
}

/// Time of the last byte moved on a connection, as milliseconds since it opened.
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// An IO wrapper that records activity for the idle timeout.
struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
