//! The descriptors of the files being served, shared by every response and capped.
//!
//! A response used to hold its file open from the head to its last byte. 16 HTTP/2
//! connections × 64 streams on a large file, the client advertising a zero window, held 1,024
//! descriptors within seconds and `accept` and `open` failed for everyone (issue 13). Now a
//! response body holds a path, not a descriptor: each chunk borrows one from this cache for
//! the length of a `pread`. Responses for the same file share one descriptor; at most `cap`
//! are kept, the least recently used closed first. A stream waiting for window holds none.
//!
//! The paths are a synced generation's, which are never rewritten once published (the
//! invariant of `sync::newfile`). A root served as it is (`site.root`) may be edited by hand:
//! there a new response checks the cached descriptor against the path (inode, length, time)
//! before use. A response under way keeps reading its own file through the descriptor; only
//! when that was evicted and the path now names another file does the response end (its
//! headers described the old bytes).
//!
//! Small files are also kept whole in memory beside their descriptor ([`SMALL_FILE_MAX`] each,
//! [`SMALL_FILES_TOTAL`] in all): a blog's pages, its CSS and the precompressed siblings are
//! answered from shared bytes, with no `pread` and no buffer per response. Profiled on the
//! 15 KB page over HTTP/2, the read, its 16 KB allocation and its copy were the largest costs
//! of ours after the protocol's (docs/benchmarks.md, "HTTP/2"). They go with their descriptor:
//! evicted with it, dropped when the tree is seen to change, cleared with the generation.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// The largest file kept whole in memory: four chunks, a long blog page or a stylesheet.
pub(crate) const SMALL_FILE_MAX: u64 = 64 * 1024;
/// The memory all whole files may take together: on a Pi serving a blog, its hot pages.
pub(crate) const SMALL_FILES_TOTAL: u64 = 2 * 1024 * 1024;

/// Which file a descriptor is: a replaced path has a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

#[derive(Debug)]
struct Cached {
    file: Arc<File>,
    meta: Arc<Metadata>,
    /// The whole file, when it is small and there was room (`SMALL_FILES_TOTAL`).
    contents: Option<Bytes>,
    used: u64,
}

#[derive(Debug, Default)]
struct Table {
    files: HashMap<PathBuf, Cached>,
    clock: u64,
    /// Bytes of `contents` held by the entries.
    contents_bytes: u64,
}

impl Table {
    fn remove(&mut self, path: &Path) {
        if let Some(gone) = self.files.remove(path) {
            self.contents_bytes -= gone.contents.map_or(0, |c| c.len() as u64);
        }
    }
}

/// An open file: its descriptor, its metadata, and its bytes when it is small.
#[derive(Debug, Clone)]
pub struct Opened {
    pub file: Arc<File>,
    pub meta: Arc<Metadata>,
    /// The whole file (exactly `meta.len()` bytes), for small files while there is room.
    pub contents: Option<Bytes>,
}

#[derive(Debug)]
pub struct OpenFiles {
    cap: usize,
    /// The tree may change under a path (`site.root` edited by hand): check inodes on use.
    mutable_tree: bool,
    table: Mutex<Table>,
}

