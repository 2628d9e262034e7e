//! What happened over time, kept across reboots: per-minute samples for the last 24 hours,
//! per-hour samples for the last 30 days, and the events an owner asks about afterwards (mode
//! changes, syncs that failed or changed the site, certificate renewals, boots, updates,
//! clean and unclean shutdowns).
//!
//! - [`observe`]: pure. Status snapshots in (one a second), closed samples and events out.
//! - [`journal`]: the file on the data partition (its layout is drawn there): appended once a
//!   minute, a torn last record dropped on reading, rewritten whole only when it reaches its cap.
//! - [`recorder`]: the task that runs the two and hands notifiable events to `notify`.
//!
//! The status page draws it (`status_page::graphs`) and `/api/history` gives it as JSON
//! (docs/status-api.md). Times are the wall clock's Unix seconds: the Pi has no real-time
//! clock, so a sample written before NTP stepped the clock keeps the time it had then (a
//! backwards step drops the samples "from the future", see [`History::apply`]).

pub mod journal;
pub mod observe;
pub mod recorder;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::live::mode::Mode;

/// Bumped when a field of `/api/history` changes meaning or goes away (docs/status-api.md).
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// 24 hours of minutes.
pub(crate) const MINUTES_KEPT: u64 = 24 * 60;
/// 30 days of hours.
pub(crate) const HOURS_KEPT: u64 = 30 * 24;
/// The newest events kept; older ones go when the journal is rewritten.
pub(crate) const EVENTS_KEPT: usize = 500;
/// Event texts (the sentence and every free text of the kind) longer than this are cut: an S3
/// error can carry a whole XML document.
pub(crate) const EVENT_TEXT_MAX: usize = 400;

/// One minute or one hour of the Pi's life. In an hour sample `readers` is the busiest
/// minute's; the counts are sums.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds at the start of the period (a whole minute or hour).
    pub start: u64,
    /// Distinct reader addresses in the minute (an hour: its busiest minute).
    pub readers: u64,
    pub reader_requests: u64,
    pub bytes_sent: u64,
    pub health_checks: u64,
    pub errors_5xx: u64,
    /// The mode at the end of the period.
    pub mode: Mode,
    /// Minutes of the period spent LIVE or DRAINING (a minute sample: 0 or 1).
    pub live_minutes: u32,
    /// Minutes the primary's probe said up, and down (neither: no probe, or not known yet).
    pub primary_up_minutes: u32,
    pub primary_down_minutes: u32,
    /// Syncs finished in the period, and how many of them failed.
    pub syncs: u32,
    pub sync_failures: u32,
}

impl Sample {
    /// An empty period starting at `start`.
    pub fn empty(start: u64, mode: Mode) -> Self {
        Self {
            start,
            readers: 0,
            reader_requests: 0,
            bytes_sent: 0,
            health_checks: 0,
            errors_5xx: 0,
            mode,
            live_minutes: 0,
            primary_up_minutes: 0,
            primary_down_minutes: 0,
            syncs: 0,
            sync_failures: 0,
        }
    }

    /// The hour `minutes` (all of one hour, oldest first) add up to.
    pub(crate) fn hour_of(minutes: &[&Sample]) -> Option<Sample> {
        let last = minutes.last()?;
        let mut hour = Sample::empty(hour_start(last.start), last.mode);
        for m in minutes {
            hour.readers = hour.readers.max(m.readers);
            hour.reader_requests += m.reader_requests;
            hour.bytes_sent += m.bytes_sent;
            hour.health_checks += m.health_checks;
            hour.errors_5xx += m.errors_5xx;
            hour.live_minutes += m.live_minutes;
            hour.primary_up_minutes += m.primary_up_minutes;
            hour.primary_down_minutes += m.primary_down_minutes;
            hour.syncs += m.syncs;
            hour.sync_failures += m.sync_failures;
        }
        Some(hour)
    }
}

pub(crate) fn minute_start(unix: u64) -> u64 {
    unix - unix % 60
}

