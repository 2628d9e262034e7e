//! A misbehaving network between the sync and the S3 server: a TCP proxy that forwards to
//! the real one (`s3.rs`) and, for object downloads the test picks, cuts, stalls, corrupts
//! or answers in its place. The faults happen on the wire, below the SDK, so they reach the
//! sync the way a flaky uplink or a broken load balancer would.
//!
//! One request per connection: the proxy asks the server for `Connection: close`, so the
//! client never reuses a connection the proxy is about to break, and a fault plan counts
//! requests, not connections that may carry several.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to one object download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The response head and this many body bytes, then the connection closes.
    CutBody(usize),
    /// Nothing at all for this long, then the connection closes.
    StallHead(Duration),
    /// The head and this many body bytes, then nothing for `stall`, then close.
    StallBody { after: usize, stall: Duration },
    /// A bare `500 Internal Server Error` (plain text), as a broken front end sends.
    Http500,
    /// A bare `503 Service Unavailable` (HTML), as an overloaded proxy or gateway sends.
    Http503,
    /// S3's own throttling answer: 503 with a `SlowDown` XML error.
    SlowDown,
    /// The whole body, same length, one bit of one byte (anywhere in the first chunk) flipped.
    Corrupt,
}

impl Fault {
    /// The answer the proxy gives itself, for the faults that never reach the server.
    fn canned(self) -> Option<String> {
        let (status, content_type, body) = match self {
            Fault::Http500 => (
                "500 Internal Server Error",
                "text/plain",
                "Internal Server Error",
            ),
            Fault::Http503 => (
                "503 Service Unavailable",
                "text/html",
                "<html><body>503 Service Unavailable</body></html>\r\n",
            ),
            Fault::SlowDown => (
                "503 Slow Down",
                "application/xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                 <Message>Please reduce your request rate.</Message>\
                 <RequestId>FAULTPROXY00001</RequestId></Error>",
            ),
            _ => return None,
        };
        Some(format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ))
    }
}

/// Which object downloads suffer the fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    PassThrough,
    /// The next `n` object downloads, then the network heals.
    Next(Fault, u32),
    /// Every object download until the plan changes.
    Always(Fault),
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    plan: Mutex<Plan>,
    injected: AtomicU64,
}

impl Shared {
    /// The fault for the next object download, consuming one of a `Next` plan.
    fn take(&self) -> Option<Fault> {
        let mut plan = self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fault = match *plan {
            Plan::PassThrough => None,
            Plan::Always(fault) => Some(fault),
            Plan::Next(fault, n) => {
                *plan = if n > 1 {
                    Plan::Next(fault, n - 1)
                } else {
                    Plan::PassThrough
                };
                Some(fault)
            }
        };
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::Relaxed);
        }
        fault
    }
}

/// A running proxy on 127.0.0.1; dropped, it stops accepting.
pub struct FaultProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new(Plan::PassThrough),
            injected: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                tokio::spawn(serve(client, accepting.clone()));
            }
        });
        Self { addr, shared, task }
    }

    /// The URL to give the sync as `s3.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, plan: Plan) {
        *self
            .shared
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = plan;
    }

    /// Object downloads that got a fault so far.
    pub fn injected(&self) -> u64 {
        self.shared.injected.load(Ordering::Relaxed)
    }
}

/// Reads until the end of an HTTP head; returns the bytes read and where the head ends.
async fn read_head(stream: &mut TcpStream) -> Option<(Vec<u8>, usize)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some((buf, at + 4));
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A GET of one object (path style: `/bucket/key`), not a listing (`/bucket?list-type=2`).
fn is_object_get(request_line: &str) -> bool {
    let mut parts = request_line.split(' ');
    let (Some("GET"), Some(target)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let key = path.trim_start_matches('/').split_once('/').map(|(_, k)| k);
    key.is_some_and(|k| !k.is_empty()) && !query.contains("list-type")
}

/// The request head with `Connection: close` in place of whatever the client asked for.
fn closing(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len() + 20);
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let Some((request, head_end)) = read_head(&mut client).await else {
        return;
    };
    let request_line = String::from_utf8_lossy(&request[..head_end])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let fault = if is_object_get(&request_line) {
        shared.take()
    } else {
        None
    };
    if let Some(answer) = fault.and_then(Fault::canned) {
        let _ = client.write_all(answer.as_bytes()).await;
        let _ = client.shutdown().await;
        return;
    }
    if let Some(Fault::StallHead(stall)) = fault {
        tokio::time::sleep(stall).await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let mut upstream_request = closing(&request[..head_end]);
    upstream_request.extend_from_slice(&request[head_end..]);
    if server.write_all(&upstream_request).await.is_err() {
        return;
    }
    let Some((response, body_at)) = read_head(&mut server).await else {
        return;
    };
    // `response` holds the head and whatever part of the body came with it.
    let (head, first) = response.split_at(body_at);
    if client.write_all(head).await.is_err() {
        return;
    }
    let mut pending = first.to_vec();
    let mut body_seen = 0usize;
    let mut flipped = false;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if !pending.is_empty() {
            if fault == Some(Fault::Corrupt) && !flipped {
                // Damage in transit lands anywhere. The same damage twice would look like a
                // store with its own multipart-ETag recipe, which the sync accepts when the
                // same bytes come twice.
                let noise = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos() as usize);
                let at = noise % pending.len();
                pending[at] ^= 1 << (noise / 7 % 8);
                flipped = true;
            }
            let keep = match fault {
                Some(Fault::CutBody(after) | Fault::StallBody { after, .. }) => {
                    after.saturating_sub(body_seen).min(pending.len())
                }
                _ => pending.len(),
            };
            if client.write_all(&pending[..keep]).await.is_err() {
                return;
            }
            body_seen += keep;
            if keep < pending.len() {
                if let Some(Fault::StallBody { stall, .. }) = fault {
                    tokio::time::sleep(stall).await;
                }
                // Dropping both sockets: the client sees the connection end mid-body.
                return;
            }
        }
        pending = match server.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => chunk[..n].to_vec(),
        };
    }
    let _ = client.shutdown().await;
}
