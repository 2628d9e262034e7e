//! The config file, as someone might type it on a laptop (any UTF-8 text).
//!
//! Properties:
//! - `parse` never panics; an error names the file and says something;
//! - on parsed text, `validate` and `settings::check` (the subsystems' rules) never panic
//!   and their errors name the file and a key;
//! - a valid config survives `check-config`: the effective config it prints parses again
//!   and prints the same (what users paste back into their boot partition).
//!
//! `check_files` is left out: it only stats the paths the config names.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pi_failover::config::{self, ConfigError};

const FILE: &str = "/boot/pi-failover.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new(FILE);
    let parsed = match config::parse(text, file) {
        Ok(parsed) => parsed,
        Err(e) => return check_error(&e),
    };
    if let Err(e) = parsed
        .validate(file)
        .and_then(|()| pi_failover::settings::check(&parsed, file))
    {
        assert!(e.key().is_some_and(|k| !k.is_empty()), "{e}: no key named");
        return check_error(&e);
    }
    let shown = parsed.to_toml();
    let again = config::parse(&shown, file)
        .unwrap_or_else(|e| panic!("check-config's output does not parse: {e}\n{shown}"));
    assert_eq!(
        again.to_toml(),
        shown,
        "check-config's output is not stable"
    );
});

fn check_error(e: &ConfigError) {
    let message = e.to_string();
    assert!(
        message.starts_with(FILE) && message.len() > FILE.len() + 2,
        "an error names the file and the problem: {message:?}"
    );
    assert!(
        message.contains("Fix: "),
        "an error says how to fix it: {message:?}"
    );
}
