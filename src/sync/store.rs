//! The writer of site generations: builds one in `staging/`, switches `current` to it, and
//! collects old ones no server holds. The layout and the lock protocol it shares with the
//! site server are drawn in [`crate::generation`].
//!
//! Every file of a generation is written under a fresh name in its `tmp/` and linked into
//! `files/` (`super::newfile`): the tree being built shares inodes with the served one, and
//! nothing in it is ever opened for writing by name. A generation is built whole in
//! `staging/`, fsynced, moved into `generations/`, and only then does `current` move, with one
//! `rename(2)` of a new symlink over the old. A crash at any point leaves `current` on a whole
//! generation; leftovers in `staging/` are removed at the next start.
//!
//! The store says which layout it has (`site/FORMAT`, `crate::data_format`): a build that
//! finds a newer one takes no lock on it, so it serves the current generation and never
//! syncs over it or cleans it up.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::newfile::TmpDir;
use crate::generation::manifest::{Manifest, MANIFEST_FILE};
pub use crate::generation::FsError as StoreError;
use crate::generation::{at, CURRENT, FILES, GENERATIONS, SITE_DIR, SITE_FORMAT, STAGING, TMP};

/// Held while a sync runs; the lock is released when the file is closed.
#[derive(Debug)]
pub struct StoreLock {
    _file: fs::File,
}

#[derive(Debug, Clone)]
pub struct GenerationStore {
    base: PathBuf,
}

/// A generation being built. Dropped without [`GenerationStore::commit`], it is removed.
#[derive(Debug)]
pub(crate) struct Staging {
    pub id: String,
    dir: PathBuf,
    tmp: std::sync::Arc<TmpDir>,
    committed: bool,
}

impl Staging {
    /// Where the site's files go.
    pub fn files(&self) -> PathBuf {
        self.dir.join(FILES)
    }

    /// Stops every writer still busy for this generation (queued compressions it will not
    /// wait for); it is committed without what they would have made.
    pub(crate) fn stop_writers(&self) {
        drop(self.tmp.abandon());
    }

    /// Where its files are written before they are linked into [`Staging::files`].
    pub fn tmp(&self) -> std::sync::Arc<TmpDir> {
        self.tmp.clone()
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            // Work still running for this generation elsewhere stops first (`TmpDir`).
            let _stopped = self.tmp.abandon();
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl GenerationStore {
    /// Opens (creating) the store. Cleaning up after an interrupted sync happens under the
    /// lock, in [`GenerationStore::lock`].
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let base = data_dir.join(SITE_DIR);
        for dir in [base.join(GENERATIONS), base.join(STAGING)] {
            fs::create_dir_all(&dir).map_err(at("create", &dir))?;
        }
        Ok(Self { base })
    }

    /// Takes the store's lock (one sync at a time, across processes: the appliance and a
    /// manual `sync --once`), then removes what an interrupted sync left. `None` when another
    /// process holds it.
    pub fn lock(&self) -> Result<Option<StoreLock>, StoreError> {
        use rustix::fs::{flock, FlockOperation};
        let path = self.base.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(at("open", &path))?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
            Err(e) => return Err(at("lock", &path)(e.into())),
        }
        // A store a newer build wrote is served as it is, never cleaned up or synced over.
        crate::data_format::writable(&self.base, SITE_FORMAT, "the site's generations")
            .map_err(at("write", &self.base))?;
        self.recover()?;
        Ok(Some(StoreLock { _file: file }))
    }

    fn recover(&self) -> Result<(), StoreError> {
        let staging = self.base.join(STAGING);
        for entry in fs::read_dir(&staging)
            .map_err(at("read", &staging))?
            .flatten()
        {
            tracing::info!(path = %entry.path().display(), "removing an unfinished generation");
            let _ = fs::remove_dir_all(entry.path());
        }
        let _ = fs::remove_file(self.base.join(format!("{CURRENT}.new")));
        // `current` is only ever replaced by rename, so it is either the old or the new link;
        // if it points nowhere (a generation removed by hand), fall back to the newest.
        if self.current_id().is_none() {
            if let Some(newest) = self.generation_ids()?.pop() {
                tracing::warn!(generation = %newest, "`current` was missing; using the newest whole generation");
                self.point_current_at(&newest)?;
            }
        }
        Ok(())
    }

