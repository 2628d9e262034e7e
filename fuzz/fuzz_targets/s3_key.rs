//! S3 keys → paths inside a generation: the sync's wall against a hostile bucket.
//!
//! Properties, for one key and for a listing (the input split at newlines):
//! - an accepted key is its own relative path, byte for byte (nothing is normalised, so two
//!   keys can never land on one file), made only of `Normal` components, one per segment;
//! - joined onto the generation's `files/` directory it stays there, so it can never reach
//!   `manifest.json`, `current` or another generation, which all live beside `files/`;
//! - every path the sync writes for it (the file, and its precompressed siblings
//!   `key.br`/`key.gz` unless the name has no room for them) has a name within NAME_MAX and
//!   fits PATH_MAX under a long data directory: a path the kernel refuses would fail the whole
//!   sync, not one object;
//! - a rejected key says why (a non-empty reason);
//! - a plan fetches only accepted keys, never a key that is also a directory of another,
//!   and accounts for every listed key (fetched or skipped).
#![no_main]

use std::collections::BTreeSet;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use pi_failover::generation::manifest::Manifest;
use pi_failover::sync::key::{key_to_relative_path, MAX_PATH, MAX_SEGMENT};
use pi_failover::sync::plan::{plan, PlanLimits, RemoteObject};
use pi_failover::sync::precompress;

/// A generation's `files/` under a data directory far longer than `/data`.
const FILES: &str = concat!(
    "/media/a-rather-long-mount-point-for-the-data-partition/with/some/more/levels/",
    "of/directories/below/it/to/be/safe/site/staging/000042/files"
);
/// Linux's PATH_MAX, the terminating NUL included.
const PATH_MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_key(text);
    if text.contains('\n') {
        check_plan(text.split('\n'));
    }
});

fn check_key(key: &str) {
    let path = match key_to_relative_path(key) {
        Ok(path) => path,
        Err(reason) => {
            assert!(!reason.to_string().is_empty(), "{key:?}: empty reason");
            return;
        }
    };
    assert_eq!(path.as_os_str(), key, "the path is the key, unchanged");
    assert!(key.len() <= MAX_PATH, "{key:?}: longer than MAX_PATH");
    assert!(
        !key.contains(['\0', '\\']) && !key.chars().any(char::is_control),
        "{key:?}: NUL, backslash or control character"
    );
    let segments: Vec<&str> = key.split('/').collect();
    for segment in &segments {
        assert!(
            !segment.is_empty() && *segment != "." && *segment != "..",
            "{key:?}: segment {segment:?}"
        );
        assert!(segment.len() <= MAX_SEGMENT, "{key:?}: segment too long");
    }
    let components: Vec<Component> = path.components().collect();
    assert!(
        components.iter().all(|c| matches!(c, Component::Normal(_))),
        "{key:?}: {components:?}"
    );
    assert_eq!(components.len(), segments.len(), "{key:?}: segments merged");

    let files = Path::new(FILES);
    let joined = files.join(&path);
    assert_eq!(
        joined.strip_prefix(files).ok(),
        Some(path.as_path()),
        "{key:?} leaves files/"
    );

    // Everything the sync writes for the key: the file and its precompressed siblings, each
    // a name the file system holds (NAME_MAX) on a path the kernel takes (PATH_MAX), even
    // under a data directory as long as this one. A name without room for the suffix gets
    // no siblings: the sync must know that rather than fail on them.
    let mut written = vec![joined.clone()];
    if precompress::has_room_for_siblings(&path) {
        written.extend(["br", "gz"].map(|ext| precompress::sibling(&joined, ext)));
    } else {
        let name = path.file_name().map_or(0, |n| n.len());
        assert!(
            name + ".br".len() > MAX_SEGMENT,
            "{key:?}: siblings refused to a {name}-byte name that has room for them"
        );
    }
    for file in written {
        let name = file.file_name().map_or(0, |n| n.len());
        assert!(
            name <= MAX_SEGMENT,
            "{key:?}: the sync would write {file:?}, a {name}-byte file name"
        );
        assert!(
            file.as_os_str().len() < PATH_MAX,
            "{key:?}: the sync would write a path of {} bytes",
            file.as_os_str().len()
        );
    }
}

fn check_plan<'a>(keys: impl Iterator<Item = &'a str>) {
    let listing: Vec<RemoteObject> = keys
        .map(|key| RemoteObject {
            key: key.to_owned(),
            etag: "\"e\"".into(),
            size: 1,
        })
        .collect();
    let limits = PlanLimits {
        max_objects: usize::MAX,
        max_total_bytes: u64::MAX,
        max_delete_fraction: 1.0,
        allow_empty: true,
    };
    let planned = plan(&listing, &Manifest::default(), &limits).expect("nothing to refuse");
    let fetched: BTreeSet<&str> = planned.fetch.iter().map(|o| o.key.as_str()).collect();
    let skipped: BTreeSet<&str> = planned.skipped.iter().map(|s| s.key.as_str()).collect();
    for key in &fetched {
        assert!(key_to_relative_path(key).is_ok(), "{key:?} fetched");
        assert!(!skipped.contains(key), "{key:?} both fetched and skipped");
        let as_dir = format!("{key}/");
        assert!(
            !fetched.iter().any(|other| other.starts_with(&as_dir)),
            "{key:?} would be a file and a directory"
        );
    }
    for object in &listing {
        assert!(
            fetched.contains(object.key.as_str()) || skipped.contains(object.key.as_str()),
            "{:?} neither fetched nor skipped",
            object.key
        );
    }
}
