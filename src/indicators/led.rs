//! The status LED's patterns: data, a pure function of the mode.

use std::time::Duration;

use crate::live::mode::Mode;

/// One cycle of on/off steps, repeated while the mode lasts.
pub type Pattern = Vec<(bool, Duration)>;

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

#[cfg(test)]
mod tests {
    use super::*;

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
