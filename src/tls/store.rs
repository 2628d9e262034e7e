//! Certificates the appliance fetches itself, on the data partition, switched atomically.
//!
//! ```text
//! <data_dir>/tls/<id>/                 0700, one per fetched certificate
//!   current -> 000007                  one symlink, replaced by rename(2)
//!   000007/{fullchain.pem, privkey.pem} 0600, the pair in use
//!   000007/source.json                 what the source knows of the pair (S3 ETags)
//!   000006/                            the pair before, kept until the next install
//!   staging/                           being written; never read; removed before each install
//!   account.json, order.json           `acme` only: the account key, an order under way (0600)
//! ```
//! A pair is written whole into `staging/`, fsynced, renamed to the next number, and only then
//! does `current` move. A power cut at any point leaves `current` on a whole pair (or absent,
//! before the first one): the key and its certificate never come from two installs. The files
//! are created 0600 by the service user and never opened for writing again.
//!
//! `tls/FORMAT` names the layout (`crate::data_format`): a newer one is read (the installed
//! pair is served) but never written.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const TLS_DIR: &str = "tls";
const CURRENT: &str = "current";
const STAGING: &str = "staging";
pub(crate) const CERT_FILE: &str = "fullchain.pem";
pub(crate) const KEY_FILE: &str = "privkey.pem";
const SOURCE_FILE: &str = "source.json";
/// This layout, as `<data_dir>/tls/FORMAT` names it (`crate::data_format`): a build that finds
/// a newer one serves the pair installed but installs nothing there.
const TLS_FORMAT: u32 = 1;

