//! Logging that cannot flood the card.
//!
//! When descriptors ran out, `accept` failed every 50 ms on each listener and each failure
//! was a line on the SD card: thousands a minute, for as long as the attack lasted (issue 13).
//! A repeated error is now written at most once per [`REPORT_EVERY`], with the number of
//! occurrences left out since the last line, so the log says how bad it was without wearing
//! the card.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most one line per kind of repeated error in this time.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(60);

/// One kind of repeated error, e.g. `accept` failing.
#[derive(Debug)]
pub(crate) struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttle {
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// `Some(n)` when this occurrence should be logged, `n` being how many were left out
    /// since the last logged one; `None` when it is to be counted and left out.
    pub fn report(&self) -> Option<u64> {
        self.report_at(Instant::now(), REPORT_EVERY)
    }

    fn report_at(&self, now: Instant, every: Duration) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.last {
            Some(last) if now.saturating_duration_since(last) < every => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_period_with_the_count_left_out() {
        let throttle = Throttle::new();
        let start = Instant::now();
        let every = Duration::from_secs(60);
        assert_eq!(throttle.report_at(start, every), Some(0));
        let mut logged = 0;
        // An error every 50 ms for two minutes: 2,400 occurrences.
        for i in 1..2400u64 {
            let at = start + Duration::from_millis(50 * i);
            if let Some(left_out) = throttle.report_at(at, every) {
                logged += 1;
                assert_eq!(left_out, 1199, "a minute of occurrences is counted");
            }
        }
        assert_eq!(logged, 1, "two minutes, two lines");
    }
}
