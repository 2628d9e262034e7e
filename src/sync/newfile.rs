//! The only way a sync writes a file: created new, then published under its name.
//!
//! The generation being built shares inodes with the served one (unchanged files are hard
//! links). Opening any path of the new tree for writing could therefore truncate a file that
//! readers are being sent at that moment — it did, when a bucket object was named like a
//! generated `.br` sibling. So nothing here ever opens an existing path for writing:
//!
//! 1. [`TmpDir::create`] opens a fresh name in the generation's own `tmp/` directory with
//!    `O_CREAT|O_EXCL` (a name no other file has, so no inode is shared);
//! 2. the bytes are written and checked there;
//! 3. [`NewFile::publish`] gives the inode its place in `files/` with `link(2)`, which fails
//!    with `EEXIST` rather than replace anything, and removes the temporary name.
//!
//! A `NewFile` dropped without being published removes its temporary name.
//!
//! Every name made in the generation goes through its [`TmpDir`], one operation at a time
//! under [`TmpDir::while_alive`]: a generation abandoned (a failed or cancelled sync) is
//! first marked, then waits for the operation in flight, and only then removed. Work still
//! running for it elsewhere (the compression thread, the blocking pool) then fails instead
//! of re-creating directories in a tree that was just removed.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

/// Where a generation's files are written before they get their names.
#[derive(Debug)]
pub(crate) struct TmpDir {
    dir: PathBuf,
    next: AtomicU64,
    abandoned: AtomicBool,
    /// Held shared by each operation, exclusively by [`TmpDir::abandon`].
    busy: RwLock<()>,
}

impl TmpDir {
    /// Creates `dir` (it must not exist: a leftover would mean two builders share it).
    pub fn create_dir(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir(&dir)?;
        Ok(Self {
            dir,
            next: AtomicU64::new(0),
            abandoned: AtomicBool::new(false),
            busy: RwLock::new(()),
        })
    }

    /// Runs `op` unless the generation was abandoned; [`TmpDir::abandon`] waits for it.
    pub(crate) fn while_alive<T>(&self, op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let _running = self
            .busy
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.abandoned.load(Ordering::Acquire) {
            return Err(io::Error::other("the generation being built was abandoned"));
        }
        op()
    }

    /// Whether the generation was abandoned: long work for it (compressing a large file)
    /// stops early.
    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Marks the generation abandoned and waits for the operation in flight: once this
    /// returns, no name is made in it any more. Returns the guard to hold while removing it.
    pub(crate) fn abandon(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.abandoned.store(true, Ordering::Release);
        self.busy
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives `new` its name `dest`, creating `dest`'s directories; an existing `dest` is an
    /// error (`AlreadyExists`), never replaced.
    pub fn publish(&self, new: NewFile, dest: &Path) -> io::Result<()> {
        self.while_alive(|| {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            new.publish(dest)
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A new, empty file under a name nobody else has.
    pub fn create(&self) -> io::Result<NewFile> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{n:08}"));
        let file = self.while_alive(|| {
            OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .open(&path)
        })?;
        Ok(NewFile {
            file: Some(file),
            path,
        })
    }
}

/// A file being written under a temporary name.
#[derive(Debug)]
pub(crate) struct NewFile {
    file: Option<File>,
    path: PathBuf,
}

impl NewFile {
    /// The open file, for writing.
    pub fn file(&mut self) -> io::Result<&mut File> {
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("the file was already closed"))
    }

    /// Takes the file out, for async writing; [`NewFile::publish`] works without it.
    pub(crate) fn take_file(&mut self) -> Option<File> {
        self.file.take()
    }

    /// The temporary path (to read the bytes back, e.g. to check them).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the file its name. An existing `dest` is an error (`AlreadyExists`), never
    /// replaced: whatever is there stays as it was. Within a generation being built, use
    /// [`TmpDir::publish`].
    pub fn publish(mut self, dest: &Path) -> io::Result<()> {
        drop(self.file.take());
        std::fs::hard_link(&self.path, dest)?;
        // The temporary name is removed by Drop.
        Ok(())
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn publishing_over_an_existing_name_fails_and_leaves_its_inode_whole() {
        let dir = tempfile::tempdir().expect("tmp");
        let tmp = TmpDir::create_dir(dir.path().join("tmp")).expect("tmp dir");
        let served = dir.path().join("served.html");
        std::fs::write(&served, "served bytes").expect("write");
        // The staging tree's name for the served inode, as a kept file's hard link is.
        let linked = dir.path().join("linked.html");
        std::fs::hard_link(&served, &linked).expect("link");

        let mut new = tmp.create().expect("create");
        new.file().expect("open").write_all(b"x").expect("write");
        let err = new.publish(&linked).expect_err("the name is taken");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            std::fs::read_to_string(&served).expect("read"),
            "served bytes"
        );
        assert_eq!(
            std::fs::read_dir(tmp.path()).expect("ls").count(),
            0,
            "the temporary name is gone"
        );
    }

    #[test]
    fn a_published_file_has_its_bytes_and_an_unpublished_one_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        let tmp = TmpDir::create_dir(dir.path().join("tmp")).expect("tmp dir");
        let mut new = tmp.create().expect("create");
        new.file().expect("open").write_all(b"page").expect("write");
        new.publish(&dir.path().join("page.html")).expect("publish");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("page.html")).expect("read"),
            "page"
        );
        let abandoned = tmp.create().expect("create");
        drop(abandoned);
        assert_eq!(std::fs::read_dir(tmp.path()).expect("ls").count(), 0);
    }

    #[test]
    fn nothing_is_made_in_an_abandoned_generation() {
        let dir = tempfile::tempdir().expect("tmp");
        let tmp = TmpDir::create_dir(dir.path().join("tmp")).expect("tmp dir");
        let new = tmp.create().expect("create");
        drop(tmp.abandon());
        let late = dir.path().join("files/late/page.html");
        assert!(tmp.publish(new, &late).is_err());
        assert!(
            !dir.path().join("files").exists(),
            "no directory re-created"
        );
        assert!(tmp.create().is_err());
    }
}
