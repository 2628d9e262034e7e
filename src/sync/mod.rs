//! Keeping the site in step with the S3 bucket, one whole generation at a time.
//!
//! One sync, top to bottom: list the bucket → plan against the current manifest (pure) →
//! check limits and free space → build the next generation in staging (hard links for what
//! is unchanged, verified downloads for the rest, precompressed siblings) → commit (fsync,
//! rename, switch `current`) → drop old generations no process serves. Any failure before
//! the switch leaves the current generation exactly as it was.
//!
//! The invariant, by construction: nothing reachable from a committed generation is ever
//! opened for writing. Files are created new and linked into place (`newfile`); kept files
//! are linked only where the plan writes nothing of that name (`plan` reserves the names
//! the bucket uses); an existing name is an error, never a truncation.
//!
//! An object that changed between the listing and its download (`If-Match` failed, or the
//! body outgrew the listed size) abandons the generation being built, and the sync lists
//! again at once, up to [`LISTINGS`] times: the generation switched in is always one
//! listing's objects, checked against the limits that listing passed.

pub mod key;
pub mod newfile;
pub mod plan;
pub mod precompress;
pub mod source;
pub mod store;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::generation::manifest::{Manifest, ManifestEntry};
use crate::generation::redirect;
use plan::{Plan, PlanError, PlanLimits, RemoteObject, SiblingConflict, Skipped};
use precompress::NotCompressed;
use source::{Bucket, SourceError};
use store::{GenerationStore, StoreError};

use crate::config::{Config, S3Config};
pub use aws_smithy_async::time::{SharedTimeSource, TimeSource};

/// Listings one sync makes at most when objects keep changing under it.
pub(crate) const LISTINGS: u32 = 3;

/// When the downloads are done, compressions still queued for up to this many bytes of
/// input are waited for; beyond it the generation is switched in without their siblings and
/// a second generation adds them at once. A new site is then served as soon as it is
/// verified: on a Pi, compressing a documentation site's multi-megabyte search index and
/// pages takes longer than downloading them (docs/sync.md).
const WAIT_FOR_COMPRESSION_BYTES: u64 = 2 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("sync refused: {0}")]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not enough free space on {path}: the sync needs about {needed} bytes plus s3.min_free_bytes, {available} are free")]
    Disk {
        path: PathBuf,
        needed: u64,
        available: u64,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another sync is running on {path}")]
    Busy { path: PathBuf },
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SyncError + '_ {
    move |source| SyncError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What one sync did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// The generation now current (new or unchanged); `None` only for a dry run on an empty store.
    pub generation: Option<String>,
    /// A new generation was switched in.
    pub switched: bool,
    pub dry_run: bool,
    pub listed: usize,
    pub kept: usize,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub skipped: Vec<Skipped>,
    /// Listed, then gone by the time it was fetched: left out of this generation.
    pub vanished: Vec<String>,
    /// Generated siblings the bucket took the name of with a directory: not made.
    pub sibling_conflicts: Vec<SiblingConflict>,
    /// Compressible objects left without siblings, and why.
    pub not_compressed: Vec<(String, NotCompressed)>,
    /// Objects whose website-redirect location is not answered (key, location, why): it would
    /// send readers to another site.
    pub ignored_redirects: Vec<(String, String, redirect::RedirectRejection)>,
    /// Listings made (more than one when objects changed during the sync).
    pub listings: u32,
    /// When the site was switched in, if it was (before the siblings' generation, if any).
    pub switched_after: Option<Duration>,
    /// Files whose siblings a second generation added, after the site was switched in.
    pub siblings_added_later: usize,
    /// Files still waiting for their siblings in the generation served (the sync that
    /// adds them failed, or this was a dry run).
    pub siblings_pending: usize,
    pub bytes_downloaded: u64,
    pub list_requests: u64,
    pub get_requests: u64,
    /// The multipart check's HEAD requests.
    pub head_requests: u64,
    pub duration: Duration,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match (self.dry_run, self.switched) {
            (true, _) => "dry run, nothing written",
            (false, true) => "new generation switched in",
            (false, false) => "site unchanged",
        };
        writeln!(
            f,
            "sync: {what}; generation {}",
            self.generation.as_deref().unwrap_or("none")
        )?;
        writeln!(
            f,
            "  objects: {} listed, {} kept, {} added, {} changed, {} removed, {} skipped, {} vanished",
            self.listed,
            self.kept,
            self.added,
            self.changed,
            self.removed,
            self.skipped.len(),
            self.vanished.len()
        )?;
        writeln!(
            f,
            "  transfer: {} bytes downloaded; requests: {} list, {} get, {} head; {:.2} s",
            self.bytes_downloaded,
            self.list_requests,
            self.get_requests,
            self.head_requests,
            self.duration.as_secs_f64()
        )?;
        if let Some(after) = self.switched_after {
            if self.siblings_added_later > 0 {
                writeln!(
                    f,
                    "  switched in after {:.2} s; compressed siblings for {} files added by a second generation",
                    after.as_secs_f64(),
                    self.siblings_added_later
                )?;
            }
        }
        if self.siblings_pending > 0 {
            writeln!(
                f,
                "  {} files served without their compressed siblings yet (the next sync adds them)",
                self.siblings_pending
            )?;
        }
        if self.listings > 1 {
            writeln!(
                f,
                "  listed {} times: objects changed while they were downloaded",
                self.listings
            )?;
        }
        for skipped in &self.skipped {
            writeln!(f, "  skipped {:?}: {}", skipped.key, skipped.reason)?;
        }
        for conflict in &self.sibling_conflicts {
            writeln!(
                f,
                "  no {:?}: the bucket has a directory of that name, so {:?} is served uncompressed",
                conflict.sibling, conflict.key
            )?;
        }
        for (key, why) in &self.not_compressed {
            writeln!(f, "  not compressed {key:?}: {why}")?;
        }
        for (key, location, why) in &self.ignored_redirects {
            writeln!(
                f,
                "  redirect of {key:?} to {location:?} ignored: {why}; the object is served as a file"
            )?;
        }
        Ok(())
    }
}