    /// Generation ids present, oldest first.
    fn generation_ids(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.base.join(GENERATIONS);
        let mut ids: Vec<String> = fs::read_dir(&dir)
            .map_err(at("read", &dir))?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The id `current` points at, if it points at a whole generation.
    pub fn current_id(&self) -> Option<String> {
        let target = fs::read_link(self.base.join(CURRENT)).ok()?;
        let id = target.file_name()?.to_str()?.to_owned();
        self.base
            .join(GENERATIONS)
            .join(&id)
            .join(MANIFEST_FILE)
            .is_file()
            .then_some(id)
    }

    pub(crate) fn generation_dir(&self, id: &str) -> PathBuf {
        self.base.join(GENERATIONS).join(id)
    }

    /// The current generation's manifest; empty when there is none yet.
    pub(crate) fn current_manifest(&self) -> Manifest {
        let Some(id) = self.current_id() else {
            return Manifest::default();
        };
        match Manifest::read(&self.generation_dir(&id).join(MANIFEST_FILE)) {
            Ok(manifest) => manifest,
            Err(e) => {
                // Without a manifest nothing can be hard-linked: the next sync fetches all.
                tracing::warn!(error = %e, "current manifest unreadable");
                Manifest::default()
            }
        }
    }

    /// Starts a new generation with the next id.
    pub(crate) fn begin(&self) -> Result<Staging, StoreError> {
        let next = self
            .generation_ids()?
            .last()
            .and_then(|id| id.parse::<u64>().ok())
            .map_or(1, |n| n + 1);
        let id = format!("{next:06}");
        let dir = self.base.join(STAGING).join(&id);
        let files = dir.join(FILES);
        fs::create_dir_all(&files).map_err(at("create", &files))?;
        let tmp = dir.join(TMP);
        let tmp = TmpDir::create_dir(tmp.clone()).map_err(at("create", &tmp))?;
        Ok(Staging {
            id,
            dir,
            tmp: std::sync::Arc::new(tmp),
            committed: false,
        })
    }

    /// Writes the manifest, makes the whole tree durable, and switches `current` to it.
    pub(crate) fn commit(
        &self,
        mut staging: Staging,
        manifest: &Manifest,
    ) -> Result<PathBuf, StoreError> {
        // Every temporary name was published or removed; a leftover is not part of the site.
        let tmp = staging.dir.join(TMP);
        fs::remove_dir_all(&tmp).map_err(at("remove", &tmp))?;
        let manifest_path = staging.dir.join(MANIFEST_FILE);
        manifest
            .write(&manifest_path)
            .map_err(|e| at("write", &manifest_path)(io::Error::other(e.to_string())))?;
        // One syncfs makes every file and directory of the new tree durable: on an SD card
        // it costs one journal commit instead of one per file.
        syncfs(&staging.dir)?;
        let target = self.generation_dir(&staging.id);
        fs::rename(&staging.dir, &target).map_err(at("move into place", &target))?;
        staging.committed = true;
        fsync_dir(&self.base.join(GENERATIONS))?;
        fsync_dir(&self.base.join(STAGING))?;
        self.point_current_at(&staging.id)?;
        Ok(target.join(FILES))
    }

    fn point_current_at(&self, id: &str) -> Result<(), StoreError> {
        let link = self.base.join(format!("{CURRENT}.new"));
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(Path::new(GENERATIONS).join(id), &link)
            .map_err(at("create link", &link))?;
        let current = self.base.join(CURRENT);
        fs::rename(&link, &current).map_err(at("switch", &current))?;
        fsync_dir(&self.base)
    }

    /// Removes generations other than the current one and the `keep_previous` before it,
    /// except those a process still serves from (see [`crate::generation::lease`]).
    pub(crate) fn collect_garbage(&self, keep_previous: usize) -> Result<usize, StoreError> {
        let Some(current) = self.current_id() else {
            return Ok(0);
        };
        let ids = self.generation_ids()?;
        let older: Vec<&String> = ids.iter().filter(|id| **id < current).collect();
        let doomed = older.len().saturating_sub(keep_previous);
        let mut removed = 0;
        for id in older
            .into_iter()
            .take(doomed)
            .chain(ids.iter().filter(|id| **id > current))
        {
            let dir = self.generation_dir(id);
            // Held until the directory is gone: a server that opens it meanwhile finds no
            // manifest once it has its lease, and looks at `current` again.
            let Some(_unused) = exclusive(&dir)? else {
                tracing::info!(generation = %id, "an old generation is still being served; kept until it is not");
                continue;
            };
            match fs::remove_dir_all(&dir) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot remove an old generation");
                }
            }
        }
        Ok(removed)
    }
}

