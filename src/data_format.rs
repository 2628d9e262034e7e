//! Which format wrote each store on the data partition.
//!
//! The data partition outlives the slots: after an update it is read by a newer build, and
//! after a rollback by an older one again. Each store that lays out files of its own says in
//! a `FORMAT` file (one number) which format wrote it: the site's generations
//! (`<data_dir>/site/FORMAT`), the fetched and obtained certificates (`<data_dir>/tls/FORMAT`).
//! The history journal, the message queue and the update state carry their format inside
//! their files.
//!
//! A writer stamps the store the first time it writes ([`writable`]). A build that finds a
//! newer format than it knows does not write there: the store stays as the newer build left
//! it, and what can be read (the served generation, the installed certificate) is still
//! served; the writer's error says so, and the status shows it.

use std::io;
use std::path::{Path, PathBuf};

/// The file in a store's directory that names its format.
pub const FORMAT_FILE: &str = "FORMAT";

/// A store this build may not write.
#[derive(Debug, thiserror::Error)]
#[error("{path} says format {found}, written by a newer pi-failover than this one (which knows {known}): {what} is kept as it is and served as far as it can be read, but not written over")]
pub struct NewerFormat {
    pub path: PathBuf,
    pub found: u32,
    pub known: u32,
    pub what: &'static str,
}

impl From<NewerFormat> for io::Error {
    fn from(e: NewerFormat) -> Self {
        io::Error::new(io::ErrorKind::PermissionDenied, e.to_string())
    }
}

/// Whether this build (which writes format `known`) may write the store in `dir`; stamps
/// `dir` with `known` when it has no stamp yet (a fresh store, or one written before stamps).
/// `what` names the store in the error ("the site's generations").
pub fn writable(dir: &Path, known: u32, what: &'static str) -> io::Result<()> {
    let path = dir.join(FORMAT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => match text.trim().parse::<u32>() {
            Ok(found) if found > known => Err(NewerFormat {
                path,
                found,
                known,
                what,
            }
            .into()),
            Ok(_) => Ok(()),
            // Not a number: no build wrote that; stamp it again.
            Err(_) => stamp(dir, known),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => stamp(dir, known),
        Err(e) => Err(e),
    }
}

/// Writes the stamp into `dir`, which exists (its owner made it with the mode it wants).
fn stamp(dir: &Path, known: u32) -> io::Result<()> {
    write_whole(dir, FORMAT_FILE, format!("{known}\n").as_bytes())
}

/// Writes `name` in `dir` whole: a temporary file beside it, fsync, rename over, fsync the
/// directory. A power cut leaves the old contents or the new.
pub fn write_whole(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    io::Write::write_all(&mut file, bytes)?;
    file.as_file().sync_all()?;
    file.persist(dir.join(name)).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_is_stamped_once_and_a_newer_one_is_not_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("site");
        std::fs::create_dir(&store).expect("store dir");
        writable(&store, 1, "the site").expect("fresh");
        assert_eq!(
            std::fs::read_to_string(store.join(FORMAT_FILE)).expect("stamp"),
            "1\n"
        );
        writable(&store, 1, "the site").expect("same format");
        writable(&store, 2, "the site").expect("an older format a newer build reads");
        assert_eq!(
            std::fs::read_to_string(store.join(FORMAT_FILE)).expect("stamp"),
            "1\n",
            "a newer build does not restamp what it only reads"
        );

        std::fs::write(store.join(FORMAT_FILE), "2\n").expect("newer");
        let e = writable(&store, 1, "the site").expect_err("newer");
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("format 2"), "{e}");
        assert_eq!(
            std::fs::read_to_string(store.join(FORMAT_FILE)).expect("stamp"),
            "2\n",
            "left as the newer build wrote it"
        );
    }
}
