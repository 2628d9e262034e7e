//! The LED follows the mode: each pattern timed on a paused clock, switched when the mode
//! changes (not when the status is merely republished), and off at shutdown.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use pi_failover::indicators::backends::{Led, LedError};
use pi_failover::indicators::{drive_led, SharedIndicatorStatus};
use pi_failover::live::mode::Mode;
use pi_failover::status::Status;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Records every switch with the (paused) time it happened.
struct RecordingLed {
    log: Arc<Mutex<Vec<(Duration, bool)>>>,
    start: Instant,
    fail: bool,
}

impl Led for RecordingLed {
    fn set(&mut self, on: bool) -> Result<(), LedError> {
        if self.fail {
            return Err(LedError::Pending("no LED here".into()));
        }
        if let Ok(mut log) = self.log.lock() {
            log.push((self.start.elapsed(), on));
        }
        Ok(())
    }
}

fn status(mode: Mode) -> Arc<Status> {
    Arc::new(Status::example(mode, SystemTime::now()))
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Runs the LED task for `mode` over `secs` seconds, republishing the same mode every second as
/// the collector does; returns the switches.
async fn watch_led(modes: &[(Mode, u64)]) -> Vec<(Duration, bool)> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = tokio::sync::watch::channel(status(modes[0].0));
    let shutdown = CancellationToken::new();
    let led = RecordingLed {
        log: log.clone(),
        start: Instant::now(),
        fail: false,
    };
    let task = tokio::spawn(drive_led(
        rx,
        Box::new(led),
        SharedIndicatorStatus::default(),
        shutdown.clone(),
    ));
    for (mode, secs) in modes {
        tx.send_replace(status(*mode));
        for _ in 0..*secs {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tx.send_replace(status(*mode));
        }
    }
    shutdown.cancel();
    task.await.expect("LED task");
    let log = log.lock().expect("log").clone();
    log
}

/// The changes of state within [from, to): a repeated "on" (solid LIVE re-asserts it every
/// second, and a mode change can land on a step's boundary) is not a new blink.
fn switches_between(
    log: &[(Duration, bool)],
    from: Duration,
    to: Duration,
) -> Vec<(Duration, bool)> {
    let mut state = None;
    let mut out = Vec::new();
    for &(t, on) in log {
        if state != Some(on) && t >= from && t < to {
            out.push((t, on));
        }
        state = Some(on);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn standby_is_a_short_blip_every_two_and_a_half_seconds() {
    let log = watch_led(&[(Mode::Standby, 10)]).await;
    let ons: Vec<Duration> = log.iter().filter(|(_, on)| *on).map(|(t, _)| *t).collect();
    assert_eq!(ons[..4], [ms(0), ms(2500), ms(5000), ms(7500)], "{log:?}");
    let offs: Vec<Duration> = log.iter().filter(|(_, on)| !on).map(|(t, _)| *t).collect();
    assert_eq!(
        offs[0],
        ms(80),
        "the blip lasts 80 ms, however often the status is republished"
    );
    assert_eq!(
        log.last().map(|(_, on)| *on),
        Some(false),
        "off at shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn live_is_solid_attention_blinks_at_1_hz_and_error_at_4_hz() {
    let log = watch_led(&[(Mode::Live, 3), (Mode::Attention, 3), (Mode::Error, 2)]).await;
    let live = switches_between(&log, ms(0), ms(3000));
    assert!(
        live.iter().all(|(_, on)| *on),
        "solid: never off while live: {live:?}"
    );
    let attention = switches_between(&log, ms(3000), ms(6000));
    assert_eq!(
        attention.iter().filter(|(_, on)| !*on).count(),
        3,
        "1 Hz: {attention:?}"
    );
    let error = switches_between(&log, ms(6000), ms(8000));
    assert_eq!(
        error.iter().filter(|(_, on)| !*on).count(),
        8,
        "4 Hz: {error:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_led_is_a_warning_in_the_status_and_nothing_else() {
    let (_tx, rx) = tokio::sync::watch::channel(status(Mode::Standby));
    let shared = SharedIndicatorStatus::default();
    let shutdown = CancellationToken::new();
    let led = RecordingLed {
        log: Arc::default(),
        start: Instant::now(),
        fail: true,
    };
    let task = tokio::spawn(drive_led(
        rx,
        Box::new(led),
        shared.clone(),
        shutdown.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let problem = shared.lock().expect("status").led_problem.clone();
    assert_eq!(problem.as_deref(), Some("no LED here"));
    shutdown.cancel();
    task.await.expect("the task ends cleanly");
}

/// The configured LED-class back-end, end to end: a running appliance takes the LED from the
/// kernel's trigger, plays STANDBY's heartbeat on its brightness file, and leaves it off when
/// it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sysfs_led_plays_the_standby_heartbeat_and_is_off_after_shutdown() {
    let f = common::Fixture::new();
    f.site_file("index.html", "<p>hello</p>");
    let led = f.path("leds/ACT");
    std::fs::create_dir_all(&led).expect("LED dir");
    std::fs::write(led.join("trigger"), "[mmc0] none").expect("trigger");
    std::fs::write(led.join("brightness"), "0").expect("brightness");
    let dir = led.clone();
    let app = f
        .start_with(move |c| {
            c.led.backend = pi_failover::config::LedBackend::Sysfs;
            c.led.path = dir;
        })
        .await;
    let read = |file: &str| std::fs::read_to_string(led.join(file)).unwrap_or_default();

    // STANDBY: an 80 ms blip every 2.5 s. Watch a little longer than one period.
    let (mut lit, mut dark) = (0, 0);
    let until = std::time::Instant::now() + Duration::from_millis(3000);
    while std::time::Instant::now() < until {
        match read("brightness").as_str() {
            "1" => lit += 1,
            "0" => dark += 1,
            // Caught between the truncate and the write of a regular file (sysfs has no such
            // moment).
            "" => {}
            other => panic!("brightness holds {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        read("trigger"),
        "none",
        "the appliance took the LED from the kernel"
    );
    assert!(
        lit > 0,
        "the heartbeat blipped ({lit} lit, {dark} dark samples)"
    );
    assert!(
        dark > lit * 5,
        "mostly dark on STANDBY ({lit} lit, {dark} dark)"
    );

    // Lit by hand (STANDBY is dark most of the time, so "0" alone would prove nothing): the
    // appliance's way down must be what darkens it.
    std::fs::write(led.join("brightness"), "1").expect("light the LED");
    app.shutdown().await;
    assert_eq!(
        read("brightness"),
        "0",
        "off once the appliance has stopped"
    );
}
