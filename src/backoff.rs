//! The one doubling schedule the appliance waits by after a failure: a request's retries
//! (`sync::source`), a failed sync (`sync::retry_after`), a clock check that found no time
//! (`clock::watch`). Each caller says where it starts and where it stops growing.

use std::time::Duration;

/// `first`, doubled once per `step` after the first (step 0 is `first`), never more than
/// `most`. Saturates: any `step` is fine.
pub fn doubling(first: Duration, step: u32, most: Duration) -> Duration {
    first.saturating_mul(1u32 << step.min(20)).min(most)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_first_and_stops_at_most() {
        let s = |n| doubling(Duration::from_secs(10), n, Duration::from_secs(300)).as_secs();
        let got: Vec<u64> = (0..8).map(s).collect();
        assert_eq!(got, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(s(u32::MAX), 300, "no overflow");
    }
}
