//! The one status model. Every view — the status page, its JSON and metrics, the LED and
//! the OLED — renders a [`Status`]; none computes facts of its own. The collector gathers
//! the facts once a second, runs the mode machine and publishes on a watch channel.

pub mod indicators;
pub mod system;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::live::dns::DnsStatus;
use crate::live::mode::{Facts, Mode, ModeMachine, Transition};
use crate::live::probe::ProbeStatus;
use crate::live::traffic::{Traffic, TrafficSnapshot};
use crate::site::Site;
use crate::sync::SyncStatus;
use crate::tls::CertResolver;
use system::SystemStatus;

/// Bumped when a field changes meaning or goes away (docs/status-api.md).
pub(crate) const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub schema: u32,
    pub version: &'static str,
    #[serde(with = "crate::format::json_time")]
    pub generated_at: SystemTime,
    pub mode: Mode,
    pub reason: String,
    #[serde(with = "crate::format::json_time")]
    pub mode_since: SystemTime,
    /// Newest first.
    pub transitions: Vec<Transition>,
    pub site: SiteStatus,
    pub traffic: TrafficSnapshot,
    pub tls: Vec<CertificateStatus>,
    /// Why the last certificate reload was refused (the certificate in use was kept), until
    /// one succeeds. Absent when nothing was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_refused: Option<String>,
    pub primary: Option<ProbeStatus>,
    pub dns: Option<DnsStatus>,
    pub system: SystemStatus,
    pub indicators: indicators::IndicatorStatus,
    /// Messages to the owner (`[notify]`); absent when none are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationsView>,
    /// The slots and updates (`[update]`); on a card not booted from a slot, only `version`.
    pub update: crate::update::UpdateStatus,
}

/// How delivering messages to the owner goes (`notify`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotificationsView {
    /// The receiver's host (never its whole URL: it may hold a key).
    pub receiver: String,
    /// `generic`, `ntfy`, `slack` or `discord`.
    pub format: &'static str,
    /// Messages waiting to be delivered.
    pub queued: usize,
    /// Delivered since start.
    pub sent: u64,
    #[serde(with = "crate::format::json_time_option")]
    pub last_sent: Option<SystemTime>,
    /// Why the last delivery failed, until one succeeds.
    pub last_error: Option<String>,
    /// Refused by the receiver (4xx) or too old: not retried.
    pub given_up: u64,
    /// Pushed out of a full queue.
    pub dropped: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SiteStatus {
    /// `s3` or `directory`.
    pub source: &'static str,
    pub hostnames: Vec<String>,
    pub generation: Option<String>,
    pub files: usize,
    pub sync: Option<SyncView>,
}

/// The sync's side of the status, without anything secret (no keys, no credentials path).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncView {
    pub bucket: String,
    #[serde(with = "crate::format::json_time_option")]
    pub last_attempt: Option<SystemTime>,
    #[serde(with = "crate::format::json_time_option")]
    pub last_success: Option<SystemTime>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub last_duration_ms: Option<u64>,
    pub last_added: Option<usize>,
    pub last_changed: Option<usize>,
    pub last_removed: Option<usize>,
    pub last_bytes_downloaded: Option<u64>,
}

/// One configured certificate: what it serves and, for a fetched one, how fetching goes.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateStatus {
    /// `files` or `s3`.
    pub source: &'static str,
    /// A path on the card or an `s3://` location; never a secret.
    pub origin: String,
    /// The names of the certificate served; empty while there is none.
    pub names: Vec<String>,
    #[serde(with = "crate::format::json_time_option")]
    pub not_after: Option<SystemTime>,
    pub days_left: Option<i64>,
    /// Expires within `live.certificate_warning` (or has expired).
    pub expiring: bool,
    /// Why the last candidate was refused (the one in use was kept), until one is accepted.
    pub refused: Option<String>,
    /// For a fetched certificate.
    pub fetch: Option<FetchView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FetchView {
    #[serde(with = "crate::format::json_time_option")]
    pub last_attempt: Option<SystemTime>,
    #[serde(with = "crate::format::json_time_option")]
    pub last_success: Option<SystemTime>,
    /// When the failures now running began.
    #[serde(with = "crate::format::json_time_option")]
    pub failing_since: Option<SystemTime>,
    pub last_error: Option<String>,
    #[serde(with = "crate::format::json_time_option")]
    pub next_attempt: Option<SystemTime>,
}

