//! Who gets in: the one accept-and-admit path of every listener, the site's and the status
//! page's. Each listener is given a `Gate`, its connection budget:
//! - places per client address (`per_address`), taken first, so an address at its cap is
//!   closed at once and never holds or waits for a shared place;
//! - shared places (established connections, kept alive);
//! - behind them an optional reserve: one request per connection, short timeouts, so the
//!   health check gets through while the shared places are all taken.
//!
//! The site's two listeners share one gate (`limits.*`); the status page has a gate of its
//! own (`budget::STATUS_CONNECTIONS`, four per address, no reserve), so an attack that fills
//! the site's places cannot lock the owner out of the page, and people looking at the page
//! never take a reader's place. Both are counted in the descriptor budget (`budget.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::LimitsConfig;
use crate::per_address::{PerAddress, Slot};

/// A listener's connection budget (module doc). Clones share the same places.
#[derive(Clone)]
pub struct Gate {
    name: &'static str,
    per_address: Arc<PerAddress>,
    connections: Arc<Semaphore>,
    reserve: Arc<Semaphore>,
}

/// How a connection was let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A shared place: kept alive, many requests.
    Established,
    /// From the reserve: one request, short timeouts, then closed.
    Reserve,
}

/// The reserve's timeouts: long enough for a health checker or a reader's first page on a
/// slow link, short enough that attackers cannot sit on the reserve.
const RESERVE_TIMEOUT: Duration = Duration::from_secs(5);

impl Lane {
    pub fn header_read_timeout(self, limits: &LimitsConfig) -> Duration {
        match self {
            Lane::Established => limits.header_read_timeout,
            Lane::Reserve => limits.header_read_timeout.min(RESERVE_TIMEOUT),
        }
    }

    pub fn idle_timeout(self, limits: &LimitsConfig) -> Duration {
        match self {
            Lane::Established => limits.idle_timeout,
            Lane::Reserve => limits.idle_timeout.min(RESERVE_TIMEOUT),
        }
    }
}

/// The places one connection holds; given back when dropped, with the connection.
#[derive(Debug)]
pub struct Place {
    _address: Slot,
    _connection: OwnedSemaphorePermit,
}

/// A connection let in by `Gate::next`.
pub struct Admitted {
    pub tcp: TcpStream,
    pub peer: SocketAddr,
    pub lane: Lane,
    /// Held for as long as the connection is served.
    pub place: Place,
}

impl Gate {
    /// `connections` shared places, `reserve` one-request places behind them, `per_address`
    /// places for each client address (IPv6 by its /64). `name` is what the log calls it.
    pub fn new(name: &'static str, connections: usize, reserve: usize, per_address: usize) -> Self {
        Self {
            name,
            per_address: PerAddress::new(per_address),
            connections: Arc::new(Semaphore::new(connections)),
            reserve: Arc::new(Semaphore::new(reserve)),
        }
    }

    /// The site's gate: `limits.max_connections`, `reserved_connections` and
    /// `max_connections_per_address`, shared by its HTTPS and HTTP listeners.
    pub fn site(limits: &LimitsConfig) -> Self {
        Self::new(
            "site",
            limits.max_connections,
            limits.reserved_connections,
            limits.max_connections_per_address,
        )
    }

    /// The address's place, before any other: `None` (and a log line) when the address is at
    /// its cap, and the connection is closed.
    pub fn address(&self, peer: SocketAddr) -> Option<Slot> {
        let slot = self.per_address.admit(peer.ip());
        if slot.is_none() {
            tracing::debug!(%peer, gate = self.name, "closed: the address holds its connections per address already");
        }
        slot
    }

    /// For a connection holding its address's place: a shared place, else one in the
    /// reserve, else waits for a shared one (and so, upstream, the accept loop waits and
    /// clients queue in the kernel). `None` on shutdown (the address's place is given back).
    pub async fn lane(&self, address: Slot, shutdown: &CancellationToken) -> Option<(Lane, Place)> {
        let place = |connection| Place {
            _address: address,
            _connection: connection,
        };
        if let Ok(permit) = self.connections.clone().try_acquire_owned() {
            return Some((Lane::Established, place(permit)));
        }
        if let Ok(permit) = self.reserve.clone().try_acquire_owned() {
            return Some((Lane::Reserve, place(permit)));
        }
        tokio::select! {
            () = shutdown.cancelled() => None,
            permit = self.connections.clone().acquire_owned() => Some((Lane::Established, place(permit.ok()?))),
        }
    }