/// The exclusive lock on a generation directory, if no server holds a lease on it.
fn exclusive(dir: &Path) -> Result<Option<fs::File>, StoreError> {
    use rustix::fs::{flock, FlockOperation};
    let file = match fs::File::open(dir) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at("open", dir)(e)),
    };
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            // The manifest goes first: a lease taken from here on sees a dying generation.
            let _ = fs::remove_file(dir.join(MANIFEST_FILE));
            Ok(Some(file))
        }
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(at("lock", dir)(e.into())),
    }
}

fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(at("fsync", dir))
}

/// Flushes the whole filesystem holding `path` (the data partition) to stable storage.
fn syncfs(path: &Path) -> Result<(), StoreError> {
    let dir = fs::File::open(path).map_err(at("open", path))?;
    rustix::fs::syncfs(&dir).map_err(|e| at("syncfs", path)(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_sync_cannot_take_the_lock() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = GenerationStore::open(dir.path()).expect("open");
        let held = store.lock().expect("lock");
        assert!(held.is_some());
        assert!(store.lock().expect("lock").is_none(), "busy while held");
        drop(held);
        assert!(store.lock().expect("lock").is_some());
    }

    fn build(store: &GenerationStore, files: &[(&str, &str)]) -> String {
        let staging = store.begin().expect("begin");
        for (name, body) in files {
            fs::write(staging.files().join(name), body).expect("write");
        }
        let id = staging.id.clone();
        store.commit(staging, &Manifest::default()).expect("commit");
        id
    }

    #[test]
    fn commit_switches_current_and_garbage_keeps_the_previous_generation() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = GenerationStore::open(dir.path()).expect("open");
        assert_eq!(store.current_id(), None);
        let first = build(&store, &[("a.html", "1")]);
        let second = build(&store, &[("a.html", "2")]);
        let third = build(&store, &[("a.html", "3")]);
        assert_eq!(store.current_id(), Some(third.clone()));
        let served = crate::generation::current_files(dir.path()).join("a.html");
        assert_eq!(fs::read_to_string(served).expect("read"), "3");
        assert_eq!(store.collect_garbage(1).expect("gc"), 1);
        assert!(!store.generation_dir(&first).exists());
        assert!(store.generation_dir(&second).exists());
    }

    #[test]
    fn an_abandoned_staging_generation_is_removed_and_current_kept() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = GenerationStore::open(dir.path()).expect("open");
        let good = build(&store, &[("a.html", "good")]);
        let staging = store.begin().expect("begin");
        fs::write(staging.files().join("a.html"), "half").expect("write");
        std::mem::forget(staging); // a crash: no Drop, no commit
        let reopened = GenerationStore::open(dir.path()).expect("reopen");
        let _lock = reopened.lock().expect("lock").expect("free");
        assert_eq!(reopened.current_id(), Some(good));
        assert_eq!(
            fs::read_dir(dir.path().join("site/staging"))
                .expect("ls")
                .count(),
            0
        );
    }
}
