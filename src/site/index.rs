//! The in-memory index of one site tree: URL key → file on disk, content type and
//! precompressed siblings.
//!
//! Built once per tree (at start, on SIGHUP, and — with the S3 sync — once per generation)
//! so that a request costs a hash lookup instead of a directory walk, and so that the set of
//! servable files is decided here, away from hostile input: only regular files found inside
//! the root are in the map. A symlink is followed only when its target resolves inside the
//! root; the index stores the resolved path, so serving never follows a link again.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use http::header::{HeaderName, HeaderValue};

use crate::content_type::effective_content_type;
use crate::generation::manifest::Manifest;

/// A file that can be served.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Absolute path of the regular file, symlinks already resolved.
    pub path: PathBuf,
    pub content_type: HeaderValue,
    pub brotli: Option<PathBuf>,
    pub gzip: Option<PathBuf>,
    /// The object is stored encoded (uploaded with Content-Encoding): sent as it is.
    pub content_encoding: Option<HeaderValue>,
    /// Headers from the object's metadata: Cache-Control, Content-Disposition.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `x-amz-website-redirect-location`: answered with a 301 to it.
    pub redirect: Option<HeaderValue>,
}

/// The answer of a lookup.
#[derive(Debug)]
pub enum Lookup<'a> {
    File(&'a Entry),
    /// The key names a directory with an index page, but the URL lacks the trailing slash.
    AddSlash,
    NotFound,
}

