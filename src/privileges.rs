//! Giving up capabilities once the sockets are bound.
//!
//! On the card, the run script starts `pi-failover run` as its own user with two
//! capabilities: CAP_NET_BIND_SERVICE (ports 443 and 80) and CAP_NET_ADMIN (Linux 6.12.y and
//! later allow `SO_ATTACH_FILTER` on a TCP socket only with it: the status port's packet
//! filter, [`crate::listener::admit`]). Both are needed once, to set the listeners up
//! ([`crate::appliance::Listeners::bind`]); after that a process facing the internet has no use
//! for them, and CAP_NET_ADMIN in particular would let a compromised appliance reconfigure
//! the Pi's network. So they are dropped from every set, before the async runtime starts:
//! capabilities belong to threads, and a thread created later inherits its creator's.
//!
//! The bounding set needs CAP_SETPCAP to change, which the appliance never has; it does not
//! matter here: the appliance executes nothing, and `--no-new-privs` (run script) keeps an
//! exec from gaining anything.

use rustix::thread::{self, CapabilitySet, CapabilitySets};

/// Clears the calling thread's effective, permitted, inheritable and ambient capabilities.
/// Call it while the process has one thread.
pub fn drop_all() -> std::io::Result<()> {
    thread::clear_ambient_capability_set()?;
    thread::set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a thread of its own (capabilities are per thread): whatever it held, root's full
    /// set when the tests run as root, it holds nothing afterwards, and cannot take a
    /// capability back.
    #[test]
    fn after_dropping_a_thread_holds_nothing_and_cannot_take_anything_back() {
        std::thread::spawn(|| {
            drop_all().expect("drops");
            let now = thread::capabilities(None).expect("reads");
            assert!(now.effective.is_empty(), "{now:?}");
            assert!(now.permitted.is_empty(), "{now:?}");
            assert!(now.inheritable.is_empty(), "{now:?}");
            let regain = thread::set_capabilities(
                None,
                CapabilitySets {
                    effective: CapabilitySet::NET_ADMIN,
                    permitted: CapabilitySet::NET_ADMIN,
                    inheritable: CapabilitySet::empty(),
                },
            );
            assert!(regain.is_err(), "a dropped capability cannot be taken back");
        })
        .join()
        .expect("thread");
    }
}
