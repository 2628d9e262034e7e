//! A packet filter on a listening socket: only SYNs from the allowed networks reach it.
//!
//! The status port (8080) answers `403` to an address outside `status.allow` when no token is
//! configured; but answering at all tells a scanner the port is there, and every connection,
//! even one refused by the page, costs the Pi a descriptor and a TLS-free HTTP parse. With no
//! token nothing outside the allow-list can ever be let in, so the kernel drops those packets
//! before a connection exists: from outside, the port looks filtered (a SYN with no answer),
//! exactly as a firewall rule would make it, without a firewall the owner must keep in step
//! with the config.
//!
//! The filter is classic BPF (`SO_ATTACH_FILTER`), which every kernel the Pi runs has without
//! netfilter modules or privileges. A TCP listener's filter runs on each segment addressed to
//! it (the SYN included) and is inherited by the connections it accepts. The program
//! ([`program`]):
//!
//! 1. reads the packet's protocol (`skb->protocol` through the ancillary offset), since a
//!    dual-stack listener receives IPv4 packets as IPv4, not as `::ffff:a.b.c.d`;
//! 2. loads the source address from the network header (`SKF_NET_OFF`) into scratch memory;
//! 3. compares it with each allowed network of that family, masked, and accepts on the first
//!    match; a packet of any other family, or matching none, is dropped.
//!
//! An IPv6 network inside `::ffff:0:0/96` also admits the IPv4 network it maps, the same rule
//! the status page's own check applies ([`crate::listener::canonical`]).
//!
//! The program is data ([`Insn`]), so the tests run it through an interpreter against the
//! networks' own `contains` for random addresses and prefixes, as well as on a real socket.

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::AsFd;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The most networks a filter takes: a 64-network IPv6 list is 837 instructions, well under
/// the kernel's 4096 (`BPF_MAXINSNS`); a list longer than this is a config error
/// (`status.allow`), not a reason to guess.
pub(crate) const MAX_NETWORKS: usize = 64;

/// One classic BPF instruction, as `struct sock_filter` lays it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

// The opcodes used here, as linux/bpf_common.h composes them (class | size | mode | op).
const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const LD_H_ABS: u16 = 0x28; // BPF_LD | BPF_H (0x08) | BPF_ABS
const LD_MEM: u16 = 0x60; // BPF_LD | BPF_MEM (0x60)
const ST: u16 = 0x02; // BPF_ST
const AND_K: u16 = 0x54; // BPF_ALU (0x04) | BPF_AND (0x50) | BPF_K (0)
const JA: u16 = 0x05; // BPF_JMP (0x05) | BPF_JA (0)
const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ (0x10) | BPF_K
const RET_K: u16 = 0x06; // BPF_RET (0x06) | BPF_K

/// `SKF_AD_OFF + SKF_AD_PROTOCOL`: the packet's protocol in host order.
const PROTOCOL: u32 = (-0x1000i32) as u32;
/// `SKF_NET_OFF`: offsets from the network header.
const NET: i32 = -0x10_0000;
const ETH_P_IP: u32 = 0x0800;
const ETH_P_IPV6: u32 = 0x86DD;
/// The whole packet.
const ACCEPT: u32 = u32::MAX;
const DROP: u32 = 0;

/// Why a list of networks cannot become a filter.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error("{count} networks; a packet filter takes at most {MAX_NETWORKS}")]
    TooMany { count: usize },
    #[error("cannot attach the packet filter: {0}")]
    Attach(#[source] io::Error),
}

/// Attaches a filter to `socket` that lets in packets from `allowed` only. An empty list
/// admits nothing.
pub(crate) fn admit_only(socket: &impl AsFd, allowed: &[IpNet]) -> Result<(), AdmitError> {
    let program = program(allowed)?;
    let filters: Vec<socket2::SockFilter> = program
        .iter()
        .map(|i| socket2::SockFilter::new(i.code, i.jt, i.jf, i.k))
        .collect();
    socket2::SockRef::from(socket)
        .attach_filter(&filters)
        .map_err(AdmitError::Attach)
}