/// What the appliance knows about its syncs, for the status model and its views.
#[derive(Debug, Clone, Default)]
pub struct SyncStatus {
    pub last_attempt: Option<SystemTime>,
    pub last_success: Option<SystemTime>,
    /// The last sync's report when it succeeded.
    pub last_report: Option<SyncReport>,
    /// Why the last sync failed; `None` once one succeeds again.
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// The generation being served.
    pub generation: Option<String>,
}

impl SyncStatus {
    /// Records the outcome of one sync.
    pub fn record(&mut self, at: SystemTime, outcome: &Result<SyncReport, SyncError>) {
        self.last_attempt = Some(at);
        match outcome {
            Ok(report) => {
                self.last_success = Some(at);
                self.generation.clone_from(&report.generation);
                self.last_report = Some(report.clone());
                self.last_error = None;
                self.consecutive_failures = 0;
            }
            Err(e) => {
                self.last_error = Some(e.to_string());
                self.consecutive_failures += 1;
            }
        }
    }
}

/// Syncs one bucket into one generation store.
pub struct Syncer {
    config: S3Config,
    data_dir: PathBuf,
    store: GenerationStore,
    bucket: Arc<Bucket>,
    compressor: Arc<precompress::Compressor>,
    /// `site.hostnames` and `site.redirect_hosts`: the only hosts a website-redirect URL may
    /// name.
    own_hosts: Vec<String>,
}

impl Syncer {
    pub async fn new(config: &Config) -> Result<Option<Self>, SyncError> {
        Self::with_clock(config, None).await
    }

    /// As [`Syncer::new`], with the S3 requests signed by `clock` instead of the system clock.
    pub async fn with_clock(
        config: &Config,
        clock: Option<SharedTimeSource>,
    ) -> Result<Option<Self>, SyncError> {
        let Some(s3) = &config.s3 else {
            return Ok(None);
        };
        let store = GenerationStore::open(&config.storage.data_dir)?;
        Ok(Some(Self {
            config: s3.clone(),
            data_dir: config.storage.data_dir.clone(),
            store,
            bucket: Arc::new(Bucket::connect_with_clock(s3, clock).await),
            own_hosts: config
                .site
                .hostnames
                .iter()
                .chain(&config.site.redirect_hosts)
                .cloned()
                .collect(),
            compressor: Arc::new(precompress::Compressor::start().map_err(|source| {
                SyncError::Io {
                    path: config.storage.data_dir.clone(),
                    source,
                }
            })?),
        }))
    }

