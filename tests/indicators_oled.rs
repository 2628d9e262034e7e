//! The OLED shows what the status model says: each screen is drawn, sent through the real
//! `ssd1306` driver onto a software SSD1306 that decodes the bytes, and what its glass shows
//! must equal the drawn screen and the golden picture in tests/golden/ (BLESS=1 rewrites
//! them after a deliberate change; look at them before committing).

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use pi_failover::indicators::frame::Frame;
use pi_failover::indicators::oled::Panel;
use pi_failover::indicators::screen::{render, PanelSize};
use pi_failover::indicators::ssd1306_model::{ModelBus, Ssd1306Model};
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
    render(&Status::example(mode, now), size, 0, now)
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
