//! The OLED shows what the status model says: each screen is drawn, sent through the real
//! `ssd1306` driver onto a software SSD1306 that decodes the bytes, and what its glass shows
//! must equal the drawn screen and the golden picture in tests/golden/ (BLESS=1 rewrites
//! them after a deliberate change; look at them before committing).

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pi_failover::indicators::frame::Frame;
use pi_failover::indicators::glow::{Glow, OffHours, DIM_AFTER};
use pi_failover::indicators::oled::Panel;
use pi_failover::indicators::screen::{self, render, PanelSize, Tick};
use pi_failover::indicators::ssd1306_model::{ModelBus, Ssd1306Model};
use pi_failover::indicators::{run_oled, OledSettings, OpenPanel, SharedIndicatorStatus, Stop};

use pi_failover::live::mode::Mode;
use pi_failover::status::Status;

const MODES: [Mode; 5] = [
    Mode::Live,
    Mode::Draining,
    Mode::Standby,
    Mode::Attention,
    Mode::Error,
];
const SIZES: [PanelSize; 2] = [PanelSize::W128H64, PanelSize::W128H32];

fn screen(mode: Mode, size: PanelSize) -> Frame {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    render(&Status::example(mode, now), size, Tick::default(), now)
}

fn golden(mode: Mode, size: PanelSize) -> PathBuf {
    let size = match size {
        PanelSize::W128H64 => "128x64",
        PanelSize::W128H32 => "128x32",
    };
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("oled-{}-{size}.png", mode.as_str().to_lowercase()))
}

#[test]
fn every_screen_matches_its_golden_picture() {
    for mode in MODES {
        for size in SIZES {
            let drawn = screen(mode, size);
            assert!(drawn.lit() > 100, "{mode} {size:?} draws something");
            let path = golden(mode, size);
            if std::env::var_os("BLESS").is_some() {
                std::fs::write(&path, drawn.to_png(1).expect("png")).expect("write golden");
            }
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{}: {e} (BLESS=1 cargo test creates it)", path.display())
            });
            assert_eq!(
                Frame::from_png(&bytes).expect("golden png"),
                drawn,
                "{}",
                path.display()
            );
        }
    }
}

#[test]
fn the_real_driver_puts_each_screen_on_the_glass_pixel_for_pixel() {
    for size in SIZES {
        for rotate_180 in [false, true] {
            let bus = ModelBus::new(Ssd1306Model::new(0x3C, size.height()));
            let mut panel = Panel::open(bus.clone(), 0x3C, size, rotate_180).expect("init");
            for mode in MODES {
                let drawn = screen(mode, size);
                panel.show(&drawn).expect("show");
                let model = bus.model();
                assert!(
                    model.problems.is_empty(),
                    "{mode} {size:?}: {:?}",
                    model.problems
                );
                let glass = model.glass();
                let expected = if rotate_180 { rotated(&drawn) } else { drawn };
                assert_eq!(glass, expected, "{mode} {size:?} rotate_180 {rotate_180}");
            }
        }
    }
}

#[test]
fn the_panel_starts_cleared_and_dark_goes_dark() {
    let bus = ModelBus::new(Ssd1306Model::new(0x3D, 64));
    let mut panel = Panel::open(bus.clone(), 0x3D, PanelSize::W128H64, false).expect("init");
    assert_eq!(bus.model().glass().lit(), 0, "no power-on noise after open");
    panel
        .show(&screen(Mode::Live, PanelSize::W128H64))
        .expect("show");
    assert!(bus.model().glass().lit() > 100);
    panel.set_on(false).expect("off");
    assert_eq!(bus.model().glass().lit(), 0, "display off: nothing lit");
    panel.set_dim(true).expect("dim");
    assert!(bus.model().contrast < 0x10, "dimmed");
}

#[test]
fn a_panel_at_another_address_is_a_nack_not_a_hang() {
    let result = Panel::open(
        ModelBus::new(Ssd1306Model::new(0x3D, 64)),
        0x3C,
        PanelSize::W128H64,
        false,
    );
    assert!(result.is_err());
}

#[test]
fn the_model_catches_a_panel_driven_at_the_wrong_height() {
    let bus = ModelBus::new(Ssd1306Model::new(0x3C, 32));
    let _panel = Panel::open(bus.clone(), 0x3C, PanelSize::W128H64, false).expect("init");
    let problems = &bus.model().problems;
    assert!(
        problems.iter().any(|p| p.contains("multiplex")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("COM pins")),
        "{problems:?}"
    );
}

fn rotated(frame: &Frame) -> Frame {
    let mut out = Frame::new(frame.width(), frame.height());
    for y in 0..frame.height() {
        for x in 0..frame.width() {
            out.set(
                frame.width() - 1 - x,
                frame.height() - 1 - y,
                frame.get(x, y),
            );
        }
    }
    out
}

/// The OLED loop as the appliance runs it, on the software panel.
struct RunningPanel {
    bus: ModelBus,
    status: tokio::sync::watch::Sender<std::sync::Arc<Status>>,
    shared: SharedIndicatorStatus,
    stop: Stop,
    thread: std::thread::JoinHandle<()>,
}

