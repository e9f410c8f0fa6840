//! Cluster members, under both names: the libp2p `PeerId` a
//! connection authenticates (noise proves the peer holds its key) and the
//! ed25519 public key consensus knows it by. Both are the same ed25519
//! key: a peer id is the identity multihash of the key's protobuf
//! encoding, so the mapping is exact in both directions and needs no
//! lookup service.

use std::collections::HashMap;

use commonware_codec::DecodeExt;
use commonware_cryptography::ed25519;
use fluence_proto::limits::CLUSTER_MEMBERS_MAX;
use fluence_proto::PublicKey;
use libp2p::{Multiaddr, PeerId};

use crate::identity::peer_id_of;
use crate::NetError;

/// A node as configured (a member, or an entry of the address book):
/// its key and where to dial it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMember {
    pub key: PublicKey,
    /// Addresses to dial (without `/p2p/...`; the peer id is derived
    /// from the key and checked by the noise handshake).
    pub addrs: Vec<Multiaddr>,
}

/// One member under all its names.
#[derive(Debug, Clone)]
pub struct Member {
    pub key: PublicKey,
    pub peer: PeerId,
    pub consensus: ed25519::PublicKey,
    pub addrs: Vec<Multiaddr>,
}

/// The commonware view of a fluence public key, if it is a valid point.
pub fn consensus_key(key: &PublicKey) -> Option<ed25519::PublicKey> {
    ed25519::PublicKey::decode(commonware_runtime::IoBuf::from(key.0.to_vec())).ok()
}

impl Member {
    /// The node with `key`, dialed at `addrs` (which may be empty: the
    /// swarm then asks discovery where it is).
    pub fn from_key(key: PublicKey, addrs: Vec<Multiaddr>) -> Result<Member, NetError> {
        let peer = peer_id_of(&key)?;
        let consensus = consensus_key(&key)
            .ok_or_else(|| NetError::Setup(format!("{key} is not an ed25519 key")))?;
        Ok(Member {
            key,
            peer,
            consensus,
            addrs,
        })
    }

    /// The node behind an authenticated connection from `peer`, if its
    /// peer id carries an ed25519 key (every Fluence node's does).
    pub fn from_peer(peer: &PeerId) -> Option<Member> {
        let key = crate::identity::member_key_of(peer).ok()?;
        Member::from_key(key, Vec::new()).ok()
    }
}

/// The members of one dataset's cluster, with this node's place in it.
#[derive(Debug)]
pub struct Membership {
    members: Vec<Member>,
    local: usize,
    by_peer: HashMap<PeerId, usize>,
    by_consensus: HashMap<ed25519::PublicKey, usize>,
}

impl Membership {
    /// Checks and indexes `members` (1 to `CLUSTER_MEMBERS_MAX`, none
    /// twice), of which `local` must be one.
    pub fn new(local: PublicKey, members: Vec<ClusterMember>) -> Result<Membership, NetError> {
        let bad = |reason: String| NetError::Setup(format!("cluster membership: {reason}"));
        if members.is_empty() || members.len() > CLUSTER_MEMBERS_MAX {
            return Err(bad(format!(
                "{} members; a cluster has 1 to {CLUSTER_MEMBERS_MAX}",
                members.len()
            )));
        }
        let mut indexed = Vec::with_capacity(members.len());
        let mut by_peer = HashMap::new();
        let mut by_consensus = HashMap::new();
        for member in members {
            let member = Member::from_key(member.key, member.addrs)?;
            if by_peer.insert(member.peer, indexed.len()).is_some() {
                return Err(bad(format!("{} is listed twice", member.key)));
            }
            by_consensus.insert(member.consensus.clone(), indexed.len());
            indexed.push(member);
        }
        let local = indexed
            .iter()
            .position(|m| m.key == local)
            .ok_or_else(|| bad(format!("this node ({local}) is not a member")))?;
        Ok(Membership {
            members: indexed,
            local,
            by_peer,
            by_consensus,
        })
    }

    /// Every member, this node included, in the order given.
    pub fn all(&self) -> &[Member] {
        &self.members
    }

    pub fn local(&self) -> &Member {
        &self.members[self.local]
    }

    /// The member behind an authenticated connection, if it is one.
    pub fn by_peer(&self, peer: &PeerId) -> Option<&Member> {
        self.by_peer.get(peer).map(|&i| &self.members[i])
    }

    /// The member with this consensus key, if it is one.
    pub fn by_consensus(&self, key: &ed25519::PublicKey) -> Option<&Member> {
        self.by_consensus.get(key).map(|&i| &self.members[i])
    }

    /// Every member but this node.
    pub fn others(&self) -> impl Iterator<Item = &Member> {
        let local = self.local;
        self.members
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != local)
            .map(|(_, m)| m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::identity::Keypair;

    fn member(keypair: &Keypair) -> ClusterMember {
        ClusterMember {
            key: crate::identity::member_key(keypair).unwrap(),
            addrs: Vec::new(),
        }
    }

    #[test]
    fn peer_ids_and_consensus_keys_map_to_the_same_member() {
        let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate_ed25519()).collect();
        let local = crate::identity::member_key(&keys[2]).unwrap();
        let membership = Membership::new(local, keys.iter().map(member).collect()).unwrap();
        assert_eq!(membership.local().key, local);
        assert_eq!(membership.others().count(), 3);
        for keypair in &keys {
            let peer = keypair.public().to_peer_id();
            let found = membership.by_peer(&peer).unwrap();
            assert_eq!(found.peer, peer);
            assert_eq!(found.consensus.as_ref(), &found.key.0[..]);
            assert_eq!(
                membership.by_consensus(&found.consensus).unwrap().peer,
                peer
            );
        }
        let stranger = Keypair::generate_ed25519().public().to_peer_id();
        assert!(membership.by_peer(&stranger).is_none());
    }

    #[test]
    fn bad_memberships_are_refused() {
        let a = Keypair::generate_ed25519();
        let b = Keypair::generate_ed25519();
        let local = crate::identity::member_key(&a).unwrap();
        assert!(Membership::new(local, vec![member(&b)]).is_err());
        assert!(Membership::new(local, vec![]).is_err());
        assert!(Membership::new(local, vec![member(&a), member(&a)]).is_err());
    }
}
