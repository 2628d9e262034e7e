//! The pure planning step: what the next generation needs, from the listing alone.
//!
//! An object is unchanged when its key, ETag and size match the current manifest; ETags are
//! compared as opaque strings, so multipart (`…-N`) and SSE ETags work too. No HEAD per object,
//! no hashing of local files: a no-op sync costs the list requests and nothing else.
//!
//! The plan also reserves names: the appliance generates `key.br` and `key.gz` beside
//! compressible files, and a bucket object of such a name, or a directory of that name in
//! the bucket, wins. That sibling is then neither generated nor linked from the previous
//! generation; for a directory the report says which sibling it cost.

use std::collections::{BTreeMap, BTreeSet};

use super::key::{key_to_relative_path, KeyRejection};
use crate::generation::manifest::Manifest;

/// One object as ListObjectsV2 reports it, with the configured prefix already removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    pub key: String,
    pub etag: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub key: String,
    pub reason: KeyRejection,
}

/// A generated sibling that a directory of the bucket's took the name of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiblingConflict {
    /// The object that gets no such sibling.
    pub key: String,
    /// The sibling's name, a directory in the bucket.
    pub sibling: String,
}

/// The siblings the appliance generates, by file-name extension.
pub(crate) const SIBLING_EXTENSIONS: [&str; 2] = ["br", "gz"];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Unchanged: hard-linked from the current generation.
    pub keep: Vec<String>,
    /// New or changed: downloaded and verified.
    pub fetch: Vec<RemoteObject>,
    /// In the current generation but gone from the bucket: left out of the next one.
    pub remove: Vec<String>,
    /// Keys that cannot be local paths: never written.
    pub skipped: Vec<Skipped>,
    /// Size of the next generation (kept plus fetched).
    pub total_bytes: u64,
    pub fetch_bytes: u64,
    /// Sibling names (`key.br`, `key.gz`) the bucket uses: never generated nor linked.
    pub reserved: BTreeSet<String>,
    /// The reserved siblings that are directories in the bucket, for the report.
    pub sibling_conflicts: Vec<SiblingConflict>,
}

impl Plan {
    pub(crate) fn is_noop(&self) -> bool {
        self.fetch.is_empty() && self.remove.is_empty()
    }

    /// Whether the appliance may make `key.<ext>` in the next generation.
    pub(crate) fn sibling_allowed(&self, key: &str, ext: &str) -> bool {
        !self.reserved.contains(&format!("{key}.{ext}"))
    }
}

/// Limits a plan must respect before anything is written.
#[derive(Debug, Clone)]
pub struct PlanLimits {
    pub max_objects: usize,
    pub max_total_bytes: u64,
    /// Largest share of the current site one sync may delete (0.0–1.0).
    pub max_delete_fraction: f64,
    /// Accept a listing with no objects (an emptied bucket wipes the standby copy).
    pub allow_empty: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("the bucket listing is empty; refusing to replace a site of {current} files with nothing (set s3.allow_empty = true if that is what you want)")]
    EmptyListing { current: usize },
    #[error("the sync would delete {remove} of {current} files ({percent:.0} %), more than s3.max_delete_fraction allows")]
    TooManyDeletes {
        remove: usize,
        current: usize,
        percent: f64,
    },
    #[error("the bucket holds {objects} objects, more than s3.max_objects = {limit}")]
    TooManyObjects { objects: usize, limit: usize },
    #[error("the site would take {bytes} bytes, more than s3.max_total_bytes = {limit}")]
    TooManyBytes { bytes: u64, limit: u64 },
}

/// The sibling names (`key.br`, `key.gz`) that `keys` use as objects or as directories, and
/// the latter for the report.
pub(crate) fn reserve_siblings(keys: &BTreeSet<&str>) -> (BTreeSet<String>, Vec<SiblingConflict>) {
    let directories: BTreeSet<&str> = keys
        .iter()
        .flat_map(|key| key.match_indices('/').map(move |(i, _)| &key[..i]))
        .collect();
    let mut reserved = BTreeSet::new();
    let mut conflicts = Vec::new();
    for key in keys {
        for ext in SIBLING_EXTENSIONS {
            let sibling = format!("{key}.{ext}");
            if directories.contains(sibling.as_str()) {
                conflicts.push(SiblingConflict {
                    key: (*key).to_owned(),
                    sibling: sibling.clone(),
                });
                reserved.insert(sibling);
            } else if keys.contains(sibling.as_str()) {
                reserved.insert(sibling);
            }
        }
    }
    (reserved, conflicts)
}

