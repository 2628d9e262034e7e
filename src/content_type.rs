//! What a file is, by its key and what the bucket said: the Content-Type the site serves and
//! whether it is text (a UTF-8 charset when served, precompressed siblings when synced).
//! Shared by `site` (serving) and `sync` (deciding what to compress), below both.

use http::header::HeaderValue;

/// Types that uploaders put on files they could not identify (s3cmd's libmagic calls CSS
/// `text/plain` or `text/x-c++`); browsers refuse such CSS and JS under `nosniff`.
const GENERIC_TYPES: &[&str] = &[
    "text/plain",
    "text/x-c",
    "text/x-c++",
    "application/octet-stream",
    "binary/octet-stream",
    "application/x-empty",
    "inode/x-empty",
];

/// The object's own Content-Type, unless it is a generic one and the extension knows better.
pub(crate) fn effective_content_type(key: &str, stored: Option<&str>) -> HeaderValue {
    let by_extension = content_type_for(key);
    let Some(stored) = stored.map(str::trim).filter(|s| !s.is_empty()) else {
        return by_extension;
    };
    let essence = stored
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let extension_knows = mime_guess::from_path(key).first().is_some();
    if extension_knows && GENERIC_TYPES.contains(&essence.as_str()) {
        return by_extension;
    }
    let with_charset =
        if essence.starts_with("text/") && !stored.to_ascii_lowercase().contains("charset") {
            format!("{stored}; charset=utf-8")
        } else {
            stored.to_owned()
        };
    HeaderValue::from_str(&with_charset).unwrap_or(by_extension)
}

/// Is a media type (its essence, or a full Content-Type) text? Text gets a UTF-8 charset
/// here and precompressed siblings at sync time.
pub(crate) fn is_textual(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/rss+xml"
                | "application/atom+xml"
                | "application/manifest+json"
                | "image/svg+xml"
        )
}

/// Content-Type by extension, with a UTF-8 charset on text, as nginx's `charset utf-8`
/// with `charset_types` does for a Jekyll site.
pub(crate) fn content_type_for(key: &str) -> HeaderValue {
    let mime = mime_guess::from_path(key).first_or_octet_stream();
    let essence = mime.essence_str();
    let value = if is_textual(essence) {
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

    #[test]
    fn stored_types_are_kept_unless_generic_and_wrong_for_the_extension() {
        assert_eq!(
            effective_content_type("main.css", Some("text/x-c++")),
            "text/css; charset=utf-8"
        );
        assert_eq!(
            effective_content_type("main.css", Some("text/plain")),
            "text/css; charset=utf-8"
        );
        assert_eq!(
            effective_content_type("app.js", Some("binary/octet-stream")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            effective_content_type("notes.txt", Some("text/plain")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(
            effective_content_type("feed", Some("application/rss+xml")),
            "application/rss+xml"
        );
        assert_eq!(
            effective_content_type("page.html", Some("text/html; charset=iso-8859-1")),
            "text/html; charset=iso-8859-1"
        );
        assert_eq!(
            effective_content_type("page.html", None),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            effective_content_type("blob", Some("application/octet-stream")),
            "application/octet-stream"
        );
    }
}
