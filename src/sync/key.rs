//! S3 key → relative path inside a generation: the sync's wall against hostile buckets.
//!
//! A key is accepted only when every `/`-separated segment is a plain file name: not empty,
//! not `.` or `..`, no backslash, NUL or other control character, at most 255 bytes, and the
//! whole path at most 1024 bytes. Anything else is skipped, logged and counted by the caller;
//! nothing is ever normalised into something else (`a//b` is not `a/b`), so two keys can never
//! land on one file.

use std::path::PathBuf;

/// Why a key cannot be a local path.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyRejection {
    #[error("empty key")]
    Empty,
    #[error("absolute key (leading /)")]
    Absolute,
    #[error("directory marker (trailing /)")]
    DirectoryMarker,
    #[error("empty, `.` or `..` segment")]
    BadSegment,
    #[error("backslash, NUL or control character")]
    ForbiddenCharacter,
    #[error("a segment is longer than 255 bytes")]
    SegmentTooLong,
    #[error("longer than 1024 bytes")]
    PathTooLong,
    #[error("is a file and also a directory prefix of other keys")]
    FileDirectoryConflict,
    #[error("outside the configured prefix")]
    OutsidePrefix,
}

/// Linux's NAME_MAX.
pub const MAX_SEGMENT: usize = 255;
/// S3's own limit on a key. Not PATH_MAX: the key is written under the data directory and
/// gets `.br`/`.gz` siblings, and a path the kernel refuses would fail the whole sync instead
/// of skipping one object.
pub const MAX_PATH: usize = 1024;

/// Checks a key (already stripped of the configured prefix) and returns its relative path.
pub fn key_to_relative_path(key: &str) -> Result<PathBuf, KeyRejection> {
    if key.is_empty() {
        return Err(KeyRejection::Empty);
    }
    if key.starts_with('/') {
        return Err(KeyRejection::Absolute);
    }
    if key.ends_with('/') {
        return Err(KeyRejection::DirectoryMarker);
    }
    if key.len() > MAX_PATH {
        return Err(KeyRejection::PathTooLong);
    }
    for segment in key.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(KeyRejection::BadSegment);
        }
        if segment.chars().any(|c| c == '\\' || c.is_control()) {
            return Err(KeyRejection::ForbiddenCharacter);
        }
        if segment.len() > MAX_SEGMENT {
            return Err(KeyRejection::SegmentTooLong);
        }
    }
    Ok(PathBuf::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_site_keys_are_paths() {
        assert_eq!(
            key_to_relative_path("index.html"),
            Ok(PathBuf::from("index.html"))
        );
        assert_eq!(
            key_to_relative_path("2026/11/27/post/index.html"),
            Ok(PathBuf::from("2026/11/27/post/index.html"))
        );
        assert!(key_to_relative_path("café/ünïcode.html").is_ok());
        assert!(key_to_relative_path(".well-known/security.txt").is_ok());
    }

    #[test]
    fn hostile_keys_are_rejected_with_a_reason() {
        use KeyRejection::*;
        let long_segment = "a".repeat(256);
        let long_path = format!("{}/x", "abcdefgh/".repeat(460));
        for (key, reason) in [
            ("", Empty),
            ("../x", BadSegment),
            ("a/../../b", BadSegment),
            ("./x", BadSegment),
            ("a//b", BadSegment),
            ("/etc/passwd", Absolute),
            ("dir/", DirectoryMarker),
            ("a\\..\\b", ForbiddenCharacter),
            ("a\0b", ForbiddenCharacter),
            ("a\nb", ForbiddenCharacter),
            ("a\u{7f}b", ForbiddenCharacter),
            (long_segment.as_str(), SegmentTooLong),
            (long_path.as_str(), PathTooLong),
        ] {
            assert_eq!(key_to_relative_path(key), Err(reason), "{key:?}");
        }
    }

    #[test]
    fn keys_longer_than_s3_allows_are_skipped_so_every_written_path_fits_path_max() {
        // Found by fuzz/s3_key: a 4096-byte key was accepted, and under
        // `<data_dir>/site/staging/NNNNNN/files/`, with `.br` after it, no longer a path.
        let at_limit = format!("{}x", &"abcdefgh/".repeat(114)[..MAX_PATH - 1]);
        assert_eq!(at_limit.len(), MAX_PATH);
        assert!(key_to_relative_path(&at_limit).is_ok());
        assert_eq!(
            key_to_relative_path(&format!("{at_limit}y")),
            Err(KeyRejection::PathTooLong)
        );
        let found = format!("{}x", "abcdefgh/".repeat(455));
        assert_eq!(found.len(), 4096);
        assert_eq!(key_to_relative_path(&found), Err(KeyRejection::PathTooLong));
    }
}
