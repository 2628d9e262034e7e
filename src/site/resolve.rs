//! Request path → index key. The first of the file server's three steps (resolve, then look
//! up in the index, then reply), and the only place a URL path is decoded.
//!
//! The rules, each one a historical path-traversal bug in some server:
//! - percent-escapes are decoded exactly once (`%252e` stays the literal `%2e`, which then
//!   names no file);
//! - a decoded segment may not contain `/` (an encoded slash), `\`, NUL or another control
//!   character, and may not be `.` or `..`;
//! - the result must be UTF-8.
//!
//! The key this produces is only ever looked up in the in-memory index of the site, which
//! holds regular files found inside the root, so even a key that slipped through could not
//! name a file outside it: these checks are the first of two walls.

use percent_encoding::percent_decode_str;

/// A request path, decoded and checked, ready to look up in the site index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// Segments joined by `/`, without leading or trailing slash; `""` is the root.
    pub key: String,
    /// The request ended in `/` (or was `/`): it asks for a directory's index.
    pub directory: bool,
    /// One of the segments starts with a dot (other than `.well-known`).
    pub has_dotfile: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathRejection {
    #[error("the path does not start with /")]
    NotAbsolute,
    #[error("the path contains a `.` or `..` segment")]
    DotSegment,
    #[error("the path contains an encoded slash, a backslash, NUL or a control character")]
    ForbiddenCharacter,
    #[error("the path is not UTF-8 once decoded")]
    NotUtf8,
}

/// Decodes and checks the path part of a request target (no query).
pub fn request_key(raw_path: &str) -> Result<RequestKey, PathRejection> {
    let rest = raw_path
        .strip_prefix('/')
        .ok_or(PathRejection::NotAbsolute)?;
    let mut key = String::with_capacity(rest.len());
    let mut has_dotfile = false;
    // Empty segments (`a//b`) are merged, as nginx's merge_slashes does.
    for raw_segment in rest.split('/').filter(|s| !s.is_empty()) {
        if raw_segment.contains('\\') {
            return Err(PathRejection::ForbiddenCharacter);
        }
        let decoded = percent_decode_str(raw_segment)
            .decode_utf8()
            .map_err(|_| PathRejection::NotUtf8)?;
        if decoded
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return Err(PathRejection::ForbiddenCharacter);
        }
        if decoded == "." || decoded == ".." {
            return Err(PathRejection::DotSegment);
        }
        if decoded.starts_with('.') && decoded != ".well-known" {
            has_dotfile = true;
        }
        if !key.is_empty() {
            key.push('/');
        }
        key.push_str(&decoded);
    }
    Ok(RequestKey {
        directory: rest.is_empty() || rest.ends_with('/'),
        key,
        has_dotfile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str) -> Result<String, PathRejection> {
        request_key(p).map(|k| k.key)
    }

    #[test]
    fn plain_paths_become_keys() {
        assert_eq!(key("/"), Ok(String::new()));
        assert_eq!(key("/index.html"), Ok("index.html".into()));
        assert_eq!(key("/a/b/"), Ok("a/b".into()));
        assert!(request_key("/a/b/").unwrap().directory);
        assert!(!request_key("/a/b").unwrap().directory);
    }

    #[test]
    fn percent_escapes_are_decoded_once() {
        assert_eq!(key("/caf%C3%A9.html"), Ok("café.html".into()));
        assert_eq!(key("/a%20b"), Ok("a b".into()));
        assert_eq!(key("/%252e%252e/x"), Ok("%2e%2e/x".into()));
    }

    #[test]
    fn traversal_and_odd_bytes_are_rejected() {
        assert_eq!(key("/../etc/passwd"), Err(PathRejection::DotSegment));
        assert_eq!(key("/%2e%2e/etc/passwd"), Err(PathRejection::DotSegment));
        assert_eq!(key("/a/./b"), Err(PathRejection::DotSegment));
        assert_eq!(key("/a%2fb"), Err(PathRejection::ForbiddenCharacter));
        assert_eq!(key("/a%5cb"), Err(PathRejection::ForbiddenCharacter));
        assert_eq!(key("/a\\b"), Err(PathRejection::ForbiddenCharacter));
        assert_eq!(key("/a%00b"), Err(PathRejection::ForbiddenCharacter));
        assert_eq!(key("/%c0%ae%c0%ae/x"), Err(PathRejection::NotUtf8));
        assert_eq!(key("relative"), Err(PathRejection::NotAbsolute));
    }

    #[test]
    fn dotfiles_are_flagged_but_well_known_is_not() {
        assert!(request_key("/.git/config").unwrap().has_dotfile);
        assert!(request_key("/a/.env").unwrap().has_dotfile);
        assert!(
            !request_key("/.well-known/security.txt")
                .unwrap()
                .has_dotfile
        );
    }

    #[test]
    fn repeated_slashes_are_merged() {
        assert_eq!(key("//a///b"), Ok("a/b".into()));
    }
}
