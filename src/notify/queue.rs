//! Messages not yet delivered, on the data partition, so a message born while the network
//! is down (the usual reason for a failover) goes out after a reboot too.
//!
//! ```text
//! <data_dir>/notify/
//!   00000000000000000042.msg    (below)
//!   00000000000000000043.msg
//!   *.tmp                         (a write cut short: removed at start)
//! ```
//!
//! A file is text: a first line `pi-failover notification 1` (the format), then one line each
//! for the time, attempts, urgency, kind, mode (`-`: none), link (`-`), the Pi's name and the
//! title, and the message's text to the end. Hand-read rather than JSON: serde's derived
//! reader for it cost the Pi's binary more than this code (8 MiB budget).
//!
//! One file per message, written aside and renamed (whole or absent after a power cut),
//! removed once delivered or given up. At most [`QUEUE_MAX`] are kept: a new one over the cap
//! pushes out the oldest (the newest says what the Pi is doing now). A file of a newer format
//! is left alone and not sent.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::message::Message;
use crate::live::mode::Mode;

/// The most messages waiting.
pub(crate) const QUEUE_MAX: usize = 100;
const FORMAT: u32 = 1;
const MAGIC: &str = "pi-failover notification ";

fn encode(item: &Queued) -> String {
    let m = &item.message;
    let mode = m.mode.map_or("-", Mode::as_str);
    format!(
        "{MAGIC}{FORMAT}\n{}\n{}\n{}\n{}\n{mode}\n{}\n{}\n{}\n{}",
        m.at,
        item.attempts,
        u8::from(m.urgent),
        one_line(&m.kind),
        one_line(m.link.as_deref().unwrap_or("-")),
        one_line(&m.pi),
        one_line(&m.title),
        m.text
    )
}

/// A queued file's text, at most [`FILE_MAX`] bytes of it (a message is a few hundred: a
/// larger file is damage, and then unreadable rather than a memory cost).
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    fs::File::open(path)?
        .take(FILE_MAX)
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Far more than any message (its texts are cut to a few hundred bytes where events are made).
const FILE_MAX: u64 = 64 * 1024;

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The message in a file's text, or why not: `Err(true)` for a newer format (left alone).
fn decode(seq: u64, text: &str) -> Result<Queued, bool> {
    let mut lines = text.splitn(10, '\n');
    let format = lines
        .next()
        .and_then(|l| l.strip_prefix(MAGIC))
        .ok_or(false)?;
    if format.parse::<u32>().map_err(|_| false)? > FORMAT {
        return Err(true);
    }
    let mut next = || lines.next().ok_or(false);
    let at = next()?.parse().map_err(|_| false)?;
    let attempts = next()?.parse().map_err(|_| false)?;
    let urgent = next()? == "1";
    let kind = next()?.to_owned();
    let mode = match next()? {
        "LIVE" => Some(Mode::Live),
        "DRAINING" => Some(Mode::Draining),
        "STANDBY" => Some(Mode::Standby),
        "ATTENTION" => Some(Mode::Attention),
        "ERROR" => Some(Mode::Error),
        _ => None,
    };
    let link = Some(next()?).filter(|l| *l != "-").map(str::to_owned);
    let pi = next()?.to_owned();
    let title = next()?.to_owned();
    let text = next()?.to_owned();
    Ok(Queued {
        seq,
        attempts,
        message: Message {
            pi,
            at,
            kind,
            mode,
            title,
            text,
            link,
            urgent,
        },
    })
}

#[cfg_attr(test, derive(Debug))]
#[derive(Clone, PartialEq)]
pub(crate) struct Queued {
    pub seq: u64,
    pub message: Message,
    pub attempts: u32,
}

/// The queue: in memory, mirrored on disk when a directory is given.
#[cfg_attr(test, derive(Debug))]
pub(crate) struct Queue {
    dir: Option<PathBuf>,
    items: VecDeque<Queued>,
    next_seq: u64,
}