    pub fn store(&self) -> &GenerationStore {
        &self.store
    }

    /// The wait before the next sync: the interval plus a random share of the jitter; after
    /// `failures` syncs in a row failed, sooner ([`retry_after`]).
    pub(crate) fn next_delay(&self, failures: u32) -> Duration {
        let interval = self.config.interval + self.config.jitter.mul_f64(fastrand::f64());
        match failures {
            0 => interval,
            n => retry_after(n).min(interval),
        }
    }

    /// Runs one sync. With `dry_run`, lists and plans but writes nothing.
    pub async fn sync_once(&self, dry_run: bool) -> Result<SyncReport, SyncError> {
        let started = Instant::now();
        let Some(_lock) = self.store.lock()? else {
            return Err(SyncError::Busy {
                path: self.data_dir.clone(),
            });
        };
        let before = self.bucket.requests.snapshot();
        let mut listings = 0;
        let mut report = loop {
            listings += 1;
            match self.list_and_build(dry_run).await {
                Err(SyncError::Source(SourceError::Changed { key, reason }))
                    if listings < LISTINGS =>
                {
                    tracing::info!(
                        key,
                        reason,
                        "an object changed during the sync; listing again"
                    );
                }
                other => break other?,
            }
        };
        if report.switched {
            report.switched_after = Some(started.elapsed());
        }
        if !dry_run && report.siblings_pending > 0 {
            if let Some((id, added)) = self.add_pending_siblings().await? {
                report.generation = Some(id);
                report.switched = true;
                report.siblings_added_later = added;
                report.siblings_pending = 0;
            }
        }
        let requests = self.bucket.requests.snapshot() - before;
        report.listings = listings;
        report.list_requests = requests.list;
        report.get_requests = requests.get;
        report.head_requests = requests.head;
        report.duration = started.elapsed();
        Ok(report)
    }

    /// One listing, its plan, and (unless `dry_run` or nothing changed) the generation it
    /// describes, switched in.
    async fn list_and_build(&self, dry_run: bool) -> Result<SyncReport, SyncError> {
        let listing = self.bucket.list().await?;
        let current = self.store.current_manifest();
        let current_id = self.store.current_id();
        let plan = plan::plan(&listing, &current, &self.limits())?;
        for skipped in &plan.skipped {
            tracing::warn!(key = ?skipped.key, reason = %skipped.reason, "skipping an object that cannot be a local file");
        }
        for conflict in &plan.sibling_conflicts {
            tracing::warn!(key = conflict.key, sibling = conflict.sibling, "the bucket has a directory named like a compressed sibling; that sibling is not made");
        }
        let mut report = SyncReport {
            generation: current_id.clone(),
            dry_run,
            listed: listing.len(),
            kept: plan.keep.len(),
            added: plan
                .fetch
                .iter()
                .filter(|o| !current.objects.contains_key(&o.key))
                .count(),
            changed: plan
                .fetch
                .iter()
                .filter(|o| current.objects.contains_key(&o.key))
                .count(),
            removed: plan.remove.len(),
            skipped: plan.skipped.clone(),
            sibling_conflicts: plan.sibling_conflicts.clone(),
            ..Default::default()
        };
        let up_to_date = plan.is_noop() && current_id.is_some();
        report.siblings_pending = pending_siblings(&current);
        if !dry_run && !up_to_date {
            self.check_free_space(&plan)?;
            let built = self.build_generation(&plan, current, &listing).await?;
            report.generation = Some(built.id);
            report.switched = true;
            report.bytes_downloaded = built.downloaded;
            report.vanished = built.vanished;
            report.not_compressed = built.not_compressed;
            report.ignored_redirects = built.ignored_redirects;
            report.siblings_pending = built.siblings_pending;
            match self.store.collect_garbage(1) {
                Ok(removed) if removed > 0 => tracing::debug!(removed, "old generations removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot remove old generations"),
            }
        }
        Ok(report)
    }

