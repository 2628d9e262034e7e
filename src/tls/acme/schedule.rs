//! When to renew, and how long to wait after a failure. Pure: the random draws come in as
//! fractions in `[0, 1)`, so the table tests below pin every rule.

use std::time::{Duration, SystemTime};

/// The first wait after a failed attempt; doubled each failure after.
const FIRST_BACKOFF: Duration = Duration::from_secs(5 * 60);
/// The longest wait between attempts: a Pi whose CA or DNS was down for a week tries again
/// within hours of it coming back, and stays far under Let's Encrypt's failed-validation limit
/// (5 an hour per account and name).
const MAX_BACKOFF: Duration = Duration::from_secs(12 * 3600);

/// Without ACME Renewal Information: at two thirds of the lifetime (as certbot, lego and
/// Caddy), drawn earlier by up to a thirtieth of it so a fleet of Pis does not renew in step.
/// A 90-day certificate: between day 57 and day 60.
pub(crate) fn two_thirds(not_before: SystemTime, not_after: SystemTime, draw: f64) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    not_before + lifetime.mul_f64(2.0 / 3.0) - lifetime.mul_f64(draw.clamp(0.0, 1.0) / 30.0)
}

/// With ACME Renewal Information (RFC 9773 §4.2): a uniformly drawn moment of the CA's
/// suggested window. A window already past means at once.
pub(crate) fn in_window(start: SystemTime, end: SystemTime, draw: f64) -> SystemTime {
    let width = end.duration_since(start).unwrap_or_default();
    start + width.mul_f64(draw.clamp(0.0, 1.0))
}

/// The wait after the `failures`-th failure in a row: exponential, capped, half of it drawn
/// ("equal jitter": between half and all of the step).
pub fn backoff(failures: u32, draw: f64) -> Duration {
    let step = FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16)))
        .min(MAX_BACKOFF);
    step.mul_f64(0.5 + draw.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn without_ari_renewal_is_due_at_two_thirds_drawn_a_little_earlier() {
        let start = UNIX_EPOCH + DAY * 20_000;
        for (days, draw, due_day) in [
            (90, 0.0, 60.0),
            (90, 0.999_999, 57.0),
            (45, 0.0, 30.0),
            (6, 0.0, 4.0),
        ] {
            let due = two_thirds(start, start + DAY * days, draw);
            let got = due.duration_since(start).unwrap().as_secs_f64() / 86_400.0;
            assert!(
                (got - due_day).abs() < 0.01,
                "{days} days, draw {draw}: {got}"
            );
        }
        // Dates reversed (a broken certificate): due at once.
        assert_eq!(two_thirds(start + DAY, start, 0.5), start + DAY);
    }

    #[test]
    fn with_ari_the_moment_is_drawn_inside_the_window() {
        let start = UNIX_EPOCH + DAY * 20_000;
        let end = start + DAY * 2;
        assert_eq!(in_window(start, end, 0.0), start);
        assert_eq!(in_window(start, end, 0.5), start + DAY);
        assert_eq!(
            in_window(end, start, 0.5),
            end,
            "an inverted window is its start"
        );
    }

    #[test]
    fn failures_back_off_exponentially_to_half_a_day() {
        let minutes = |failures, draw| backoff(failures, draw).as_secs() / 60;
        assert_eq!(minutes(1, 1.0), 5);
        assert_eq!(minutes(1, 0.0), 2);
        assert_eq!(minutes(2, 1.0), 10);
        assert_eq!(minutes(4, 1.0), 40);
        assert_eq!(minutes(9, 1.0), 12 * 60);
        assert_eq!(minutes(u32::MAX, 1.0), 12 * 60);
        assert_eq!(minutes(u32::MAX, 0.0), 6 * 60);
    }
}
