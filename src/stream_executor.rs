//! HTTP/2 streams run inside their connection's own task, not one tokio task each.
//!
//! hyper hands every HTTP/2 stream to an executor. With tokio's, each request became a task
//! of its own: an allocation and a trip through the scheduler per request, the stream often
//! run on the other worker thread, where it took the connection's stream lock and woke the
//! connection's task back across threads; and each response then went out in a write (and TLS
//! record) of its own. Profiled on the 15 KB page (64 connections × 10 streams, h2load),
//! scheduling, wake-ups and one `writev` per response were the largest costs after AES-GCM
//! (docs/benchmarks.md, "HTTP/2").
//!
//! [`StreamExecutor`] queues the streams instead, and [`WithStreams`] polls them from the
//! connection's task, right after the connection itself: the streams that became ready
//! together answer together, and the connection writes their frames in one flush. A connection
//! and its streams share one thread, as in nginx's event loop. The per-connection limits are
//! unchanged (`h2_max_concurrent_streams` bounds the streams a connection holds; the byte
//! budget their buffered bytes).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Streams handed over by hyper, not yet polled.
#[derive(Default)]
struct Queue {
    new: Mutex<Vec<StreamFuture>>,
    /// The connection task, woken when a stream arrives from outside a poll of it.
    waker: AtomicWaker,
}

/// hyper's executor for one HTTP/2 connection's streams.
#[derive(Clone, Default)]
pub(crate) struct StreamExecutor {
    queue: Arc<Queue>,
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        self.queue
            .new
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(stream));
        self.queue.waker.wake();
    }
}

/// How many times one poll goes round connection → streams → connection before yielding:
/// enough for a batch of requests to be read, answered and written in one go, few enough that
/// one busy connection cannot hold a worker thread.
const ROUNDS_PER_POLL: usize = 4;

/// A connection future and the streams its executor was given.
pub(crate) struct WithStreams<C> {
    conn: Pin<Box<C>>,
    queue: Arc<Queue>,
    running: FuturesUnordered<StreamFuture>,
}

impl<C> WithStreams<C> {
    /// `conn` must have been built with `executor`.
    pub fn new(conn: C, executor: &StreamExecutor) -> Self {
        Self {
            conn: Box::pin(conn),
            queue: executor.queue.clone(),
            running: FuturesUnordered::new(),
        }
    }

    /// The connection itself (for its graceful shutdown).
    pub fn conn(self: Pin<&mut Self>) -> Pin<&mut C> {
        // `WithStreams` is Unpin: its connection is boxed and its streams are boxed.
        self.get_mut().conn.as_mut()
    }

    /// Polls the streams that are ready (and those just handed over); whether any were handed
    /// over or finished, so the connection has something to write.
    fn poll_streams(&mut self, cx: &mut Context<'_>) -> bool {
        let new = std::mem::take(
            &mut *self
                .queue
                .new
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut finished = !new.is_empty();
        for stream in new {
            self.running.push(stream);
        }
        while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {
            finished = true;
        }
        finished
    }
}

impl<C, E> Future for WithStreams<C>
where
    C: Future<Output = Result<(), E>>,
{
    type Output = Result<(), E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.queue.waker.register(cx.waker());
        for _ in 0..ROUNDS_PER_POLL {
            if let Poll::Ready(result) = this.conn.as_mut().poll(cx) {
                // The connection is closed: its streams can send nothing more.
                return Poll::Ready(result);
            }
            if !this.poll_streams(cx) {
                // Nothing the connection has to write or read on our account: wait for a
                // waker (socket, stream window, byte budget, a new stream).
                return Poll::Pending;
            }
        }
        // Still busy after a few rounds: let other connections run, and come back.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stream handed to the executor runs when the connection is polled, on the connection's
    /// task, and the connection's result is what the wrapper returns.
    #[tokio::test]
    async fn streams_run_on_the_connection_task() {
        let executor = StreamExecutor::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let conn = {
            let (executor, ran) = (executor.clone(), ran.clone());
            async move {
                for _ in 0..3 {
                    let ran = ran.clone();
                    executor.execute(async move {
                        tokio::task::yield_now().await;
                        ran.fetch_add(1, Ordering::SeqCst);
                    });
                }
                let _ = rx.await;
                Ok::<(), ()>(())
            }
        };
        let wrapped = tokio::spawn(WithStreams::new(conn, &executor));
        while ran.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        tx.send(()).unwrap();
        assert_eq!(wrapped.await.unwrap(), Ok(()));
    }
}
