//! Brotli and gzip siblings written at sync time, so the site server sends fewer bytes over
//! a thin uplink without compressing per request.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Files smaller than this gain too little to be worth two more files.
pub const MIN_SIZE: u64 = 512;

/// Content types worth compressing (by the object's type, or its extension's): text.
pub fn is_compressible(content_type: &str) -> bool {
    crate::site::index::is_textual(content_type)
}

/// Which siblings were written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub brotli: bool,
    pub gzip: bool,
}

/// Compression for one sync, on one long-lived thread that recycles its buffers.
///
/// The brotli and deflate encoders allocate large tables per file; the system allocator
/// (glibc here, musl on the Pi) hands such blocks back to the kernel on free, so every file
/// paid for fresh zero-filled pages: page faults were most of the full sync's CPU and memory
/// (docs/benchmarks.md). One thread and a buffer pool keep one set of tables, reused.
pub struct Compressor {
    jobs: std::sync::mpsc::Sender<Job>,
}

struct Job {
    path: PathBuf,
    reply: tokio::sync::oneshot::Sender<std::io::Result<Written>>,
}

impl Compressor {
    pub fn start() -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("precompress".into())
            .spawn(move || {
                // Lowest CPU priority for this thread only (Linux applies nice per thread):
                // precompression is a nicety, while serving readers — and, during a sync, the
                // downloads feeding it — are not. On two cores it otherwise slowed the sync by
                // competing with the S3 server for the CPU (docs/benchmarks.md).
                // SAFETY: setpriority only reads its integer arguments.
                let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
                let mut worker = Worker::default();
                // Ends when the Compressor (the only sender) is dropped.
                for job in queue {
                    let _ = job.reply.send(worker.write_siblings(&job.path));
                }
            })?;
        Ok(Self { jobs })
    }

    /// Writes `path.br` and `path.gz` when each is smaller than the original. They are made
    /// durable with the rest of the generation (one `syncfs` at commit), not one by one.
    pub async fn compress(&self, path: PathBuf) -> std::io::Result<Written> {
        self.submit(path)?.wait().await
    }

    /// Queues a file and returns at once; the answer is awaited later (a queued job costs a
    /// path and a channel, so thousands can wait while downloads go on).
    pub fn submit(&self, path: PathBuf) -> std::io::Result<Pending> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Job { path, reply })
            .map_err(|_| std::io::Error::other("the compression thread has stopped"))?;
        Ok(Pending(answer))
    }
}

/// A queued compression.
pub struct Pending(tokio::sync::oneshot::Receiver<std::io::Result<Written>>);

impl Pending {
    /// The answer if it is there already; `None` while the file is still queued.
    pub fn try_take(&mut self) -> Option<std::io::Result<Written>> {
        use tokio::sync::oneshot::error::TryRecvError;
        match self.0.try_recv() {
            Ok(answer) => Some(answer),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Closed) => Some(Err(std::io::Error::other(
                "the compression thread has stopped",
            ))),
        }
    }

    pub async fn wait(self) -> std::io::Result<Written> {
        self.0
            .await
            .map_err(|_| std::io::Error::other("the compression thread has stopped"))?
    }
}

#[derive(Default)]
struct Worker {
    pool: BufferPool,
    deflate: Option<flate2::Compress>,
}

impl Worker {
    fn write_siblings(&mut self, path: &Path) -> std::io::Result<Written> {
        // Writing `name.br` would fail with ENAMETOOLONG and, with it, the whole sync, every
        // time: one long-named page in the bucket must cost only its siblings.
        if !has_room_for_siblings(path) {
            return Ok(Written::default());
        }
        let original = std::fs::read(path)?;
        let mut written = Written::default();

        let brotli_out = self.brotli(&original)?;
        if brotli_out.len() < original.len() {
            write_file(&sibling(path, "br"), &brotli_out)?;
            written.brotli = true;
        }
        let gzip_out = self.gzip(&original)?;
        if gzip_out.len() < original.len() {
            write_file(&sibling(path, "gz"), &gzip_out)?;
            written.gzip = true;
        }
        Ok(written)
    }

