//! Positions and XOR distances in the key space, taken from
//! `fluence_net::keyspace` (the mapping the real node uses), held as plain
//! 32-byte arrays so the simulation's inner loops stay cheap.

use fluence_net::keyspace::{self, Target};
use fluence_net::PeerId;

/// A position in the key space: SHA-256 of a peer id's or dataset id's
/// bytes, exactly as `fluence_net::keyspace` computes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub [u8; 32]);

/// The XOR of two positions. The derived order compares the bytes
/// big-endian, which is the order of the 256-bit integers they spell:
/// smaller is closer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Distance(pub [u8; 32]);

impl Key {
    /// A node's position.
    pub fn of_peer(peer: &PeerId) -> Key {
        Key::from_hashed(keyspace::peer_key(peer).hashed_bytes())
    }

    /// A lookup target's position (a dataset's or a node's).
    pub fn of_target(target: &Target) -> Key {
        Key::from_hashed(target.key().hashed_bytes())
    }

    fn from_hashed(bytes: &[u8]) -> Key {
        Key(bytes
            .try_into()
            .expect("libp2p's key space positions are SHA-256 digests (32 bytes)"))
    }

    /// The XOR distance to `other`.
    pub fn distance(&self, other: &Key) -> Distance {
        let mut out = [0u8; 32];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        Distance(out)
    }
}

impl Distance {
    /// Leading zero bits of the 256-bit distance (256 for distance zero).
    pub fn leading_zeros(&self) -> u32 {
        let mut zeros = 0;
        for byte in self.0 {
            if byte != 0 {
                return zeros + byte.leading_zeros();
            }
            zeros += 8;
        }
        zeros
    }

    /// The k-bucket this distance falls into, as libp2p numbers them:
    /// bucket `i` holds distances in `[2^i, 2^(i+1))`, so the index is
    /// `255 - leading_zeros`; `None` for distance zero (a node itself).
    pub fn bucket_index(&self) -> Option<u8> {
        255u32
            .checked_sub(self.leading_zeros())
            .map(|index| index as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fluence_net::Keypair;
    use fluence_proto::DatasetId;
    use proptest::prelude::*;

    fn peer(secret: [u8; 32]) -> PeerId {
        Keypair::ed25519_from_bytes(secret)
            .expect("any 32 bytes are an ed25519 secret")
            .public()
            .to_peer_id()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The cheap distance orders peers exactly as `fluence_net::keyspace`
        /// does, and its bucket index is libp2p's.
        #[test]
        fn distance_and_bucket_agree_with_keyspace(
            dataset in any::<[u8; 32]>(),
            a in any::<[u8; 32]>(),
            b in any::<[u8; 32]>(),
        ) {
            let target = Target::Dataset(DatasetId(dataset));
            let (pa, pb) = (peer(a), peer(b));
            let here = Key::of_target(&target);
            let (da, db) = (here.distance(&Key::of_peer(&pa)), here.distance(&Key::of_peer(&pb)));
            let (ka, kb) = (keyspace::distance(&target, &pa), keyspace::distance(&target, &pb));
            prop_assert_eq!(da.0, keyspace::distance_bytes(&ka));
            prop_assert_eq!(da.cmp(&db), ka.cmp(&kb));
            prop_assert_eq!(da.bucket_index(), keyspace::bucket_index(&ka));
        }

        /// Bucket index = 255 − leading zeros of the XOR distance.
        #[test]
        fn bucket_index_is_255_minus_leading_zeros(x in any::<[u8; 32]>(), y in any::<[u8; 32]>()) {
            let d = Key(x).distance(&Key(y));
            let lz = d.leading_zeros();
            if lz == 256 {
                prop_assert_eq!(d.bucket_index(), None);
            } else {
                prop_assert_eq!(d.bucket_index(), Some((255 - lz) as u8));
                // The distance lies in [2^i, 2^(i+1)).
                let i = 255 - lz as usize;
                let byte = 31 - i / 8;
                prop_assert!(d.0[byte] >> (i % 8) == 1);
                prop_assert!(d.0[..byte].iter().all(|b| *b == 0));
            }
        }
    }

    #[test]
    fn a_position_is_at_distance_zero_from_itself() {
        let p = peer([9; 32]);
        let d = Key::of_peer(&p).distance(&Key::of_peer(&p));
        assert_eq!(d.leading_zeros(), 256);
        assert_eq!(d.bucket_index(), None);
        assert_eq!(
            Key::of_peer(&p),
            Key::of_target(&Target::Peer(p)),
            "a node and a lookup of that node land on one position"
        );
    }
}