impl CertificateStatus {
    /// Serving a certificate that is valid at `now`.
    fn usable(&self, now: SystemTime) -> bool {
        self.not_after.is_some_and(|t| t > now)
    }

    /// Why this certificate cannot be served, when it cannot.
    fn why_not_usable(&self, now: SystemTime) -> Option<String> {
        if self.usable(now) {
            return None;
        }
        let error = self
            .fetch
            .as_ref()
            .and_then(|f| f.last_error.clone())
            .or_else(|| self.refused.clone());
        let state = match (self.not_after, &self.fetch) {
            (Some(_), _) => "has expired".to_owned(),
            (None, Some(f)) if f.last_attempt.is_none() => "is being fetched".to_owned(),
            (None, _) => "has not arrived".to_owned(),
        };
        Some(match error {
            Some(e) => format!("the certificate from {} {state}: {e}", self.origin),
            None => format!("the certificate from {} {state}", self.origin),
        })
    }

    /// Why this certificate's source needs a look: failing for longer than `after`.
    fn trouble(&self, now: SystemTime, after: Duration) -> Option<String> {
        let fetch = self.fetch.as_ref()?;
        let since = fetch.failing_since?;
        let failing = now.duration_since(since).ok().filter(|d| *d >= after)?;
        Some(format!(
            "fetching the certificate from {} has failed for {} h: {}",
            self.origin,
            failing.as_secs() / 3600,
            fetch.last_error.as_deref().unwrap_or("unknown error")
        ))
    }
}

/// Where the collector finds its facts.
pub(crate) struct Sources {
    pub site: Arc<Site>,
    pub certs: Arc<CertResolver>,
    pub traffic: Arc<Traffic>,
    pub sync: Option<(String, watch::Receiver<SyncStatus>)>,
    pub probe: Option<watch::Receiver<ProbeStatus>>,
    pub dns: Option<watch::Receiver<DnsStatus>>,
    pub data_dir: PathBuf,
    /// The clock watcher's record (`clock.state_file`).
    pub clock_state: PathBuf,
    pub hostnames: Vec<String>,
    pub live: crate::config::LiveConfig,
    /// A certificate source failing this long is a concern (`tls.attention_after_failing`).
    pub certificate_attention_after: Duration,
    pub indicators: indicators::SharedIndicatorStatus,
    pub notifications: Option<watch::Receiver<NotificationsView>>,
    pub update: watch::Receiver<crate::update::UpdateStatus>,
}

/// One reading of the sources, and the facts the mode is decided from.
type Gathered = (TrafficSnapshot, Vec<CertificateStatus>, SystemStatus, Facts);

impl Sources {
    fn gather(&self) -> Gathered {
        let traffic = self.traffic.snapshot();
        let tls = self.certificates();
        let system = system::read(&self.data_dir, &self.clock_state);
        let facts = self.facts(&traffic, &tls, &system);
        (traffic, tls, system, facts)
    }

    fn facts(
        &self,
        traffic: &TrafficSnapshot,
        tls: &[CertificateStatus],
        system: &SystemStatus,
    ) -> Facts {
        let warning = self.live.certificate_warning;
        let now = SystemTime::now();
        let soonest = tls.iter().filter_map(|c| c.not_after).min();
        let sync = self
            .sync
            .as_ref()
            .map(|(_, rx)| rx.borrow().consecutive_failures);
        let unusable: Vec<String> = tls.iter().filter_map(|c| c.why_not_usable(now)).collect();
        let trouble: Vec<String> = tls
            .iter()
            .filter_map(|c| c.trouble(now, self.certificate_attention_after))
            .collect();
        Facts {
            has_site: self.site.has_content(),
            has_certificate: tls.iter().any(|c| c.usable(now)),
            no_certificate_because: (!unusable.is_empty()).then(|| unusable.join("; ")),
            certificate_trouble: (!trouble.is_empty()).then(|| trouble.join("; ")),
            readers_1m: traffic.readers_1m,
            readers_5m: traffic.readers_5m,
            reader_threshold: u64::from(self.live.readers),
            dns_points_here: self.dns.as_ref().and_then(|d| d.borrow().points_here),
            primary_up: self.probe.as_ref().and_then(|p| p.borrow().up),
            sync_failures: sync.unwrap_or(0),
            sync_failure_limit: self.live.sync_failures,
            certificate_expires_in: soonest
                .and_then(|t| t.duration_since(now).ok())
                .filter(|left| *left < warning),
            // A fresh HTTPS check counts: the clock is then right to a couple of seconds.
            clock_synchronised: system
                .clock_synchronised
                .map(|synced| synced || system.clock_coarse.is_some())
                .filter(|_| self.live.clock_check),
            data_read_only: system.data_read_only == Some(true),
            update_trouble: self.update.borrow().concern(),
        }
    }

