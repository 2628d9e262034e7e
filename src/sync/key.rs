//! S3 key → relative path inside a generation: the sync's wall against hostile buckets.
//!
//! A key is accepted only when every `/`-separated segment is a plain file name: not empty,
//! not `.` or `..`, no backslash, NUL or other control character, at most 255 bytes, and the
//! whole path at most 4096 bytes. Anything else is skipped, logged and counted by the caller;
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
    #[error("longer than 4096 bytes")]
    PathTooLong,
    #[error("is a file and also a directory prefix of other keys")]
    FileDirectoryConflict,
    #[error("outside the configured prefix")]
    OutsidePrefix,
}

pub const MAX_SEGMENT: usize = 255;
pub const MAX_PATH: usize = 4096;

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
}
