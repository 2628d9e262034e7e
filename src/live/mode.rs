//! The mode: is the Pi serving readers, and is it ready to? A pure target function of the
//! facts, and a debounced state machine that moves towards it and remembers why.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

/// What the Pi is doing, most urgent first when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// Cannot serve: no site or no usable certificate.
    Error,
    /// Serving readers now.
    Live,
    /// Was live; readers still arrive but fewer, or DNS points back at the primary.
    Draining,
    /// Ready, but something needs a look.
    Attention,
    /// Ready, not serving readers.
    Standby,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Error => "ERROR",
            Mode::Live => "LIVE",
            Mode::Draining => "DRAINING",
            Mode::Attention => "ATTENTION",
            Mode::Standby => "STANDBY",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything the mode is decided from.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub has_site: bool,
    pub has_certificate: bool,
    /// Why no certificate can be served (a fetch not done yet, its error), for the reason.
    pub no_certificate_because: Option<String>,
    /// A certificate source failing for longer than its allowance, or a renewal refused.
    pub certificate_trouble: Option<String>,
    pub readers_1m: u64,
    pub readers_5m: u64,
    /// Distinct readers a minute that make the Pi live.
    pub reader_threshold: u64,
    /// `None` when not checked.
    pub dns_points_here: Option<bool>,
    /// `None` without a probe or before its first verdict.
    pub primary_up: Option<bool>,
    pub sync_failures: u32,
    pub sync_failure_limit: u32,
    /// The soonest certificate expiry, when it falls inside the warning period.
    pub certificate_expires_in: Option<Duration>,
    pub clock_synchronised: Option<bool>,
    /// The data partition went read-only (a filesystem error): syncs and certificate
    /// renewals cannot write until a reboot checks and repairs it.
    pub data_read_only: bool,
    /// An update rolled back, or updates paused (`update::UpdateStatus::concern`).
    pub update_trouble: Option<String>,
}

/// The mode the facts call for now, and why, in words.
pub fn target(facts: &Facts, current: Mode) -> (Mode, String) {
    if !facts.has_site {
        return (
            Mode::Error,
            "no site to serve yet: the first sync has not completed".into(),
        );
    }
    if !facts.has_certificate {
        return (
            Mode::Error,
            match &facts.no_certificate_because {
                Some(why) => format!("no usable TLS certificate: {why}"),
                None => "no usable TLS certificate".into(),
            },
        );
    }
    let was_live = matches!(current, Mode::Live | Mode::Draining);
    if facts.readers_1m >= facts.reader_threshold {
        let plural = if facts.readers_1m == 1 { "" } else { "s" };
        let readers = format!("{} reader{plural} in the last minute", facts.readers_1m);
        return match facts.dns_points_here {
            Some(false) => (
                Mode::Draining,
                format!("{readers}, but DNS points back at the primary"),
            ),
            Some(true) => (Mode::Live, format!("{readers}; DNS points here")),
            None => (Mode::Live, readers),
        };
    }
    if was_live && facts.readers_5m > 0 {
        return (
            Mode::Draining,
            format!(
                "readers thinning out: {} in the last minute, {} in five",
                facts.readers_1m, facts.readers_5m
            ),
        );
    }
    let mut concerns = Vec::new();
    if facts.primary_up == Some(false) {
        concerns.push("the primary is down but no readers have arrived".to_owned());
    }
    if facts.sync_failures >= facts.sync_failure_limit.max(1) {
        concerns.push(format!("the last {} syncs failed", facts.sync_failures));
    }
    if let Some(left) = facts.certificate_expires_in {
        concerns.push(format!(
            "the certificate expires in {} days",
            left.as_secs() / 86_400
        ));
    }
    if let Some(trouble) = &facts.certificate_trouble {
        concerns.push(trouble.clone());
    }
    if facts.clock_synchronised == Some(false) {
        concerns.push("the clock is not synchronised".to_owned());
    }
    if facts.data_read_only {
        concerns.push(
            "the data partition is read-only after a filesystem error: syncs cannot write; \
             a reboot checks and repairs it"
                .to_owned(),
        );
    }
    if let Some(trouble) = &facts.update_trouble {
        concerns.push(trouble.clone());
    }
    if !concerns.is_empty() {
        return (Mode::Attention, concerns.join("; "));
    }
    let primary = match facts.primary_up {
        Some(true) => "; the primary is up",
        _ => "",
    };
    (Mode::Standby, format!("ready, no readers{primary}"))
}

/// One change of mode.
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    #[serde(with = "crate::format::json_time")]
    pub at: SystemTime,
    pub from: Mode,
    pub to: Mode,
    pub reason: String,
}

/// Keeps the mode, moving to a new one only after it has been called for through the
/// debounce period (a blip of traffic or one failed probe does not flip the display).
#[derive(Debug)]
pub(crate) struct ModeMachine {
    mode: Mode,
    reason: String,
    since: SystemTime,
    pending: Option<(Mode, Instant)>,
    debounce: Duration,
    transitions: VecDeque<Transition>,
}

