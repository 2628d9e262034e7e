//! The status LED's patterns: data, a pure function of the mode.

use std::time::Duration;

use crate::live::mode::Mode;

/// One cycle of on/off steps, repeated while the mode lasts.
pub(crate) type Pattern = Vec<(bool, Duration)>;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn pattern(mode: Mode) -> Pattern {
    match mode {
        // Solid: serving readers. (Draining still serves them.)
        Mode::Live | Mode::Draining => vec![(true, ms(1000))],
        // A short blip every 2.5 s: alive and ready, little light.
        Mode::Standby => vec![(true, ms(80)), (false, ms(2420))],
        // 1 Hz: look at me.
        Mode::Attention => vec![(true, ms(500)), (false, ms(500))],
        // 4 Hz: cannot serve.
        Mode::Error => vec![(true, ms(125)), (false, ms(125))],
    }
}

/// A pattern in the words the status page uses, read from the pattern itself so the page
/// never describes a pattern the LED does not play.
pub fn describe(pattern: &Pattern) -> String {
    let period: Duration = pattern.iter().map(|(_, d)| *d).sum();
    let lit: Duration = pattern.iter().filter(|(on, _)| *on).map(|(_, d)| *d).sum();
    if lit == period {
        return "solid on".into();
    }
    if lit.is_zero() {
        return "off".into();
    }
    if lit * 4 < period {
        let secs = period.as_secs_f64();
        return format!("a short blip every {secs} s");
    }
    match 1000 / period.as_millis().max(1) {
        0 => format!("blinking every {} s", period.as_secs_f64()),
        1 => "blinking once a second".into(),
        n => format!("blinking {n} times a second"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_is_described_as_its_pattern_plays() {
        let words = |mode| describe(&pattern(mode));
        assert_eq!(words(Mode::Live), "solid on");
        assert_eq!(words(Mode::Draining), "solid on");
        assert_eq!(words(Mode::Standby), "a short blip every 2.5 s");
        assert_eq!(words(Mode::Attention), "blinking once a second");
        assert_eq!(words(Mode::Error), "blinking 4 times a second");
        let slow = vec![(true, ms(1000)), (false, ms(1000))];
        assert_eq!(describe(&slow), "blinking every 2 s");
        assert_eq!(describe(&vec![(false, ms(500))]), "off");
    }

    fn period(p: &Pattern) -> Duration {
        p.iter().map(|(_, d)| *d).sum()
    }

    fn on_share(p: &Pattern) -> f64 {
        let on: Duration = p.iter().filter(|(on, _)| *on).map(|(_, d)| *d).sum();
        on.as_secs_f64() / period(p).as_secs_f64()
    }

    #[test]
    fn each_mode_has_its_documented_pattern() {
        assert_eq!(on_share(&pattern(Mode::Live)), 1.0, "solid");
        let standby = pattern(Mode::Standby);
        assert!(
            (2.0..=3.0).contains(&period(&standby).as_secs_f64()),
            "a heartbeat every 2-3 s"
        );
        assert!(on_share(&standby) < 0.1, "short");
        assert_eq!(period(&pattern(Mode::Attention)), ms(1000), "1 Hz");
        assert_eq!(period(&pattern(Mode::Error)), ms(250), "4 Hz");
    }
}
