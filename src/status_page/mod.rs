//! The local status server: its own plain-HTTP listener (never the public HTTPS one), for
//! people on the co-location's LAN or holding the token. `/` is the page, `/api/status` and
//! `/api/history` the JSON (docs/status-api.md), `/metrics` the Prometheus text.
//!
//! On axum: a handful of routes, HEAD and 405 from its method router, the access check and
//! the headers every answer carries as layers around the routes, apart from them (gokrazy's
//! `authenticated.go`). The site server stays on hyper alone: two routes, a pread-based body
//! and limits that live below HTTP gain nothing from a router (README, "Layout").

pub mod access;
pub mod graphs;
pub mod html;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::middleware::Next;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::{Admitted, Gate};
use crate::status::Status;
use access::Access;

/// Connections one address may hold: 32 connections from one address outside the
/// allow-list, pipelining requests and never reading, once held every place and locked the
/// owner out (issue 13). A browser needs a few.
const MAX_CONNECTIONS_PER_ADDRESS: usize = 4;

/// The longest a connection lives, whatever it does: the page and its JSON are a few KB
/// and refresh by new requests, so a connection past this is holding a place, not reading.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct StatusPage {
    pub status: watch::Receiver<Arc<Status>>,
    pub access: Arc<Access>,
    /// The history the graphs and `/api/history` show.
    pub history: crate::history::SharedHistory,
    /// The simulated OLED (demo): `/oled.png` shows its glass.
    pub oled: Option<crate::indicators::SimulatedOled>,
}

pub async fn serve(
    listener: TcpListener,
    page: StatusPage,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let router = router(page);
    // Let in as the site's listeners are (`server::admission`), through a gate of its own: a
    // handful of people look at a status page (more wait in the kernel's queue), and an
    // attack that fills the site's places must not lock the owner out of it.
    let gate = Gate::new(
        "status page",
        crate::budget::STATUS_CONNECTIONS,
        0,
        MAX_CONNECTIONS_PER_ADDRESS,
    );
    while let Some(admitted) = gate.next(&listener, &shutdown).await {
        let router = router.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let Admitted {
                tcp, peer, place, ..
            } = admitted;
            let service = service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                tower_service::Service::call(&mut router.clone(), req)
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10));
            let conn = builder.serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = tokio::time::sleep(CONNECTION_DEADLINE) => {
                    tracing::debug!(%peer, "status page: connection deadline");
                }
                () = shutdown.cancelled() => {
                    // Lets a request in flight finish (the appliance's grace bounds it);
                    // an idle keep-alive connection closes at once.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.as_mut().await;
                }
            }
            drop(place);
        });
    }
}

/// The client's address, put on each request by the accept loop: what the access check reads.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// The routes, inside the access check and the headers of every answer. HEAD is answered as
/// GET without the body, another method with 405 and `Allow` (axum's method router).
pub fn router(page: StatusPage) -> Router {
    Router::new()
        .route("/", get(page_html))
        .route("/api/status", get(status_json))
        .route("/api/history", get(history_json))
        .route("/metrics", get(metrics_text))
        .route("/oled.png", get(oled_png))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(page.clone(), admit))
        .with_state(page)
}

/// The access check, before any route (`access`): the allow-list by a local name, or the
/// token; then the headers every answer carries, the router's own (405) included.
async fn admit(
    State(page): State<StatusPage>,
    req: axum::extract::Request,
    next: Next,
) -> axum::response::Response {
    let peer = req.extensions().get::<Peer>().map(|p| p.0);
    if peer.is_some_and(|peer| page.access.permits(peer.ip(), &req)) {
        return every_answer(next.run(req).await);
    }
    tracing::debug!(?peer, "status page: refused");
    let mut refused = reply(
        StatusCode::FORBIDDEN,
        "text/plain; charset=utf-8",
        "403 Forbidden: the status page answers the local network by a local name, or a request with its token\n".into(),
    );
    // A refused client gets nothing more on this connection: pipelined requests behind the
    // first are not read, and the permit comes back as soon as the answer is sent.
    refused
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    every_answer(axum::response::IntoResponse::into_response(refused))
}

/// What every answer carries: never cached, never framed, never sniffed, the token never
/// sent on as a Referer, nothing loaded from elsewhere.
fn every_answer(mut response: axum::response::Response) -> axum::response::Response {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"),
    );
    response
}

/// `/`: the page, with the token carried into its links when the request came with it.
async fn page_html(
    State(page): State<StatusPage>,
    req: axum::extract::Request,
) -> Response<Full<Bytes>> {
    let status = page.status.borrow().clone();
    let token = page.access.token_query(&req).unwrap_or_default();
    // Drawn under the lock rather than from a copy of a month of samples per request; the
    // recorder waits the millisecond it takes.
    let history = page
        .history
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let html = html::render(&status, &token, page.oled.is_some(), &history);
    drop(history);
    reply(StatusCode::OK, "text/html; charset=utf-8", html)
}

/// `/api/status` (docs/status-api.md).
async fn status_json(State(page): State<StatusPage>) -> Response<Full<Bytes>> {
    let status = page.status.borrow().clone();
    match serde_json::to_string_pretty(&*status) {
        Ok(json) => reply(StatusCode::OK, "application/json", json),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("{e}\n"),
        ),
    }
}

/// `/metrics`: the Prometheus text.
async fn metrics_text(State(page): State<StatusPage>) -> Response<Full<Bytes>> {
    let status = page.status.borrow().clone();
    reply(
        StatusCode::OK,
        metrics::CONTENT_TYPE,
        metrics::render(&status),
    )
}

async fn not_found() -> Response<Full<Bytes>> {
    reply(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 Not Found\n".into(),
    )
}

/// `/api/history` (docs/status-api.md): the history as the graphs draw it.
async fn history_json(State(page): State<StatusPage>) -> Response<Full<Bytes>> {
    #[derive(serde::Serialize)]
    struct HistoryDocument<'a> {
        schema: u32,
        #[serde(with = "crate::format::json_time")]
        generated_at: std::time::SystemTime,
        /// Why the journal is not being written, when it is not.
        not_written: Option<&'a str>,
        journal_cap_bytes: u64,
        current_minute: Option<&'a crate::history::Sample>,
        minutes: &'a std::collections::VecDeque<crate::history::Sample>,
        hours: &'a std::collections::VecDeque<crate::history::Sample>,
        events: &'a std::collections::VecDeque<crate::history::Event>,
    }
    let live = page
        .history
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let document = HistoryDocument {
        schema: crate::history::SCHEMA_VERSION,
        generated_at: std::time::SystemTime::now(),
        not_written: live.not_written.as_deref(),
        journal_cap_bytes: crate::history::journal::JOURNAL_CAP,
        current_minute: live.current.as_ref(),
        minutes: &live.history.minutes,
        hours: &live.history.hours,
        events: &live.history.events,
    };
    match serde_json::to_string(&document) {
        Ok(json) => reply(StatusCode::OK, "application/json", json),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("{e}\n"),
        ),
    }
}

/// The simulated panel's glass, 3 screen pixels per panel pixel.
async fn oled_png(State(page): State<StatusPage>) -> Response<Full<Bytes>> {
    let Some(bus) = page.oled.as_ref() else {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404: no simulated OLED here; the real panel shows the picture\n".into(),
        );
    };
    match crate::indicators::simulated_png(bus, 3) {
        Ok(png) => {
            let mut r = reply(StatusCode::OK, "image/png", String::new());
            *r.body_mut() = Full::new(Bytes::from(png));
            r
        }
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            format!("{e}\n"),
        ),
    }
}

fn reply(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = code;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