impl Queue {
    /// Reads back what a previous run left. Without a directory (it cannot be created) the
    /// queue lives in memory only.
    pub fn open(dir: Option<&Path>) -> Queue {
        let mut queue = Queue {
            dir: None,
            items: VecDeque::new(),
            next_seq: 0,
        };
        let Some(dir) = dir else {
            return queue;
        };
        if let Err(e) = fs::create_dir_all(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "notification queue in memory only");
            return queue;
        }
        queue.dir = Some(dir.to_owned());
        let Ok(entries) = fs::read_dir(dir) else {
            return queue;
        };
        let mut items = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(&path);
                continue;
            }
            let Some(seq) = name
                .strip_suffix(".msg")
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            queue.next_seq = queue.next_seq.max(seq + 1);
            match read_bounded(&path).map(|t| decode(seq, &t)) {
                Ok(Ok(item)) => items.push(item),
                Ok(Err(true)) => {
                    tracing::warn!(file = %path.display(), "queued notification of a newer format: left as it is");
                }
                _ => {
                    tracing::warn!(file = %path.display(), "unreadable queued notification: removed");
                    let _ = fs::remove_file(&path);
                }
            }
        }
        items.sort_by_key(|q| q.seq);
        queue.items = items.into();
        queue
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn front(&self) -> Option<&Queued> {
        self.items.front()
    }

    /// Adds a message at the back, pushing out the oldest over the cap. Returns the number
    /// pushed out.
    pub fn push(&mut self, message: Message) -> usize {
        let item = Queued {
            seq: self.next_seq,
            message,
            attempts: 0,
        };
        self.next_seq += 1;
        self.store(&item);
        self.items.push_back(item);
        let mut dropped = 0;
        while self.items.len() > QUEUE_MAX {
            if let Some(old) = self.items.pop_front() {
                self.remove(old.seq);
                dropped += 1;
            }
        }
        dropped
    }

    /// The front message was delivered, or given up.
    pub fn pop(&mut self) -> Option<Queued> {
        let item = self.items.pop_front()?;
        self.remove(item.seq);
        Some(item)
    }

    /// The front message failed once more.
    pub(crate) fn failed_once(&mut self) {
        let Some(mut front) = self.items.pop_front() else {
            return;
        };
        front.attempts += 1;
        self.store(&front);
        self.items.push_front(front);
    }

    fn path(&self, seq: u64) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{seq:020}.msg")))
    }

    fn store(&self, item: &Queued) {
        let Some(path) = self.path(item.seq) else {
            return;
        };
        let tmp = path.with_extension("tmp");
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(encode(item).as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), error = %e, "notification not queued on disk; kept in memory");
        }
    }

    fn remove(&self, seq: u64) {
        if let Some(path) = self.path(seq) {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_comes_back_after_a_restart_in_order_and_bounded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut q = Queue::open(Some(dir.path()));
        for i in 0..(QUEUE_MAX as u64 + 5) {
            q.push(Message::test("pi", None, i));
        }
        q.failed_once();
        assert_eq!(q.len(), QUEUE_MAX);
        fs::write(dir.path().join("00000000000000000999.tmp"), b"pi-fail").expect("torn");
        let mut again = Queue::open(Some(dir.path()));
        assert_eq!(again.len(), QUEUE_MAX);
        let first = again.pop().expect("first");
        assert_eq!(first.message.at, 5, "the oldest five were pushed out");
        assert_eq!(first.attempts, 1);
        assert!(!dir.path().join("00000000000000000999.tmp").exists());
        again.push(Message::test("pi", None, 1000));
        let third = Queue::open(Some(dir.path()));
        assert_eq!(third.len(), QUEUE_MAX);
        assert_eq!(third.items.back().map(|q| q.message.at), Some(1000));
    }

    #[test]
    fn a_message_reads_back_as_written_and_a_newer_format_is_left_alone() {
        let mut m = Message::test("pi: Frankfurt", Some("http://10.0.0.5:8080/"), 42);
        m.mode = Some(Mode::Live);
        m.urgent = true;
        m.text = "two\nlines".into();
        let item = Queued {
            seq: 7,
            message: m,
            attempts: 3,
        };
        assert_eq!(decode(7, &encode(&item)), Ok(item));
        assert_eq!(decode(1, "pi-failover notification 2\nwhatever"), Err(true));
        assert_eq!(decode(1, "{\"json\": 1}"), Err(false));
    }
}
