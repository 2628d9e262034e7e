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
    policy: HeaderPolicy,
    health_path: String,
    serve_dotfiles: bool,
    hostnames: Vec<String>,
    https_port: u16,
}

impl Site {
    pub fn new(config: &Config) -> Result<Self, IndexError> {
        let site = &config.site;
        let index = SiteIndex::build(&site.root, site.serve_dotfiles)?;
        tracing::info!(root = %index.root().display(), files = index.len(), skipped = index.skipped(), "site indexed");
        Ok(Self {
            index: ArcSwap::from_pointee(index),
            root: site.root.clone(),
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
        let index = SiteIndex::build(&self.root, self.serve_dotfiles)?;
        let files = index.len();
        self.index.store(Arc::new(index));
        Ok(files)
    }

    /// Tells redirects which port HTTPS really listens on (it differs from the config when
    /// the config asked for port 0).
    pub fn set_https_port(&mut self, port: u16) {
        self.https_port = port;
    }
}
