//! pi-failover: the standby HTTPS origin of a static website, for a Raspberry Pi behind DNS
//! failover. See `README.md` for the product and `docs/` for its parts.

pub mod appliance;
pub mod aws;
pub mod backoff;
pub mod budget;
pub mod clock;
pub mod config;
pub mod content_type;
pub mod data_format;
#[cfg(feature = "demo")]
pub mod demo;
pub mod format;
pub mod generation;
pub mod history;
pub mod indicators;
pub mod listener;
pub mod live;
pub mod notify;
pub mod pacing;
pub mod per_address;
pub mod privileges;
pub mod server;
pub mod settings;
pub mod site;
pub mod status;
pub mod status_page;
pub mod stream_executor;
pub mod sync;
pub mod throttle;
pub mod tls;
pub mod update;
