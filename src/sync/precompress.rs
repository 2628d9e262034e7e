//! Brotli and gzip siblings written at sync time, so the site server sends fewer bytes over
//! a thin uplink without compressing per request.
//!
//! Streaming: the original is read in chunks and each encoder's output goes to its own new
//! file as it comes ([`super::newfile`]), so memory is the encoders' state whatever the
//! file's size (a 3.6 MB search index once peaked at 39 MB when read and compressed whole).
//! A sibling is given its name only when it is smaller than the original; a name that
//! already exists in the generation is left alone and that sibling not made.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::newfile::{NewFile, TmpDir};

/// Files smaller than this gain too little to be worth two more files.
pub const MIN_SIZE: u64 = 512;

/// Files larger than this are left uncompressed (the report says so): brotli at quality 4
/// and gzip at level 4 together ran at about 25 MB/s on the 2-core x86 benchmark host, and a
/// Pi's Cortex-A53/A72 is several times slower, so one such file already costs a sync
/// seconds to minutes of CPU that readers may need.
pub(crate) const MAX_SIZE: u64 = 16 * 1024 * 1024;

/// Chunks read from the original and handed to the encoders.
const CHUNK: usize = 64 * 1024;

/// Content types worth compressing (by the object's type, or its extension's): text.
pub(crate) fn is_compressible(content_type: &str) -> bool {
    crate::content_type::is_textual(content_type)
}

/// Why an object that could have had siblings got none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotCompressed {
    /// Larger than [`MAX_SIZE`].
    TooLarge,
    /// Its bytes are gzip, brotli or zstd already.
    AlreadyCompressed,
}

impl std::fmt::Display for NotCompressed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(
                f,
                "larger than {} MiB: served uncompressed",
                MAX_SIZE / 1024 / 1024
            ),
            Self::AlreadyCompressed => {
                write!(f, "its bytes are compressed already: not compressed again")
            }
        }
    }
}

/// Which siblings were written, or why none was tried.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub brotli: bool,
    pub gzip: bool,
    pub not_compressed: Option<NotCompressed>,
}

/// One file to compress: its siblings' names, `None` where the sibling may not be made (the
/// bucket has an object or a directory of that name).
#[derive(Debug)]
pub(crate) struct Job {
    pub original: PathBuf,
    pub brotli: Option<PathBuf>,
    pub gzip: Option<PathBuf>,
    pub tmp: Arc<TmpDir>,
}

impl Job {
    /// Both siblings beside `original`, where the plan allows each.
    pub fn beside(original: PathBuf, brotli: bool, gzip: bool, tmp: Arc<TmpDir>) -> Self {
        Self {
            brotli: brotli.then(|| sibling(&original, "br")),
            gzip: gzip.then(|| sibling(&original, "gz")),
            original,
            tmp,
        }
    }
}

/// Compression for one sync, on one long-lived thread that recycles its buffers.
///
/// The brotli and deflate encoders allocate large tables per file; the system allocator
/// (glibc here, musl on the Pi) hands such blocks back to the kernel on free, so every file
/// paid for fresh zero-filled pages: page faults were most of the full sync's CPU and memory
/// (docs/benchmarks.md). One thread and a buffer pool keep one set of tables, reused.
pub(crate) struct Compressor {
    jobs: std::sync::mpsc::Sender<Queued>,
}

struct Queued {
    job: Job,
    reply: tokio::sync::oneshot::Sender<std::io::Result<Written>>,
}

impl Compressor {
    pub fn start() -> std::io::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<Queued>();
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
                for queued in queue {
                    let _ = queued.reply.send(worker.write_siblings(&queued.job));
                }
            })?;
        Ok(Self { jobs })
    }

    /// Writes the job's siblings when each is smaller than the original. They are made
    /// durable with the rest of the generation (one `syncfs` at commit), not one by one.
    #[cfg(test)]
    async fn compress(&self, job: Job) -> std::io::Result<Written> {
        self.submit(job)?.wait().await
    }

    /// Queues a file and returns at once; the answer is awaited later (a queued job costs a
    /// few paths and a channel, so thousands can wait while downloads go on).
    pub(crate) fn submit(&self, job: Job) -> std::io::Result<Pending> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Queued { job, reply })
            .map_err(|_| std::io::Error::other("the compression thread has stopped"))?;
        Ok(Pending(answer))
    }
}

