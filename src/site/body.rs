//! The response body type: empty, bytes in memory, or a file streamed in chunks.
//!
//! Bytes in memory are short texts (errors, redirects). A small file held whole by
//! [`OpenFiles`] is sent as a file is, chunk by chunk under the connection's byte budget and
//! progress clock: its bytes are shared while cached, but a response holds its slice after an
//! eviction, so unbudgeted a client that reads nothing could pin 64 streams × 64 KiB per
//! connection by making the cache churn.
//!
//! A file is never read whole into memory: hyper pulls one chunk at a time and stops pulling
//! while its write buffer is full, so a slow reader of a large image holds one chunk, not the
//! image (the peer measured at 93 MB RSS with 256 readers buffered whole responses).
//!
//! A file body holds no descriptor between chunks: each chunk borrows one from the site's
//! [`OpenFiles`] for its `pread`, so a stream waiting for window holds nothing but its place.
//! Served over a connection, the body is [`Body::paced`]: before reading a chunk it takes that
//! many bytes of the connection's [`ByteBudget`], and the chunk carries them until the
//! protocol layer drops it (written on to TLS), when they return and the connection is
//! credited with progress. It also holds the index it was answered from, whose lease keeps
//! the generation from being collected under it.
//!
//! Chunks are read with `pread` on the runtime thread. The site lives in the page cache on
//! an appliance this size (a few MB), where a read costs microseconds; handing each chunk to
//! the blocking pool would cost more than the read.

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::PollSemaphore;

use super::index::SiteIndex;
use super::open_files::{FileId, OpenFiles};
use crate::pacing::{ByteBudget, Progress, StreamClock};

pub use crate::pacing::CHUNK_SIZE;

#[derive(Debug)]
pub enum Body {
    Empty,
    Bytes(Option<Bytes>),
    File(FileChunks),
}

/// Where a file body's bytes come from, named rather than held open.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub files: Arc<OpenFiles>,
    pub path: PathBuf,
    /// The file the response's headers describe.
    pub id: FileId,
    /// The index the response came from: its lease keeps the generation on disk.
    pub index: Arc<SiteIndex>,
}

/// Where a chunked body's bytes come from.
#[derive(Debug)]
enum Source {
    File(FileSource),
    /// A whole small file (`OpenFiles`), sliced rather than read.
    Memory(Bytes),
}

#[derive(Debug)]
pub struct FileChunks {
    source: Source,
    offset: u64,
    remaining: u64,
    pacing: Option<Pacing>,
}

/// A connection's hold on a file body.
struct Pacing {
    budget: PollSemaphore,
    clock: StreamClock,
}

impl std::fmt::Debug for Pacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacing").finish_non_exhaustive()
    }
}

/// A chunk's bytes and the budget they hold; dropping it is progress.
struct Chunk {
    bytes: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
    progress: Option<Arc<Progress>>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(progress) = &self.progress {
            progress.touch();
        }
    }
}

impl Body {
    pub fn empty() -> Self {
        Body::Empty
    }

    pub fn bytes(bytes: impl Into<Bytes>) -> Self {
        Body::Bytes(Some(bytes.into()))
    }

    /// Streams `len` bytes of `source` starting at `offset`.
    pub fn file(source: FileSource, offset: u64, len: u64) -> Self {
        Self::chunked(Source::File(source), offset, len)
    }

    /// Streams `len` bytes of a file held in memory starting at `offset`, as [`Body::file`]
    /// does (chunks, byte budget, progress), without reading it again.
    pub fn held(bytes: Bytes, offset: u64, len: u64) -> Self {
        Self::chunked(Source::Memory(bytes), offset, len)
    }

    fn chunked(source: Source, offset: u64, len: u64) -> Self {
        Body::File(FileChunks {
            source,
            offset,
            remaining: len,
            pacing: None,
        })
    }