pub(crate) fn hour_start(unix: u64) -> u64 {
    unix - unix % 3600
}

/// Something the owner may ask about later; some of them are also sent on (`notify`).
/// In JSON (the journal, `/api/history`) one flat object: `at`, `kind`, `text` and the kind's
/// own fields ([`EventFields`]).
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "EventFields", try_from = "EventFields")]
pub struct Event {
    /// Unix seconds.
    pub at: u64,
    pub kind: EventKind,
    /// The event in a sentence, as the page, the log and a notification say it.
    pub text: String,
}

#[cfg_attr(test, derive(Debug))]
#[derive(Clone, PartialEq)]
pub enum EventKind {
    /// The appliance started.
    Boot { version: String },
    /// It stopped on a signal and wrote everything down.
    Shutdown,
    /// It stopped without writing its shutdown (power cut, SIGKILL, a crash): noticed at the
    /// next start. `last_seen` is the newest time the journal holds from before.
    UncleanShutdown { last_seen: u64 },
    /// The appliance that started is another version than the one before.
    Updated { from: String, to: String },
    /// The mode changed. Leaving LIVE or DRAINING for STANDBY says how long the Pi served
    /// and how much. `from` is absent for a mode held since boot (ERROR or ATTENTION that
    /// outlasted the start-up grace).
    Mode {
        from: Option<Mode>,
        to: Mode,
        reason: String,
        served: Option<Served>,
    },
    /// The first failure of a run of failed syncs.
    SyncFailed { error: String },
    /// The sync has failed for longer than `notify.sync_failing_after`.
    SyncFailing {
        since: u64,
        failures: u32,
        error: String,
    },
    /// A sync succeeded after failures.
    SyncRecovered { failures: u32 },
    /// A sync changed the site.
    SiteChanged {
        added: usize,
        changed: usize,
        removed: usize,
        generation: Option<String>,
    },
    /// A certificate was replaced by one that lasts longer.
    CertificateRenewed { origin: String, not_after: u64 },
    /// A certificate entered `live.certificate_warning` of its expiry.
    CertificateExpiring { origin: String, days_left: i64 },
}

/// An event as JSON has it: one flat object, the fields of its kind present. serde's derived
/// reader for a 11-variant enum cost the Pi's binary 12 KB; one struct costs a third of it.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct EventFields {
    at: u64,
    kind: String,
    text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seen: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    served: Option<Served>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    added: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changed: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    removed: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    generation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    not_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    days_left: Option<i64>,
}

fn mode_named(name: &str) -> Option<Mode> {
    [
        Mode::Error,
        Mode::Live,
        Mode::Draining,
        Mode::Attention,
        Mode::Standby,
    ]
    .into_iter()
    .find(|m| m.as_str() == name)
}

impl From<Event> for EventFields {
    fn from(e: Event) -> Self {
        let mut f = EventFields {
            at: e.at,
            kind: e.kind.name().to_owned(),
            text: e.text,
            ..EventFields::default()
        };
        match e.kind {
            EventKind::Boot { version } => f.version = Some(version),
            EventKind::Shutdown => {}
            EventKind::UncleanShutdown { last_seen } => f.last_seen = Some(last_seen),
            EventKind::Updated { from, to } => (f.from, f.to) = (Some(from), Some(to)),
            EventKind::Mode {
                from,
                to,
                reason,
                served,
            } => {
                f.from = from.map(|m| m.as_str().to_owned());
                f.to = Some(to.as_str().to_owned());
                f.reason = Some(reason);
                f.served = served;
            }
            EventKind::SyncFailed { error } => f.error = Some(error),
            EventKind::SyncFailing {
                since,
                failures,
                error,
            } => (f.since, f.failures, f.error) = (Some(since), Some(failures), Some(error)),
            EventKind::SyncRecovered { failures } => f.failures = Some(failures),
            EventKind::SiteChanged {
                added,
                changed,
                removed,
                generation,
            } => {
                (f.added, f.changed, f.removed) = (Some(added), Some(changed), Some(removed));
                f.generation = generation;
            }
            EventKind::CertificateRenewed { origin, not_after } => {
                (f.origin, f.not_after) = (Some(origin), Some(not_after));
            }
            EventKind::CertificateExpiring { origin, days_left } => {
                (f.origin, f.days_left) = (Some(origin), Some(days_left));
            }
        }
        f
    }
}

