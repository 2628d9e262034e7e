//! The site server's request handling: what to answer, independent of sockets and TLS
//! (those are in `crate::server`).
//!
//! - `resolve`: URL path → index key, rejecting hostile paths;
//! - `index`: the in-memory map of servable files, swapped whole;
//! - `reply`: one file → one response (encodings, validators, conditionals, ranges);
//! - `body`: streaming file bodies;
//! - `policy`: headers on every response;
//! - `handler`: the pipeline that ties them together.

pub mod body;
pub mod handler;
pub mod index;
pub mod open_files;
pub mod policy;
pub mod reply;
pub mod resolve;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::Config;
use index::{IndexError, SiteIndex};
use policy::HeaderPolicy;

/// Everything the handlers need, shared by all connections. The index can be replaced
/// while requests are in flight: each request takes its own snapshot, and files already
/// opened keep their bytes even if the tree they came from is replaced.
pub struct Site {
    index: ArcSwap<SiteIndex>,
    /// One re-index at a time (SIGHUP's and the sync's can overlap): each resolves `current`
    /// and stores its index under the lock, so an index of an older generation can never be
    /// stored after a newer one.
    reindexing: Mutex<()>,
    root: PathBuf,
    /// The root is a generation synced from S3 (its manifest sits beside `files/`).
    synced: bool,
    policy: HeaderPolicy,
    /// The descriptors responses read from (`limits.max_open_files`).
    open_files: Arc<open_files::OpenFiles>,
    health_path: String,
    serve_dotfiles: bool,
    hostnames: Vec<String>,
    https_port: u16,
}

impl Site {
    pub fn new(config: &Config) -> Result<Self, IndexError> {
        let site = &config.site;
        let root = served_root(config);
        let synced = config.s3.is_some();
        let index = match build_index(&root, site.serve_dotfiles, synced) {
            Ok(index) => index,
            // Before the first sync there is no generation yet: serve the health path and
            // 404s until there is.
            Err(e) if synced => {
                tracing::warn!(error = %e, "no site generation yet; waiting for the first sync");
                SiteIndex::default()
            }
            Err(e) => return Err(e),
        };
        tracing::info!(root = %index.root().display(), files = index.len(), skipped = index.skipped(), "site indexed");
        Ok(Self {
            index: ArcSwap::from_pointee(index),
            reindexing: Mutex::new(()),
            root,
            synced,
            policy: HeaderPolicy::from_config(site),
            // A synced generation is never rewritten; a root served as it is may be edited.
            open_files: open_files::OpenFiles::new(config.limits.max_open_files, !synced),
            health_path: site.health_path.clone(),
            serve_dotfiles: site.serve_dotfiles,
            hostnames: site.hostnames.clone(),
            https_port: config.listen.https.port(),
        })
    }

    /// The current index; hold it for the duration of one request.
    pub fn index(&self) -> Arc<SiteIndex> {
        self.index.load_full()
    }

    /// Walks the root again and swaps the new index in at once. On error the old index stays.
    pub(crate) fn reindex(&self) -> Result<usize, IndexError> {
        // A panic while indexing leaves nothing half-done behind the lock: carry on.
        let _one_at_a_time = self
            .reindexing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let index = build_index(&self.root, self.serve_dotfiles, self.synced)?;
        let files = index.len();
        self.index.store(Arc::new(index));
        // The old generation's descriptors close as soon as no response reads them, so its
        // space is freed when it is collected.
        self.open_files.clear();
        Ok(files)
    }

    /// Whether `current` has moved away from the generation being served (a sync by another
    /// process, `pi-failover sync --once`): the watcher then re-indexes.
    pub(crate) fn behind_current(&self) -> bool {
        if !self.synced {
            return false;
        }
        match self.root.canonicalize() {
            Ok(resolved) => resolved != self.index.load().root(),
            // No generation yet: nothing to move to.
            Err(_) => false,
        }
    }

    /// The site has files to serve.
    pub(crate) fn has_content(&self) -> bool {
        !self.index.load().is_empty()
    }

    /// Tells redirects which port HTTPS really listens on (it differs from the config when
    /// the config asked for port 0).
    pub(crate) fn set_https_port(&mut self, port: u16) {
        self.https_port = port;
    }
}

