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
pub mod policy;
pub mod reply;
pub mod resolve;

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Config;
use index::{IndexError, SiteIndex};
use policy::HeaderPolicy;

/// Everything the handlers need, shared by all connections. The index can be replaced
/// while requests are in flight: each request takes its own snapshot, and files already
/// opened keep their bytes even if the tree they came from is replaced.
pub struct Site {
    index: ArcSwap<SiteIndex>,
    root: PathBuf,
    /// The root is a generation synced from S3 (its manifest sits beside `files/`).
    synced: bool,
    policy: HeaderPolicy,
    health_path: String,
    serve_dotfiles: bool,
    hostnames: Vec<String>,
    https_port: u16,
}

impl Site {
    pub fn new(config: &Config) -> Result<Self, IndexError> {
        let site = &config.site;
        let root = config.site_root();
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
            root,
            synced,
            policy: HeaderPolicy::from_config(site),
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
    pub fn reindex(&self) -> Result<usize, IndexError> {
        let index = build_index(&self.root, self.serve_dotfiles, self.synced)?;
        let files = index.len();
        self.index.store(Arc::new(index));
        Ok(files)
    }

    /// The site has files to serve.
    pub fn has_content(&self) -> bool {
        !self.index.load().is_empty()
    }

    /// Tells redirects which port HTTPS really listens on (it differs from the config when
    /// the config asked for port 0).
    pub fn set_https_port(&mut self, port: u16) {
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
    // even if a sync switches it meanwhile.
    let resolved = root.canonicalize().map_err(|source| IndexError::Root {
        path: root.to_owned(),
        source,
    })?;
    let manifest_path = resolved
        .parent()
        .map(|generation| generation.join(crate::sync::manifest::MANIFEST_FILE));
    let manifest = manifest_path.and_then(|path| match crate::sync::manifest::Manifest::read(&path) {
        Ok(manifest) => Some(manifest),
        Err(e) => {
            tracing::warn!(error = %e, "generation without a readable manifest; serving by extension");
            None
        }
    });
    SiteIndex::build(&resolved, serve_dotfiles, manifest.as_ref())
}
