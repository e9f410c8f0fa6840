//! Who may enter the routing table, with which addresses: the pure part of
//! the rule (the swarm task applies it when identify completes).
//!
//! - **Addresses we can vouch for.** A peer we dialed is kept with the
//!   address we reached it on (noise proved the peer id there). A peer
//!   that dialed us is kept with the addresses of its signed peer record
//!   that are on the IP its connection came from, so a peer cannot make
//!   us tell the network that someone else's host is it.
//! - **Bounded per subnet.** At most [`SubnetLimits::per_bucket`] entries
//!   of one subnet (IPv4 /24, IPv6 /48) in a bucket and
//!   [`SubnetLimits::per_table`] in the whole table, counted on the IP of
//!   the connection (which a remote cannot choose), so one host or one
//!   rented block cannot fill a bucket. Loopback, private and link-local
//!   connections are not limited: such a peer is inside the operator's
//!   own network (and a devnet runs many nodes on 127.0.0.1).

use std::net::IpAddr;

use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

/// Addresses kept for one peer.
pub const ADDRS_PER_PEER_MAX: usize = 4;

/// Routing-table entries allowed per IP subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetLimits {
    pub per_bucket: usize,
    pub per_table: usize,
}

impl Default for SubnetLimits {
    /// Two per bucket, ten per table: the limits Ethereum's discv5 uses
    /// for /24s, which keep a Sybil on one block to a handful of entries
    /// while leaving room for honest nodes in one data centre.
    fn default() -> Self {
        SubnetLimits {
            per_bucket: 2,
            per_table: 10,
        }
    }
}

/// An IP subnet whose entries are counted together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subnet {
    V4([u8; 3]),
    V6([u8; 6]),
}

impl Subnet {
    /// The /24 or /48 of a global address; `None` for addresses that are
    /// not limited (loopback, private, link-local, unspecified).
    pub fn of(ip: IpAddr) -> Option<Subnet> {
        match ip {
            IpAddr::V4(v4) => {
                if v4.is_loopback()
                    || v4.is_private()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || v4.is_broadcast()
                {
                    return None;
                }
                let o = v4.octets();
                Some(Subnet::V4([o[0], o[1], o[2]]))
            }
            IpAddr::V6(v6) => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return Subnet::of(IpAddr::V4(v4));
                }
                let segments = v6.segments();
                let unique_local = segments[0] & 0xfe00 == 0xfc00;
                let link_local = segments[0] & 0xffc0 == 0xfe80;
                if v6.is_loopback() || v6.is_unspecified() || unique_local || link_local {
                    return None;
                }
                let o = v6.octets();
                Some(Subnet::V6([o[0], o[1], o[2], o[3], o[4], o[5]]))
            }
        }
    }
}

/// The first IP address in `addr`.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    })
}

/// The remote's address on a connection: the one we dialed, or the one
/// its connection came from.
pub fn remote_addr(endpoint: &ConnectedPoint) -> &Multiaddr {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => address,
        ConnectedPoint::Listener { send_back_addr, .. } => send_back_addr,
    }
}

/// `addr` without a trailing `/p2p/...` (the routing table adds its own).
fn without_peer_id(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

/// The addresses a peer identified on `endpoint` enters the routing table
/// with (see the module documentation); empty: it does not enter.
pub fn routable_addrs(endpoint: &ConnectedPoint, signed: &[Multiaddr]) -> Vec<Multiaddr> {
    match endpoint {
        ConnectedPoint::Dialer { address, .. } => vec![without_peer_id(address)],
        ConnectedPoint::Listener { send_back_addr, .. } => {
            let Some(remote_ip) = ip_of(send_back_addr) else {
                return Vec::new();
            };
            let mut addrs: Vec<Multiaddr> = signed
                .iter()
                .filter(|addr| ip_of(addr) == Some(remote_ip))
                .filter(|addr| {
                    addr.iter()
                        .any(|p| matches!(p, Protocol::Tcp(port) if port != 0))
                })
                .map(without_peer_id)
                .collect();
            addrs.sort();
            addrs.dedup();
            addrs.truncate(ADDRS_PER_PEER_MAX);
            addrs
        }
    }
}

/// Why a peer was not let into the routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("its bucket already holds {0} peers of its subnet")]
    BucketSubnetFull(usize),
    #[error("the routing table already holds {0} peers of its subnet")]
    TableSubnetFull(usize),
}