impl TryFrom<EventFields> for Event {
    type Error = String;

    fn try_from(f: EventFields) -> Result<Self, String> {
        let missing = |field: &str| format!("a {} event without `{field}`", f.kind);
        let kind = match f.kind.as_str() {
            "boot" => EventKind::Boot {
                version: f.version.clone().unwrap_or_default(),
            },
            "shutdown" => EventKind::Shutdown,
            "unclean_shutdown" => EventKind::UncleanShutdown {
                last_seen: f.last_seen.unwrap_or(f.at),
            },
            "updated" => EventKind::Updated {
                from: f.from.clone().unwrap_or_default(),
                to: f.to.clone().unwrap_or_default(),
            },
            "mode" => EventKind::Mode {
                from: f.from.as_deref().and_then(mode_named),
                to: f
                    .to
                    .as_deref()
                    .and_then(mode_named)
                    .ok_or_else(|| missing("to"))?,
                reason: f.reason.clone().unwrap_or_default(),
                served: f.served.clone(),
            },
            "sync_failed" => EventKind::SyncFailed {
                error: f.error.clone().unwrap_or_default(),
            },
            "sync_failing" => EventKind::SyncFailing {
                since: f.since.unwrap_or(f.at),
                failures: f.failures.unwrap_or(0),
                error: f.error.clone().unwrap_or_default(),
            },
            "sync_recovered" => EventKind::SyncRecovered {
                failures: f.failures.unwrap_or(0),
            },
            "site_changed" => EventKind::SiteChanged {
                added: f.added.unwrap_or(0),
                changed: f.changed.unwrap_or(0),
                removed: f.removed.unwrap_or(0),
                generation: f.generation.clone(),
            },
            "certificate_renewed" => EventKind::CertificateRenewed {
                origin: f.origin.clone().unwrap_or_default(),
                not_after: f.not_after.unwrap_or(0),
            },
            "certificate_expiring" => EventKind::CertificateExpiring {
                origin: f.origin.clone().unwrap_or_default(),
                days_left: f.days_left.unwrap_or(0),
            },
            other => return Err(format!("an event of unknown kind `{other}`")),
        };
        Ok(Event {
            at: f.at,
            kind,
            text: f.text,
        })
    }
}

/// A live period, told when it ends.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Served {
    pub seconds: u64,
    pub reader_requests: u64,
    /// The most distinct readers seen in one minute.
    pub peak_readers: u64,
}

impl EventKind {
    /// The events an owner acts on: these are the ones `notify` sends.
    pub(crate) fn notifiable(&self) -> bool {
        match self {
            EventKind::Mode { from, to, .. } => match to {
                Mode::Live | Mode::Attention | Mode::Error => true,
                Mode::Standby => matches!(from, Some(Mode::Live | Mode::Draining)),
                Mode::Draining => false,
            },
            EventKind::SyncFailing { .. } | EventKind::CertificateExpiring { .. } => true,
            _ => false,
        }
    }

    /// A short name for logs and the JSON's `kind`.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Boot { .. } => "boot",
            EventKind::Shutdown => "shutdown",
            EventKind::UncleanShutdown { .. } => "unclean_shutdown",
            EventKind::Updated { .. } => "updated",
            EventKind::Mode { .. } => "mode",
            EventKind::SyncFailed { .. } => "sync_failed",
            EventKind::SyncFailing { .. } => "sync_failing",
            EventKind::SyncRecovered { .. } => "sync_recovered",
            EventKind::SiteChanged { .. } => "site_changed",
            EventKind::CertificateRenewed { .. } => "certificate_renewed",
            EventKind::CertificateExpiring { .. } => "certificate_expiring",
        }
    }
}