impl RunningPanel {
    fn start(first: Status, off_hours: Option<&str>) -> Self {
        let bus = ModelBus::new(Ssd1306Model::new(0x3C, 64));
        let panel_bus = bus.clone();
        let open: OpenPanel<ModelBus> =
            Box::new(move || Panel::open(panel_bus.clone(), 0x3C, PanelSize::W128H64, false));
        let settings = OledSettings {
            size: PanelSize::W128H64,
            off_hours: off_hours.map(|o| OffHours::try_from(o.to_owned()).expect("window")),
        };
        let (status, rx) = tokio::sync::watch::channel(std::sync::Arc::new(first));
        let shared = SharedIndicatorStatus::default();
        let stop = Stop {
            grace: Duration::from_secs(10),
            ..Stop::default()
        };
        let thread = {
            let (shared, stop) = (shared.clone(), stop.clone());
            std::thread::spawn(move || run_oled(open, settings, rx, shared, stop))
        };
        Self {
            bus,
            status,
            shared,
            stop,
            thread,
        }
    }

    fn show(&self, status: Status) {
        self.status.send_replace(std::sync::Arc::new(status));
    }

    /// Waits (a few seconds at most) until the panel satisfies `what`.
    fn until(&self, what: &str, check: impl Fn(&Ssd1306Model, Glow) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let glow = self.shared.lock().expect("indicator status").oled_glow;
            let model = self.bus.model();
            if check(&model, glow) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the panel never became {what}: display on {}, contrast {:#04x}, {} lit, glow {glow:?}",
                model.display_on,
                model.contrast,
                model.glass().lit()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn standby_for(quiet: Duration) -> Status {
    let now = SystemTime::now();
    let mut status = Status::example(Mode::Standby, now);
    status.mode_since = now - quiet;
    status
}

fn live_now() -> Status {
    Status::example(Mode::Live, SystemTime::now())
}

#[test]
fn a_standby_quiet_for_ten_minutes_dims_the_panel_and_readers_brighten_it() {
    let panel = RunningPanel::start(standby_for(Duration::from_secs(60)), None);
    panel.until("lit at normal brightness", |m, glow| {
        m.display_on && m.glass().lit() > 100 && glow == Glow::Normal
    });
    let normal = panel.bus.model().contrast;

    panel.show(standby_for(DIM_AFTER + Duration::from_secs(1)));
    panel.until("dimmed", |m, glow| m.contrast < normal && glow == Glow::Dim);
    assert!(panel.bus.model().glass().lit() > 100, "dim, not dark");

    panel.show(live_now());
    panel.until("bright again for LIVE", |m, glow| {
        m.contrast == normal && glow == Glow::Normal
    });
    panel.stop.shutdown.cancel();
    panel.stop.drained.cancel();
    panel.thread.join().expect("OLED thread");
}

#[test]
fn off_hours_darken_a_standby_panel_but_never_a_live_one() {
    // A two-hour window around now (UTC), so the test holds at any time of day.
    let minute = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        / 60
        % 1440;
    let at = |m: u64| format!("{:02}:{:02}", (m % 1440) / 60, m % 60);
    let window = format!("{}-{}", at(minute + 1440 - 60), at(minute + 60));

    let panel = RunningPanel::start(standby_for(Duration::from_secs(60)), Some(&window));
    panel.until("dark in off hours", |m, glow| {
        !m.display_on && m.glass().lit() == 0 && glow == Glow::Off
    });
    panel.show(live_now());
    panel.until("lit for LIVE, off hours or not", |m, glow| {
        m.display_on && m.glass().lit() > 100 && glow == Glow::Normal
    });
    panel.stop.shutdown.cancel();
    panel.stop.drained.cancel();
    panel.thread.join().expect("OLED thread");
}

#[test]
fn on_shutdown_the_panel_says_stopping_until_drained_then_goes_dark() {
    let panel = RunningPanel::start(live_now(), None);
    panel.until("showing LIVE", |m, _| m.glass().lit() > 100);

    panel.stop.shutdown.cancel();
    let stopping = screen::stopping(PanelSize::W128H64, Tick::default());
    panel.until("STOPPING", |m, _| m.display_on && m.glass() == stopping);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        panel.bus.model().display_on,
        "STOPPING stays up while connections drain"
    );

    panel.stop.drained.cancel();
    panel.thread.join().expect("OLED thread");
    let model = panel.bus.model();
    assert!(!model.display_on, "display off once drained");
    assert_eq!(model.glass().lit(), 0);
}

#[test]
fn when_the_status_model_goes_away_the_loop_ends_and_the_panel_goes_dark() {
    let panel = RunningPanel::start(live_now(), None);
    panel.until("showing LIVE", |m, _| m.glass().lit() > 100);
    drop(panel.status);
    panel.thread.join().expect("the OLED thread ends by itself");
    assert!(!panel.bus.model().display_on);
}

#[test]
fn a_heartbeat_blink_sends_a_few_bytes_not_the_whole_picture() {
    let bus = ModelBus::new(Ssd1306Model::new(0x3C, 64));
    let mut panel = Panel::open(bus.clone(), 0x3C, PanelSize::W128H64, false).expect("init");
    assert_eq!(
        bus.model().data_bytes,
        1024,
        "open clears the whole RAM once"
    );
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let status = Status::example(Mode::Live, now);
    let still = render(&status, PanelSize::W128H64, Tick::default(), now);
    let beat = render(
        &status,
        PanelSize::W128H64,
        Tick {
            heartbeat: true,
            ..Tick::default()
        },
        now,
    );
    panel.show(&still).expect("show");
    let before = bus.model().data_bytes;
    panel.show(&beat).expect("blink");
    let blink = bus.model().data_bytes - before;
    assert_ne!(still, beat, "the heartbeat changes the picture");
    assert!((1..=8).contains(&blink), "a blink sent {blink} bytes");
    assert_eq!(bus.model().glass(), beat);
    let before = bus.model().data_bytes;
    panel.show(&beat).expect("same again");
    assert_eq!(
        bus.model().data_bytes,
        before,
        "an unchanged picture sends nothing"
    );
}
