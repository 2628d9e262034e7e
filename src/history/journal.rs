//! The history on the data partition: one append-only file, bounded.
//!
//! ```text
//! <data_dir>/history/journal
//!   header   b"pi-failover history\n" (20 bytes), format version u32 LE
//!   record   length u32 LE | CRC-32 of the payload u32 LE | payload (JSON of a `Record`)
//!   record   …
//! <data_dir>/history/journal.new   (only while it is being rewritten)
//! ```
//!
//! - **Power cuts.** Records are appended in one `write` and `fdatasync`ed, at most once a
//!   minute (SD wear). A record cut short by a power cut fails its length or CRC: reading stops
//!   there and the file is truncated back to the last whole record, so a torn tail costs that
//!   minute, never the file.
//! - **Bounded.** When an append would take the file past [`JOURNAL_CAP`], the file is
//!   rewritten from what is remembered (a day of minutes, 30 days of hours, the last events:
//!   under half the cap, as the month-long test checks) into `journal.new`, synced, and
//!   renamed over the old one. Opening reads at most the cap and one record.
//! - **Versions.** The header says which format wrote the file. A newer format than this
//!   program knows is left alone: nothing of it is read or written, the status page says so,
//!   and history is kept in memory only (an update rolled back must not destroy what the newer
//!   version kept).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{History, Record};

/// The journal's largest size: it is rewritten before passing it.
pub(crate) const JOURNAL_CAP: u64 = 2 * 1024 * 1024;

const MAGIC: &[u8; 20] = b"pi-failover history\n";
/// The format this program writes.
pub(crate) const FORMAT: u32 = 1;
const HEADER_LEN: usize = MAGIC.len() + 4;
/// No record is larger; a length above it is damage.
const RECORD_MAX: u32 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} was written by a newer pi-failover (history format {found}, this one knows {FORMAT}): left as it is, history kept in memory only")]
    Newer { path: PathBuf, found: u32 },
    #[error(
        "{path} is not a pi-failover history file: left as it is, history kept in memory only"
    )]
    Foreign { path: PathBuf },
}

/// What opening found.
#[cfg_attr(test, derive(Debug))]
#[derive(Default)]
pub struct Opened {
    pub history: History,
    pub records: usize,
    /// Bytes after the last whole record, cut off (a torn write).
    pub torn_bytes: u64,
    /// Whole records whose JSON this program does not understand (skipped, kept on disk
    /// until the next rewrite).
    pub unreadable: usize,
}

#[cfg_attr(test, derive(Debug))]
pub struct Journal {
    path: PathBuf,
    file: File,
    len: u64,
    cap: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads it back.
    pub fn open(path: &Path) -> Result<(Journal, Opened), JournalError> {
        Self::open_with_cap(path, JOURNAL_CAP)
    }

    pub(crate) fn open_with_cap(path: &Path, cap: u64) -> Result<(Journal, Opened), JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        // A rewrite interrupted before its rename: the old file is whole, the new one is not.
        let _ = std::fs::remove_file(rewrite_path(path));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        // Never more than the cap and one record: a larger file (another program's, a damaged
        // length) is read that far and cut there like a torn tail.
        let mut bytes = Vec::new();
        (&mut file)
            .take(cap + u64::from(RECORD_MAX) + 8)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let on_disk = file.metadata().map_err(io)?.len();
        if bytes.is_empty() {
            write_header(&mut file).map_err(io)?;
            file.sync_all().map_err(io)?;
            let journal = Journal {
                path: path.to_owned(),
                file,
                len: HEADER_LEN as u64,
                cap,
            };
            return Ok((journal, Opened::default()));
        }
        let (mut opened, whole) = read(path, &bytes)?;
        opened.torn_bytes = on_disk - whole;
        if opened.torn_bytes > 0 {
            file.set_len(whole).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::Start(whole)).map_err(io)?;
        let journal = Journal {
            path: path.to_owned(),
            file,
            len: whole,
            cap,
        };
        Ok((journal, opened))
    }

    /// Writes `records` down, durably. `history` is everything remembered with `records`
    /// already applied: when the file would pass its cap it is rewritten from that instead.
    pub(crate) fn append(
        &mut self,
        records: &[Record],
        history: &History,
    ) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for record in records {
            frame(&mut buf, record);
        }
        if self.len + buf.len() as u64 > self.cap {
            return self.rewrite(history);
        }
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Replaces the file with `history` alone: written aside, synced, renamed over.
    fn rewrite(&mut self, history: &History) -> Result<(), JournalError> {
        let new = rewrite_path(&self.path);
        let io = |source| JournalError::Io {
            path: new.clone(),
            source,
        };
        let mut buf = Vec::new();
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&FORMAT.to_le_bytes());
        for record in history.records() {
            frame(&mut buf, &record);
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&new)
            .map_err(io)?;
        file.write_all(&buf).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&new, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            // The rename is durable only once the directory is.
            if let Ok(dir) = File::open(dir) {
                let _ = dir.sync_all();
            }
        }
        self.file = file;
        self.len = buf.len() as u64;
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> u64 {
        self.len
    }
}