impl OpenFiles {
    pub fn new(cap: usize, mutable_tree: bool) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            mutable_tree,
            table: Mutex::new(Table::default()),
        })
    }

    /// The file at `path` and its metadata, opened without following a symlink in the last
    /// component (the index holds resolved paths: a link appearing there later is someone
    /// tampering with the tree). Only regular files.
    pub fn open(&self, path: &Path) -> io::Result<Opened> {
        if let Some(hit) = self.cached(path, None)? {
            if hit.contents.is_some() || !self.room_for(hit.meta.len()) {
                return Ok(hit);
            }
            // Cached before there was room for its bytes: read them now.
            let contents = read_whole(&hit.file, &hit.meta);
            return Ok(self.insert(path, hit.file, hit.meta, contents));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "not a regular file",
            ));
        }
        let contents = if self.room_for(meta.len()) {
            read_whole(&file, &meta)
        } else {
            None
        };
        Ok(self.insert(path, Arc::new(file), Arc::new(meta), contents))
    }

    /// Whether a file of `len` bytes is small and would fit beside the others.
    fn room_for(&self, len: u64) -> bool {
        len <= SMALL_FILE_MAX && {
            let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            table.contents_bytes + len <= SMALL_FILES_TOTAL
        }
    }

    /// The file at `path`, which must still be the file `id` a response started with.
    pub(crate) fn reopen(&self, path: &Path, id: FileId) -> io::Result<Arc<File>> {
        if let Some(hit) = self.cached(path, Some(id))? {
            return Ok(hit.file);
        }
        let opened = self.open(path)?;
        if FileId::of(&opened.meta) != id {
            return Err(replaced());
        }
        Ok(opened.file)
    }

    /// A cached descriptor for `path`, checked against the tree when it may change.
    fn cached(&self, path: &Path, want: Option<FileId>) -> io::Result<Option<Opened>> {
        let hit = {
            let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            table.clock += 1;
            let clock = table.clock;
            match table.files.get_mut(path) {
                Some(cached) => {
                    cached.used = clock;
                    Opened {
                        file: cached.file.clone(),
                        meta: cached.meta.clone(),
                        contents: cached.contents.clone(),
                    }
                }
                None => return Ok(None),
            }
        };
        let id = FileId::of(&hit.meta);
        if let Some(want) = want {
            // A response under way reads its own file through this descriptor, even if the
            // path has since been replaced: no look at the tree, no syscall per chunk.
            return if want == id {
                Ok(Some(hit))
            } else {
                Err(replaced())
            };
        }
        if self.mutable_tree {
            // A new response must see an edit, in place too (same inode, new length and
            // time): its headers come from this metadata.
            let current = std::fs::symlink_metadata(path).ok();
            let same = current.as_ref().is_some_and(|now| {
                FileId::of(now) == id
                    && now.len() == hit.meta.len()
                    && now.mtime() == hit.meta.mtime()
                    && now.mtime_nsec() == hit.meta.mtime_nsec()
            });
            if !same {
                self.forget(path);
                return Ok(None);
            }
        }
        Ok(Some(hit))
    }

    /// Caches the file (replacing what `path` held) and returns it; its contents are kept
    /// only while they still fit.
    fn insert(
        &self,
        path: &Path,
        file: Arc<File>,
        meta: Arc<Metadata>,
        contents: Option<Bytes>,
    ) -> Opened {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.clock += 1;
        let used = table.clock;
        table.remove(path);
        if table.files.len() >= self.cap {
            // An eviction is a miss, already paying for an open: a scan of `cap` entries is
            // small beside it, and keeps the table a plain map.
            let oldest = table
                .files
                .iter()
                .min_by_key(|(_, cached)| cached.used)
                .map(|(path, _)| path.clone());
            if let Some(oldest) = oldest {
                table.remove(&oldest);
            }
        }
        // Another response may have read the same file meanwhile: the total stays the cap.
        let len = contents.as_ref().map_or(0, |c| c.len() as u64);
        let contents = contents.filter(|_| table.contents_bytes + len <= SMALL_FILES_TOTAL);
        table.contents_bytes += contents.as_ref().map_or(0, |c| c.len() as u64);
        table.files.insert(
            path.to_owned(),
            Cached {
                file: file.clone(),
                meta: meta.clone(),
                contents: contents.clone(),
                used,
            },
        );
        Opened {
            file,
            meta,
            contents,
        }
    }

    fn forget(&self, path: &Path) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.remove(path);
    }

    /// Closes every cached descriptor (a new generation is served; the old one's files
    /// are closed as soon as no response is reading them).
    pub fn clear(&self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.files.clear();
        table.contents_bytes = 0;
    }

    /// Bytes of small files held in memory.
    #[cfg(test)]
    fn contents_bytes(&self) -> u64 {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contents_bytes
    }

    /// Descriptors held by the cache (responses reading at this instant may hold a few more).
    pub fn len(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .files
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The whole of a small file, or `None` if it could not be read as the length `meta` gives (it
/// changed under us: the response streams it instead, and the next one sees the change).
fn read_whole(file: &File, meta: &Metadata) -> Option<Bytes> {
    let len = usize::try_from(meta.len()).ok()?;
    read_at(file, 0, len).ok().map(Bytes::from)
}

/// Exactly `want` bytes of `file` from `offset` (`pread`, retried when interrupted or short);
/// an error if the file ends first.
pub(crate) fn read_at(file: &File, offset: u64, want: usize) -> io::Result<Vec<u8>> {
    // Read into uninitialised capacity: zeroing each chunk first cost measurable CPU on large
    // files, where every byte is also encrypted and copied once more.
    let mut buf: Vec<u8> = Vec::with_capacity(want);
    while buf.len() < want {
        let at = offset + buf.len() as u64;
        match rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), at) {
            Ok(0) => return Err(shrank()),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // The allocator may have given more capacity than asked, and pread fills it all.
    buf.truncate(want);
    Ok(buf)
}

/// The file had fewer bytes than its response announced: a truncated body is better
/// signalled as an error (the connection is reset) than padded.
pub(crate) fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent")
}

fn replaced() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file was replaced while being sent",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_shared_and_capped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths: Vec<PathBuf> = (0..5)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, format!("file {i}")).expect("write");
                path
            })
            .collect();
        let files = OpenFiles::new(3, false);
        let a = files.open(&paths[0]).expect("open").file;
        let b = files.open(&paths[0]).expect("open again").file;
        assert!(Arc::ptr_eq(&a, &b), "one descriptor for one file");
        for path in &paths {
            files.open(path).expect("open");
        }
        assert_eq!(files.len(), 3, "the cap holds");
    }

    #[test]
    fn a_replaced_file_ends_the_response_reading_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("page.html");
        std::fs::write(&path, "old").expect("write");
        let files = OpenFiles::new(8, true);
        let meta = files.open(&path).expect("open").meta;
        let id = FileId::of(&meta);
        files.reopen(&path, id).expect("same file");
        let new = dir.path().join("new");
        std::fs::write(&new, "new bytes").expect("write");
        std::fs::rename(&new, &path).expect("rename");
        // The response under way still holds its file through the cached descriptor...
        files.reopen(&path, id).expect("the old file, still cached");
        // ...and ends once that is gone and the path names another file.
        files.clear();
        let err = files.reopen(&path, id).expect_err("replaced");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let meta = files
            .open(&path)
            .expect("a new response sees the new file")
            .meta;
        assert_eq!(meta.len(), 9);
        // Edited in place: the same inode, a new length.
        std::fs::write(&path, "edited in place, longer").expect("write");
        let meta = files.open(&path).expect("open").meta;
        assert_eq!(meta.len(), 23, "a new response sees the edit");
    }

    #[test]
    fn small_files_are_held_whole_within_their_total() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = OpenFiles::new(256, true);
        let small = dir.path().join("page.html");
        std::fs::write(&small, "<p>hello</p>").expect("write");
        let opened = files.open(&small).expect("open");
        assert_eq!(opened.contents.as_deref(), Some(&b"<p>hello</p>"[..]));
        assert_eq!(files.contents_bytes(), 12);

        // Larger than SMALL_FILE_MAX: streamed, never held.
        let large = dir.path().join("photo.jpg");
        std::fs::write(&large, vec![7u8; SMALL_FILE_MAX as usize + 1]).expect("write");
        assert!(files.open(&large).expect("open").contents.is_none());

        // Filling up: the total never passes SMALL_FILES_TOTAL, whatever is asked.
        let n = SMALL_FILES_TOTAL / SMALL_FILE_MAX + 4;
        for i in 0..n {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, vec![1u8; SMALL_FILE_MAX as usize]).expect("write");
            let opened = files.open(&path).expect("open");
            if let Some(bytes) = &opened.contents {
                assert_eq!(bytes.len() as u64, SMALL_FILE_MAX);
            }
            assert!(files.contents_bytes() <= SMALL_FILES_TOTAL);
        }
        assert!(files.contents_bytes() > SMALL_FILES_TOTAL - SMALL_FILE_MAX);

        // Edited in place in a tree that may change: the next open sees the new bytes.
        std::fs::write(&small, "<p>edited, longer</p>").expect("write");
        files.clear();
        assert_eq!(files.contents_bytes(), 0, "cleared with the generation");
        let opened = files.open(&small).expect("open");
        assert_eq!(
            opened.contents.as_deref(),
            Some(&b"<p>edited, longer</p>"[..])
        );
        std::fs::write(&small, "<p>again</p>").expect("write");
        let opened = files.open(&small).expect("open");
        assert_eq!(opened.contents.as_deref(), Some(&b"<p>again</p>"[..]));
        assert_eq!(files.contents_bytes(), 12, "the old bytes were let go");
    }

    #[test]
    fn evicted_descriptors_take_their_bytes_with_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = OpenFiles::new(2, false);
        for i in 0..5 {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, vec![b'x'; 100]).expect("write");
            files.open(&path).expect("open");
        }
        assert_eq!(files.len(), 2);
        assert_eq!(files.contents_bytes(), 200);
    }

    #[test]
    fn symlinks_and_directories_are_not_opened() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("target"), "x").expect("write");
        std::os::unix::fs::symlink(dir.path().join("target"), dir.path().join("link"))
            .expect("link");
        let files = OpenFiles::new(8, true);
        assert!(files.open(&dir.path().join("link")).is_err());
        assert!(files.open(dir.path()).is_err());
    }
}