/// Whether this build may write under `dir` (a certificate's directory in `tls/`).
fn writable(dir: &Path) -> io::Result<()> {
    let Some(tls) = dir.parent() else {
        return Ok(());
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(tls)?;
    crate::data_format::writable(tls, TLS_FORMAT, "the certificates in it")
}

/// The directory of the certificate called `id` (its source and location) under `data_dir`:
/// a name safe on any filesystem, with a hash so two locations never share one.
pub(crate) fn slot_dir(data_dir: &Path, id: &str) -> PathBuf {
    let readable: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    // FNV-1a: stable across versions and platforms, unlike std's hasher.
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    data_dir
        .join(TLS_DIR)
        .join(format!("{readable}-{:08x}", hash as u32))
}

/// The installed pair's two files, read through what `current` names now; `None` before the
/// first install.
pub fn installed(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let version = fs::read_link(dir.join(CURRENT)).ok()?;
    let version = dir.join(version);
    let cert = version.join(CERT_FILE);
    let key = version.join(KEY_FILE);
    (cert.is_file() && key.is_file()).then_some((cert, key))
}

/// What the source recorded with the installed pair (`None` before the first install).
pub(crate) fn installed_source(dir: &Path) -> Option<String> {
    let version = fs::read_link(dir.join(CURRENT)).ok()?;
    fs::read_to_string(dir.join(version).join(SOURCE_FILE)).ok()
}

/// Writes a new pair and makes it current, atomically; keeps the one before.
pub fn install(dir: &Path, cert: &[u8], key: &[u8], source: &str) -> io::Result<()> {
    writable(dir)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let staging = dir.join(STAGING);
    remove_if_present(&staging)?;
    fs::DirBuilder::new().mode(0o700).create(&staging)?;
    for (name, bytes) in [
        (CERT_FILE, cert),
        (KEY_FILE, key),
        (SOURCE_FILE, source.as_bytes()),
    ] {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(staging.join(name))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::File::open(&staging)?.sync_all()?;
    let versions = versions(dir)?;
    let next = versions.last().map_or(1, |n| n + 1);
    let name = format!("{next:06}");
    fs::rename(&staging, dir.join(&name))?;
    let link = dir.join(format!("{CURRENT}.new"));
    remove_if_present(&link)?;
    std::os::unix::fs::symlink(&name, &link)?;
    fs::rename(&link, dir.join(CURRENT))?;
    fs::File::open(dir)?.sync_all()?;
    // Keep the pair just replaced (a reader may be in the middle of it); older ones go.
    for old in versions.iter().rev().skip(1) {
        remove_if_present(&dir.join(format!("{old:06}")))?;
    }
    Ok(())
}

/// A private file of the slot (`account.json`, `order.json`), if it is there.
pub(crate) fn read_private(dir: &Path, name: &str) -> Option<Vec<u8>> {
    fs::read(dir.join(name)).ok()
}

/// Writes a private file of the slot whole (0600, fsynced, renamed into place): a power cut
/// leaves the old contents or the new, never half of them.
pub(crate) fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    writable(dir)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    remove_if_present(&tmp)?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}

/// Removes a private file of the slot; absent is fine.
pub(crate) fn remove_private(dir: &Path, name: &str) -> io::Result<()> {
    remove_if_present(&dir.join(name))
}

fn versions(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found: Vec<u64> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    found.sort_unstable();
    Ok(found)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A `tls/` a newer build wrote: the pair installed is still read (and served), nothing
    /// is installed or written over it.
    #[test]
    fn certificates_a_newer_build_wrote_are_read_and_never_written() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = slot_dir(tmp.path(), "s3-bucket-tls/example.com/");
        install(&dir, b"c1", b"k1", "1").unwrap();
        let format = tmp.path().join("tls").join(crate::data_format::FORMAT_FILE);
        assert_eq!(fs::read_to_string(&format).unwrap(), "1\n");
        fs::write(&format, "2\n").unwrap();
        let e = install(&dir, b"c2", b"k2", "2").unwrap_err();
        assert!(e.to_string().contains("format 2"), "{e}");
        assert!(write_private(&dir, "order.json", b"{}").is_err());
        let (cert, _) = installed(&dir).unwrap();
        assert_eq!(fs::read(cert).unwrap(), b"c1");
        assert!(read_private(&dir, "order.json").is_none());
    }

    #[test]
    fn installs_switch_whole_pairs_keep_one_back_and_hide_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = slot_dir(tmp.path(), "s3-bucket-tls/example.com/");
        assert!(installed(&dir).is_none());
        for round in 1..=4u8 {
            install(&dir, &[b'c', round], &[b'k', round], &format!("{round}")).unwrap();
            let (cert, key) = installed(&dir).unwrap();
            assert_eq!(fs::read(&cert).unwrap(), [b'c', round]);
            assert_eq!(fs::read(&key).unwrap(), [b'k', round]);
            assert_eq!(installed_source(&dir).unwrap(), round.to_string());
            assert_eq!(
                fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert_eq!(versions(&dir).unwrap(), [3, 4]);
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_staging_directory_left_by_a_power_cut_is_never_read_and_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = slot_dir(tmp.path(), "x");
        install(&dir, b"c1", b"k1", "").unwrap();
        fs::create_dir(dir.join(STAGING)).unwrap();
        fs::write(dir.join(STAGING).join(CERT_FILE), b"half").unwrap();
        assert_eq!(fs::read(installed(&dir).unwrap().0).unwrap(), b"c1");
        install(&dir, b"c2", b"k2", "").unwrap();
        assert_eq!(fs::read(installed(&dir).unwrap().0).unwrap(), b"c2");
    }

    #[test]
    fn private_files_are_written_whole_and_for_the_service_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = slot_dir(tmp.path(), "acme-x");
        assert!(read_private(&dir, "order.json").is_none());
        write_private(&dir, "order.json", b"one").unwrap();
        write_private(&dir, "order.json", b"two").unwrap();
        assert_eq!(read_private(&dir, "order.json").unwrap(), b"two");
        let mode = fs::metadata(dir.join("order.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        remove_private(&dir, "order.json").unwrap();
        remove_private(&dir, "order.json").unwrap();
        assert!(read_private(&dir, "order.json").is_none());
    }

    #[test]
    fn locations_that_differ_get_different_directories() {
        let root = Path::new("/data");
        let a = slot_dir(root, "s3-b-tls/a/");
        let b = slot_dir(root, "s3-b-tls_a_");
        assert_ne!(a, b);
        assert!(a.starts_with("/data/tls"));
        assert!(!a.file_name().unwrap().to_str().unwrap().contains('/'));
    }
}