/// Whether one more peer of `subnet` fits, given how many of the subnet's
/// peers its bucket and the whole table hold now.
pub fn check_subnet(
    limits: &SubnetLimits,
    subnet: Option<Subnet>,
    in_bucket: usize,
    in_table: usize,
) -> Result<(), Refusal> {
    if subnet.is_none() {
        return Ok(());
    }
    if in_bucket >= limits.per_bucket {
        return Err(Refusal::BucketSubnetFull(in_bucket));
    }
    if in_table >= limits.per_table {
        return Err(Refusal::TableSubnetFull(in_table));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::transport::PortUse;
    use libp2p::core::Endpoint;

    fn addr(text: &str) -> Multiaddr {
        text.parse().unwrap()
    }

    fn inbound(from: &str) -> ConnectedPoint {
        ConnectedPoint::Listener {
            local_addr: addr("/ip4/0.0.0.0/tcp/4001"),
            send_back_addr: addr(from),
        }
    }

    #[test]
    fn a_dialed_peer_is_kept_at_the_address_we_reached_it_on() {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let dialed = ConnectedPoint::Dialer {
            address: addr(&format!("/ip4/203.0.113.5/tcp/4001/p2p/{peer}")),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        };
        // Whatever it claims in its record.
        let claimed = [addr("/ip4/198.51.100.1/tcp/1")];
        assert_eq!(
            routable_addrs(&dialed, &claimed),
            vec![addr("/ip4/203.0.113.5/tcp/4001")]
        );
    }

    #[test]
    fn an_inbound_peer_is_kept_only_at_addresses_on_its_own_ip() {
        let signed = [
            addr("/ip4/203.0.113.5/tcp/4001"),
            // Someone else's host: never advertised for this peer.
            addr("/ip4/198.51.100.1/tcp/4001"),
            // No port to dial.
            addr("/ip4/203.0.113.5/tcp/0"),
            addr("/ip4/203.0.113.5/udp/4001/quic-v1"),
        ];
        assert_eq!(
            routable_addrs(&inbound("/ip4/203.0.113.5/tcp/53211"), &signed),
            vec![addr("/ip4/203.0.113.5/tcp/4001")]
        );
        assert!(routable_addrs(&inbound("/ip4/192.0.2.9/tcp/53211"), &signed).is_empty());
        let many: Vec<Multiaddr> = (0..10)
            .map(|port| addr(&format!("/ip4/203.0.113.5/tcp/{}", 4000 + port)))
            .collect();
        assert_eq!(
            routable_addrs(&inbound("/ip4/203.0.113.5/tcp/1"), &many).len(),
            ADDRS_PER_PEER_MAX
        );
    }

    #[test]
    fn subnets_group_global_addresses_and_exempt_local_ones() {
        let v4 = |s: &str| Subnet::of(s.parse().unwrap());
        assert_eq!(v4("203.0.113.5"), v4("203.0.113.200"));
        assert_ne!(v4("203.0.113.5"), v4("203.0.114.5"));
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "169.254.1.1",
        ] {
            assert_eq!(v4(local), None, "{local}");
        }
        assert_eq!(v4("2001:db8:1:2::1"), v4("2001:db8:1:ffff::2"));
        assert_ne!(v4("2001:db8:1::1"), v4("2001:db8:2::1"));
        for local in ["::1", "fd00::1", "fe80::1"] {
            assert_eq!(v4(local), None, "{local}");
        }
        assert_eq!(v4("::ffff:203.0.113.5"), v4("203.0.113.5"));
    }

    #[test]
    fn subnet_limits_bound_buckets_and_the_table() {
        let limits = SubnetLimits::default();
        let subnet = Subnet::of("203.0.113.5".parse().unwrap());
        assert_eq!(check_subnet(&limits, subnet, 1, 9), Ok(()));
        assert_eq!(
            check_subnet(&limits, subnet, 2, 2),
            Err(Refusal::BucketSubnetFull(2))
        );
        assert_eq!(
            check_subnet(&limits, subnet, 0, 10),
            Err(Refusal::TableSubnetFull(10))
        );
        // Loopback is never limited.
        assert_eq!(check_subnet(&limits, None, 100, 1000), Ok(()));
    }
}