    fn limits(&self) -> PlanLimits {
        PlanLimits {
            max_objects: self.config.max_objects,
            max_total_bytes: self.config.max_total_bytes,
            max_delete_fraction: self.config.max_delete_fraction,
            allow_empty: self.config.allow_empty,
        }
    }

    fn check_free_space(&self, plan: &Plan) -> Result<(), SyncError> {
        let stat = rustix::fs::statvfs(&self.data_dir).map_err(|e| SyncError::Io {
            path: self.data_dir.clone(),
            source: e.into(),
        })?;
        let available = stat.f_bavail.saturating_mul(stat.f_frsize);
        // Downloads plus room for their two precompressed siblings, each written only when
        // smaller than the original: at most three times the download.
        let needed = plan.fetch_bytes.saturating_mul(3);
        if available < needed.saturating_add(self.config.min_free_bytes) {
            return Err(SyncError::Disk {
                path: self.data_dir.clone(),
                needed,
                available,
            });
        }
        Ok(())
    }

    async fn build_generation(
        &self,
        plan: &Plan,
        mut current: Manifest,
        listing: &[RemoteObject],
    ) -> Result<Built, SyncError> {
        let staging = self.store.begin()?;
        let files = staging.files();
        let tmp = staging.tmp();
        let mut manifest = Manifest {
            generation: staging.id.clone(),
            ..Default::default()
        };

        // Unchanged files: hard links into the new tree, with the siblings the plan still
        // allows. Thousands of link(2) calls are blocking work: off the async threads.
        let mut refetch = Vec::new();
        if let Some(id) = self.store.current_id() {
            let old_files = self.store.generation_dir(&id).join("files");
            let new_files = files.clone();
            // Entries move from the old manifest to the new one: at 10,000 objects each copy
            // of the manifest is megabytes on a Pi.
            // A sibling name the bucket used before and no longer does is free again: the
            // kept file gets that sibling from the generation after this one.
            let freed = |key: &str, ext: &str, made: bool| {
                !made
                    && plan.sibling_allowed(key, ext)
                    && current.objects.contains_key(&format!("{key}.{ext}"))
            };
            // A set, not a list searched by bisection: nothing then depends on `plan.keep`
            // being sorted.
            let freed_keys: std::collections::HashSet<String> = plan
                .keep
                .iter()
                .filter_map(|key| {
                    let entry = current.objects.get(key)?;
                    let freed = freed(key, "br", entry.brotli) || freed(key, "gz", entry.gzip);
                    (freed && worth_compressing(key, entry)).then(|| key.clone())
                })
                .collect();
            let keep: Vec<(String, ManifestEntry, [bool; 2])> = plan
                .keep
                .iter()
                .filter_map(|key| current.objects.remove_entry(key))
                .map(|(key, mut entry)| {
                    let allowed = [
                        plan.sibling_allowed(&key, "br"),
                        plan.sibling_allowed(&key, "gz"),
                    ];
                    entry.siblings_pending |= freed_keys.contains(&key);
                    (key, entry, allowed)
                })
                .collect();
            drop(current);
            // A file that cannot be linked is fetched again.
            let (linked, failed) = link_kept(old_files, new_files, keep, tmp.clone()).await?;
            manifest.objects.extend(linked);
            let failed: std::collections::HashSet<String> = failed.into_iter().collect();
            refetch = listing
                .iter()
                .filter(|o| failed.contains(&o.key))
                .cloned()
                .collect();
        }

        // New and changed files: bounded-concurrency verified downloads. Only `concurrency`
        // tasks exist at a time: an SDK request future is large, and spawning one per object
        // up front cost ~100 MB and most of the CPU in page faults for 1,000 objects.
        let mut pending = plan.fetch.iter().chain(&refetch);
        let mut tasks = tokio::task::JoinSet::new();
        // Queued compressions, oldest first; answers are taken as they arrive so the queue
        // stays short (a 10,000-file sync held thousands of paths here until the end).
        let mut compressions = std::collections::VecDeque::new();
        let mut built = Built {
            id: staging.id.clone(),
            ..Default::default()
        };
        loop {
            while tasks.len() < self.config.concurrency {
                let Some(object) = pending.next() else { break };
                let object = object.clone();
                let (bucket, files, tmp) = (self.bucket.clone(), files.clone(), tmp.clone());
                tasks.spawn(async move { fetch_object(&bucket, object, &files, &tmp).await });
            }
            let Some(joined) = tasks.join_next().await else {
                break;
            };
            let outcome = joined.map_err(|e| SyncError::Io {
                path: files.clone(),
                source: std::io::Error::other(e),
            })?;
            match outcome {
                Ok((key, Some((mut entry, compress)))) => {
                    built.downloaded += entry.size;
                    if let Some(location) = entry.redirect_location.take() {
                        match redirect::check(&location, &self.own_hosts) {
                            Ok(()) => entry.redirect_location = Some(location),
                            Err(why) => {
                                tracing::warn!(key, location, %why, "website redirect ignored");
                                built.ignored_redirects.push((key.clone(), location, why));
                            }
                        }
                    }
                    if compress {
                        // Compression runs on its own thread while downloads go on.
                        let job = precompress::Job::beside(
                            files.join(&key),
                            plan.sibling_allowed(&key, "br"),
                            plan.sibling_allowed(&key, "gz"),
                            tmp.clone(),
                        );
                        let pending = self.compressor.submit(job).map_err(io_at(&files))?;
                        compressions.push_back((key.clone(), pending));
                    }
                    manifest.objects.insert(key, entry);
                    while let Some((key, pending)) = compressions.front_mut() {
                        let Some(written) = pending.try_take() else {
                            break;
                        };
                        let written = written.map_err(io_at(&files.join(key.as_str())))?;
                        built.record(&mut manifest, key, written);
                        compressions.pop_front();
                    }
                }
                Ok((key, None)) => {
                    tracing::warn!(key, "object vanished between listing and download");
                    built.vanished.push(key);
                }
                // Dropping `tasks` aborts the other downloads; dropping `staging` removes them.
                Err(e) => return Err(e),
            }
        }
        let queued: u64 = compressions
            .iter()
            .filter_map(|(key, _)| manifest.objects.get(key.as_str()))
            .map(|entry| entry.size)
            .sum();
        if queued <= WAIT_FOR_COMPRESSION_BYTES {
            for (key, pending) in compressions {
                let written = pending.wait().await.map_err(io_at(&files.join(&key)))?;
                built.record(&mut manifest, &key, written);
            }
        } else {
            // Serve the verified site now; the siblings still queued come in the next
            // generation (`add_pending_siblings`), never by writing into this one.
            for (key, mut pending) in compressions {
                match pending.try_take() {
                    Some(written) => {
                        let written = written.map_err(io_at(&files.join(&key)))?;
                        built.record(&mut manifest, &key, written);
                    }
                    None => {
                        if let Some(entry) = manifest.objects.get_mut(&key) {
                            entry.siblings_pending = true;
                        }
                    }
                }
            }
            staging.stop_writers();
            tracing::info!(
                queued_bytes = queued,
                "switching the site in before its last compressions; a second generation adds them"
            );
        }
        built.siblings_pending = pending_siblings(&manifest);
        manifest.created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.store.commit(staging, &manifest)?;
        tracing::info!(generation = %built.id, files = manifest.objects.len(), downloaded = built.downloaded, "new generation switched in");
        Ok(built)
    }