impl Event {
    /// Every free text in it cut to [`EVENT_TEXT_MAX`] here, where events are made: an S3
    /// error or a reason can be as long as its source likes, and the journal's records,
    /// the notifications and `/api/history` all carry what is kept.
    pub fn new(at: u64, mut kind: EventKind, text: impl Into<String>) -> Self {
        let mut text: String = text.into();
        cut(&mut text);
        match &mut kind {
            EventKind::Boot { version } => cut(version),
            EventKind::Updated { from, to } => {
                cut(from);
                cut(to);
            }
            EventKind::Mode { reason, .. } => cut(reason),
            EventKind::SyncFailed { error } | EventKind::SyncFailing { error, .. } => cut(error),
            EventKind::SiteChanged {
                generation: Some(g),
                ..
            } => cut(g),
            EventKind::CertificateRenewed { origin, .. }
            | EventKind::CertificateExpiring { origin, .. } => cut(origin),
            _ => {}
        }
        Self { at, kind, text }
    }
}

/// `s` cut to [`EVENT_TEXT_MAX`] bytes at a character boundary, marked with an ellipsis.
fn cut(s: &mut String) {
    if s.len() > EVENT_TEXT_MAX {
        let mut end = EVENT_TEXT_MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

/// One line of the journal.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Record {
    Minute(Sample),
    Hour(Sample),
    Event(Event),
}

/// What is remembered, bounded: the journal is this, written down.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, Default, PartialEq, Serialize)]
pub struct History {
    /// Oldest first, at most [`MINUTES_KEPT`], none older than a day before the newest.
    pub minutes: VecDeque<Sample>,
    /// Oldest first, at most [`HOURS_KEPT`], none older than 30 days before the newest.
    pub hours: VecDeque<Sample>,
    /// Oldest first, at most [`EVENTS_KEPT`].
    pub events: VecDeque<Event>,
}

/// The history the recorder keeps and the views read.
pub(crate) type SharedHistory = Arc<Mutex<Live>>;

/// The history and the minute being counted now (drawn as the graphs' last column, so the
/// graphs move while someone browses).
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, Default)]
pub struct Live {
    pub history: History,
    pub current: Option<Sample>,
    /// Why the journal is not being written, when it is not (a newer format on the card, a
    /// read-only data partition).
    pub not_written: Option<String>,
}

impl History {
    /// Takes one record in. A sample for a period already held replaces it (a restart within
    /// a minute writes that minute again); one older than the newest held means the clock
    /// stepped back, and the samples after it, stamped by the wrong clock, go.
    pub(crate) fn apply(&mut self, record: Record) {
        match record {
            Record::Minute(s) => {
                place(&mut self.minutes, s);
                trim(&mut self.minutes, MINUTES_KEPT, 60);
            }
            Record::Hour(s) => {
                place(&mut self.hours, s);
                trim(&mut self.hours, HOURS_KEPT, 3600);
            }
            Record::Event(e) => {
                self.events.push_back(e);
                while self.events.len() > EVENTS_KEPT {
                    self.events.pop_front();
                }
            }
        }
    }

    /// Every record, in an order that [`History::apply`] rebuilds this from.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.hours
            .iter()
            .cloned()
            .map(Record::Hour)
            .chain(self.minutes.iter().cloned().map(Record::Minute))
            .chain(self.events.iter().cloned().map(Record::Event))
    }

    /// The newest time anything here carries.
    pub(crate) fn last_seen(&self) -> Option<u64> {
        let minute = self.minutes.back().map(|m| m.start + 59);
        let event = self.events.back().map(|e| e.at);
        minute.max(event)
    }
}

fn place(samples: &mut VecDeque<Sample>, sample: Sample) {
    while samples
        .back()
        .is_some_and(|last| last.start >= sample.start)
    {
        samples.pop_back();
    }
    samples.push_back(sample);
}

