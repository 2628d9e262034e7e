//! Sockets: the accept loops for HTTPS and plain HTTP, and the limits that keep a slow or
//! hostile client from holding the Pi's few resources (docs/reliability.md, "Under attack").
//!
//! The loop is our own, on hyper's connection builders, because these limits live below
//! HTTP, where no server framework exposes them:
//! - who gets in (`admission`): connections per client address, checked before anything
//!   else, then established connections shared by both listeners (`limits.max_connections`),
//!   and behind them a reserve (`limits.reserved_connections`) that answers one request per
//!   connection with short timeouts: the health check gets through while the site is
//!   saturated. The status page's listener is let in by the same code, with its own gate;
//! - TLS handshakes counted apart from established connections (`limits.max_handshakes`), so
//!   clients that connect and say nothing hold a handshake slot for at most the handshake
//!   timeout, never a connection slot; at the cap, further clients wait in the kernel's queue;
//! - hyper's header-read timeout, which only works with a timer installed;
//! - progress timeouts (`pacing::Progress`): a connection with no request and no response
//!   byte moving on for `idle_timeout` is closed, and so is one whose response has not moved
//!   for `send_timeout`; PING, SETTINGS and WINDOW_UPDATE are not progress;
//! - a byte budget per connection for response bodies (`pacing::ByteBudget`), so memory does
//!   not grow with windows, streams or response size.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::LimitsConfig;
use crate::live::classify::{Classifier, RequestFacts};
use crate::live::traffic::Traffic;
use crate::pacing::{self, Progress, Stall};
use crate::site::body::Body;
use crate::site::{handler, Site};
use crate::stream_executor::{StreamExecutor, WithStreams};

pub mod admission;

use admission::accept_next;
pub use admission::{Admitted, Gate, Lane};