/// Compares a listing with the current generation's manifest.
pub fn plan(
    listing: &[RemoteObject],
    current: &Manifest,
    limits: &PlanLimits,
) -> Result<Plan, PlanError> {
    let mut out = Plan::default();
    let mut accepted: BTreeMap<&str, &RemoteObject> = BTreeMap::new();
    for object in listing {
        match key_to_relative_path(&object.key) {
            Ok(_) => {
                accepted.insert(object.key.as_str(), object);
            }
            Err(reason) => out.skipped.push(Skipped {
                key: object.key.clone(),
                reason,
            }),
        }
    }
    // A key that is also a directory of other keys cannot be both a file and a directory on
    // disk: the file loses (a site's pages live under directories, not beside them).
    let directories: BTreeSet<&str> = accepted
        .keys()
        .flat_map(|key| key.match_indices('/').map(move |(i, _)| &key[..i]))
        .collect();
    accepted.retain(|key, _| {
        let conflict = directories.contains(key);
        if conflict {
            out.skipped.push(Skipped {
                key: (*key).to_owned(),
                reason: KeyRejection::FileDirectoryConflict,
            });
        }
        !conflict
    });
    (out.reserved, out.sibling_conflicts) = reserve_siblings(&accepted.keys().copied().collect());

    if accepted.is_empty() && !limits.allow_empty && !current.objects.is_empty() {
        return Err(PlanError::EmptyListing {
            current: current.objects.len(),
        });
    }
    if accepted.len() > limits.max_objects {
        return Err(PlanError::TooManyObjects {
            objects: accepted.len(),
            limit: limits.max_objects,
        });
    }
    for (key, object) in &accepted {
        out.total_bytes += object.size;
        match current.objects.get(*key) {
            Some(entry) if entry.etag == object.etag && entry.size == object.size => {
                out.keep.push((*key).to_owned());
            }
            _ => {
                out.fetch_bytes += object.size;
                out.fetch.push((*object).clone());
            }
        }
    }
    if out.total_bytes > limits.max_total_bytes {
        return Err(PlanError::TooManyBytes {
            bytes: out.total_bytes,
            limit: limits.max_total_bytes,
        });
    }
    out.remove = current
        .objects
        .keys()
        .filter(|key| !accepted.contains_key(key.as_str()))
        .cloned()
        .collect();
    let wiping_on_purpose = accepted.is_empty() && limits.allow_empty;
    if !current.objects.is_empty() && !wiping_on_purpose {
        let fraction = out.remove.len() as f64 / current.objects.len() as f64;
        if fraction > limits.max_delete_fraction {
            return Err(PlanError::TooManyDeletes {
                remove: out.remove.len(),
                current: current.objects.len(),
                percent: fraction * 100.0,
            });
        }
    }
    out.skipped.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::manifest::ManifestEntry;

    fn object(key: &str, etag: &str, size: u64) -> RemoteObject {
        RemoteObject {
            key: key.into(),
            etag: etag.into(),
            size,
        }
    }

    fn manifest(entries: &[(&str, &str, u64)]) -> Manifest {
        let mut m = Manifest::default();
        for (key, etag, size) in entries {
            m.objects.insert(
                (*key).into(),
                ManifestEntry {
                    etag: (*etag).into(),
                    size: *size,
                    ..Default::default()
                },
            );
        }
        m
    }

    fn limits() -> PlanLimits {
        PlanLimits {
            max_objects: 1000,
            max_total_bytes: 1 << 30,
            max_delete_fraction: 0.5,
            allow_empty: false,
        }
    }

    #[test]
    fn unchanged_changed_new_and_removed_objects_are_told_apart_by_etag_and_size() {
        let current = manifest(&[
            ("a", "\"1\"", 10),
            ("b", "\"2\"", 20),
            ("c", "\"3\"", 30),
            ("d", "\"4\"", 1),
        ]);
        let listing = [
            object("a", "\"1\"", 10),   // unchanged
            object("b", "\"2b\"", 20),  // same size, new ETag: a typo fix
            object("c", "\"3\"", 31),   // same ETag, other size
            object("e", "\"5-2\"", 50), // new, multipart ETag
        ];
        let p = plan(&listing, &current, &limits()).expect("plan");
        assert_eq!(p.keep, ["a"]);
        let fetched: Vec<_> = p.fetch.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(fetched, ["b", "c", "e"]);
        assert_eq!(p.remove, ["d"]);
        assert_eq!(p.total_bytes, 111);
        assert_eq!(p.fetch_bytes, 101);
    }

    #[test]
    fn identical_listing_is_a_noop() {
        let current = manifest(&[("a", "\"1\"", 10)]);
        let p = plan(&[object("a", "\"1\"", 10)], &current, &limits()).expect("plan");
        assert!(p.is_noop());
    }

    #[test]
    fn hostile_and_conflicting_keys_are_skipped_and_the_rest_planned() {
        let listing = [
            object("../escape", "\"x\"", 1),
            object("dir/", "\"x\"", 0),
            object("page", "\"x\"", 1),
            object("page/index.html", "\"y\"", 1),
            object("ok.html", "\"z\"", 1),
        ];
        let p = plan(&listing, &Manifest::default(), &limits()).expect("plan");
        let fetched: Vec<_> = p.fetch.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(fetched, ["ok.html", "page/index.html"]);
        let skipped: Vec<_> = p
            .skipped
            .iter()
            .map(|s| (s.key.as_str(), s.reason))
            .collect();
        assert_eq!(
            skipped,
            [
                ("../escape", KeyRejection::BadSegment),
                ("dir/", KeyRejection::DirectoryMarker),
                ("page", KeyRejection::FileDirectoryConflict),
            ]
        );
    }

    #[test]
    fn an_empty_listing_never_wipes_the_site_unless_allowed() {
        let current = manifest(&[("a", "\"1\"", 10)]);
        assert_eq!(
            plan(&[], &current, &limits()),
            Err(PlanError::EmptyListing { current: 1 })
        );
        let allow = PlanLimits {
            allow_empty: true,
            ..limits()
        };
        assert_eq!(plan(&[], &current, &allow).expect("allowed").remove, ["a"]);
    }

    #[test]
    fn deleting_more_than_the_allowed_fraction_is_refused() {
        let current = manifest(&[("a", "1", 1), ("b", "2", 1), ("c", "3", 1), ("d", "4", 1)]);
        let err = plan(&[object("a", "1", 1)], &current, &limits()).expect_err("75 % deleted");
        assert!(matches!(
            err,
            PlanError::TooManyDeletes {
                remove: 3,
                current: 4,
                ..
            }
        ));
        assert!(plan(
            &[object("a", "1", 1), object("b", "2", 1)],
            &current,
            &limits()
        )
        .is_ok());
    }

    #[test]
    fn object_count_and_size_limits_are_enforced() {
        let small = PlanLimits {
            max_objects: 1,
            max_total_bytes: 15,
            ..limits()
        };
        let two = [object("a", "1", 10), object("b", "2", 10)];
        assert!(matches!(
            plan(&two, &Manifest::default(), &small),
            Err(PlanError::TooManyObjects { .. })
        ));
        let big = [object("a", "1", 16)];
        assert!(matches!(
            plan(&big, &Manifest::default(), &small),
            Err(PlanError::TooManyBytes { .. })
        ));
    }

    #[test]
    fn names_the_bucket_uses_are_reserved_from_generated_siblings() {
        let listing = [
            object("page.html", "1", 600),
            object("page.html.br", "2", 100), // the publisher's own precompressed file
            object("style.css", "3", 600),
            object("style.css.gz/readme.txt", "4", 10), // a directory named like a sibling
            object("plain.html", "5", 600),
        ];
        let p = plan(&listing, &Manifest::default(), &limits()).expect("plan");
        assert!(!p.sibling_allowed("page.html", "br"));
        assert!(p.sibling_allowed("page.html", "gz"));
        assert!(p.sibling_allowed("style.css", "br"));
        assert!(!p.sibling_allowed("style.css", "gz"));
        assert!(p.sibling_allowed("plain.html", "br") && p.sibling_allowed("plain.html", "gz"));
        assert_eq!(
            p.sibling_conflicts,
            [SiblingConflict {
                key: "style.css".into(),
                sibling: "style.css.gz".into()
            }]
        );
        assert_eq!(p.fetch.len(), 5, "every object is still fetched");
        assert!(p.skipped.is_empty());
    }
}