fn rewrite_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".new");
    path.with_file_name(name)
}

fn write_header(file: &mut File) -> std::io::Result<()> {
    file.write_all(MAGIC)?;
    file.write_all(&FORMAT.to_le_bytes())
}

fn frame(buf: &mut Vec<u8>, record: &Record) {
    // A record is plain data: serialising it cannot fail.
    let payload = serde_json::to_vec(record).unwrap_or_default();
    // Read back, a longer one would count as damage and cut the journal there, losing every
    // record after it: it is never written. (Events are cut where they are made, so this
    // does not happen; the reader's rule is kept by the writer all the same.)
    let Some(len) = u32::try_from(payload.len())
        .ok()
        .filter(|len| *len <= RECORD_MAX)
    else {
        tracing::warn!(
            bytes = payload.len(),
            "history record too large; not written"
        );
        return;
    };
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
}

/// Reads a whole file's bytes: the history, and the offset after its last whole record.
fn read(path: &Path, bytes: &[u8]) -> Result<(Opened, u64), JournalError> {
    if bytes.len() < HEADER_LEN {
        // A header cut by a power cut on the very first write.
        if MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]) {
            return Ok((
                Opened {
                    torn_bytes: bytes.len() as u64,
                    ..Opened::default()
                },
                0,
            ));
        }
        return Err(JournalError::Foreign {
            path: path.to_owned(),
        });
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(JournalError::Foreign {
            path: path.to_owned(),
        });
    }
    let mut version = [0u8; 4];
    version.copy_from_slice(&bytes[MAGIC.len()..HEADER_LEN]);
    let found = u32::from_le_bytes(version);
    if found > FORMAT {
        return Err(JournalError::Newer {
            path: path.to_owned(),
            found,
        });
    }
    let mut opened = Opened::default();
    let mut at = HEADER_LEN;
    while let Some((payload, next)) = next_record(bytes, at) {
        match serde_json::from_slice::<Record>(payload) {
            Ok(record) => {
                opened.history.apply(record);
                opened.records += 1;
            }
            Err(_) => opened.unreadable += 1,
        }
        at = next;
    }
    opened.torn_bytes = (bytes.len() - at) as u64;
    Ok((opened, at as u64))
}

/// The whole record at `at`, if there is one, and where the next begins.
fn next_record(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let head = bytes.get(at..at + 8)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > RECORD_MAX {
        return None;
    }
    let end = at + 8 + len as usize;
    let payload = bytes.get(at + 8..end)?;
    (crc32fast::hash(payload) == crc).then_some((payload, end))
}

#[cfg(test)]
mod tests {
    use super::super::{Event, EventKind, Sample, MINUTES_KEPT};
    use super::*;
    use crate::live::mode::Mode;

    fn minute(i: u64) -> Record {
        Record::Minute(Sample {
            readers: i,
            ..Sample::empty(1_800_000_000 + i * 60, Mode::Standby)
        })
    }

    fn write(path: &Path, records: &[Record]) -> History {
        let (mut journal, opened) = Journal::open(path).expect("open");
        let mut history = opened.history;
        for r in records {
            history.apply(r.clone());
        }
        journal.append(records, &history).expect("append");
        history
    }