#[derive(Debug, Default)]
pub struct SiteIndex {
    root: PathBuf,
    files: HashMap<String, Entry>,
    /// Directories (as keys) that hold an `index.html`.
    directories: HashSet<String>,
    skipped: usize,
    /// For a synced generation: the shared lock that keeps it from being collected while
    /// this index (and so any request still using it) lives.
    lease: Option<std::fs::File>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("site root {path}: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

const INDEX_FILE: &str = "index.html";

impl SiteIndex {
    /// Walks `root` and indexes every servable file. Unreadable entries and links out of the
    /// root are skipped with a warning; only an unreadable root is an error.
    ///
    /// With a generation's `manifest`, each file also gets the headers its S3 object carried.
    pub fn build(
        root: &Path,
        serve_dotfiles: bool,
        manifest: Option<&Manifest>,
    ) -> Result<Self, IndexError> {
        let root = root.canonicalize().map_err(|source| IndexError::Root {
            path: root.to_owned(),
            source,
        })?;
        let mut index = SiteIndex {
            root: root.clone(),
            ..Default::default()
        };
        let mut pending = vec![(root.clone(), String::new())];
        let mut found = Vec::new();
        while let Some((dir, prefix)) = pending.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) => {
                    if prefix.is_empty() {
                        return Err(IndexError::Root {
                            path: root,
                            source: e,
                        });
                    }
                    tracing::warn!(dir = %dir.display(), error = %e, "skipping unreadable directory");
                    index.skipped += 1;
                    continue;
                }
            };
            for entry in entries.flatten() {
                let Ok(name) = entry.file_name().into_string() else {
                    tracing::warn!(path = %entry.path().display(), "skipping a name that is not UTF-8");
                    index.skipped += 1;
                    continue;
                };
                if is_hidden(&name) && !serve_dotfiles {
                    continue;
                }
                let key = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let Ok(file_type) = entry.file_type() else {
                    index.skipped += 1;
                    continue;
                };
                if file_type.is_dir() {
                    pending.push((entry.path(), key));
                } else if file_type.is_file() {
                    found.push((key, entry.path()));
                } else if file_type.is_symlink() {
                    if let Some(target) = resolve_link_inside(&entry.path(), &root) {
                        found.push((key, target));
                    } else {
                        tracing::warn!(path = %entry.path().display(),
                            "skipping a symlink that leaves the site root or is not a file");
                        index.skipped += 1;
                    }
                }
            }
        }
        let paths: HashMap<&str, &PathBuf> = found.iter().map(|(k, p)| (k.as_str(), p)).collect();
        let sibling = |key: &str, ext: &str| {
            paths
                .get(format!("{key}.{ext}").as_str())
                .map(|p| (*p).clone())
        };
        let mut files = HashMap::with_capacity(found.len());
        for (key, path) in &found {
            if let Some(dir) = key.strip_suffix(INDEX_FILE) {
                if dir.is_empty() || dir.ends_with('/') {
                    index
                        .directories
                        .insert(dir.trim_end_matches('/').to_owned());
                }
            }
            let object = manifest.and_then(|m| m.objects.get(key));
            // A synced generation serves the bucket's objects, and only them: the siblings
            // the sync generated are encodings of their original, not pages of their own.
            if manifest.is_some() && object.is_none() {
                continue;
            }
            // In a synced generation only the siblings the sync made from this very file are
            // its encodings: a bucket object that is named `x.br` is served at its own URL,
            // never as `x` (nothing says its bytes decode to `x`'s).
            let made = |flag: fn(&crate::generation::manifest::ManifestEntry) -> bool| {
                manifest.is_none() || object.is_some_and(flag)
            };
            let mut entry = Entry {
                path: path.clone(),
                content_type: effective_content_type(
                    key,
                    object.and_then(|o| o.content_type.as_deref()),
                ),
                brotli: sibling(key, "br").filter(|_| made(|o| o.brotli)),
                gzip: sibling(key, "gz").filter(|_| made(|o| o.gzip)),
                content_encoding: None,
                headers: Vec::new(),
                redirect: None,
            };
            if let Some(object) = object {
                apply_object_metadata(&mut entry, object);
            }
            files.insert(key.clone(), entry);
        }
        index.files = files;
        Ok(index)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Ties the generation's lease to this index: released when the last request using the
    /// index is done.
    pub fn hold(mut self, lease: std::fs::File) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Number of servable files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Entries left out because they could not be served safely.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.files.get(key)
    }

    /// Finds what a request for `key` should get; `directory` is true when the URL ended in
    /// a slash.
    pub fn lookup(&self, key: &str, directory: bool) -> Lookup<'_> {
        if directory {
            let index_key = if key.is_empty() {
                INDEX_FILE.to_owned()
            } else {
                format!("{key}/{INDEX_FILE}")
            };
            return self
                .files
                .get(&index_key)
                .map_or(Lookup::NotFound, Lookup::File);
        }
        if let Some(entry) = self.files.get(key) {
            return Lookup::File(entry);
        }
        if self.directories.contains(key) {
            return Lookup::AddSlash;
        }
        Lookup::NotFound
    }
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.') && name != ".well-known"
}

/// The symlink's final target, if it is a regular file inside `root` (canonical).
fn resolve_link_inside(link: &Path, root: &Path) -> Option<PathBuf> {
    let target = link.canonicalize().ok()?;
    (target.starts_with(root) && target.is_file()).then_some(target)
}

fn apply_object_metadata(entry: &mut Entry, object: &crate::generation::manifest::ManifestEntry) {
    let value = |text: &Option<String>| text.as_deref().and_then(|t| HeaderValue::from_str(t).ok());
    if let Some(encoding) = value(&object.content_encoding) {
        // The stored bytes are already encoded; our own siblings would be of the encoded form.
        entry.content_encoding = Some(encoding);
        entry.brotli = None;
        entry.gzip = None;
    }
    for (name, text) in [
        (http::header::CACHE_CONTROL, &object.cache_control),
        (
            http::header::CONTENT_DISPOSITION,
            &object.content_disposition,
        ),
    ] {
        if let Some(v) = value(text) {
            entry.headers.push((name, v));
        }
    }
    // The sync checked the location against the site's hostnames; a manifest written before
    // it did is held to the shape rules at least (`//host`, `/\host`: an open redirect).
    entry.redirect = object
        .redirect_location
        .as_deref()
        .filter(|location| crate::generation::redirect::check_shape(location).is_ok())
        .and_then(|location| HeaderValue::from_str(location).ok());
}