    /// Makes the generation after the current one: every file linked as it is, plus the
    /// compressed siblings its manifest says are pending. `None` when none are. On failure
    /// the current generation stays served, still marked, and the next sync tries again.
    async fn add_pending_siblings(&self) -> Result<Option<(String, usize)>, SyncError> {
        let Some(id) = self.store.current_id() else {
            return Ok(None);
        };
        let current = self.store.current_manifest();
        let pending: Vec<String> = current
            .objects
            .iter()
            .filter(|(_, entry)| entry.siblings_pending)
            .map(|(key, _)| key.clone())
            .collect();
        if pending.is_empty() {
            return Ok(None);
        }
        let (reserved, _) =
            plan::reserve_siblings(&current.objects.keys().map(String::as_str).collect());
        let allowed = |key: &str, ext: &str| !reserved.contains(&format!("{key}.{ext}"));
        let staging = self.store.begin()?;
        let files = staging.files();
        let tmp = staging.tmp();
        let everything: Vec<(String, ManifestEntry, [bool; 2])> = current
            .objects
            .into_iter()
            .map(|(key, entry)| {
                let siblings = [allowed(&key, "br"), allowed(&key, "gz")];
                (key, entry, siblings)
            })
            .collect();
        let old_files = self.store.generation_dir(&id).join("files");
        let (linked, failed) = link_kept(old_files, files.clone(), everything, tmp.clone()).await?;
        if let Some(key) = failed.first() {
            return Err(SyncError::Io {
                path: files.join(key),
                source: std::io::Error::other("cannot link an unchanged file into the generation that adds compressed siblings"),
            });
        }
        let mut manifest = Manifest {
            generation: staging.id.clone(),
            ..Default::default()
        };
        manifest.objects.extend(linked);
        let mut built = Built {
            id: staging.id.clone(),
            ..Default::default()
        };
        let mut compressions = Vec::with_capacity(pending.len());
        for key in &pending {
            // Only the siblings it lacks: one it has is linked already, and its name taken.
            let (has_brotli, has_gzip) = manifest
                .objects
                .get(key.as_str())
                .map_or((false, false), |e| (e.brotli, e.gzip));
            let job = precompress::Job::beside(
                files.join(key),
                allowed(key, "br") && !has_brotli,
                allowed(key, "gz") && !has_gzip,
                tmp.clone(),
            );
            compressions.push((key, self.compressor.submit(job).map_err(io_at(&files))?));
        }
        for (key, pending) in compressions {
            let written = pending.wait().await.map_err(io_at(&files.join(key)))?;
            if let Some(entry) = manifest.objects.get_mut(key.as_str()) {
                entry.brotli |= written.brotli;
                entry.gzip |= written.gzip;
                entry.siblings_pending = false;
            }
            if let Some(why) = written.not_compressed {
                built.not_compressed.push((key.clone(), why));
            }
        }
        manifest.created_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.store.commit(staging, &manifest)?;
        tracing::info!(generation = %built.id, files = pending.len(), "compressed siblings added");
        // The generation before the one just completed is the last one with a site of its
        // own: it stays for rollback.
        match self.store.collect_garbage(2) {
            Ok(removed) if removed > 0 => tracing::debug!(removed, "old generations removed"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot remove old generations"),
        }
        Ok(Some((built.id, pending.len())))
    }
}

/// Files of `manifest` still waiting for their compressed siblings.
fn pending_siblings(manifest: &Manifest) -> usize {
    manifest
        .objects
        .values()
        .filter(|entry| entry.siblings_pending)
        .count()
}

/// Hard-links `entries` from `old` into `new` with the siblings each may keep, off the async
/// threads (thousands of link(2) calls). Returns the linked entries and the keys that failed.
async fn link_kept(
    old: PathBuf,
    new: PathBuf,
    entries: Vec<(String, ManifestEntry, [bool; 2])>,
    tmp: Arc<newfile::TmpDir>,
) -> Result<(Vec<(String, ManifestEntry)>, Vec<String>), SyncError> {
    let path = new.clone();
    tokio::task::spawn_blocking(move || {
        let mut linked = Vec::with_capacity(entries.len());
        let mut failed = Vec::new();
        for (key, mut entry, allowed) in entries {
            let linked_here =
                tmp.while_alive(|| link_with_siblings(&old, &new, &key, &mut entry, allowed));
            match linked_here {
                Ok(()) => linked.push((key, entry)),
                Err(e) => {
                    tracing::warn!(key, error = %e, "cannot reuse an unchanged file");
                    failed.push(key);
                }
            }
        }
        (linked, failed)
    })
    .await
    .map_err(|e| SyncError::Io {
        path,
        source: std::io::Error::other(e),
    })
}

/// What building one generation did.
#[derive(Debug, Default)]
struct Built {
    id: String,
    /// Files of the generation whose siblings a following generation adds.
    siblings_pending: usize,
    downloaded: u64,
    vanished: Vec<String>,
    not_compressed: Vec<(String, NotCompressed)>,
    ignored_redirects: Vec<(String, String, redirect::RedirectRejection)>,
}

impl Built {
    fn record(&mut self, manifest: &mut Manifest, key: &str, written: precompress::Written) {
        if let Some(entry) = manifest.objects.get_mut(key) {
            entry.brotli = written.brotli;
            entry.gzip = written.gzip;
            entry.siblings_pending = false;
        }
        if let Some(why) = written.not_compressed {
            self.not_compressed.push((key.to_owned(), why));
        }
    }
}

/// Downloads one object and links it into the staging tree. `Ok((key, None))`: the object
/// vanished from the bucket since it was listed. The flag says whether it should get
/// compressed siblings.
async fn fetch_object(
    bucket: &Bucket,
    object: RemoteObject,
    files: &Path,
    tmp: &Arc<newfile::TmpDir>,
) -> Result<(String, Option<(ManifestEntry, bool)>), SyncError> {
    let (entry, new) = match bucket.download(&object, tmp).await {
        Ok(downloaded) => downloaded,
        Err(SourceError::Vanished { key }) => return Ok((key, None)),
        Err(e) => return Err(e.into()),
    };
    let dest = files.join(&object.key);
    // An existing name is an error for this object, never overwritten (module doc).
    tmp.publish(new, &dest).map_err(io_at(&dest))?;
    let compress = worth_compressing(&object.key, &entry);
    Ok((object.key, Some((entry, compress))))
}

/// Whether an object gets compressed siblings: text, stored unencoded, large enough.
fn worth_compressing(key: &str, entry: &ManifestEntry) -> bool {
    let content_type =
        crate::content_type::effective_content_type(key, entry.content_type.as_deref());
    precompress::is_compressible(content_type.to_str().unwrap_or(""))
        && entry.content_encoding.is_none()
        && entry.size >= precompress::MIN_SIZE
}

/// Links a kept file and those of its siblings that exist and that the plan still allows
/// (`allowed`: brotli, gzip); the entry says afterwards which siblings the new tree has.
fn link_with_siblings(
    old: &Path,
    new: &Path,
    key: &str,
    entry: &mut ManifestEntry,
    allowed: [bool; 2],
) -> std::io::Result<()> {
    let target = new.join(key);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::hard_link(old.join(key), &target)?;
    entry.brotli &= allowed[0];
    entry.gzip &= allowed[1];
    for (present, ext) in [(entry.brotli, "br"), (entry.gzip, "gz")] {
        if present {
            std::fs::hard_link(
                precompress::sibling(&old.join(key), ext),
                precompress::sibling(&target, ext),
            )?;
        }
    }
    Ok(())
}

/// The wait after `failures` (≥ 1) failed syncs in a row: 10 s, doubling to 5 minutes (never
/// more than the interval, [`Syncer::next_delay`]). A Pi often starts before its network: a
/// USB Ethernet chip that registers late, a switch that boots slower after a power cut. Its
/// first sync then fails at once, and waiting a whole interval for the next (an hour, if the
/// owner set one) would leave it serving nothing, or without its certificate, for that long.
/// Doubling keeps a bucket that refuses every request from being asked more than once every
/// 5 minutes.
pub(crate) fn retry_after(failures: u32) -> Duration {
    crate::backoff::doubling(
        Duration::from_secs(10),
        failures.saturating_sub(1),
        Duration::from_secs(300),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_sync_is_retried_soon_then_less_often() {
        let seconds: Vec<u64> = (1..=9).map(|n| retry_after(n).as_secs()).collect();
        assert_eq!(seconds, [10, 20, 40, 80, 160, 300, 300, 300, 300]);
        assert_eq!(retry_after(u32::MAX).as_secs(), 300, "no overflow");
    }

    #[test]
    fn status_counts_failures_until_a_sync_succeeds() {
        let mut status = SyncStatus::default();
        let now = SystemTime::now();
        let failure = Err(SyncError::Busy {
            path: PathBuf::from("/data"),
        });
        status.record(now, &failure);
        status.record(now, &failure);
        assert_eq!(status.consecutive_failures, 2);
        assert!(status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("another sync")));
        assert!(status.last_success.is_none());
        let report = SyncReport {
            generation: Some("000003".into()),
            ..Default::default()
        };
        status.record(now, &Ok(report));
        assert_eq!(status.consecutive_failures, 0);
        assert_eq!(status.last_error, None);
        assert_eq!(status.generation.as_deref(), Some("000003"));
    }
}