fn trim(samples: &mut VecDeque<Sample>, kept: u64, period: u64) {
    let Some(newest) = samples.back().map(|s| s.start) else {
        return;
    };
    let oldest = newest.saturating_sub((kept - 1) * period);
    while samples.front().is_some_and(|s| s.start < oldest) {
        samples.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(start: u64, readers: u64) -> Record {
        Record::Minute(Sample {
            readers,
            ..Sample::empty(start, Mode::Standby)
        })
    }

    #[test]
    fn samples_stay_within_their_window_and_a_rewritten_minute_replaces_the_old() {
        let mut h = History::default();
        for i in 0..(MINUTES_KEPT + 100) {
            h.apply(minute(i * 60, i));
        }
        assert_eq!(h.minutes.len() as u64, MINUTES_KEPT);
        assert_eq!(h.minutes.front().map(|m| m.start), Some(100 * 60));
        let last = (MINUTES_KEPT + 99) * 60;
        h.apply(minute(last, 7));
        assert_eq!(h.minutes.len() as u64, MINUTES_KEPT);
        assert_eq!(h.minutes.back().map(|m| m.readers), Some(7));
    }

    #[test]
    fn a_clock_stepped_back_drops_the_samples_it_stamped_ahead() {
        let mut h = History::default();
        for i in 0..10 {
            h.apply(minute(1_000_000 + i * 60, 1));
        }
        h.apply(minute(1_000_000 + 3 * 60, 9));
        assert_eq!(h.minutes.len(), 4);
        assert_eq!(h.minutes.back().map(|m| m.readers), Some(9));
    }

    #[test]
    fn a_gap_longer_than_the_window_leaves_only_the_new_sample() {
        let mut h = History::default();
        h.apply(minute(60, 1));
        h.apply(minute(60 + 2 * 86_400, 2));
        assert_eq!(h.minutes.len(), 1);
    }

    #[test]
    fn an_hour_adds_its_minutes_and_keeps_the_busiest_minutes_readers() {
        let minutes: Vec<Sample> = (0..60)
            .map(|i| Sample {
                readers: i % 7,
                reader_requests: 2,
                live_minutes: u32::from(i < 10),
                ..Sample::empty(7200 + i * 60, Mode::Live)
            })
            .collect();
        let refs: Vec<&Sample> = minutes.iter().collect();
        let hour = Sample::hour_of(&refs).expect("an hour");
        assert_eq!(hour.start, 7200);
        assert_eq!(hour.readers, 6);
        assert_eq!(hour.reader_requests, 120);
        assert_eq!(hour.live_minutes, 10);
    }

    #[test]
    fn every_free_text_of_an_event_is_cut_where_it_is_made() {
        let long = "é".repeat(40_000);
        let e = Event::new(
            1,
            EventKind::SyncFailing {
                since: 0,
                failures: 3,
                error: long.clone(),
            },
            long.clone(),
        );
        let EventKind::SyncFailing { error, .. } = &e.kind else {
            panic!("kind")
        };
        assert!(error.len() <= EVENT_TEXT_MAX + '…'.len_utf8());
        assert!(e.text.len() <= EVENT_TEXT_MAX + '…'.len_utf8());
        assert!(serde_json::to_vec(&e).expect("JSON").len() < 2 * 1024);
    }

    #[test]
    fn the_events_an_owner_acts_on_are_the_notifiable_ones() {
        let mode = |from, to| EventKind::Mode {
            from,
            to,
            reason: String::new(),
            served: None,
        };
        assert!(mode(Some(Mode::Standby), Mode::Live).notifiable());
        assert!(mode(Some(Mode::Draining), Mode::Standby).notifiable());
        assert!(mode(Some(Mode::Standby), Mode::Error).notifiable());
        assert!(mode(None, Mode::Attention).notifiable());
        assert!(!mode(Some(Mode::Live), Mode::Draining).notifiable());
        assert!(!mode(Some(Mode::Attention), Mode::Standby).notifiable());
        assert!(!EventKind::Shutdown.notifiable());
    }
}