    fn brotli(&mut self, original: &[u8]) -> std::io::Result<Vec<u8>> {
        // Quality 5 with a window of at least 2^17 uses a 1 MB hash table (quality 6-9 with a
        // smaller window falls back to a much larger hasher in this crate); it keeps most of
        // the gain of 11 at a fraction of the CPU. The window only needs to cover the file.
        let window_bits = (usize::BITS - original.len().leading_zeros()).clamp(17, 22) as i32;
        let params = brotli::enc::BrotliEncoderParams {
            quality: 5,
            lgwin: window_bits,
            ..Default::default()
        };
        let mut out = Vec::with_capacity(original.len() / 3);
        let mut input_buffer = [0u8; 4096];
        let mut output_buffer = [0u8; 4096];
        brotli::enc::BrotliCompressCustomAlloc(
            &mut &original[..],
            &mut out,
            &mut input_buffer,
            &mut output_buffer,
            &params,
            PoolRef(&mut self.pool),
        )?;
        Ok(out)
    }

    /// gzip (RFC 1952) around a reused raw-deflate stream.
    fn gzip(&mut self, original: &[u8]) -> std::io::Result<Vec<u8>> {
        use flate2::{Compress, Compression, FlushCompress, Status};
        let deflate = self
            .deflate
            .get_or_insert_with(|| Compress::new(Compression::new(6), false));
        deflate.reset();
        // Header: magic, deflate, no flags, no mtime (the same bytes give the same file), OS unknown.
        let mut out = Vec::with_capacity(original.len() / 2 + 64);
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
        loop {
            let consumed = usize::try_from(deflate.total_in()).unwrap_or(usize::MAX);
            out.reserve(original.len() / 4 + 64);
            let status = deflate
                .compress_vec(
                    &original[consumed.min(original.len())..],
                    &mut out,
                    FlushCompress::Finish,
                )
                .map_err(std::io::Error::other)?;
            if status == Status::StreamEnd {
                break;
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(original);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(original.len() as u32).to_le_bytes());
        Ok(out)
    }
}

/// Freed encoder buffers, kept by element type and length for the next file. Only large
/// buffers (the hash tables, whose sizes repeat) are worth keeping: small ones come cheaply
/// from the allocator, and keeping every length seen would grow without bound.
#[derive(Default)]
struct BufferPool {
    free: std::collections::HashMap<(std::any::TypeId, usize), Vec<Box<dyn std::any::Any>>>,
    retained_bytes: usize,
}

const POOL_MIN_BUFFER: usize = 64 * 1024;
/// Enough for the buffers every file needs (brotli's 1 MB hash table, its ring buffer, the
/// deflate window); the size-dependent rest is not worth the memory (heaptrack: an 8 MB
/// pool was the largest holder in a 10,000-object sync, docs/benchmarks.md).
const POOL_MAX_BYTES: usize = 2 * 1024 * 1024;
/// Buffers of one type and length kept: one encoder runs at a time, so one is reused.
const POOL_PER_SIZE: usize = 1;

struct PoolRef<'a>(&'a mut BufferPool);

impl<T: Clone + Default + 'static> brotli::Allocator<T> for PoolRef<'_> {
    type AllocatedMemory = alloc_stdlib::heap_alloc::WrapBox<T>;

    fn alloc_cell(&mut self, len: usize) -> Self::AllocatedMemory {
        let reused = self
            .0
            .free
            .get_mut(&(std::any::TypeId::of::<T>(), len))
            .and_then(Vec::pop)
            .and_then(|b| b.downcast::<Box<[T]>>().ok());
        match reused {
            Some(mut buffer) => {
                self.0.retained_bytes -= len * std::mem::size_of::<T>();
                // The encoder expects zeroed memory, as a fresh allocation would be.
                buffer.fill(T::default());
                alloc_stdlib::heap_alloc::WrapBox::from(Vec::from(*buffer))
            }
            None => alloc_stdlib::heap_alloc::WrapBox::from(vec![T::default(); len]),
        }
    }

    fn free_cell(&mut self, data: Self::AllocatedMemory) {
        let buffer: Box<[T]> = data.into();
        let bytes = buffer.len() * std::mem::size_of::<T>();
        if bytes < POOL_MIN_BUFFER || self.0.retained_bytes + bytes > POOL_MAX_BYTES {
            return;
        }
        let kept = self
            .0
            .free
            .entry((std::any::TypeId::of::<T>(), buffer.len()))
            .or_default();
        if kept.len() >= POOL_PER_SIZE {
            return;
        }
        kept.push(Box::new(buffer));
        self.0.retained_bytes += bytes;
    }
}

impl brotli::enc::BrotliAlloc for PoolRef<'_> {}

