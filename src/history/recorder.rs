//! The history's task: observes every status the collector publishes, keeps the shared
//! history current for the views, writes the journal once a minute and at shutdown, and hands
//! the events an owner acts on to the notifier without ever waiting for it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::journal::Journal;
use super::observe::{unix, ObserveSettings, Observer};
use super::{hour_start, Event, EventKind, History, Live, Record, SharedHistory};
use crate::status::Status;

/// How often the journal is written: SD cards wear by the write, and a minute is what a
/// power cut may cost.
pub(crate) const WRITE_EVERY: Duration = Duration::from_secs(60);

#[cfg_attr(test, derive(Debug))]
#[derive(Clone)]
pub(crate) struct RecorderSettings {
    /// `<data_dir>/history/journal`.
    pub journal: PathBuf,
    pub observe: ObserveSettings,
}

impl RecorderSettings {
    pub(crate) fn in_data_dir(data_dir: &std::path::Path, observe: ObserveSettings) -> Self {
        Self {
            journal: data_dir.join("history").join("journal"),
            observe,
        }
    }
}

pub(crate) struct Recorder {
    journal: Option<Journal>,
    observer: Observer,
    shared: SharedHistory,
    /// Records not yet in the journal.
    pending: Vec<Record>,
}

impl Recorder {
    /// Opens the journal, reads it back, and writes down this start (with an unclean end of
    /// the run before, or a change of version, when there was one). Blocking file I/O of at
    /// most the journal's cap: called once, at start.
    pub fn open(settings: &RecorderSettings, now: SystemTime) -> (Recorder, SharedHistory) {
        let (journal, history, not_written) = match Journal::open(&settings.journal) {
            Ok((journal, opened)) => {
                if opened.torn_bytes > 0 || opened.unreadable > 0 {
                    tracing::warn!(
                        torn_bytes = opened.torn_bytes,
                        unreadable = opened.unreadable,
                        records = opened.records,
                        "history journal: cut back to its last whole record"
                    );
                }
                (Some(journal), opened.history, None)
            }
            Err(e) => {
                tracing::error!(error = %e, "history kept in memory only");
                (None, History::default(), Some(e.to_string()))
            }
        };
        let at = unix(now);
        let resumed = history.minutes.back().cloned();
        let mut observer = Observer::new(settings.observe, now, resumed);
        let this_hour = history
            .minutes
            .iter()
            .filter(|m| hour_start(m.start) == hour_start(at))
            .filter(|m| observer.current().is_none_or(|c| c.start != m.start))
            .cloned();
        observer.resume_hour(this_hour.collect::<Vec<_>>());
        let mut boot = Vec::new();
        if let Some(last) = history.events.back() {
            if last.kind != EventKind::Shutdown {
                let last_seen = history.last_seen().unwrap_or(last.at);
                boot.push(Event::new(
                    at,
                    EventKind::UncleanShutdown { last_seen },
                    format!(
                        "the last run ended without a shutdown (power cut or crash) after {}",
                        crate::format::rfc3339(last_seen)
                    ),
                ));
            }
        }
        let version = env!("CARGO_PKG_VERSION");
        let before = history.events.iter().rev().find_map(|e| match &e.kind {
            EventKind::Boot { version } => Some(version.clone()),
            _ => None,
        });
        if let Some(before) = before.filter(|v| v != version) {
            boot.push(Event::new(
                at,
                EventKind::Updated {
                    from: before.clone(),
                    to: version.to_owned(),
                },
                format!("pi-failover {before} → {version}"),
            ));
        }
        boot.push(Event::new(
            at,
            EventKind::Boot {
                version: version.to_owned(),
            },
            format!("pi-failover {version} started"),
        ));
        let shared = Arc::new(std::sync::Mutex::new(Live {
            history,
            current: None,
            not_written,
        }));
        let mut recorder = Recorder {
            journal,
            observer,
            shared: shared.clone(),
            pending: Vec::new(),
        };
        recorder.take(boot.into_iter().map(Record::Event).collect());
        // The start is written at once: a Pi that crashes in a loop shows its boots.
        recorder.write();
        (recorder, shared)
    }

    /// Observes until shutdown, then closes the minute, writes down the shutdown and returns.
    pub async fn run(
        mut self,
        mut status: watch::Receiver<Arc<Status>>,
        notify: Option<mpsc::Sender<Event>>,
        shutdown: CancellationToken,
    ) {
        let mut writes = tokio::time::interval(WRITE_EVERY);
        writes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        writes.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let snapshot = status.borrow_and_update().clone();
                    let records = self.observer.observe(&snapshot, SystemTime::now());
                    if let Some(notify) = &notify {
                        hand_over(notify, &records, &self.observer);
                    }
                    self.take(records);
                }
                _ = writes.tick() => self.write_aside().await,
            }
        }
        let mut last = self.observer.finish();
        last.push(Record::Event(Event::new(
            unix(SystemTime::now()),
            EventKind::Shutdown,
            "pi-failover stopped (shutdown)",
        )));
        self.take(last);
        self.write_aside().await;
    }

    /// Records into the shared history (the views see them at once) and the pending list.
    fn take(&mut self, records: Vec<Record>) {
        let mut live = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for record in &records {
            if let Record::Event(e) = record {
                tracing::info!(event = e.kind.name(), "{}", e.text);
            }
            live.history.apply(record.clone());
        }
        live.current = self.observer.current().cloned();
        drop(live);
        if self.journal.is_some() {
            self.pending.extend(records);
        }
    }

    /// The pending records into the journal, off the runtime's threads.
    async fn write_aside(&mut self) {
        let Some(mut journal) = self.journal.take() else {
            return;
        };
        let records = std::mem::take(&mut self.pending);
        let history = self.history();
        let result = tokio::task::spawn_blocking(move || {
            let r = journal.append(&records, &history);
            (journal, r, records)
        })
        .await;
        // A join error is the runtime shutting down (the Pi's build aborts on panic): the
        // journal is not written again in this run.
        if let Ok((journal, r, records)) = result {
            self.journal = Some(journal);
            self.after_write(r, records);
        }
    }

    /// The pending records into the journal, here and now (at start, before the runtime's
    /// tasks run).
    fn write(&mut self) {
        let history = self.history();
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let records = std::mem::take(&mut self.pending);
        let r = journal.append(&records, &history);
        self.after_write(r, records);
    }

    fn after_write(
        &mut self,
        result: Result<(), super::journal::JournalError>,
        records: Vec<Record>,
    ) {
        let mut live = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match result {
            Ok(()) => live.not_written = None,
            Err(e) => {
                // Kept for the next try (a data partition remounted read-only after an error
                // comes back writable after a reboot); bounded like the history itself.
                tracing::warn!(error = %e, "history not written; trying again in a minute");
                live.not_written = Some(e.to_string());
                let mut kept = records;
                kept.append(&mut self.pending);
                let excess = kept.len().saturating_sub(super::MINUTES_KEPT as usize);
                kept.drain(..excess);
                self.pending = kept;
            }
        }
    }

    fn history(&self) -> History {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .history
            .clone()
    }
}

/// The notifiable events to the notifier. Never waits: a notifier that is behind loses
/// events here (logged) rather than slow the history or anything upstream of it.
fn hand_over(notify: &mpsc::Sender<Event>, records: &[Record], observer: &Observer) {
    for record in records {
        let Record::Event(event) = record else {
            continue;
        };
        if !observer.tells_owner(event) {
            continue;
        }
        if notify.try_send(event.clone()).is_err() {
            tracing::warn!(
                event = event.kind.name(),
                "notifier busy; not sent: {}",
                event.text
            );
        }
    }
}