    fn certificates(&self) -> Vec<CertificateStatus> {
        let now = SystemTime::now();
        self.certs
            .views()
            .into_iter()
            .map(|view| {
                let serving = view.serving;
                CertificateStatus {
                    source: view.source,
                    origin: view.origin,
                    days_left: serving
                        .as_ref()
                        .map(|c| match c.not_after.duration_since(now) {
                            Ok(left) => (left.as_secs() / 86_400) as i64,
                            Err(past) => -((past.duration().as_secs() / 86_400) as i64) - 1,
                        }),
                    not_after: serving.as_ref().map(|c| c.not_after),
                    expiring: serving
                        .as_ref()
                        .is_some_and(|c| c.expires_within(self.live.certificate_warning)),
                    names: serving.map(|c| c.names).unwrap_or_default(),
                    refused: view.refused,
                    fetch: view.health.map(|h| FetchView {
                        last_attempt: h.last_attempt,
                        last_success: h.last_success,
                        failing_since: h.failing_since,
                        last_error: h.last_error,
                        next_attempt: h.next_attempt,
                    }),
                }
            })
            .collect()
    }

    fn site_status(&self) -> SiteStatus {
        let index = self.site.index();
        let sync = self.sync.as_ref().map(|(bucket, rx)| {
            let s = rx.borrow();
            let report = s.last_report.as_ref();
            SyncView {
                bucket: bucket.clone(),
                last_attempt: s.last_attempt,
                last_success: s.last_success,
                last_error: s.last_error.clone(),
                consecutive_failures: s.consecutive_failures,
                last_duration_ms: report.map(|r| r.duration.as_millis() as u64),
                last_added: report.map(|r| r.added),
                last_changed: report.map(|r| r.changed),
                last_removed: report.map(|r| r.removed),
                last_bytes_downloaded: report.map(|r| r.bytes_downloaded),
            }
        });
        SiteStatus {
            source: if self.sync.is_some() {
                "s3"
            } else {
                "directory"
            },
            hostnames: self.hostnames.clone(),
            generation: self
                .sync
                .as_ref()
                .and_then(|(_, rx)| rx.borrow().generation.clone()),
            files: index.len(),
            sync,
        }
    }
}

impl Status {
    /// A plausible status in `mode` at `now`: for rendering the OLED's screens into the docs
    /// (`pi-failover render-oled`) and for the golden-picture tests.
    pub fn example(mode: Mode, now: SystemTime) -> Status {
        let ago = |secs| now - Duration::from_secs(secs);
        let reason = match mode {
            Mode::Live => "7 readers in the last minute; DNS points here",
            Mode::Draining => "readers thinning out: 1 in the last minute, 6 in five",
            Mode::Standby => "ready, no readers; the primary is up",
            Mode::Attention => "the primary is down but no readers have arrived",
            Mode::Error => "no usable TLS certificate",
        };
        let readers = match mode {
            Mode::Live => 7,
            Mode::Draining => 1,
            _ => 0,
        };
        Status {
            schema: SCHEMA_VERSION,
            version: env!("CARGO_PKG_VERSION"),
            generated_at: now,
            mode,
            reason: reason.to_owned(),
            mode_since: ago(600),
            transitions: Vec::new(),
            site: SiteStatus {
                source: "s3",
                hostnames: vec!["example.com".into()],
                generation: Some("000042".into()),
                files: 1234,
                sync: Some(SyncView {
                    bucket: "example-site".into(),
                    last_attempt: Some(ago(180)),
                    last_success: Some(ago(180)),
                    ..SyncView::default()
                }),
            },
            traffic: TrafficSnapshot {
                readers_1m: readers,
                readers_5m: readers.max(6),
                bytes_per_second: 48_200.0 * readers as f64,
                ..TrafficSnapshot::default()
            },
            tls: Vec::new(),
            tls_refused: None,
            primary: None,
            dns: None,
            system: SystemStatus {
                hostname: "pi-failover".into(),
                addresses: vec![std::net::IpAddr::from([192, 0, 2, 10])],
                ..SystemStatus::default()
            },
            indicators: indicators::IndicatorStatus::default(),
            notifications: None,
            update: crate::update::UpdateStatus::default(),
        }
    }
}

