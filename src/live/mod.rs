//! Is the Pi serving readers? Request classification, sliding-window traffic counts, the
//! primary probe, the DNS check, and the debounced mode they decide.

pub mod classify;
pub mod dns;
pub mod mode;
pub mod probe;
pub mod traffic;