/// Indexes a plain directory, or a synced generation with its manifest's metadata.
fn build_index(
    root: &std::path::Path,
    serve_dotfiles: bool,
    synced: bool,
) -> Result<SiteIndex, IndexError> {
    if !synced {
        return SiteIndex::build(root, serve_dotfiles, None);
    }
    // Resolve `current` once, so the files and the manifest come from the same generation
    // even if a sync switches it meanwhile, and lease that generation so no collection
    // removes it while it is served. A generation collected between the two is seen under
    // the lease (no manifest): resolve again.
    let mut attempts = 0;
    let (resolved, lease) = loop {
        attempts += 1;
        let resolved = root.canonicalize().map_err(|source| IndexError::Root {
            path: root.to_owned(),
            source,
        })?;
        let generation = resolved.parent().unwrap_or(&resolved).to_owned();
        match crate::generation::lease(&generation) {
            Ok(Some(lease)) => break (resolved, Some(lease)),
            Ok(None) if attempts < 3 => {}
            Ok(None) => break (resolved, None),
            Err(e) => {
                tracing::warn!(error = %e, "cannot lease the generation; serving it unleased");
                break (resolved, None);
            }
        }
    };
    let manifest_path = resolved
        .parent()
        .map(|generation| generation.join(crate::generation::manifest::MANIFEST_FILE));
    let manifest = manifest_path.and_then(|path| match crate::generation::manifest::Manifest::read(&path) {
        Ok(manifest) => Some(manifest),
        Err(e) => {
            tracing::warn!(error = %e, "generation without a readable manifest; serving by extension");
            None
        }
    });
    let index = SiteIndex::build(&resolved, serve_dotfiles, manifest.as_ref())?;
    Ok(match lease {
        Some(lease) => index.hold(lease),
        None => index,
    })
}

/// The directory the site is served from: `site.root`, or the current generation.
pub(crate) fn served_root(config: &Config) -> PathBuf {
    match &config.site.root {
        Some(root) if config.s3.is_none() => root.clone(),
        _ => crate::generation::current_files(&config.storage.data_dir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    /// A generation of `files` pages, made current the way the sync does it (a new symlink
    /// renamed over `current`).
    fn switch_to(base: &Path, generation: usize, files: usize) {
        let dir = base.join(format!("generations/{generation:06}/files"));
        std::fs::create_dir_all(&dir).expect("generation");
        for i in 0..files {
            std::fs::write(dir.join(format!("page-{i}.html")), "x").expect("page");
        }
        let link = base.join("current.new");
        std::os::unix::fs::symlink(format!("generations/{generation:06}"), &link).expect("symlink");
        std::fs::rename(&link, base.join("current")).expect("switch");
    }

    /// SIGHUP's re-index can overlap the one a sync runs after switching generations. The
    /// index left in place must be the current generation's: a SIGHUP that resolved the old
    /// generation must not store it over the new one (the Pi would serve the old site until
    /// the next sync, an hour later by default).
    #[test]
    fn a_reindex_of_the_old_generation_never_lands_over_the_new_one() {
        let data = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "[site]\nhostnames = [\"localhost\"]\n[storage]\ndata_dir = \"{}\"\n\
             [s3]\nbucket = \"site\"\n[[tls.certificates]]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
            data.path().display()
        );
        let config = crate::config::parse(&text, Path::new("pi-failover.toml")).expect("config");
        let base = data.path().join("site");
        switch_to(&base, 0, 1);
        let site = Arc::new(Site::new(&config).expect("site"));

        for round in 1..=3 {
            // A big generation is current; SIGHUP starts indexing it (slow)...
            let big = 2 * round;
            switch_to(&base, big, 2000);
            let hup = std::thread::spawn({
                let site = site.clone();
                move || site.reindex().expect("SIGHUP's re-index")
            });
            std::thread::sleep(Duration::from_millis(5));
            // ...while a sync switches to a small one and indexes it (fast).
            switch_to(&base, big + 1, 1);
            site.reindex().expect("the sync's re-index");
            hup.join().expect("SIGHUP thread");

            let current = base.join("current/files").canonicalize().expect("current");
            assert_eq!(site.index().root(), current, "round {round}");
        }
    }
}
