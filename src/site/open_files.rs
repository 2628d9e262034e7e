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

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

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
    used: u64,
}

#[derive(Debug, Default)]
struct Table {
    files: HashMap<PathBuf, Cached>,
    clock: u64,
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
    pub fn open(&self, path: &Path) -> io::Result<(Arc<File>, Arc<Metadata>)> {
        if let Some(hit) = self.cached(path, None)? {
            return Ok(hit);
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
        let (file, meta) = (Arc::new(file), Arc::new(meta));
        self.insert(path, &file, &meta);
        Ok((file, meta))
    }

    /// The file at `path`, which must still be the file `id` a response started with.
    pub fn reopen(&self, path: &Path, id: FileId) -> io::Result<Arc<File>> {
        if let Some((file, _)) = self.cached(path, Some(id))? {
            return Ok(file);
        }
        let (file, meta) = self.open(path)?;
        if FileId::of(&meta) != id {
            return Err(replaced());
        }
        Ok(file)
    }

    /// A cached descriptor for `path`, checked against the tree when it may change.
    fn cached(
        &self,
        path: &Path,
        want: Option<FileId>,
    ) -> io::Result<Option<(Arc<File>, Arc<Metadata>)>> {
        let hit = {
            let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
            table.clock += 1;
            let clock = table.clock;
            match table.files.get_mut(path) {
                Some(cached) => {
                    cached.used = clock;
                    (cached.file.clone(), cached.meta.clone())
                }
                None => return Ok(None),
            }
        };
        let id = FileId::of(&hit.1);
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
                    && now.len() == hit.1.len()
                    && now.mtime() == hit.1.mtime()
                    && now.mtime_nsec() == hit.1.mtime_nsec()
            });
            if !same {
                self.forget(path);
                return Ok(None);
            }
        }
        Ok(Some(hit))
    }

    fn insert(&self, path: &Path, file: &Arc<File>, meta: &Arc<Metadata>) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.clock += 1;
        let used = table.clock;
        if !table.files.contains_key(path) && table.files.len() >= self.cap {
            // An eviction is a miss, already paying for an open: a scan of `cap` entries is
            // small beside it, and keeps the table a plain map.
            let oldest = table
                .files
                .iter()
                .min_by_key(|(_, cached)| cached.used)
                .map(|(path, _)| path.clone());
            if let Some(oldest) = oldest {
                table.files.remove(&oldest);
            }
        }
        table.files.insert(
            path.to_owned(),
            Cached {
                file: file.clone(),
                meta: meta.clone(),
                used,
            },
        );
    }

    fn forget(&self, path: &Path) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.files.remove(path);
    }

    /// Closes every cached descriptor (a new generation is served; the old one's files
    /// are closed as soon as no response is reading them).
    pub fn clear(&self) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        table.files.clear();
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
        let (a, _) = files.open(&paths[0]).expect("open");
        let (b, _) = files.open(&paths[0]).expect("open again");
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
        let (_, meta) = files.open(&path).expect("open");
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
        let (_, meta) = files.open(&path).expect("a new response sees the new file");
        assert_eq!(meta.len(), 9);
        // Edited in place: the same inode, a new length.
        std::fs::write(&path, "edited in place, longer").expect("write");
        let (_, meta) = files.open(&path).expect("open");
        assert_eq!(meta.len(), 23, "a new response sees the edit");
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
