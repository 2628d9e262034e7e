//! From status snapshots to history: a pure machine fed one [`Status`] a second. It counts the
//! minute being lived (traffic as differences of the totals since start, so a missed second
//! loses nothing), closes it when the wall clock enters the next one, closes the hour after
//! it, and tells events by comparing each snapshot with the one before.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{hour_start, minute_start, Event, EventKind, Record, Sample, Served};
use crate::format::{count, duration};
use crate::live::mode::Mode;
use crate::status::Status;

/// What the observer is told besides the snapshots.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, Copy)]
pub(crate) struct ObserveSettings {
    /// A sync failing this long is an event of its own (a notification).
    pub sync_failing_after: Duration,
    /// ERROR or ATTENTION held from boot for this long is told (a Pi that boots into a broken
    /// state says so; the few seconds before the first sync do not).
    pub startup_grace: Duration,
}

impl Default for ObserveSettings {
    fn default() -> Self {
        Self {
            sync_failing_after: Duration::from_secs(2 * 3600),
            startup_grace: Duration::from_secs(300),
        }
    }
}

/// The traffic totals since the appliance started, at the last snapshot.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, Copy, Default)]
struct Totals {
    reader_requests: u64,
    health_checks: u64,
    bytes: u64,
    errors_5xx: u64,
}

impl Totals {
    fn of(s: &Status) -> Self {
        let t = &s.traffic;
        Self {
            reader_requests: t.requests_total.reader,
            health_checks: t.requests_total.health_check,
            bytes: t.bytes_total,
            errors_5xx: t.statuses_total.server_error,
        }
    }
}

/// A live period being counted.
#[cfg_attr(test, derive(Debug))]
#[derive(Clone, Copy)]
struct LivePeriod {
    since: u64,
    reader_requests: u64,
    peak_readers: u64,
}

#[cfg_attr(test, derive(Debug))]
pub(crate) struct Observer {
    settings: ObserveSettings,
    started: u64,
    current: Option<Sample>,
    /// The minutes of the hour being lived, for its hour sample.
    hour: Vec<Sample>,
    totals: Option<Totals>,
    mode: Option<Mode>,
    /// No mode change seen since start: the boot mode may still be told.
    boot_mode_pending: bool,
    live: Option<LivePeriod>,
    sync_attempt: Option<SystemTime>,
    sync_failing_since: Option<SystemTime>,
    sync_failing_told: bool,
    /// Failures in a row at the last attempt seen.
    sync_failures_run: u32,
    certificates: HashMap<String, (Option<SystemTime>, bool)>,
}

pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Observer {
    /// `resumed` is the minute the journal ends with, when it is the one being lived now
    /// (a restart within a minute goes on counting it) .
    pub fn new(settings: ObserveSettings, now: SystemTime, resumed: Option<Sample>) -> Self {
        let started = unix(now);
        Self {
            settings,
            started,
            current: resumed.filter(|m| m.start == minute_start(started)),
            hour: Vec::new(),
            totals: None,
            mode: None,
            boot_mode_pending: true,
            live: None,
            sync_attempt: None,
            sync_failing_since: None,
            sync_failing_told: false,
            sync_failures_run: 0,
            certificates: HashMap::new(),
        }
    }

    /// Within the start-up grace: ERROR and ATTENTION now are the Pi settling (no site before
    /// the first sync, no NTP answer yet). Their events are kept but not sent on; one still
    /// held at the grace's end is told then ([`EventKind::Mode`] with no `from`).
    pub fn settling(&self, at: u64) -> bool {
        at < self.started + self.settings.startup_grace.as_secs()
    }

    /// Whether `event` goes to the owner: its kind says so, and it is not the Pi settling.
    pub(crate) fn tells_owner(&self, event: &super::Event) -> bool {
        let settling_problem = matches!(
            event.kind,
            EventKind::Mode {
                from: Some(_),
                to: Mode::Error | Mode::Attention,
                ..
            }
        ) && self.settling(event.at);
        event.kind.notifiable() && !settling_problem
    }

    /// The minute being counted, as far as it has got.
    pub fn current(&self) -> Option<&Sample> {
        self.current.as_ref()
    }

    /// One snapshot in; what it closed and told out, oldest first.
    pub(crate) fn observe(&mut self, status: &Status, now: SystemTime) -> Vec<Record> {
        let at = unix(now);
        let mut out = Vec::new();
        if self
            .current
            .as_ref()
            .is_some_and(|m| m.start != minute_start(at))
        {
            self.close_minute(&mut out, Some(minute_start(at)));
        }
        let minute = self
            .current
            .get_or_insert_with(|| Sample::empty(minute_start(at), status.mode));
        let totals = Totals::of(status);
        // The totals restart at zero with the process; the first snapshot only sets the base.
        let before = self.totals.replace(totals).unwrap_or(totals);
        let new_requests = totals
            .reader_requests
            .saturating_sub(before.reader_requests);
        minute.reader_requests += new_requests;
        minute.health_checks += totals.health_checks.saturating_sub(before.health_checks);
        minute.bytes_sent += totals.bytes.saturating_sub(before.bytes);
        minute.errors_5xx += totals.errors_5xx.saturating_sub(before.errors_5xx);
        minute.readers = minute.readers.max(status.traffic.readers_1m);
        minute.mode = status.mode;
        let serving = matches!(status.mode, Mode::Live | Mode::Draining);
        if serving {
            minute.live_minutes = 1;
        }
        match status.primary.as_ref().and_then(|p| p.up) {
            // Down in any second of the minute counts the minute down.
            Some(false) => {
                minute.primary_down_minutes = 1;
                minute.primary_up_minutes = 0;
            }
            Some(true) if minute.primary_down_minutes == 0 => minute.primary_up_minutes = 1,
            _ => {}
        }
        if let Some(live) = self.live.as_mut() {
            live.reader_requests += new_requests;
            live.peak_readers = live.peak_readers.max(status.traffic.readers_1m);
        }
        self.mode_events(status, at, &mut out);
        self.sync_events(status, now, &mut out);
        self.certificate_events(status, at, &mut out);
        out
    }

    /// The minute being counted, closed now (shutdown), with the records that closes.
    pub fn finish(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        self.close_minute(&mut out, None);
        out
    }

    /// Closes the minute being counted; and its hour too when `next` (the minute starting
    /// now, `None` at shutdown) is in another hour.
    fn close_minute(&mut self, out: &mut Vec<Record>, next: Option<u64>) {
        let Some(minute) = self.current.take() else {
            return;
        };
        // Minutes of an earlier hour still held: the process slept or the clock jumped.
        if self
            .hour
            .first()
            .is_some_and(|m| hour_start(m.start) != hour_start(minute.start))
        {
            self.close_hour(out);
        }
        let closed = minute.start;
        self.hour.push(minute.clone());
        out.push(Record::Minute(minute));
        if next.is_none_or(|n| hour_start(n) != hour_start(closed)) {
            self.close_hour(out);
        }
    }

    fn close_hour(&mut self, out: &mut Vec<Record>) {
        let minutes: Vec<&Sample> = self.hour.iter().collect();
        if let Some(hour) = Sample::hour_of(&minutes) {
            out.push(Record::Hour(hour));
        }
        self.hour.clear();
    }

    /// The minutes of this hour already written (read back at start, so an hour cut by a
    /// restart still adds up whole).
    pub(crate) fn resume_hour(&mut self, minutes: impl IntoIterator<Item = Sample>) {
        self.hour = minutes.into_iter().collect();
    }

    fn mode_events(&mut self, status: &Status, at: u64, out: &mut Vec<Record>) {
        let mode = status.mode;
        let Some(before) = self.mode.replace(mode) else {
            return;
        };
        if before == mode {
            let held = at.saturating_sub(self.started);
            if self.boot_mode_pending
                && held >= self.settings.startup_grace.as_secs()
                && matches!(mode, Mode::Error | Mode::Attention)
            {
                self.boot_mode_pending = false;
                let text = format!("{mode} since the start: {}", status.reason);
                out.push(event(at, mode_kind(None, mode, status, None), text));
            }
            return;
        }
        // Changes while the Pi settles (ERROR before the first sync, ATTENTION until NTP
        // answers) leave the boot mode to be told at the grace's end if it is still a problem.
        if !self.settling(at) {
            self.boot_mode_pending = false;
        }
        let serving = |m: Mode| matches!(m, Mode::Live | Mode::Draining);
        let mut served = None;
        if serving(mode) && self.live.is_none() {
            self.live = Some(LivePeriod {
                since: at,
                reader_requests: 0,
                peak_readers: status.traffic.readers_1m,
            });
        } else if !serving(mode) {
            served = self.live.take().map(|live| Served {
                seconds: at.saturating_sub(live.since),
                reader_requests: live.reader_requests,
                peak_readers: live.peak_readers,
            });
        }
        let text = match &served {
            Some(s) => format!(
                "{before} → {mode} after {} serving readers: {}, at most {} a minute. {}",
                duration(s.seconds),
                count(s.reader_requests, "reader request", "reader requests"),
                count(s.peak_readers, "reader", "readers"),
                status.reason
            ),
            None => format!("{before} → {mode}: {}", status.reason),
        };
        let at = unix(status.mode_since).clamp(at.saturating_sub(60), at);
        out.push(event(
            at,
            mode_kind(Some(before), mode, status, served),
            text,
        ));
    }

    fn sync_events(&mut self, status: &Status, now: SystemTime, out: &mut Vec<Record>) {
        let Some(sync) = status.site.sync.as_ref() else {
            return;
        };
        let at = unix(now);
        if sync.last_attempt != self.sync_attempt && sync.last_attempt.is_some() {
            self.sync_attempt = sync.last_attempt;
            let minute = self.current.as_mut();
            if let Some(error) = &sync.last_error {
                if let Some(m) = minute {
                    m.syncs += 1;
                    m.sync_failures += 1;
                }
                if sync.consecutive_failures <= 1 || self.sync_failing_since.is_none() {
                    self.sync_failing_since = sync.last_attempt;
                    self.sync_failing_told = false;
                    let kind = EventKind::SyncFailed {
                        error: error.clone(),
                    };
                    out.push(event(at, kind, format!("sync failed: {error}")));
                }
            } else {
                if let Some(m) = minute {
                    m.syncs += 1;
                }
                if self.sync_failing_since.take().is_some() {
                    let failures = self.sync_failures_run;
                    let kind = EventKind::SyncRecovered { failures };
                    let text = format!(
                        "the sync works again after {}",
                        count(failures, "failure", "failures")
                    );
                    out.push(event(at, kind, text));
                }
                let changes =
                    [sync.last_added, sync.last_changed, sync.last_removed].map(|n| n.unwrap_or(0));
                // The first sync after start builds or refreshes the generation served:
                // a change like any other when it changed something.
                if changes.iter().sum::<usize>() > 0 {
                    let [added, changed, removed] = changes;
                    let kind = EventKind::SiteChanged {
                        added,
                        changed,
                        removed,
                        generation: status.site.generation.clone(),
                    };
                    let text = format!(
                        "the site changed: {added} added, {changed} changed, {removed} removed"
                    );
                    out.push(event(at, kind, text));
                }
            }
            self.sync_failures_run = sync.consecutive_failures;
        }
        if let (Some(since), false, Some(error)) = (
            self.sync_failing_since,
            self.sync_failing_told,
            sync.last_error.as_ref(),
        ) {
            let failing = now.duration_since(since).unwrap_or_default();
            if failing >= self.settings.sync_failing_after {
                self.sync_failing_told = true;
                let kind = EventKind::SyncFailing {
                    since: unix(since),
                    failures: sync.consecutive_failures,
                    error: error.clone(),
                };
                let text = format!(
                    "the sync has failed for {} ({} in a row): {error}. Readers still get the last good copy.",
                    duration(failing.as_secs()),
                    sync.consecutive_failures
                );
                out.push(event(at, kind, text));
            }
        }
    }

    fn certificate_events(&mut self, status: &Status, at: u64, out: &mut Vec<Record>) {
        for c in &status.tls {
            let seen = self
                .certificates
                .insert(c.origin.clone(), (c.not_after, c.expiring));
            let (before, was_expiring) = match seen {
                Some(seen) => seen,
                // The first sight of a certificate tells only that it is expiring.
                None => (c.not_after, false),
            };
            if let (Some(old), Some(new)) = (before, c.not_after) {
                if new > old {
                    let kind = EventKind::CertificateRenewed {
                        origin: c.origin.clone(),
                        not_after: unix(new),
                    };
                    let text = format!(
                        "certificate for {} renewed: valid until {}",
                        c.names.join(", "),
                        humantime::format_rfc3339_seconds(new)
                    );
                    out.push(event(at, kind, text));
                }
            }
            if c.expiring && !was_expiring {
                let days_left = c.days_left.unwrap_or(0);
                let kind = EventKind::CertificateExpiring {
                    origin: c.origin.clone(),
                    days_left,
                };
                let text = format!(
                    "certificate for {} expires in {} (from {}): it has not been renewed",
                    c.names.join(", "),
                    count(days_left, "day", "days"),
                    c.origin
                );
                out.push(event(at, kind, text));
            }
        }
    }
}