/// The classic BPF program that accepts a packet whose source is in `allowed`.
pub fn program(allowed: &[IpNet]) -> Result<Vec<Insn>, AdmitError> {
    if allowed.len() > MAX_NETWORKS {
        return Err(AdmitError::TooMany {
            count: allowed.len(),
        });
    }
    let mut v4: Vec<Ipv4Net> = Vec::new();
    let mut v6: Vec<Ipv6Net> = Vec::new();
    for net in allowed {
        match net {
            IpNet::V4(n) => v4.push(n.trunc()),
            IpNet::V6(n) => {
                v6.push(n.trunc());
                if let Some(mapped) = mapped_v4(n) {
                    v4.push(mapped);
                }
            }
        }
    }

    let v4_block = ipv4_block(&v4);
    let v6_block = ipv6_block(&v6);
    let mut p = Vec::with_capacity(3 + v4_block.len() + v6_block.len());
    p.push(insn(LD_H_ABS, 0, 0, PROTOCOL));
    // IPv4 falls into its block; anything else jumps over it to the IPv6 block, which checks
    // its own protocol (jump offsets are 8 bits: a long IPv4 block is out of their reach).
    p.push(insn(JEQ_K, 1, 0, ETH_P_IP));
    p.push(insn(JA, 0, 0, v4_block.len() as u32));
    p.extend(v4_block);
    p.extend(v6_block);
    Ok(p)
}

/// `::ffff:a.b.c.d/n` for n ≥ 96 as the IPv4 network `a.b.c.d/(n-96)`.
fn mapped_v4(net: &Ipv6Net) -> Option<Ipv4Net> {
    let prefix = net.prefix_len().checked_sub(96)?;
    let v4 = net.network().to_ipv4_mapped()?;
    Ipv4Net::new(v4, prefix).ok().map(|n| n.trunc())
}

/// Source address into M[0]; per network: mask, compare, accept; else drop.
fn ipv4_block(nets: &[Ipv4Net]) -> Vec<Insn> {
    let mut b = vec![insn(LD_W_ABS, 0, 0, net_offset(12)), insn(ST, 0, 0, 0)];
    for net in nets {
        b.push(insn(LD_MEM, 0, 0, 0));
        b.push(insn(AND_K, 0, 0, u32::from(net.netmask())));
        b.push(insn(JEQ_K, 0, 1, u32::from(net.network())));
        b.push(insn(RET_K, 0, 0, ACCEPT));
    }
    b.push(insn(RET_K, 0, 0, DROP));
    b
}

/// Not IPv6: drop. Source address's four words into M[0..4]; per network, the words its
/// prefix covers are compared in turn, the first mismatch skipping to the next network.
fn ipv6_block(nets: &[Ipv6Net]) -> Vec<Insn> {
    let mut b = vec![insn(JEQ_K, 1, 0, ETH_P_IPV6), insn(RET_K, 0, 0, DROP)];
    for word in 0..4u32 {
        b.push(insn(LD_W_ABS, 0, 0, net_offset(8 + 4 * word)));
        b.push(insn(ST, 0, 0, word));
    }
    for net in nets {
        let addr = words(net.network());
        let mask = words(net.netmask());
        let covered: Vec<usize> = (0..4).filter(|&w| mask[w] != 0).collect();
        if covered.is_empty() {
            // ::/0 admits every IPv6 packet.
            b.push(insn(RET_K, 0, 0, ACCEPT));
            continue;
        }
        for (i, &w) in covered.iter().enumerate() {
            // Instructions after this compare up to and including the accept.
            let rest = (covered.len() - 1 - i) * 3 + 1;
            b.push(insn(LD_MEM, 0, 0, w as u32));
            b.push(insn(AND_K, 0, 0, mask[w]));
            b.push(insn(JEQ_K, 0, rest as u8, addr[w]));
        }
        b.push(insn(RET_K, 0, 0, ACCEPT));
    }
    b.push(insn(RET_K, 0, 0, DROP));
    b
}

fn words(addr: Ipv6Addr) -> [u32; 4] {
    let o = addr.octets();
    std::array::from_fn(|w| {
        u32::from_be_bytes([o[4 * w], o[4 * w + 1], o[4 * w + 2], o[4 * w + 3]])
    })
}