/// What every connection task shares.
#[derive(Clone)]
pub(crate) struct ServerContext {
    pub site: Arc<Site>,
    pub limits: LimitsConfig,
    /// Who gets in, both listeners (`Gate::site`: `limits.max_connections`,
    /// `reserved_connections`, `max_connections_per_address`).
    pub gate: Gate,
    /// TLS handshakes in progress (`limits.max_handshakes`).
    pub handshakes: Arc<Semaphore>,
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
pub(crate) async fn serve_https(listener: TcpListener, acceptor: TlsAcceptor, ctx: ServerContext) {
    while let Some((tcp, peer)) = accept_next(&listener, &ctx.shutdown).await {
        let Some(address) = ctx.gate.address(peer) else {
            continue;
        };
        // At the cap this loop waits here, and further clients wait in the kernel's queue:
        // a listener waiting for its next client holds no permit.
        let handshake = tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            permit = ctx.handshakes.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let acceptor = acceptor.clone();
        let ctx = ctx.clone();
        ctx.tracker.clone().spawn(async move {
            let _ = tcp.set_nodelay(true);
            let fd = tcp.as_raw_fd();
            let handshake_result =
                tokio::time::timeout(ctx.limits.tls_handshake_timeout, acceptor.accept(tcp)).await;
            let tls = match handshake_result {
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
            // Waiting for a connection place keeps the handshake permit, so connections
            // waiting here are bounded by limits.max_handshakes.
            let Some((lane, place)) = ctx.gate.lane(address, &ctx.shutdown).await else {
                return;
            };
            drop(handshake);
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let sni: Option<Arc<str>> = tls.get_ref().1.server_name().map(Arc::from);
            let conn = Conn {
                h2,
                scheme: Scheme::Https,
                sni,
                peer,
                fd,
                lane,
            };
            serve_connection(tls, conn, &ctx).await;
            drop(place);
        });
    }
}

/// Accepts plain HTTP connections (health path and redirects) until shutdown.
pub(crate) async fn serve_http(listener: TcpListener, ctx: ServerContext) {
    while let Some(admitted) = ctx.gate.next(&listener, &ctx.shutdown).await {
        let ctx = ctx.clone();
        ctx.tracker.clone().spawn(async move {
            let Admitted {
                tcp,
                peer,
                lane,
                place,
            } = admitted;
            let _ = tcp.set_nodelay(true);
            let conn = Conn {
                h2: false,
                scheme: Scheme::Http,
                sni: None,
                peer,
                fd: tcp.as_raw_fd(),
                lane,
            };
            serve_connection(tcp, conn, &ctx).await;
            drop(place);
        });
    }
}

/// One admitted connection's facts.
struct Conn {
    h2: bool,
    scheme: Scheme,
    sni: Option<Arc<str>>,
    peer: SocketAddr,
    /// The TCP socket under TLS, for its send queue (`still_draining`); valid while the
    /// connection is served, which is all it is used for.
    fd: RawFd,
    lane: Lane,
}

async fn serve_connection<I>(io: I, conn: Conn, ctx: &ServerContext)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let progress = Progress::new();
    let budget = pacing::byte_budget(ctx.limits.max_buffered_bytes_per_connection);
    let requested = Arc::new(Notify::new());
    let io = TokioIo::new(io);
    let site = ctx.site.clone();
    let (traffic, classifier) = (ctx.traffic.clone(), ctx.classifier.clone());
    let (scheme, sni, peer) = (conn.scheme, conn.sni.clone(), conn.peer);
    let service = {
        let (progress, requested) = (progress.clone(), requested.clone());
        service_fn(move |req: hyper::Request<Incoming>| {
            progress.touch();
            requested.notify_one();
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
            let response = response.map(|body| body.paced(&budget, &progress));
            std::future::ready(Ok::<hyper::Response<Body>, Infallible>(response))
        })
    };

    let limits = &ctx.limits;
    let watch = Watch {
        progress: &progress,
        requested: &requested,
        conn: &conn,
        ctx,
    };
    let result = if conn.h2 {
        // The connection's streams run in its own task (src/stream_executor.rs).
        let executor = StreamExecutor::default();
        let mut builder = hyper::server::conn::http2::Builder::new(executor.clone());
        let streams = match conn.lane {
            Lane::Established => limits.h2_max_concurrent_streams,
            Lane::Reserve => 1,
        };
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            // hyper's default lets each stream queue 400 KB; the connection's byte budget
            // bounds the sum, this bounds what one stream may take of it.
            .max_send_buf_size(64 * 1024);
        let c = WithStreams::new(builder.serve_connection(io, service), &executor);
        drive(c, watch, |c| c.conn().graceful_shutdown()).await
    } else {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(conn.lane.header_read_timeout(limits))
            .keep_alive(conn.lane == Lane::Established)
            // One buffer size bounds both the request head and the response bytes queued per
            // connection (hyper stops pulling the body when it is full).
            .max_buf_size(limits.max_header_bytes.max(8 * 1024));
        // Boxed, as the HTTP/2 connection is inside `WithStreams`: a connection task is as
        // large as its largest state, and HTTP/2 connections must not carry HTTP/1's.
        let c = Box::pin(builder.serve_connection(io, service));
        drive(c, watch, |c| c.get_mut().as_mut().graceful_shutdown()).await
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
            .map(http::uri::Authority::as_str)
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

/// What `drive` watches besides the connection itself.
struct Watch<'a> {
    progress: &'a Progress,
    /// Notified on each request: a reserve connection closes after its first.
    requested: &'a Notify,
    conn: &'a Conn,
    ctx: &'a ServerContext,
}

/// Runs a hyper connection to its end, closing it when it stops making progress and
/// draining it on shutdown (or, in the reserve, after its one request).
async fn drive<C, E>(conn: C, watch: Watch<'_>, graceful: fn(Pin<&mut C>)) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    let mut conn = std::pin::pin!(conn);
    let limits = &watch.ctx.limits;
    let idle = watch.conn.lane.idle_timeout(limits);
    let reserve = watch.conn.lane == Lane::Reserve;
    let send = if reserve {
        limits.send_timeout.min(idle)
    } else {
        limits.send_timeout
    };
    let mut unsent = None;
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            stall = watch.progress.stalled(idle, send) => {
                if !still_draining(stall, watch.conn.fd, &mut unsent) {
                    tracing::debug!(peer = %watch.conn.peer, ?stall, "closed: no progress");
                    return Ok(());
                }
                watch.progress.touch();
            }
            () = watch.requested.notified(), if reserve => {
                graceful(conn.as_mut());
                break;
            }
            () = watch.ctx.shutdown.cancelled() => {
                graceful(conn.as_mut());
                break;
            }
        }
    }
    // Draining: in-flight responses finish; the appliance bounds the total wait.
    loop {
        tokio::select! {
            result = conn.as_mut() => return result,
            stall = watch.progress.stalled(idle, send) => {
                if !still_draining(stall, watch.conn.fd, &mut unsent) {
                    return Ok(());
                }
                watch.progress.touch();
            }
        }
    }
}

/// An idle connection whose socket is still sending what it was given (the kernel's send
/// queue shrank since the last look) is a slow reader at the end of a response, not a stalled
/// one. A client that reads nothing leaves the queue as it is and is closed one idle period
/// later.
fn still_draining(stall: Stall, fd: RawFd, last: &mut Option<u32>) -> bool {
    if stall != Stall::Idle {
        return false;
    }
    let Some(now) = unsent_bytes(fd) else {
        return false;
    };
    let draining = now > 0 && last.is_none_or(|before| now < before);
    *last = Some(now);
    draining
}

/// Bytes in the socket's send queue not yet acknowledged by the client.
fn unsent_bytes(fd: RawFd) -> Option<u32> {
    let mut queued: libc::c_int = 0;
    // SAFETY: TIOCOUTQ writes one int through the pointer; `fd` is the connection's own
    // socket, open for as long as the connection is served.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) };
    if rc == 0 {
        u32::try_from(queued).ok()
    } else {
        None
    }
}
