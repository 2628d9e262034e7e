//! The integration tests, one binary: each links the appliance and the S3 SDK once, not once
//! per capability (fourteen binaries of ~60 MB each once filled a CI disk). A module per
//! capability; shared helpers in `common`. Tests behind a feature (`system-tests`,
//! `soak-tests`, `image-tests`) say so at the top of their module.
//!
//! Run one module with `cargo test --test it serve_limits::`, one test by its name.

mod common;

mod cli;
mod clock;
mod history_notify;
mod image_boot;
mod indicators_led;
mod indicators_oled;
mod layers;
mod live_status;
mod reliability_power_cuts;
mod reliability_s3_faults;
mod reliability_soak;
mod serve_hostile_paths;
mod serve_limits;
mod serve_static;
mod serve_tls;
mod sync_s3;
mod tls_acme;
mod tls_s3;
mod tls_scan;
mod update_bundles;
