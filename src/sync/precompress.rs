//! Brotli and gzip siblings written at sync time, so the site server sends fewer bytes over
//! a thin uplink without compressing per request.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Files smaller than this gain too little to be worth two more files.
pub const MIN_SIZE: u64 = 512;

/// Content types worth compressing (by the object's type, or its extension's).
pub fn is_compressible(content_type: &str) -> bool {
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

/// Which siblings were written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub brotli: bool,
    pub gzip: bool,
}

/// Writes `path.br` and `path.gz` when each is smaller than the original. They are made
/// durable with the rest of the generation (one `syncfs` at commit), not one by one.
pub fn write_siblings(path: &Path) -> std::io::Result<Written> {
    let original = std::fs::read(path)?;
    let mut written = Written::default();

    let mut brotli_out = Vec::with_capacity(original.len() / 3);
    {
        // The brotli crate sizes its hash table by quality, and every file gets a fresh,
        // zeroed one: quality 11 (or 6-9 with a small window, which falls back to a large
        // hasher) cost 10-18 CPU-seconds and 120-160 MB for 1,000 pages, nearly all of it
        // page faults. Quality 5 with a window of at least 2^17 uses a 1 MB table and keeps
        // most of the gain (docs/benchmarks.md).
        let window_bits = (usize::BITS - original.len().leading_zeros()).clamp(17, 22) as i32;
        let params = brotli::enc::BrotliEncoderParams {
            quality: 5,
            lgwin: window_bits,
            ..Default::default()
        };
        brotli::BrotliCompress(&mut &original[..], &mut brotli_out, &params)?;
    }
    if brotli_out.len() < original.len() {
        write_file(&sibling(path, "br"), &brotli_out)?;
        written.brotli = true;
    }

    let mut gz = flate2::write::GzEncoder::new(
        Vec::with_capacity(original.len() / 3),
        flate2::Compression::best(),
    );
    gz.write_all(&original)?;
    let gzip_out = gz.finish()?;
    if gzip_out.len() < original.len() {
        write_file(&sibling(path, "gz"), &gzip_out)?;
        written.gzip = true;
    }
    Ok(written)
}

pub fn sibling(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::File::create(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_gets_smaller_siblings_that_decompress_to_the_original() {
        let dir = tempfile::tempdir().expect("tmp");
        let page = dir.path().join("index.html");
        let html = "<p>The standby Pi serves this page.</p>\n".repeat(100);
        std::fs::write(&page, &html).expect("write");
        let written = write_siblings(&page).expect("compress");
        assert_eq!(
            written,
            Written {
                brotli: true,
                gzip: true
            }
        );

        let mut unbrotli = Vec::new();
        brotli::BrotliDecompress(
            &mut &std::fs::read(sibling(&page, "br")).expect("br")[..],
            &mut unbrotli,
        )
        .expect("valid brotli");
        assert_eq!(unbrotli, html.as_bytes());
        let mut ungz = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(
                &std::fs::read(sibling(&page, "gz")).expect("gz")[..],
            ),
            &mut ungz,
        )
        .expect("valid gzip");
        assert_eq!(ungz, html);
    }

    #[test]
    fn incompressible_bytes_get_no_siblings() {
        let dir = tempfile::tempdir().expect("tmp");
        let blob = dir.path().join("noise.txt");
        let noise: Vec<u8> = (0..4096).map(|_| fastrand::u8(..)).collect();
        std::fs::write(&blob, noise).expect("write");
        assert_eq!(write_siblings(&blob).expect("compress"), Written::default());
    }

    #[test]
    fn compressible_types() {
        assert!(is_compressible("text/html; charset=utf-8"));
        assert!(is_compressible("image/svg+xml"));
        assert!(is_compressible("application/json"));
        assert!(!is_compressible("image/jpeg"));
        assert!(!is_compressible("application/octet-stream"));
    }
}