/// Gathers the facts once a second and publishes a new [`Status`] until shutdown.
pub(crate) struct Collector {
    sources: Sources,
    machine: ModeMachine,
}

impl Collector {
    pub fn new(sources: Sources) -> (Self, Status) {
        let gathered = sources.gather();
        let machine = ModeMachine::new(&gathered.3, sources.live.debounce, SystemTime::now());
        let collector = Self { sources, machine };
        let status = collector.compose(gathered);
        (collector, status)
    }

    /// One round: facts in, a status out.
    pub fn collect(&mut self) -> Status {
        let gathered = self.sources.gather();
        self.machine.update(&gathered.3, SystemTime::now());
        self.compose(gathered)
    }

    fn compose(&self, (traffic, tls, system, _): Gathered) -> Status {
        Status {
            schema: SCHEMA_VERSION,
            version: env!("CARGO_PKG_VERSION"),
            generated_at: SystemTime::now(),
            mode: self.machine.mode(),
            reason: self.machine.reason().to_owned(),
            mode_since: self.machine.since(),
            transitions: self.machine.transitions().cloned().collect(),
            site: self.sources.site_status(),
            traffic,
            tls,
            tls_refused: self.sources.certs.refused(),
            primary: self.sources.probe.as_ref().map(|p| p.borrow().clone()),
            dns: self.sources.dns.as_ref().map(|d| d.borrow().clone()),
            system,
            indicators: self
                .sources
                .indicators
                .lock()
                .map(|i| i.clone())
                .unwrap_or_default(),
            notifications: self
                .sources
                .notifications
                .as_ref()
                .map(|n| n.borrow().clone()),
            update: self.sources.update.borrow().clone(),
        }
    }

    pub async fn run(
        mut self,
        publish: watch::Sender<Arc<Status>>,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            // /proc and statvfs reads are quick but blocking; a second apart they are cheap.
            let status = self.collect();
            publish.send_replace(Arc::new(status));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn fetched(not_after: Option<SystemTime>, fetch: FetchView) -> CertificateStatus {
        CertificateStatus {
            source: "s3",
            origin: "s3://certs/tls/".into(),
            names: vec!["example.com".into()],
            not_after,
            days_left: None,
            expiring: false,
            refused: None,
            fetch: Some(fetch),
        }
    }

    fn fetch(failing_since: Option<SystemTime>, last_attempt: Option<SystemTime>) -> FetchView {
        FetchView {
            last_attempt,
            last_success: None,
            failing_since,
            last_error: failing_since.map(|_| "NoSuchKey".to_owned()),
            next_attempt: None,
        }
    }

    /// A source is a concern only once it has failed for the allowance, and the words name the
    /// source and the error; a certificate not usable says why.
    #[test]
    fn a_failing_source_is_a_concern_after_its_allowance_and_says_why() {
        let now = SystemTime::now();
        let allowance = 48 * HOUR;
        let valid = Some(now + 30 * 24 * HOUR);
        let cases = [
            (fetch(None, Some(now)), valid, None, None),
            (fetch(Some(now - 47 * HOUR), Some(now)), valid, None, None),
            (
                fetch(Some(now - 49 * HOUR), Some(now)),
                valid,
                Some(
                    "fetching the certificate from s3://certs/tls/ has failed for 49 h: NoSuchKey",
                ),
                None,
            ),
            (
                fetch(None, None),
                None,
                None,
                Some("the certificate from s3://certs/tls/ is being fetched"),
            ),
            (
                fetch(Some(now), Some(now)),
                None,
                None,
                Some("the certificate from s3://certs/tls/ has not arrived: NoSuchKey"),
            ),
            (
                fetch(None, Some(now)),
                Some(now - HOUR),
                None,
                Some("the certificate from s3://certs/tls/ has expired"),
            ),
        ];
        for (fetch, not_after, trouble, unusable) in cases {
            let c = fetched(not_after, fetch);
            assert_eq!(c.trouble(now, allowance).as_deref(), trouble, "{c:?}");
            assert_eq!(c.why_not_usable(now).as_deref(), unusable, "{c:?}");
        }
    }
}
