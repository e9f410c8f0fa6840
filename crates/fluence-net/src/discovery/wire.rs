//! Discovery's answers as `fluence-proto` operations types (which carry
//! peer ids as bytes), and lookup targets parsed from them.

use fluence_proto::ops::{self, DhtTarget, PeerIdBytes};
use libp2p::PeerId;

use super::{Closest, NetworkStatus};
use crate::keyspace::Target;

/// Why a target from the wire is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a libp2p peer id")]
pub struct BadPeerId(String);

pub fn peer_id_bytes(peer: &PeerId) -> PeerIdBytes {
    PeerIdBytes(peer.to_bytes())
}

/// The peer id in `bytes` (a multihash libp2p accepts as a peer id).
pub fn parse_peer_id(bytes: &PeerIdBytes) -> Result<PeerId, BadPeerId> {
    PeerId::from_bytes(&bytes.0).map_err(|_| BadPeerId(hex_prefix(&bytes.0)))
}

fn hex_prefix(bytes: &[u8]) -> String {
    let shown: String = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 16 {
        format!("{shown}…")
    } else {
        shown
    }
}

impl TryFrom<&DhtTarget> for Target {
    type Error = BadPeerId;

    fn try_from(target: &DhtTarget) -> Result<Target, BadPeerId> {
        match target {
            DhtTarget::Dataset(id) => Ok(Target::Dataset(*id)),
            DhtTarget::Peer(bytes) => Ok(Target::Peer(parse_peer_id(bytes)?)),
        }
    }
}

impl From<&Target> for DhtTarget {
    fn from(target: &Target) -> DhtTarget {
        match target {
            Target::Dataset(id) => DhtTarget::Dataset(*id),
            Target::Peer(peer) => DhtTarget::Peer(peer_id_bytes(peer)),
        }
    }
}

fn addr_texts(addrs: &[libp2p::Multiaddr]) -> Vec<String> {
    addrs
        .iter()
        .map(ToString::to_string)
        .filter(|text| text.len() <= ops::ADDR_LEN_MAX)
        .take(ops::MEMBER_ADDRS_MAX)
        .collect()
}

impl From<&Closest> for ops::ClosestPeers {
    fn from(closest: &Closest) -> ops::ClosestPeers {
        ops::ClosestPeers {
            peers: closest
                .peers
                .iter()
                .take(usize::from(ops::CLOSEST_PEERS_MAX))
                .map(|found| ops::DhtPeer {
                    peer: peer_id_bytes(&found.peer),
                    addrs: addr_texts(&found.addrs),
                })
                .collect(),
            complete: closest.complete,
        }
    }
}

impl From<&NetworkStatus> for ops::NetworkStatus {
    fn from(status: &NetworkStatus) -> ops::NetworkStatus {
        ops::NetworkStatus {
            peer_id: peer_id_bytes(&status.peer_id),
            listen_addrs: addr_texts(&status.listen_addrs),
            connected: status
                .connected
                .iter()
                .take(ops::CONNECTED_PEERS_LISTED_MAX)
                .map(peer_id_bytes)
                .collect(),
            buckets: status
                .buckets
                .iter()
                .map(|b| ops::BucketStatus {
                    index: b.index,
                    entries: u32::try_from(b.entries).unwrap_or(u32::MAX),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_proto::DatasetId;

    #[test]
    fn targets_cross_the_wire_and_bad_peer_ids_are_refused() {
        let peer = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        for target in [Target::Peer(peer), Target::Dataset(DatasetId([4; 32]))] {
            let wire = DhtTarget::from(&target);
            assert_eq!(Target::try_from(&wire), Ok(target));
        }
        let bad = DhtTarget::Peer(PeerIdBytes(vec![0xff; 20]));
        assert!(Target::try_from(&bad).is_err());
    }
}
