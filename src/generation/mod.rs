//! Site generations on the data partition: the layout and the lock protocol shared by their
//! writer (`sync::store`) and their reader (`site`), below both.
//!
//! ```text
//! <data_dir>/site/
//!   generations/000041/{files/, manifest.json}   the previous good generation, kept
//!   generations/000042/{files/, manifest.json}   the current one
//!   current -> generations/000042                 one symlink, replaced by rename(2)
//!   staging/000043/{files/, tmp/}                 being built; never served
//! ```
//! A process serving a generation holds a shared `flock` on its directory ([`lease`]); the
//! writer removes only generations it can lock exclusively, manifest first, so a generation
//! is never deleted under a running server (a `sync --once` beside the appliance). What a
//! generation's files are, with the bucket's metadata, is its [`manifest`]; which redirects it
//! may answer with, [`redirect`].

pub mod manifest;
pub mod redirect;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use manifest::MANIFEST_FILE;

pub(crate) const SITE_DIR: &str = "site";
pub(crate) const GENERATIONS: &str = "generations";
pub(crate) const STAGING: &str = "staging";
pub(crate) const CURRENT: &str = "current";
pub(crate) const FILES: &str = "files";
/// The layout drawn above, as `<data_dir>/site/FORMAT` names it (`crate::data_format`).
pub(crate) const SITE_FORMAT: u32 = 1;
pub(crate) const TMP: &str = "tmp";

/// A file system call on the generations that failed, with what it was doing and where.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct FsError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: io::Error,
}

pub(crate) fn at<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The directory the site server serves when the site comes from S3.
pub(crate) fn current_files(data_dir: &Path) -> PathBuf {
    data_dir.join(SITE_DIR).join(CURRENT).join(FILES)
}

/// A server's claim on the generation it serves: a shared `flock` on the generation's
/// directory, released when the returned file is closed. `None` when the generation was
/// removed before the lease was taken (resolve `current` again).
pub fn lease(generation_dir: &Path) -> Result<Option<fs::File>, FsError> {
    use rustix::fs::{flock, FlockOperation};
    let dir = fs::File::open(generation_dir).map_err(at("open", generation_dir))?;
    flock(&dir, FlockOperation::LockShared).map_err(|e| at("lock", generation_dir)(e.into()))?;
    // Collection removes the manifest under its exclusive lock, so a manifest seen under
    // the shared lock stays.
    Ok(generation_dir.join(MANIFEST_FILE).is_file().then_some(dir))
}
