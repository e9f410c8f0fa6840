//! One Kademlia key space for node ids and dataset ids.
//!
//! A position in the space is the SHA-256 of a preimage, exactly as
//! libp2p-kad computes it (`kad::KBucketKey`), so the distances here are
//! the ones the DHT's lookups converge on:
//!
//! - a **node** (peer id): SHA-256 of the peer id's multihash bytes
//!   (`PeerId::to_bytes`; for an ed25519 node the 38-byte identity
//!   multihash `0x00 0x24` · protobuf of the public key);
//! - a **dataset**: SHA-256 of its 32 id bytes (`DatasetId.0`, itself
//!   SHA-256 of `FLUENCE_DATASET_ID_V1` · owner key · name tag, see
//!   `fluence_crypto::keys::dataset_id`). This is what `kad::RecordKey`
//!   of those bytes hashes to as well.
//!
//! The distance between two positions is their XOR read as a 256-bit
//! unsigned integer (big-endian); smaller is closer. No I/O here.

use std::cmp::Ordering;

use fluence_proto::DatasetId;
use libp2p::kad::{KBucketDistance, KBucketKey};
use libp2p::PeerId;

/// What a lookup looks for: the nodes closest to a dataset or to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Dataset(DatasetId),
    Peer(PeerId),
}

impl Target {
    /// The bytes whose SHA-256 is the target's position: what a
    /// `get_closest_peers` query is started with.
    pub fn preimage(&self) -> Vec<u8> {
        match self {
            Target::Dataset(id) => id.0.to_vec(),
            Target::Peer(peer) => peer.to_bytes(),
        }
    }

    /// The target's position in the key space.
    pub fn key(&self) -> KBucketKey<Vec<u8>> {
        KBucketKey::new(self.preimage())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Dataset(id) => write!(f, "dataset {id}"),
            Target::Peer(peer) => write!(f, "node {peer}"),
        }
    }
}

/// A node's position in the key space (what libp2p's routing table uses).
pub fn peer_key(peer: &PeerId) -> KBucketKey<PeerId> {
    KBucketKey::from(*peer)
}

/// XOR distance between `peer` and `target`.
pub fn distance(target: &Target, peer: &PeerId) -> KBucketDistance {
    target.key().distance(&peer_key(peer))
}

/// Orders peers by distance to a target, ties (only possible for equal
/// peer ids) broken by peer id bytes so the order is total.
pub fn by_distance(target_key: &KBucketKey<Vec<u8>>, a: &PeerId, b: &PeerId) -> Ordering {
    target_key
        .distance(&peer_key(a))
        .cmp(&target_key.distance(&peer_key(b)))
        .then_with(|| a.to_bytes().cmp(&b.to_bytes()))
}

/// The distance as 32 big-endian bytes (for display and the wire).
pub fn distance_bytes(distance: &KBucketDistance) -> [u8; 32] {
    distance.0.to_big_endian()
}

/// The bucket a distance falls into: `floor(log2(distance))`, 0..=255;
/// `None` for distance zero (the key itself).
pub fn bucket_index(distance: &KBucketDistance) -> Option<u8> {
    distance.ilog2().map(|log| log as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;
    use sha2::{Digest, Sha256};

    fn xor(a: &[u8], b: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        for i in 0..32 {
            out[i] = a[i] ^ b[i];
        }
        out
    }

    #[test]
    fn positions_are_sha256_of_the_documented_bytes() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let bytes = peer.to_bytes();
        // The identity multihash of an ed25519 key's protobuf encoding.
        assert_eq!(bytes.len(), 38);
        assert_eq!(&bytes[..2], &[0x00, 0x24]);
        let peer_position: [u8; 32] = Sha256::digest(&bytes).into();
        assert_eq!(peer_key(&peer).hashed_bytes(), &peer_position);
        assert_eq!(Target::Peer(peer).key().hashed_bytes(), &peer_position);

        let dataset = DatasetId([7; 32]);
        let dataset_position: [u8; 32] = Sha256::digest([7u8; 32]).into();
        assert_eq!(
            Target::Dataset(dataset).key().hashed_bytes(),
            &dataset_position
        );
        // libp2p's record key of the same bytes lands on the same position.
        let record = KBucketKey::from(libp2p::kad::RecordKey::new(&dataset.0));
        assert_eq!(record.hashed_bytes(), &dataset_position);

        let d = distance(&Target::Dataset(dataset), &peer);
        assert_eq!(distance_bytes(&d), xor(&dataset_position, &peer_position));
    }

    #[test]
    fn a_peer_is_at_distance_zero_from_itself() {
        let peer = Keypair::generate_ed25519().public().to_peer_id();
        let d = distance(&Target::Peer(peer), &peer);
        assert_eq!(distance_bytes(&d), [0; 32]);
        assert_eq!(bucket_index(&d), None);
    }

    #[test]
    fn bucket_index_is_the_highest_set_bit() {
        let mut bytes = [0u8; 32];
        bytes[31] = 1;
        let d = KBucketDistance(libp2p::kad::U256::from_big_endian(&bytes));
        assert_eq!(bucket_index(&d), Some(0));
        bytes[0] = 0x80;
        let d = KBucketDistance(libp2p::kad::U256::from_big_endian(&bytes));
        assert_eq!(bucket_index(&d), Some(255));
    }
}