/// A queued compression.
pub struct Pending(tokio::sync::oneshot::Receiver<std::io::Result<Written>>);

impl Pending {
    /// The answer if it is there already; `None` while the file is still queued.
    pub(crate) fn try_take(&mut self) -> Option<std::io::Result<Written>> {
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

/// Whether `head` (the first bytes of a file) is compressed data already, by the magic
/// numbers of gzip and zstd: a `.gz` page uploaded as `text/html` would otherwise get a `.gz`
/// of itself. Brotli has no magic number; a brotli object says so by its Content-Encoding
/// (then nothing is compressed), and brotli bytes without it do not shrink again, so they
/// get no sibling by the size rule. (Probing by decoding cost an 8 MB decoder ring buffer
/// and ~100 KB of the Pi's binary.)
pub(crate) fn looks_compressed(head: &[u8]) -> bool {
    const GZIP: &[u8] = &[0x1f, 0x8b];
    const ZSTD: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
    head.starts_with(GZIP) || head.starts_with(ZSTD)
}

#[derive(Default)]
struct Worker {
    pool: BufferPool,
    deflate: Option<flate2::Compress>,
}

impl Worker {
    fn write_siblings(&mut self, job: &Job) -> std::io::Result<Written> {
        let mut written = Written::default();
        // Writing `name.br` would fail with ENAMETOOLONG and, with it, the whole sync, every
        // time: one long-named page in the bucket must cost only its siblings.
        if !has_room_for_siblings(&job.original) || (job.brotli.is_none() && job.gzip.is_none()) {
            return Ok(written);
        }
        if job.tmp.is_abandoned() {
            return Err(abandoned());
        }
        let mut original = std::fs::File::open(&job.original)?;
        let size = original.metadata()?.len();
        if size > MAX_SIZE {
            written.not_compressed = Some(NotCompressed::TooLarge);
            return Ok(written);
        }
        let mut head = vec![0u8; 8 * 1024];
        let n = read_full(&mut original, &mut head)?;
        if looks_compressed(&head[..n]) {
            written.not_compressed = Some(NotCompressed::AlreadyCompressed);
            return Ok(written);
        }
        if let Some(dest) = &job.brotli {
            let mut out = job.tmp.create()?;
            let mut input = Stoppable {
                inner: std::io::BufReader::with_capacity(CHUNK, reopen(&job.original)?),
                tmp: &job.tmp,
            };
            self.brotli(&mut input, &mut out, size)?;
            written.brotli = publish_if_smaller(&job.tmp, out, dest, size)?;
        }
        if let Some(dest) = &job.gzip {
            let mut out = job.tmp.create()?;
            let mut input = Stoppable {
                inner: reopen(&job.original)?,
                tmp: &job.tmp,
            };
            self.gzip(&mut input, &mut out)?;
            written.gzip = publish_if_smaller(&job.tmp, out, dest, size)?;
        }
        Ok(written)
    }

    fn brotli(
        &mut self,
        input: &mut impl Read,
        out: &mut NewFile,
        size: u64,
    ) -> std::io::Result<()> {
        // Quality 4 and a window of at most 256 KiB, measured on 27 MB of real HTML and
        // JavaScript and on the 52 MB of text of the docs benchmark site (docs/benchmarks.md,
        // "Compression settings"): quality 5 at this window compressed *worse* on the real
        // pages (17.8 % against 16.6 %) and cost 40 % more CPU; a 1 MiB window gains a few per
        // cent but the encoder's buffers grow with it (ring buffer, a metablock's commands and
        // output: 16 MB for a 3.6 MB search index at quality 5, massif). The window only needs
        // to cover the file; below 2^17 this crate falls back to a larger hasher.
        let bits = u64::BITS - size.leading_zeros();
        let window_bits = bits.clamp(17, 18) as i32;
        let params = brotli::enc::BrotliEncoderParams {
            quality: 4,
            lgwin: window_bits,
            ..Default::default()
        };
        let mut output = std::io::BufWriter::with_capacity(CHUNK, out.file()?);
        let mut input_buffer = [0u8; 4096];
        let mut output_buffer = [0u8; 4096];
        brotli::enc::BrotliCompressCustomAlloc(
            input,
            &mut output,
            &mut input_buffer,
            &mut output_buffer,
            &params,
            PoolRef(&mut self.pool),
        )?;
        output.flush()
    }

    /// gzip (RFC 1952) around a reused raw-deflate stream, fed in chunks.
    fn gzip(&mut self, input: &mut impl Read, out: &mut NewFile) -> std::io::Result<()> {
        use flate2::{Compress, Compression, FlushCompress, Status};
        let deflate = self
            .deflate
            // Level 4: half level 6's CPU for 4 % more bytes (same measurements as brotli's);
            // gzip is the fallback for the few clients without brotli.
            .get_or_insert_with(|| Compress::new(Compression::new(4), false));
        deflate.reset();
        let mut output = std::io::BufWriter::with_capacity(CHUNK, out.file()?);
        // Header: magic, deflate, no flags, no mtime (the same bytes give the same file), OS unknown.
        output.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255])?;
        let mut crc = flate2::Crc::new();
        let mut length: u32 = 0;
        let mut chunk = vec![0u8; CHUNK];
        let mut compressed = vec![0u8; CHUNK];
        loop {
            let n = read_full(input, &mut chunk)?;
            let flush = if n == 0 {
                FlushCompress::Finish
            } else {
                FlushCompress::None
            };
            crc.update(&chunk[..n]);
            length = length.wrapping_add(n as u32);
            let mut fed = 0;
            loop {
                let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
                let status = deflate
                    .compress(&chunk[fed..n], &mut compressed, flush)
                    .map_err(std::io::Error::other)?;
                fed += (deflate.total_in() - in_before) as usize;
                let made = (deflate.total_out() - out_before) as usize;
                output.write_all(&compressed[..made])?;
                let done = match flush {
                    FlushCompress::Finish => status == Status::StreamEnd,
                    // All of the chunk taken and the output buffer not filled: next chunk.
                    _ => fed == n && made < compressed.len(),
                };
                if done {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        output.write_all(&crc.sum().to_le_bytes())?;
        output.write_all(&length.to_le_bytes())?;
        output.flush()
    }
}

/// The input of one encoder, which stops with an error once its generation is abandoned
/// (switched in without waiting for it): a 16 MB file does not hold the thread for nothing.
struct Stoppable<'a, R> {
    inner: R,
    tmp: &'a TmpDir,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.tmp.is_abandoned() {
            return Err(abandoned());
        }
        self.inner.read(buf)
    }
}

