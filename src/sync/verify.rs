//! Whether a downloaded body is the object that was listed: the checks that need no network.
//! A plain ETag is the body's MD5 (checked as the body streams in, `source.rs`); a multipart
//! ETag is the MD5 of the parts' MD5s with the part count, recomputed here from the file on
//! disk once the part sizes are known. `source.rs` does the asking (HEAD with `partNumber`)
//! and the retrying; this module only computes and remembers.

use std::path::Path;

use md5::{Digest, Md5};

/// 32 hexadecimal digits: an ETag that is an MD5.
pub(super) fn is_md5_hex(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The part count of a multipart upload's ETag (`<MD5 of the parts' MD5s>-N`).
pub(super) fn multipart_parts(etag: &str) -> Option<u32> {
    let (digest, parts) = etag.split_once('-')?;
    if !is_md5_hex(digest) {
        return None;
    }
    parts.parse().ok().filter(|n| *n >= 1)
}

/// The multipart ETag of the file at `path` cut into parts of `sizes` bytes, or `None` when
/// the sizes do not add up to the file.
pub(super) fn multipart_etag(path: &Path, sizes: &[u64]) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut file = std::io::BufReader::with_capacity(64 * 1024, std::fs::File::open(path)?);
    let mut digests = Vec::with_capacity(sizes.len() * 16);
    let mut buf = vec![0u8; 64 * 1024];
    for size in sizes {
        let mut part = Md5::new();
        let mut left = *size;
        while left > 0 {
            let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            let n = file.read(&mut buf[..want])?;
            if n == 0 {
                return Ok(None);
            }
            part.update(&buf[..n]);
            left -= n as u64;
        }
        digests.extend_from_slice(&part.finalize());
    }
    if file.read(&mut buf[..1])? != 0 {
        return Ok(None);
    }
    Ok(Some(format!(
        "{}-{}",
        hex(&Md5::digest(&digests)),
        sizes.len()
    )))
}

/// Equal parts of `part` bytes and a last, smaller or equal one: how every common uploader
/// (aws-cli, s3cmd, rclone, the SDKs' transfer managers) cuts a file. `None` when `len`
/// cannot be cut so into `parts` parts.
pub(super) fn equal_parts(len: u64, part: u64, parts: u32) -> Option<Vec<u64>> {
    let full = part.checked_mul(u64::from(parts.checked_sub(1)?))?;
    let last = len.checked_sub(full)?;
    if part == 0 || last == 0 || last > part {
        return None;
    }
    let mut sizes = vec![part; parts as usize - 1];
    sizes.push(last);
    Some(sizes)
}

/// Multipart objects whose bytes did not make their ETag: the MD5 of the body that came, by
/// key.
#[derive(Default)]
pub(super) struct Mismatches(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl Mismatches {
    /// Whether this body is byte for byte the one that failed the multipart check before.
    /// Damage in transit does not repeat itself exactly; an S3-compatible store that builds
    /// multipart ETags by another recipe fails the same way every time, and refusing such an
    /// object would fail every sync for good. Remembers the body otherwise.
    pub(super) fn same_bytes_again(&self, key: &str, body_md5: &str) -> bool {
        const REMEMBERED: usize = 1000;
        let Ok(mut seen) = self.0.lock() else {
            return false;
        };
        if seen.get(key).is_some_and(|before| before == body_md5) {
            return true;
        }
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(key.to_owned(), body_md5.to_owned());
        false
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multipart_mismatch_is_accepted_only_when_the_same_bytes_come_twice() {
        let seen = Mismatches::default();
        assert!(!seen.same_bytes_again("big.bin", "aaaa"), "first failure");
        assert!(
            !seen.same_bytes_again("big.bin", "bbbb"),
            "other bytes: damage"
        );
        assert!(seen.same_bytes_again("big.bin", "bbbb"), "same bytes again");
        assert!(!seen.same_bytes_again("other.bin", "bbbb"), "per key");
    }

    /// The ETag S3 gives `body` uploaded in parts of `part` bytes.
    fn s3_multipart_etag(body: &[u8], part: usize) -> String {
        let digests: Vec<u8> = body
            .chunks(part)
            .flat_map(|c| Md5::digest(c).to_vec())
            .collect();
        format!(
            "{}-{}",
            hex(&Md5::digest(&digests)),
            body.len().div_ceil(part)
        )
    }

    #[test]
    fn multipart_etags_are_recognised() {
        assert_eq!(
            multipart_parts("9b2cf535f27731c974343645a3985328-3"),
            Some(3)
        );
        assert_eq!(multipart_parts("9b2cf535f27731c974343645a3985328"), None);
        assert_eq!(multipart_parts("not-an-md5-3"), None);
        assert_eq!(multipart_parts("9b2cf535f27731c974343645a3985328-x"), None);
    }

    #[test]
    fn a_multipart_etag_is_recomputed_from_the_file_and_a_flipped_byte_breaks_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("big.bin");
        let mut body: Vec<u8> = (0..250_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &body).expect("write");
        let etag = s3_multipart_etag(&body, 100_000);
        let sizes = equal_parts(250_000, 100_000, 3).expect("3 parts");
        assert_eq!(sizes, [100_000, 100_000, 50_000]);
        assert_eq!(
            multipart_etag(&path, &sizes).expect("read"),
            Some(etag.clone())
        );

        body[180_000] ^= 0x20;
        std::fs::write(&path, &body).expect("write");
        assert_ne!(multipart_etag(&path, &sizes).expect("read"), Some(etag));
    }

    #[test]
    fn part_sizes_that_do_not_fit_the_file_are_rejected() {
        assert_eq!(equal_parts(250_000, 100_000, 2), None, "last part too big");
        assert_eq!(equal_parts(200_000, 100_000, 3), None, "last part empty");
        assert_eq!(equal_parts(10, 10, 1), Some(vec![10]));
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("f");
        std::fs::write(&path, [1u8; 10]).expect("write");
        assert_eq!(
            multipart_etag(&path, &[4, 4]).expect("read"),
            None,
            "file longer"
        );
        assert_eq!(
            multipart_etag(&path, &[8, 8]).expect("read"),
            None,
            "file shorter"
        );
    }
}