fn mode_kind(from: Option<Mode>, to: Mode, status: &Status, served: Option<Served>) -> EventKind {
    EventKind::Mode {
        from,
        to,
        reason: status.reason.clone(),
        served,
    }
}

fn event(at: u64, kind: EventKind, text: String) -> Record {
    Record::Event(Event::new(at, kind, text))
}

#[cfg(test)]
mod tests {
    use super::super::Event;
    use super::*;
    use crate::status::{CertificateStatus, SyncView};

    const T0: u64 = 1_800_057_600; // 2027-01-16T00:00:00Z

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(T0 + secs)
    }

    fn status(mode: Mode, since: u64, requests: u64) -> Status {
        let mut s = Status::example(mode, at(since));
        s.mode_since = at(since);
        s.traffic.requests_total.reader = requests;
        s.traffic.bytes_total = requests * 1000;
        s.site.sync = Some(SyncView::default());
        s
    }

    fn kinds(records: &[Record]) -> Vec<&'static str> {
        records
            .iter()
            .map(|r| match r {
                Record::Minute(_) => "minute",
                Record::Hour(_) => "hour",
                Record::Event(e) => e.kind.name(),
            })
            .collect()
    }

    /// A failover told as the observer sees it, one snapshot at a time: the minutes close
    /// with what happened in them, the hour closes after its last minute, and the way back
    /// to STANDBY says how long the Pi served and how much.
    #[test]
    fn a_failover_becomes_minutes_an_hour_and_two_mode_events() {
        let mut o = Observer::new(ObserveSettings::default(), at(0), None);
        assert!(o.observe(&status(Mode::Standby, 0, 100), at(0)).is_empty());
        let went_live = o.observe(&status(Mode::Live, 20, 130), at(20));
        assert_eq!(kinds(&went_live), ["mode"]);
        let Record::Event(e) = &went_live[0] else {
            panic!()
        };
        assert_eq!(e.at, T0 + 20);
        assert!(e.kind.notifiable());
        let next_minute = o.observe(&status(Mode::Live, 20, 150), at(61));
        assert_eq!(kinds(&next_minute), ["minute"]);
        let Record::Minute(m) = &next_minute[0] else {
            panic!()
        };
        assert_eq!((m.start, m.reader_requests, m.live_minutes), (T0, 30, 1));
        assert_eq!(m.bytes_sent, 30_000);
        let mut back = status(Mode::Standby, 3590, 400);
        back.traffic.readers_1m = 0;
        let records = o.observe(&back, at(3590));
        assert_eq!(kinds(&records), ["minute", "mode"]);
        let Record::Event(e) = &records[1] else {
            panic!()
        };
        let EventKind::Mode {
            served: Some(served),
            from,
            ..
        } = &e.kind
        else {
            panic!()
        };
        assert_eq!(*from, Some(Mode::Live));
        assert_eq!(served.seconds, 3570);
        assert_eq!(served.reader_requests, 270);
        assert!(
            e.text
                .contains("59 min serving readers: 270 reader requests"),
            "{}",
            e.text
        );
        assert!(e.kind.notifiable());
        let records = o.observe(&status(Mode::Standby, 3590, 400), at(3600));
        assert_eq!(kinds(&records), ["minute", "hour"]);
        let Record::Hour(h) = &records[1] else {
            panic!()
        };
        assert_eq!((h.start, h.reader_requests), (T0, 300));
        // Only the minutes observed exist: 0 and 1 were LIVE, 59 STANDBY.
        assert_eq!(h.live_minutes, 2);
    }

    /// A run of failed syncs is told once when it starts, once when it outlasts its
    /// allowance, and once when it ends; a sync that changed the site is told with the counts.
    #[test]
    fn a_failing_sync_is_told_at_its_start_its_allowance_and_its_end() {
        let settings = ObserveSettings {
            sync_failing_after: Duration::from_secs(600),
            ..ObserveSettings::default()
        };
        let mut o = Observer::new(settings, at(0), None);
        let mut s = status(Mode::Standby, 0, 0);
        let mut told = Vec::new();
        for (i, t) in [0u64, 100, 200, 400, 700, 800].iter().enumerate() {
            let sync = s.site.sync.as_mut().expect("sync");
            sync.last_attempt = Some(at(*t));
            sync.last_error = Some("NoSuchBucket".into());
            sync.consecutive_failures = i as u32 + 1;
            told.extend(o.observe(&s, at(*t)));
        }
        let sync = s.site.sync.as_mut().expect("sync");
        sync.last_attempt = Some(at(900));
        sync.last_error = None;
        sync.consecutive_failures = 0;
        sync.last_added = Some(2);
        sync.last_changed = Some(1);
        sync.last_removed = Some(0);
        told.extend(o.observe(&s, at(900)));
        let events: Vec<&str> = kinds(&told)
            .into_iter()
            .filter(|k| *k != "minute")
            .collect();
        assert_eq!(
            events,
            [
                "sync_failed",
                "sync_failing",
                "sync_recovered",
                "site_changed"
            ]
        );
        let minutes: u32 = told
            .iter()
            .filter_map(|r| match r {
                Record::Minute(m) => Some(m.sync_failures),
                _ => None,
            })
            .sum();
        assert!(minutes >= 5, "failed syncs are counted in their minutes");
    }

    #[test]
    fn a_certificate_is_told_once_when_it_nears_expiry_and_once_when_renewed() {
        let mut o = Observer::new(ObserveSettings::default(), at(0), None);
        let cert = |not_after: u64, expiring: bool| CertificateStatus {
            source: "acme",
            origin: "acme:example.com".into(),
            names: vec!["example.com".into()],
            not_after: Some(at(not_after)),
            days_left: Some(10),
            expiring,
            refused: None,
            fetch: None,
        };
        let mut s = status(Mode::Standby, 0, 0);
        s.tls = vec![cert(1_000_000, false)];
        assert!(o.observe(&s, at(1)).is_empty());
        s.tls = vec![cert(1_000_000, true)];
        assert_eq!(kinds(&o.observe(&s, at(2))), ["certificate_expiring"]);
        assert!(o.observe(&s, at(3)).is_empty());
        s.tls = vec![cert(9_000_000, false)];
        assert_eq!(kinds(&o.observe(&s, at(4))), ["certificate_renewed"]);
    }

    /// The way a Pi boots (ERROR until the first sync, ATTENTION until NTP answers) is kept
    /// in the log but not sent to the owner; ATTENTION still held at the grace's end is, once.
    #[test]
    fn settling_after_boot_is_logged_not_sent_unless_it_lasts() {
        let mut o = Observer::new(ObserveSettings::default(), at(0), None);
        let mut told = Vec::new();
        told.extend(o.observe(&status(Mode::Error, 0, 0), at(0)));
        told.extend(o.observe(&status(Mode::Attention, 20, 0), at(20)));
        let early: Vec<&Event> = told
            .iter()
            .filter_map(|r| match r {
                Record::Event(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(early.len(), 1, "ERROR → ATTENTION is logged");
        assert!(!o.tells_owner(early[0]), "but not sent while settling");
        let live = o.observe(&status(Mode::Live, 30, 10), at(30));
        let Some(Record::Event(e)) = live.last() else {
            panic!("{live:?}")
        };
        assert!(o.tells_owner(e), "LIVE is sent even while settling");
        let mut later = Vec::new();
        later.extend(o.observe(&status(Mode::Attention, 40, 10), at(40)));
        for t in 41..400 {
            later.extend(o.observe(&status(Mode::Attention, 40, 10), at(t)));
        }
        let sent: Vec<&Event> = later
            .iter()
            .filter_map(|r| match r {
                Record::Event(e) if o.tells_owner(e) => Some(e),
                _ => None,
            })
            .collect();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(matches!(
            sent[0].kind,
            EventKind::Mode {
                from: None,
                to: Mode::Attention,
                ..
            }
        ));
    }

    /// ERROR at start is the normal moment before the first sync; held past the grace it is
    /// told (once), with no mode it came from.
    #[test]
    fn an_error_held_from_boot_is_told_after_the_grace_only() {
        let mut o = Observer::new(ObserveSettings::default(), at(0), None);
        let s = status(Mode::Error, 0, 0);
        assert!(o.observe(&s, at(0)).is_empty());
        assert!(o.observe(&s, at(10)).is_empty());
        let told: Vec<Record> = (290..320)
            .flat_map(|t| o.observe(&s, at(t)))
            .filter(|r| matches!(r, Record::Event(_)))
            .collect();
        assert_eq!(kinds(&told), ["mode"]);
        let Record::Event(e) = &told[0] else { panic!() };
        assert!(matches!(
            e.kind,
            EventKind::Mode {
                from: None,
                to: Mode::Error,
                ..
            }
        ));
    }
}
