//! Connections per client address: one address must not take every slot.
//!
//! The global cap (`limits.max_connections`) keeps the Pi's descriptors and memory bounded,
//! but alone it let one address hold all of it: 200 silent TCP connections from one host kept
//! HTTPS unanswered for everyone. Each address (an IPv6 client by its /64, which one
//! subscriber usually has whole) may hold at most `limits.max_connections_per_address`;
//! beyond that its new connections are closed at once, before they take a global permit, so
//! readers from other addresses and the DNS health checker still get in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// An address as counted: IPv4 whole, IPv6 by its /64 (IPv4-mapped IPv6 as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6Prefix(u64),
}

/// Peers arrive canonical (an IPv4 client of a dual-stack listener as IPv4:
/// `listener::canonical`, at accept), so each reader has one key.
impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Client::V4(u32::from(v4)),
            IpAddr::V6(v6) => Client::V6Prefix((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Open connections by client, shared by both listeners.
#[derive(Debug)]
pub(crate) struct PerAddress {
    cap: usize,
    open: Mutex<HashMap<Client, usize>>,
}

/// One connection's place in its address's count; given back on drop.
#[derive(Debug)]
pub struct Slot {
    table: Arc<PerAddress>,
    client: Client,
}

impl PerAddress {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection from `ip`, or `None` when the address is at its cap.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let client = Client::from(ip);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(client).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(Slot {
            table: self.clone(),
            client,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .table
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // The map holds only addresses with open connections: it cannot grow with the
        // number of addresses ever seen.
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    #[test]
    fn an_address_at_its_cap_is_refused_and_others_are_not() {
        let table = PerAddress::new(2);
        let a = [table.admit(ip("192.0.2.1")), table.admit(ip("192.0.2.1"))];
        assert!(a.iter().all(Option::is_some));
        assert!(
            table.admit(ip("192.0.2.1")).is_none(),
            "third from one address"
        );
        assert!(table.admit(ip("192.0.2.2")).is_some(), "another address");
        drop(a);
        assert!(table.admit(ip("192.0.2.1")).is_some(), "slots come back");
        assert!(
            table.open.lock().expect("lock").len() <= 1,
            "no address kept idle"
        );
    }

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let table = PerAddress::new(1);
        let _first = table.admit(ip("2001:db8:1:2::1")).expect("first");
        assert!(
            table.admit(ip("2001:db8:1:2:ffff::9")).is_none(),
            "same /64"
        );
        assert!(table.admit(ip("2001:db8:1:3::1")).is_some(), "next /64");
    }
}
