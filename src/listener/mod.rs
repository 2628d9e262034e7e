//! Binding the listeners, and the one place a peer's address is put in canonical form.
//!
//! The default listeners are `[::]:PORT`: one dual-stack socket that takes IPv6 readers and
//! IPv4 readers alike (the guide tells the owner to publish AAAA records for the Pi; an
//! IPv4-only listener would refuse those readers and leave them to their browser's fallback).
//! Two rules make that safe:
//!
//! - **`IPV6_V6ONLY` is cleared on the socket itself**, not left to the
//!   `net.ipv6.bindv6only` sysctl, so the same config means the same thing on every kernel.
//! - **An IPv4 peer arrives as `::ffff:a.b.c.d`; it is turned back into `a.b.c.d` at
//!   accept** ([`canonical`]), before anything looks at it. Otherwise the status page's
//!   allow-list (`127.0.0.0/8`, `192.168.0.0/16`) would never match an IPv4 client, and the
//!   per-address connection budget would key the same reader two ways.
//!
//! A kernel without IPv6 (the Raspberry Pi defconfigs build it as a module; `ipv6.disable=1`
//! on the command line) cannot open an IPv6 socket at all: the wildcard `[::]` then falls
//! back to `0.0.0.0` on the same port, with a warning, rather than leaving the Pi unable to
//! serve. A specific IPv6 address is what the owner asked for: that fails as configured.

pub mod admit;

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use std::net::TcpListener;

/// The kernel's accept queue: tokio's own default for `TcpListener::bind`.
const BACKLOG: i32 = 1024;

/// Binds `addr` for accepting: `[::]` as dual-stack (falling back to `0.0.0.0` on a kernel
/// without IPv6), any other address as given. Non-blocking, for tokio's
/// `TcpListener::from_std`; a plain socket so that it can be bound before the async runtime
/// starts (and before the process gives up the privileges binding needed).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    match addr.ip() {
        IpAddr::V6(ip) if ip.is_unspecified() => match bind_socket(addr, Some(false)) {
            Err(e) if no_ipv6(&e) => {
                let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), addr.port());
                tracing::warn!(%addr, fallback = %v4, error = %e, "this kernel has no IPv6; listening on IPv4 only");
                bind_socket(v4, None)
            }
            other => other,
        },
        IpAddr::V6(_) => bind_socket(addr, Some(true)),
        IpAddr::V4(_) => bind_socket(addr, None),
    }
}

/// A peer as the rest of the appliance sees it: an IPv4 client of a dual-stack listener as
/// its IPv4 address.
pub fn canonical(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

fn bind_socket(addr: SocketAddr, only_v6: Option<bool>) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(only_v6) = only_v6 {
        socket.set_only_v6(only_v6)?;
    }
    // As tokio does: a restarted appliance rebinds while the old connections sit in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The errors a kernel without IPv6 gives for an IPv6 socket or bind.
fn no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, TcpStream};

    #[test]
    fn an_ipv4_peer_of_a_dual_stack_socket_is_its_ipv4_address() {
        let mapped = SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(192, 168, 1, 7).to_ipv6_mapped()),
            5,
        );
        assert_eq!(canonical(mapped), SocketAddr::from(([192, 168, 1, 7], 5)));
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 5);
        assert_eq!(canonical(v6), v6);
        let v4 = SocketAddr::from(([10, 0, 0, 1], 5));
        assert_eq!(canonical(v4), v4);
    }

    #[test]
    fn the_wildcard_takes_both_families_and_reports_ipv4_peers_as_ipv4() {
        let listener = bind("[::]:0".parse().expect("address")).expect("binds");
        let port = listener.local_addr().expect("bound").port();
        for (connect, expected) in [
            (
                SocketAddr::from(([127, 0, 0, 1], port)),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ),
            (
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ),
        ] {
            let client = std::thread::spawn(move || TcpStream::connect(connect));
            listener.set_nonblocking(false).expect("blocking accept");
            let (_, peer) = listener.accept().expect("accepts");
            client.join().expect("joins").expect("connects");
            assert_eq!(canonical(peer).ip(), expected, "connecting to {connect}");
        }
    }

    #[test]
    fn a_specific_ipv6_address_is_ipv6_only() {
        let listener = bind("[::1]:0".parse().expect("address")).expect("binds");
        let socket = socket2::SockRef::from(&listener);
        assert!(socket.only_v6().expect("reads IPV6_V6ONLY"));
    }
}