fn abandoned() -> std::io::Error {
    std::io::Error::other("the generation was switched in without these siblings")
}

fn reopen(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// Reads until `buf` is full or the input ends.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Names the sibling when it is smaller than the original. A name already taken in the
/// generation is not an error: that sibling is simply not made.
fn publish_if_smaller(
    tmp: &TmpDir,
    mut out: NewFile,
    dest: &Path,
    original: u64,
) -> std::io::Result<bool> {
    let size = out.file()?.metadata()?.len();
    if size >= original {
        return Ok(false);
    }
    match tmp.publish(out, dest) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            tracing::warn!(path = %dest.display(), "a generated sibling's name is taken in the generation; not made");
            Ok(false)
        }
        Err(e) => Err(e),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A job for `path`'s two siblings, with a temporary directory beside it.
    fn job(path: &Path) -> Job {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = path.parent().expect("parent").join(format!("tmp-{n}"));
        let tmp = TmpDir::create_dir(dir).expect("tmp dir");
        Job::beside(path.to_owned(), true, true, Arc::new(tmp))
    }

    fn write_siblings(path: &Path) -> std::io::Result<Written> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let compressor = Compressor::start().expect("thread");
        rt.block_on(compressor.compress(job(path)))
    }

    fn both() -> Written {
        Written {
            brotli: true,
            gzip: true,
            not_compressed: None,
        }
    }

    #[test]
    fn text_gets_smaller_siblings_that_decompress_to_the_original() {
        let dir = tempfile::tempdir().expect("tmp");
        let page = dir.path().join("index.html");
        let html = "<p>The standby Pi serves this page.</p>\n".repeat(100);
        std::fs::write(&page, &html).expect("write");
        let written = write_siblings(&page).expect("compress");
        assert_eq!(written, both());

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
            rt.block_on(compressor.compress(job(&page)))
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
            both(),
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

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes), &mut plain)
            .expect("valid gzip");
        plain
    }

    #[test]
    fn a_large_file_streams_through_both_encoders_to_the_same_bytes() {
        // Several chunks and more than one brotli window, of text that compresses.
        let dir = tempfile::tempdir().expect("tmp");
        let page = dir.path().join("search_index.json");
        let mut text = String::new();
        let mut rng = fastrand::Rng::with_seed(7);
        let words = [
            "pi",
            "standby",
            "origin",
            "sync",
            "bucket",
            "reader",
            "generation",
        ];
        while text.len() < 3 * 1024 * 1024 {
            text.push_str(words[rng.usize(..words.len())]);
            text.push_str(if rng.u8(..10) == 0 { "\n" } else { " " });
        }
        std::fs::write(&page, &text).expect("write");
        assert_eq!(write_siblings(&page).expect("compress"), both());
        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(
            &mut &std::fs::read(sibling(&page, "br")).expect("br")[..],
            &mut unbrotli,
        )
        .expect("brotli");
        assert!(unbrotli == text.as_bytes(), "brotli round trip");
        let gz = std::fs::read(sibling(&page, "gz")).expect("gz");
        assert!(gunzip(&gz) == text.as_bytes(), "gzip round trip");
        assert!(gz.len() < text.len() / 2);
    }

    #[test]
    fn bytes_that_are_compressed_already_get_no_siblings() {
        let dir = tempfile::tempdir().expect("tmp");
        let html = "<table><tr><td>cell</td></tr></table>\n".repeat(400);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(html.as_bytes()).expect("gzip");
        // Still compressible: gzip of fast-level gzip of repetitive text shrinks again.
        let gz = gz.finish().expect("gzip").repeat(3);
        let mut br = Vec::new();
        brotli::BrotliCompress(
            &mut html.as_bytes(),
            &mut br,
            &brotli::enc::BrotliEncoderParams::default(),
        )
        .expect("brotli");
        let table = dir.path().join("table.html");
        std::fs::write(&table, &gz).expect("write");
        assert_eq!(
            write_siblings(&table).expect("compress"),
            Written {
                not_compressed: Some(NotCompressed::AlreadyCompressed),
                ..Written::default()
            },
        );
        // Brotli bytes have no magic number: they are tried, and do not shrink.
        let app = dir.path().join("app.js");
        std::fs::write(&app, &br).expect("write");
        assert_eq!(write_siblings(&app).expect("compress"), Written::default());
        for path in [table, app] {
            assert!(!sibling(&path, "gz").exists() && !sibling(&path, "br").exists());
        }
    }

    #[test]
    fn a_sibling_name_taken_in_the_generation_is_left_alone() {
        let dir = tempfile::tempdir().expect("tmp");
        let page = dir.path().join("page.html");
        std::fs::write(&page, "<p>a page worth compressing</p>\n".repeat(100)).expect("write");
        std::fs::write(sibling(&page, "br"), "the bucket's own").expect("write");
        let written = write_siblings(&page).expect("compress");
        assert!(!written.brotli && written.gzip);
        assert_eq!(
            std::fs::read_to_string(sibling(&page, "br")).expect("read"),
            "the bucket's own"
        );
    }
}