    /// Binds a file body to its connection: its chunks draw on `budget`, and its progress is
    /// kept in `progress`. Other bodies are a few bytes and pass as they are.
    pub(crate) fn paced(mut self, budget: &ByteBudget, progress: &Arc<Progress>) -> Self {
        if let Body::File(chunks) = &mut self {
            if chunks.remaining > 0 {
                chunks.pacing = Some(Pacing {
                    budget: PollSemaphore::new(budget.clone()),
                    clock: progress.open_stream(),
                });
            }
        }
        self
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Empty => Poll::Ready(None),
            Body::Bytes(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::File(chunks) => chunks.poll_chunk(cx).map(|c| c.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Empty => true,
            Body::Bytes(bytes) => bytes.is_none(),
            Body::File(chunks) => chunks.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Empty => SizeHint::with_exact(0),
            Body::Bytes(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Body::File(chunks) => SizeHint::with_exact(chunks.remaining),
        }
    }
}

impl FileChunks {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Bytes>>> {
        if self.remaining == 0 {
            self.pacing = None;
            return Poll::Ready(None);
        }
        let want = self.remaining.min(CHUNK_SIZE as u64) as usize;
        let permit = match &mut self.pacing {
            None => None,
            Some(pacing) => {
                // `want` ≤ CHUNK_SIZE, and the configuration keeps every budget at least that.
                let n = u32::try_from(want).unwrap_or(u32::MAX);
                match pacing.budget.poll_acquire_many(cx, n) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(permit) => permit,
                }
            }
        };
        let bytes = match self.read(want) {
            Ok(bytes) => bytes,
            Err(e) => {
                self.remaining = 0;
                self.pacing = None;
                return Poll::Ready(Some(Err(e)));
            }
        };
        self.offset += want as u64;
        self.remaining -= want as u64;
        let progress = self.pacing.as_ref().map(|pacing| {
            pacing.clock.touch();
            pacing.clock.connection().clone()
        });
        if self.remaining == 0 {
            // The last chunk is produced: the stream no longer waits for anything of ours.
            self.pacing = None;
        }
        Poll::Ready(Some(Ok(Bytes::from_owner(Chunk {
            bytes,
            _permit: permit,
            progress,
        }))))
    }

    fn read(&self, want: usize) -> std::io::Result<Bytes> {
        match &self.source {
            Source::Memory(bytes) => {
                let start = usize::try_from(self.offset).unwrap_or(usize::MAX);
                bytes
                    .get(start..start.saturating_add(want))
                    .map(|_| bytes.slice(start..start + want))
                    .ok_or_else(super::open_files::shrank)
            }
            Source::File(source) => {
                let file = source.files.reopen(&source.path, source.id)?;
                super::open_files::read_at(&file, self.offset, want).map(Bytes::from)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A small file answered from memory takes the connection's byte budget as a streamed one
    /// does: a response that is not written on holds its permits, and the next waits.
    #[tokio::test]
    async fn held_bytes_take_the_byte_budget() {
        let budget = crate::pacing::byte_budget(CHUNK_SIZE);
        let progress = Progress::new();
        let bytes = Bytes::from(vec![7u8; CHUNK_SIZE * 2]);
        let mut first = Body::held(bytes.clone(), 0, bytes.len() as u64).paced(&budget, &progress);
        let chunk = first.frame().await.expect("a frame").expect("no error");
        assert_eq!(chunk.data_ref().map(bytes::Bytes::len), Some(CHUNK_SIZE));
        assert_eq!(
            budget.available_permits(),
            0,
            "the unsent chunk holds the budget"
        );
        let mut second = Body::held(bytes.clone(), 0, 10).paced(&budget, &progress);
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), second.frame()).await;
        assert!(waiting.is_err(), "the next response waits for the budget");
        drop(chunk);
        let rest = second.frame().await.expect("a frame").expect("no error");
        assert_eq!(rest.data_ref().map(|d| &d[..]), Some(&[7u8; 10][..]));
    }
}
