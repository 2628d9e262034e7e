//! What a connection's responses may hold, and how their progress is measured.
//!
//! Two attacks shaped this module (issue 13). A client that raised its HTTP/2 windows to
//! 2^31−1, opened 64 streams on a large file and never read made each stream queue its own
//! send buffer: 799 MB at 150 connections. And a client that advertised a zero window and sent
//! a PING every few seconds kept its connections "active" for ever, because any byte read or
//! written reset the idle timer.
//!
//! - [`ByteBudget`]: the response-body bytes one connection may have produced and not yet
//!   handed to TLS, shared by all its streams. A body takes permits for a chunk before reading
//!   it; the chunk gives them back when the protocol layer is done with it (the permits ride
//!   inside the `Bytes`, see `site::body`). So memory per connection is bounded whatever the
//!   windows and the stream count, and the total is connections × budget.
//! - [`Progress`]: progress is a request arriving or a response chunk moving on, never control
//!   traffic (PING, SETTINGS, WINDOW_UPDATE). It keeps the connection's last progress and,
//!   for each response body alive on it, that body's own, so a connection with one trickling
//!   stream cannot keep 63 stalled ones (and the site generation they lease) alive for ever.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

/// The unit a file body moves in. Matches the largest TLS record, so each chunk becomes one
/// record; a connection's byte budget must hold at least one.
pub const CHUNK_SIZE: usize = 16 * 1024;

/// Response-body bytes in flight on one connection.
pub(crate) type ByteBudget = Arc<Semaphore>;

/// A new budget of `bytes` for one connection.
pub(crate) fn byte_budget(bytes: usize) -> ByteBudget {
    Arc::new(Semaphore::new(bytes))
}

/// Why a connection is closed for lack of progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// No request and no response byte for the idle timeout.
    Idle,
    /// One response moved no byte for the send timeout (its stream waits for window).
    Response,
}

/// The progress clock of one connection and of each response body alive on it.
#[derive(Debug)]
pub(crate) struct Progress {
    opened: Instant,
    /// Milliseconds since `opened` of the connection's last progress.
    last_ms: AtomicU64,
    /// For each live response body, the milliseconds of its last chunk (`None`: a free slot).
    streams: Mutex<Streams>,
}

#[derive(Debug, Default)]
struct Streams {
    last_ms: Vec<Option<u64>>,
    free: Vec<usize>,
}

/// A response body's place in its connection's clock; freed on drop.
#[derive(Debug)]
pub(crate) struct StreamClock {
    progress: Arc<Progress>,
    slot: usize,
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            streams: Mutex::new(Streams::default()),
        })
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, Streams> {
        // A panic elsewhere left a table of times behind: still good to read.
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The connection made progress: a request arrived, or a response chunk moved on.
    pub(crate) fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Registers a response body; its clock starts now.
    pub(crate) fn open_stream(self: &Arc<Self>) -> StreamClock {
        let now = self.now_ms();
        let mut streams = self.streams();
        let slot = if let Some(slot) = streams.free.pop() {
            streams.last_ms[slot] = Some(now);
            slot
        } else {
            streams.last_ms.push(Some(now));
            streams.last_ms.len() - 1
        };
        StreamClock {
            progress: self.clone(),
            slot,
        }
    }

    /// The earliest last-progress among live response bodies.
    fn oldest_stream_ms(&self) -> Option<u64> {
        self.streams().last_ms.iter().flatten().min().copied()
    }

    /// Completes when the connection has made no progress for `idle`, or one of its response
    /// bodies none for `send`.
    pub async fn stalled(&self, idle: Duration, send: Duration) -> Stall {
        loop {
            let idle_at =
                self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle;
            let send_at = self
                .oldest_stream_ms()
                .map(|ms| self.opened + Duration::from_millis(ms) + send);
            let now = Instant::now();
            if now >= idle_at {
                return Stall::Idle;
            }
            if send_at.is_some_and(|at| now >= at) {
                return Stall::Response;
            }
            let next = send_at.map_or(idle_at, |at| at.min(idle_at));
            tokio::time::sleep_until(next).await;
        }
    }
}

impl StreamClock {
    /// The body produced a chunk: its stream had window, so it is moving.
    pub(crate) fn touch(&self) {
        let now = self.progress.now_ms();
        if let Some(last) = self.progress.streams().last_ms.get_mut(self.slot) {
            *last = Some(now);
        }
    }

    /// The connection this body belongs to.
    pub fn connection(&self) -> &Arc<Progress> {
        &self.progress
    }
}

impl Drop for StreamClock {
    fn drop(&mut self) {
        let mut streams = self.progress.streams();
        if let Some(last) = streams.last_ms.get_mut(self.slot) {
            *last = None;
            streams.free.push(self.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_progress() {
        let progress = Progress::new();
        tokio::time::advance(Duration::from_secs(5)).await;
        progress.touch();
        let started = Instant::now();
        let stall = progress
            .stalled(Duration::from_secs(10), Duration::from_secs(60))
            .await;
        assert_eq!(stall, Stall::Idle);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn one_stalled_response_is_found_while_another_moves() {
        let progress = Progress::new();
        let stalled = progress.open_stream();
        let moving = progress.open_stream();
        let watcher = {
            let progress = progress.clone();
            tokio::spawn(async move {
                progress
                    .stalled(Duration::from_secs(60), Duration::from_secs(20))
                    .await
            })
        };
        for _ in 0..30 {
            tokio::time::advance(Duration::from_secs(1)).await;
            moving.touch();
            progress.touch();
            if watcher.is_finished() {
                break;
            }
        }
        let stall = watcher.await.expect("watcher");
        assert_eq!(stall, Stall::Response);
        drop(stalled);
        // With the stalled body gone, the moving one keeps the connection alive.
        let quick = tokio::time::timeout(
            Duration::from_secs(5),
            progress.stalled(Duration::from_secs(60), Duration::from_secs(20)),
        )
        .await;
        assert!(quick.is_err(), "no stall while the remaining body moves");
    }

    #[test]
    fn slots_are_reused() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let _guard = rt.enter();
        let progress = Progress::new();
        for _ in 0..100 {
            let a = progress.open_stream();
            let b = progress.open_stream();
            drop((a, b));
        }
        let streams = progress.streams.lock().expect("lock");
        assert!(streams.last_ms.len() <= 2, "{}", streams.last_ms.len());
        assert!(streams.last_ms.iter().all(Option::is_none));
    }
}