    /// A power cut can stop a write at any byte: whatever the byte, what was whole before it
    /// is read back, the rest is cut off, and the file takes appends again.
    #[test]
    fn a_write_cut_at_any_byte_loses_only_the_record_it_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let records: Vec<Record> = (0..4).map(minute).collect();
        write(&path, &records[..3]);
        let whole = std::fs::read(&path).expect("read");
        write(&path, &records[3..]);
        let full = std::fs::read(&path).expect("read");
        for cut in whole.len()..full.len() {
            std::fs::write(&path, &full[..cut]).expect("write");
            let (mut journal, opened) = Journal::open(&path).expect("open");
            assert_eq!(opened.history.minutes.len(), 3, "cut at {cut}");
            assert_eq!(
                opened.torn_bytes,
                (cut - whole.len()) as u64,
                "cut at {cut}"
            );
            assert_eq!(std::fs::read(&path).expect("read"), whole, "cut at {cut}");
            let mut history = opened.history;
            history.apply(records[3].clone());
            journal.append(&records[3..], &history).expect("append");
            let (_, again) = Journal::open(&path).expect("reopen");
            assert_eq!(again.history, history, "cut at {cut}");
        }
        for cut in 0..HEADER_LEN {
            std::fs::write(&path, &full[..cut]).expect("write");
            let (_, opened) = Journal::open(&path).expect("a torn header is a new journal");
            assert_eq!(opened.records, 0);
        }
    }

    #[test]
    fn a_flipped_byte_ends_the_reading_there_and_keeps_what_came_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let records: Vec<Record> = (0..5).map(minute).collect();
        write(&path, &records);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 3;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).expect("write");
        let (_, opened) = Journal::open(&path).expect("open");
        assert_eq!(opened.history.minutes.len(), 4);
    }

    /// A file far past the cap (not one this program wrote) is read only as far as the cap
    /// allows, and cut there: opening never takes more memory than the cap and one record.
    #[test]
    fn a_file_past_the_cap_is_read_to_the_cap_and_cut_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let records: Vec<Record> = (0..3000).map(minute).collect();
        write(&path, &records);
        let whole = std::fs::metadata(&path).expect("stat").len();
        let cap = 100_000;
        assert!(whole > cap + u64::from(RECORD_MAX) + 8, "{whole}");
        let (_, opened) = Journal::open_with_cap(&path, cap).expect("open");
        assert!(
            opened.records > 0 && opened.records < 3000,
            "{}",
            opened.records
        );
        assert!(std::fs::metadata(&path).expect("stat").len() < whole);
    }

    #[test]
    fn a_newer_format_is_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(FORMAT + 1).to_le_bytes());
        bytes.extend_from_slice(b"whatever the next format holds");
        std::fs::write(&path, &bytes).expect("write");
        let err = Journal::open(&path).expect_err("newer");
        assert!(err.to_string().contains("newer pi-failover"), "{err}");
        assert_eq!(std::fs::read(&path).expect("read"), bytes, "untouched");
        std::fs::write(&path, b"#!/bin/sh\necho not ours\n").expect("write");
        assert!(matches!(
            Journal::open(&path),
            Err(JournalError::Foreign { .. })
        ));
    }

    /// A month of minutes and a steady trickle of events, appended as they come: the
    /// file never passes its cap, and what is read back is what is remembered.
    #[test]
    fn a_month_of_minutes_stays_under_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let (mut journal, _) = Journal::open(&path).expect("open");
        let mut history = History::default();
        let mut largest = 0;
        let mut rewrites = 0;
        let mut batch = Vec::new();
        let start = 1_800_000_000u64;
        for i in 0..(31 * 24 * 60u64) {
            let at = start + i * 60;
            let mut records = vec![Record::Minute(Sample {
                readers: i % 50,
                reader_requests: i,
                bytes_sent: i * 1_000_000,
                ..Sample::empty(at, Mode::Live)
            })];
            if i % 60 == 59 {
                let minutes: Vec<&Sample> = history.minutes.iter().rev().take(59).collect();
                if let Some(hour) = Sample::hour_of(&minutes) {
                    records.push(Record::Hour(hour));
                }
            }
            if i % 7 == 0 {
                let text = "sync failed: ".to_owned() + &"x".repeat(300);
                records.push(Record::Event(Event::new(
                    at,
                    EventKind::SyncFailed {
                        error: text.clone(),
                    },
                    text,
                )));
            }
            for r in &records {
                history.apply(r.clone());
            }
            batch.extend(records);
            // Half an hour a write keeps the test quick; the cap is what is checked.
            if i % 30 != 29 {
                continue;
            }
            let before = journal.len();
            journal.append(&batch, &history).expect("append");
            batch.clear();
            if journal.len() < before {
                rewrites += 1;
                // What is remembered, written whole, leaves room for days of appends.
                assert!(
                    journal.len() < JOURNAL_CAP / 2,
                    "rewritten to {}",
                    journal.len()
                );
            }
            largest = largest.max(journal.len());
            assert!(
                journal.len() <= JOURNAL_CAP,
                "{} at minute {i}",
                journal.len()
            );
        }
        let size = std::fs::metadata(&path).expect("stat").len();
        assert!(size <= JOURNAL_CAP);
        assert!(
            rewrites > 3,
            "the cap was reached and rewritten: {rewrites}"
        );
        let (_, opened) = Journal::open(&path).expect("reopen");
        assert_eq!(opened.history, history);
        assert_eq!(opened.history.minutes.len() as u64, MINUTES_KEPT);
        println!("largest {largest} B, {rewrites} rewrites in a month");
    }
}