fn net_offset(offset: u32) -> u32 {
    NET.wrapping_add(offset as i32) as u32
}

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::time::Duration;

    /// Runs `program` on a packet from `source`, as the kernel's classic BPF interpreter
    /// would for the instructions [`program`] emits (anything else fails the test).
    fn run(program: &[Insn], source: IpAddr) -> bool {
        let (protocol, net_header): (u32, Vec<u8>) = match source {
            IpAddr::V4(a) => {
                let mut h = vec![0x45u8; 20];
                h[12..16].copy_from_slice(&a.octets());
                (ETH_P_IP, h)
            }
            IpAddr::V6(a) => {
                let mut h = vec![0x60u8; 40];
                h[8..24].copy_from_slice(&a.octets());
                (ETH_P_IPV6, h)
            }
        };
        let (mut a, mut mem, mut pc) = (0u32, [0u32; 16], 0usize);
        for _ in 0..10_000 {
            let i = program[pc];
            pc += 1;
            match i.code {
                LD_H_ABS => {
                    assert_eq!(i.k, PROTOCOL, "only the protocol is loaded as a half-word");
                    a = protocol;
                }
                LD_W_ABS => {
                    let off = (i.k as i32 - NET) as usize;
                    a = u32::from_be_bytes(net_header[off..off + 4].try_into().expect("4 bytes"));
                }
                ST => mem[i.k as usize] = a,
                LD_MEM => a = mem[i.k as usize],
                AND_K => a &= i.k,
                JA => pc += i.k as usize,
                JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                RET_K => return i.k != 0,
                other => panic!("opcode {other:#x} is not one the program emits"),
            }
        }
        panic!("the program did not return")
    }

    /// What the filter does with a packet from `source`, said with the networks' own `contains`:
    /// the property the tests hold the program to.
    fn admits(allowed: &[IpNet], source: IpAddr) -> bool {
        allowed.iter().any(|n| n.contains(&source))
            || match source {
                IpAddr::V4(v4) => allowed.iter().any(|n| match n {
                    IpNet::V6(n) => mapped_v4(n).is_some_and(|m| m.contains(&v4)),
                    IpNet::V4(_) => false,
                }),
                IpAddr::V6(_) => false,
            }
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("network")).collect()
    }

    #[test]
    fn the_default_allow_list_admits_the_lan_and_drops_the_internet() {
        let allowed = crate::config::StatusConfig::default().allow;
        let p = program(&allowed).expect("program");
        for (addr, admitted) in [
            ("127.0.0.1", true),
            ("192.168.1.20", true),
            ("172.31.255.255", true),
            ("172.32.0.1", false),
            ("8.8.8.8", false),
            ("::1", true),
            ("::2", false),
            ("fd12:3456::1", true),
            ("fe80::1", true),
            ("2001:db8::1", false),
        ] {
            let ip: IpAddr = addr.parse().expect("address");
            assert_eq!(run(&p, ip), admitted, "{addr}");
        }
    }

    #[test]
    fn edges_an_empty_list_everything_and_mapped_networks() {
        let p = program(&[]).expect("program");
        assert!(!run(&p, "127.0.0.1".parse().expect("ip")));
        assert!(!run(&p, "::1".parse().expect("ip")));

        let p = program(&nets(&["0.0.0.0/0", "::/0"])).expect("program");
        assert!(run(&p, "203.0.113.9".parse().expect("ip")));
        assert!(run(&p, "2001:db8::9".parse().expect("ip")));

        let p = program(&nets(&["::ffff:192.168.0.0/112"])).expect("program");
        assert!(run(&p, "192.168.4.4".parse().expect("ip")));
        assert!(!run(&p, "192.169.4.4".parse().expect("ip")));
    }

    #[test]
    fn more_than_the_budget_is_refused() {
        let many: Vec<IpNet> = (0..=MAX_NETWORKS)
            .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::new(10, 0, i as u8, 0), 24).expect("net")))
            .collect();
        assert!(matches!(
            program(&many),
            Err(AdmitError::TooMany { count }) if count == MAX_NETWORKS + 1
        ));
        // The largest accepted program stays within BPF_MAXINSNS.
        let widest: Vec<IpNet> = (0..MAX_NETWORKS)
            .map(|i| format!("2001:db8:{i:x}::1/128").parse().expect("net"))
            .collect();
        assert!(program(&widest).expect("program").len() <= 4096);
    }

    /// Random allow-lists and random addresses near them: the program agrees with
    /// `IpNet::contains` (and the mapped rule). Reproducible: the failing seed is printed.
    #[test]
    fn the_program_agrees_with_the_networks_for_random_lists() {
        for seed in 0..300u64 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let count = rng.usize(0..=MAX_NETWORKS.min(12) + usize::from(seed % 10 == 0) * 52);
            let allowed: Vec<IpNet> = (0..count).map(|_| random_net(&mut rng)).collect();
            let p = program(&allowed).expect("program");
            for _ in 0..50 {
                let source = if !allowed.is_empty() && rng.bool() {
                    near(&allowed[rng.usize(..allowed.len())], &mut rng)
                } else {
                    random_ip(&mut rng)
                };
                assert_eq!(
                    run(&p, source),
                    admits(&allowed, source),
                    "seed {seed}: {source} against {allowed:?}"
                );
            }
        }
    }

    fn random_ip(rng: &mut fastrand::Rng) -> IpAddr {
        if rng.bool() {
            IpAddr::V4(Ipv4Addr::from(rng.u32(..)))
        } else {
            IpAddr::V6(Ipv6Addr::from(rng.u128(..)))
        }
    }

    fn random_net(rng: &mut fastrand::Rng) -> IpNet {
        match rng.u8(0..5) {
            0 | 1 => {
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(rng.u32(..)), rng.u8(0..=32)).expect("net"))
            }
            2 => {
                let v4 = Ipv4Addr::from(rng.u32(..)).to_ipv6_mapped();
                IpNet::V6(Ipv6Net::new(v4, rng.u8(96..=128)).expect("net"))
            }
            _ => {
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(rng.u128(..)), rng.u8(0..=128)).expect("net"))
            }
        }
    }

    /// An address in `net`, or one bit off its prefix.
    fn near(net: &IpNet, rng: &mut fastrand::Rng) -> IpAddr {
        match net {
            IpNet::V4(n) => {
                let host = rng.u32(..) & !u32::from(n.netmask());
                let mut a = u32::from(n.network()) | host;
                if n.prefix_len() > 0 && rng.bool() {
                    a ^= 1 << (32 - u32::from(rng.u8(1..=n.prefix_len())));
                }
                IpAddr::V4(Ipv4Addr::from(a))
            }
            IpNet::V6(n) => {
                let host = rng.u128(..) & !u128::from(n.netmask());
                let mut a = u128::from(n.network()) | host;
                if n.prefix_len() > 0 && rng.bool() {
                    a ^= 1 << (128 - u32::from(rng.u8(1..=n.prefix_len())));
                }
                let v6 = Ipv6Addr::from(a);
                match v6.to_ipv4_mapped() {
                    Some(v4) if rng.bool() => IpAddr::V4(v4),
                    _ => IpAddr::V6(v6),
                }
            }
        }
    }

    /// The real kernel: a listener admitting 127.0.0.1 only accepts 127.0.0.1; a SYN from
    /// 127.0.0.2 or ::1 is dropped, so the connect times out instead of being refused.
    #[test]
    fn a_real_listener_drops_the_syns_of_other_addresses() {
        use socket2::{Domain, Socket, Type};
        let listener = {
            let s = Socket::new(Domain::IPV6, Type::STREAM, None).expect("socket");
            s.set_only_v6(false).expect("dual-stack");
            s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())
                .expect("binds");
            s.listen(16).expect("listens");
            TcpListener::from(s)
        };
        admit_only(&listener, &nets(&["127.0.0.1/32"])).expect("attaches");
        let port = listener.local_addr().expect("bound").port();
        let timeout = Duration::from_millis(700);

        let ok = TcpStream::connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)), timeout);
        assert!(ok.is_ok(), "127.0.0.1 is admitted: {ok:?}");
        let (_, peer) = listener.accept().expect("accepts the admitted client");
        assert_eq!(crate::listener::canonical(peer).ip(), Ipv4Addr::LOCALHOST);

        let from_127_0_0_2 = {
            let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
            s.bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
                .expect("binds 127.0.0.2");
            s.connect_timeout(&SocketAddr::from(([127, 0, 0, 1], port)).into(), timeout)
        };
        let v6 =
            TcpStream::connect_timeout(&SocketAddr::from((Ipv6Addr::LOCALHOST, port)), timeout);
        for (who, result) in [("127.0.0.2", from_127_0_0_2.err()), ("::1", v6.err())] {
            let kind = result.map(|e| e.kind());
            assert_eq!(
                kind,
                Some(io::ErrorKind::TimedOut),
                "{who} is dropped, not refused"
            );
        }
    }
}