const TRANSITIONS_KEPT: usize = 20;

impl ModeMachine {
    /// Starts in whatever mode the facts call for, without waiting.
    pub fn new(facts: &Facts, debounce: Duration, wall: SystemTime) -> Self {
        let (mode, reason) = target(facts, Mode::Standby);
        Self {
            mode,
            reason,
            since: wall,
            pending: None,
            debounce,
            transitions: VecDeque::new(),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn since(&self) -> SystemTime {
        self.since
    }

    /// Newest first.
    pub fn transitions(&self) -> impl Iterator<Item = &Transition> {
        self.transitions.iter().rev()
    }

    /// Takes in the facts; returns true when the mode changed.
    pub(crate) fn update(&mut self, facts: &Facts, wall: SystemTime) -> bool {
        let now = Instant::now();
        let (wanted, reason) = target(facts, self.mode);
        if wanted == self.mode {
            self.reason = reason;
            self.pending = None;
            return false;
        }
        let held_since = match self.pending {
            Some((mode, since)) if mode == wanted => since,
            _ => {
                self.pending = Some((wanted, now));
                now
            }
        };
        // Losing the ability to serve, or gaining it (the first sync done), is shown at
        // once; everything else must hold through the debounce.
        let at_once = wanted == Mode::Error || self.mode == Mode::Error;
        if !at_once && now.duration_since(held_since) < self.debounce {
            return false;
        }
        self.transitions.push_back(Transition {
            at: wall,
            from: self.mode,
            to: wanted,
            reason: reason.clone(),
        });
        if self.transitions.len() > TRANSITIONS_KEPT {
            self.transitions.pop_front();
        }
        tracing::info!(from = %self.mode, to = %wanted, %reason, "mode changed");
        self.mode = wanted;
        self.reason = reason;
        self.since = wall;
        self.pending = None;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBOUNCE: Duration = Duration::from_secs(15);

    fn ready() -> Facts {
        Facts {
            has_site: true,
            has_certificate: true,
            reader_threshold: 3,
            sync_failure_limit: 3,
            ..Facts::default()
        }
    }

    fn readers(one: u64, five: u64) -> Facts {
        Facts {
            readers_1m: one,
            readers_5m: five,
            ..ready()
        }
    }

    /// Feeds the same facts for `secs` seconds, one update a second; returns the mode after.
    async fn hold(m: &mut ModeMachine, facts: &Facts, secs: u64) -> Mode {
        for _ in 0..secs {
            tokio::time::advance(Duration::from_secs(1)).await;
            m.update(facts, SystemTime::now());
        }
        m.mode()
    }

    #[test]
    fn the_target_for_each_set_of_facts() {
        use Mode::*;
        let cases: Vec<(Facts, Mode, Mode, &str)> = vec![
            (
                Facts {
                    has_site: false,
                    ..ready()
                },
                Standby,
                Error,
                "no site",
            ),
            (
                Facts {
                    has_certificate: false,
                    ..ready()
                },
                Live,
                Error,
                "certificate",
            ),
            (
                Facts {
                    has_certificate: false,
                    no_certificate_because: Some(
                        "the certificate from s3://c/ has not arrived".into(),
                    ),
                    ..ready()
                },
                Standby,
                Error,
                "no usable TLS certificate: the certificate from s3://c/ has not arrived",
            ),
            (
                Facts {
                    certificate_trouble: Some(
                        "fetching the certificate from s3://c/ has failed for 49 h".into(),
                    ),
                    ..ready()
                },
                Standby,
                Attention,
                "has failed for 49 h",
            ),
            (readers(3, 3), Standby, Live, "3 readers in the last minute"),
            (
                Facts {
                    dns_points_here: Some(true),
                    ..readers(5, 9)
                },
                Standby,
                Live,
                "DNS points here",
            ),
            (
                Facts {
                    dns_points_here: Some(false),
                    ..readers(5, 9)
                },
                Live,
                Draining,
                "DNS points back",
            ),
            (readers(1, 7), Live, Draining, "thinning out"),
            (readers(1, 7), Standby, Standby, "ready"),
            (readers(0, 0), Draining, Standby, "ready"),
            (
                Facts {
                    dns_points_here: Some(true),
                    ..ready()
                },
                Standby,
                Standby,
                "ready",
            ),
            (
                Facts {
                    primary_up: Some(false),
                    ..ready()
                },
                Standby,
                Attention,
                "primary is down",
            ),
            (
                Facts {
                    primary_up: Some(true),
                    ..ready()
                },
                Standby,
                Standby,
                "primary is up",
            ),
            (
                Facts {
                    sync_failures: 3,
                    ..ready()
                },
                Standby,
                Attention,
                "last 3 syncs failed",
            ),
            (
                Facts {
                    sync_failures: 2,
                    ..ready()
                },
                Standby,
                Standby,
                "ready",
            ),
            (
                Facts {
                    certificate_expires_in: Some(Duration::from_secs(5 * 86_400)),
                    ..ready()
                },
                Standby,
                Attention,
                "expires in 5 days",
            ),
            (
                Facts {
                    data_read_only: true,
                    ..ready()
                },
                Standby,
                Attention,
                "data partition is read-only",
            ),
            (
                Facts {
                    data_read_only: true,
                    readers_1m: 10,
                    readers_5m: 10,
                    ..ready()
                },
                Standby,
                Live,
                "10 readers",
            ),
            (
                Facts {
                    clock_synchronised: Some(false),
                    ..ready()
                },
                Standby,
                Attention,
                "clock",
            ),
            (
                Facts {
                    primary_up: Some(false),
                    ..readers(4, 4)
                },
                Standby,
                Live,
                "4 readers",
            ),
        ];
        for (facts, current, expected, words) in cases {
            let (mode, reason) = target(&facts, current);
            assert_eq!(mode, expected, "{facts:?} from {current}");
            assert!(reason.contains(words), "{reason:?} should say {words:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn live_is_entered_only_after_the_readers_hold_through_the_debounce() {
        let mut m = ModeMachine::new(&ready(), DEBOUNCE, SystemTime::now());
        assert_eq!(m.mode(), Mode::Standby);
        assert_eq!(hold(&mut m, &readers(3, 3), 14).await, Mode::Standby);
        assert_eq!(hold(&mut m, &readers(3, 3), 2).await, Mode::Live);
        let t = m.transitions().next().expect("a transition");
        assert_eq!((t.from, t.to), (Mode::Standby, Mode::Live));
    }

    #[tokio::test(start_paused = true)]
    async fn a_blip_does_not_flip_the_mode_and_restarts_the_debounce() {
        let mut m = ModeMachine::new(&ready(), DEBOUNCE, SystemTime::now());
        hold(&mut m, &readers(3, 3), 10).await;
        hold(&mut m, &ready(), 1).await;
        assert_eq!(hold(&mut m, &readers(3, 3), 10).await, Mode::Standby);
        assert_eq!(hold(&mut m, &readers(3, 3), 6).await, Mode::Live);
        assert_eq!(m.transitions().count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn live_drains_then_returns_to_standby() {
        let mut m = ModeMachine::new(&ready(), DEBOUNCE, SystemTime::now());
        hold(&mut m, &readers(5, 5), 16).await;
        assert_eq!(hold(&mut m, &readers(1, 5), 16).await, Mode::Draining);
        assert!(m.reason().contains("thinning out"));
        assert_eq!(hold(&mut m, &readers(0, 0), 16).await, Mode::Standby);
        let kinds: Vec<_> = m.transitions().map(|t| t.to).collect();
        assert_eq!(kinds, [Mode::Standby, Mode::Draining, Mode::Live]);
    }

    #[tokio::test(start_paused = true)]
    async fn dns_pointing_back_drains_while_readers_still_arrive() {
        let mut m = ModeMachine::new(&readers(5, 5), DEBOUNCE, SystemTime::now());
        assert_eq!(m.mode(), Mode::Live);
        let failed_back = Facts {
            dns_points_here: Some(false),
            ..readers(5, 5)
        };
        assert_eq!(hold(&mut m, &failed_back, 16).await, Mode::Draining);
    }

    #[tokio::test(start_paused = true)]
    async fn losing_or_regaining_the_site_or_certificate_shows_at_once() {
        let mut m = ModeMachine::new(&readers(5, 5), DEBOUNCE, SystemTime::now());
        let broken = Facts {
            has_certificate: false,
            ..readers(5, 5)
        };
        assert_eq!(hold(&mut m, &broken, 1).await, Mode::Error);
        assert_eq!(hold(&mut m, &readers(5, 5), 1).await, Mode::Live);
    }

    #[tokio::test(start_paused = true)]
    async fn attention_and_back_are_debounced_and_the_reason_follows_the_facts() {
        let mut m = ModeMachine::new(&ready(), DEBOUNCE, SystemTime::now());
        let down = Facts {
            primary_up: Some(false),
            ..ready()
        };
        assert_eq!(hold(&mut m, &down, 16).await, Mode::Attention);
        let also_clock = Facts {
            clock_synchronised: Some(false),
            ..down
        };
        hold(&mut m, &also_clock, 1).await;
        assert!(m.reason().contains("primary") && m.reason().contains("clock"));
        assert_eq!(hold(&mut m, &ready(), 16).await, Mode::Standby);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_last_twenty_transitions_are_kept() {
        let mut m = ModeMachine::new(&ready(), DEBOUNCE, SystemTime::now());
        let broken = Facts {
            has_site: false,
            ..ready()
        };
        for _ in 0..15 {
            hold(&mut m, &broken, 1).await;
            hold(&mut m, &ready(), 1).await;
        }
        assert_eq!(m.transitions().count(), TRANSITIONS_KEPT);
        assert_eq!(m.transitions().next().map(|t| t.to), Some(Mode::Standby));
    }
}
