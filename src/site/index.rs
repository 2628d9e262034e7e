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

use http::HeaderValue;

/// A file that can be served.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Absolute path of the regular file, symlinks already resolved.
    pub path: PathBuf,
    pub content_type: HeaderValue,
    pub brotli: Option<PathBuf>,
    pub gzip: Option<PathBuf>,
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
    pub fn build(root: &Path, serve_dotfiles: bool) -> Result<Self, IndexError> {
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
                    match resolve_link_inside(&entry.path(), &root) {
                        Some(target) => found.push((key, target)),
                        None => {
                            tracing::warn!(path = %entry.path().display(),
                                "skipping a symlink that leaves the site root or is not a file");
                            index.skipped += 1;
                        }
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
            files.insert(
                key.clone(),
                Entry {
                    path: path.clone(),
                    content_type: content_type_for(key),
                    brotli: sibling(key, "br"),
                    gzip: sibling(key, "gz"),
                },
            );
        }
        index.files = files;
        Ok(index)
    }

    pub fn root(&self) -> &Path {
        &self.root
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

/// Content-Type by extension, with a UTF-8 charset on text, as nginx's `charset utf-8`
/// with `charset_types` does for a Jekyll site.
pub fn content_type_for(key: &str) -> HeaderValue {
    let mime = mime_guess::from_path(key).first_or_octet_stream();
    let essence = mime.essence_str();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/rss+xml"
                | "application/atom+xml"
                | "application/manifest+json"
                | "image/svg+xml"
        );
    let value = if textual {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    };
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_gets_a_charset_and_binary_does_not() {
        assert_eq!(content_type_for("a/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type_for("main.css"), "text/css; charset=utf-8");
        assert_eq!(
            content_type_for("main.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type_for("feed.xml"), "text/xml; charset=utf-8");
        assert_eq!(content_type_for("logo.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(content_type_for("photo.jpg"), "image/jpeg");
        assert_eq!(content_type_for("up.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
    }
}