/// Whether `path.br` and `path.gz` are names a file system can hold (at most
/// [`MAX_SEGMENT`](super::key::MAX_SEGMENT) bytes, Linux's NAME_MAX). Keys are accepted up to
/// that length themselves, so the last 3 bytes of room decide.
pub fn has_room_for_siblings(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|name| name.len() + ".br".len() <= super::key::MAX_SEGMENT)
}

pub fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::File::create(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_siblings(path: &Path) -> std::io::Result<Written> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let compressor = Compressor::start().expect("thread");
        rt.block_on(compressor.compress(path.to_owned()))
    }

    #[test]
    fn text_gets_smaller_siblings_that_decompress_to_the_original() {
        let dir = tempfile::tempdir().expect("tmp");
        let page = dir.path().join("index.html");
        let html = "<p>The standby Pi serves this page.</p>\n".repeat(100);
        std::fs::write(&page, &html).expect("write");
        let written = write_siblings(&page).expect("compress");
        assert_eq!(
            written,
            Written {
                brotli: true,
                gzip: true
            }
        );

        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(
            &mut &std::fs::read(sibling(&page, "br")).expect("br")[..],
            &mut unbrotli,
        )
        .expect("valid brotli");
        assert_eq!(unbrotli, html.as_bytes());
        let mut ungz = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(
                &std::fs::read(sibling(&page, "gz")).expect("gz")[..],
            ),
            &mut ungz,
        )
        .expect("valid gzip");
        assert_eq!(ungz, html);
    }

    #[test]
    fn recycled_buffers_give_the_same_bytes_as_fresh_ones() {
        let dir = tempfile::tempdir().expect("tmp");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let compressor = Compressor::start().expect("thread");
        let mut outputs = Vec::new();
        for (i, body) in [
            "<p>first page</p>\n".repeat(200),
            "<p>second, longer page</p>\n".repeat(400),
            "<p>first page</p>\n".repeat(200),
        ]
        .iter()
        .enumerate()
        {
            let page = dir.path().join(format!("{i}.html"));
            std::fs::write(&page, body).expect("write");
            rt.block_on(compressor.compress(page.clone()))
                .expect("compress");
            let mut plain = Vec::new();
            brotli::BrotliDecompress(
                &mut &std::fs::read(sibling(&page, "br")).expect("br")[..],
                &mut plain,
            )
            .expect("brotli");
            assert_eq!(plain, body.as_bytes());
            outputs.push((
                std::fs::read(sibling(&page, "br")).expect("br"),
                std::fs::read(sibling(&page, "gz")).expect("gz"),
            ));
        }
        assert_eq!(
            outputs[0], outputs[2],
            "a reused encoder state leaves no trace in the output"
        );
    }

    #[test]
    fn incompressible_bytes_get_no_siblings() {
        let dir = tempfile::tempdir().expect("tmp");
        let blob = dir.path().join("noise.txt");
        let noise: Vec<u8> = (0..4096).map(|_| fastrand::u8(..)).collect();
        std::fs::write(&blob, noise).expect("write");
        assert_eq!(write_siblings(&blob).expect("compress"), Written::default());
    }

    #[test]
    fn a_name_with_no_room_for_a_suffix_gets_no_siblings_instead_of_an_error() {
        // Found by fuzz/s3_key: an accepted key may be a 255-byte name, and `name.br` is not a
        // file name any more.
        let dir = tempfile::tempdir().expect("tmp");
        let html = "<p>The standby Pi serves this page.</p>\n".repeat(100);
        let longest = dir.path().join(format!("{}.html", "a".repeat(250)));
        std::fs::write(&longest, &html).expect("a 255-byte name is a file name");
        assert!(!has_room_for_siblings(&longest));
        assert_eq!(
            write_siblings(&longest).expect("no error"),
            Written::default()
        );

        let roomy = dir.path().join(format!("{}.html", "a".repeat(247)));
        std::fs::write(&roomy, &html).expect("write");
        assert!(has_room_for_siblings(&roomy));
        assert_eq!(
            write_siblings(&roomy).expect("compress"),
            Written {
                brotli: true,
                gzip: true
            },
            "a 252-byte name still has room for `.br` and `.gz`"
        );
    }

    #[test]
    fn compressible_types() {
        assert!(is_compressible("text/html; charset=utf-8"));
        assert!(is_compressible("image/svg+xml"));
        assert!(is_compressible("application/json"));
        assert!(!is_compressible("image/jpeg"));
        assert!(!is_compressible("application/octet-stream"));
    }
}