    /// The listener's next connection that is let in: accepted, its address under its cap,
    /// a lane found. `None` once `shutdown` is cancelled. The plain-HTTP listeners (site and
    /// status page) take their connections here; HTTPS takes the same steps with the TLS
    /// handshake between the address and the lane (`serve_https`).
    pub async fn next(
        &self,
        listener: &TcpListener,
        shutdown: &CancellationToken,
    ) -> Option<Admitted> {
        loop {
            let (tcp, peer) = accept_next(listener, shutdown).await?;
            let Some(address) = self.address(peer) else {
                continue;
            };
            let (lane, place) = self.lane(address, shutdown).await?;
            return Some(Admitted {
                tcp,
                peer,
                lane,
                place,
            });
        }
    }
}

/// The listener's next connection (its peer in canonical form: an IPv4 client of a
/// dual-stack listener as IPv4), or `None` once `shutdown` is cancelled. Accept errors
/// (EMFILE and friends) back off instead of spinning; the client retries.
pub(crate) async fn accept_next(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => return Some((tcp, crate::listener::canonical(peer))),
                Err(e) => {
                    // EMFILE repeats every 50 ms while it lasts: one line a minute, with the count.
                    static ACCEPT_ERRORS: crate::throttle::Throttle = crate::throttle::Throttle::new();
                    if let Some(left_out) = ACCEPT_ERRORS.report() {
                        tracing::warn!(error = %e, addr = ?listener.local_addr().ok(), left_out, "accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 40000))
    }

    #[tokio::test]
    async fn an_address_at_its_cap_is_refused_before_it_takes_a_shared_place() {
        let gate = Gate::new("test", 2, 0, 1);
        let shutdown = CancellationToken::new();
        let first = gate.address(peer(1)).expect("first connection of .1");
        assert!(gate.address(peer(1)).is_none(), "second of .1 over its cap");
        let (lane, _held) = gate.lane(first, &shutdown).await.expect("a shared place");
        assert_eq!(lane, Lane::Established);
        // The refused connection took no shared place: another address gets the last one.
        let other = gate.address(peer(2)).expect(".2 under its cap");
        let (lane, place) = gate
            .lane(other, &shutdown)
            .await
            .expect("the second shared place");
        assert_eq!(lane, Lane::Established);
        drop(place);
        // Given back on drop: .2 may connect again.
        assert!(gate.address(peer(2)).is_some());
    }

    #[tokio::test]
    async fn the_reserve_is_taken_only_when_the_shared_places_are() {
        let gate = Gate::new("test", 1, 1, 8);
        let shutdown = CancellationToken::new();
        let slot = || gate.address(peer(1)).expect("under the address cap");
        let (first, _a) = gate.lane(slot(), &shutdown).await.expect("shared");
        let (second, _b) = gate.lane(slot(), &shutdown).await.expect("reserve");
        assert_eq!((first, second), (Lane::Established, Lane::Reserve));
        // Both taken: the next waits, and gives up on shutdown, its address's place back.
        let waiting = gate.lane(slot(), &shutdown);
        shutdown.cancel();
        assert!(waiting.await.is_none());
        let held: Vec<_> = (0..6).map(|_| slot()).collect();
        assert_eq!(
            held.len(),
            6,
            "two held and six free of the address's eight"
        );
    }

    #[tokio::test]
    async fn a_gate_without_a_reserve_waits_for_a_shared_place() {
        let gate = Gate::new("test", 1, 0, 8);
        let shutdown = CancellationToken::new();
        let slot = || gate.address(peer(1)).expect("under the address cap");
        let (_, held) = gate.lane(slot(), &shutdown).await.expect("shared");
        let waited =
            tokio::time::timeout(Duration::from_millis(50), gate.lane(slot(), &shutdown)).await;
        assert!(waited.is_err(), "no reserve: the second connection waits");
        drop(held);
        let (lane, _) = gate
            .lane(slot(), &shutdown)
            .await
            .expect("the place given back");
        assert_eq!(lane, Lane::Established);
    }
}
