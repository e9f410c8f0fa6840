//! A dataset's cluster as agreed at creation: the member list the owner
//! signs inside `Action::Create` and each member's signed acceptance, and
//! the requests a gateway uses to form it (`Offer`) and to find it again
//! (`Route`).
//!
//! # What is signed
//!
//! The membership of dataset `D` at epoch `e` with member keys `K1..Kn`
//! (in the order listed) has the digest
//! `BLAKE3-derive-key("FLUENCE_MEMBERSHIP_V1", D · e (u64 LE) · n (u32 LE) · K1 · … · Kn)`.
//! Each member signs that digest under [`SERVE_SIGNING_DOMAIN`] with its
//! node key (its acceptance to serve `D` with exactly these members); the
//! owner signs the whole `Create`, which carries the list and the
//! acceptances, under the write domain. Signatures are checked by
//! `fluence_chain::genesis` (this crate has no cryptography).
//!
//! The genesis membership is epoch 0. A later membership change (a member
//! replaced) is meant to be a block carrying epoch 1 with its own
//! acceptances, superseding this one; it does not exist yet.

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::{DatasetId, PublicKey, Signature};
use crate::limits::CLUSTER_MEMBERS_MAX;
use crate::ops::{ADDR_LEN_MAX, MEMBER_ADDRS_MAX};

/// Domain of a member's acceptance signature. Changing it breaks every
/// existing genesis.
pub const SERVE_SIGNING_DOMAIN: &[u8] = b"FLUENCE_SERVE_V1";
/// BLAKE3 key-derivation context of [`membership_digest`].
const MEMBERSHIP_DIGEST_CONTEXT: &str = "FLUENCE_MEMBERSHIP_V1";
/// The most members one cluster may have (n = 3f + 1 up to this).
pub const CLUSTER_SIZE_MAX: usize = CLUSTER_MEMBERS_MAX;
/// The epoch of the membership a dataset is created with.
pub const GENESIS_EPOCH: u64 = 0;

/// The digest members sign to accept serving `dataset` with `members` at
/// `epoch` (see the module documentation for the bytes).
pub fn membership_digest(dataset: &DatasetId, epoch: u64, members: &[PublicKey]) -> [u8; 32] {
    let mut writer = Writer::new();
    dataset.encode(&mut writer);
    writer.u64(epoch);
    writer.vec(members);
    *blake3::Hasher::new_derive_key(MEMBERSHIP_DIGEST_CONTEXT)
        .update(&writer.into_bytes())
        .finalize()
        .as_bytes()
}

/// Why a member list cannot be a cluster (shape only; signatures are
/// checked by `fluence_chain::genesis`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("a cluster has 1 to {CLUSTER_SIZE_MAX} members, not {0}")]
    Size(usize),
    #[error("a cluster has n = 3f + 1 members (1, 4, 7, ...), not {0}")]
    NotThreeFPlusOne(usize),
    #[error("member {0} is listed twice")]
    Duplicate(PublicKey),
    #[error("the genesis membership has epoch {0}, not {GENESIS_EPOCH}")]
    Epoch(u64),
    #[error("{0} is not a valid ed25519 member key")]
    BadKey(PublicKey),
    #[error("the acceptance of member {0} does not verify")]
    BadAcceptance(PublicKey),
    #[error("the members are {found:?}, the cluster's are {expected:?}")]
    Mismatch {
        expected: Vec<PublicKey>,
        found: Vec<PublicKey>,
    },
    #[error("the creation carries no cluster membership")]
    Missing,
    #[error("this node ({0}) is not a member")]
    NotListed(PublicKey),
}

/// Checks that `members` can form a cluster: 1 to [`CLUSTER_SIZE_MAX`]
/// members, n = 3f + 1, no key twice.
pub fn check_member_list(members: &[PublicKey]) -> Result<(), MembershipError> {
    let n = members.len();
    if n == 0 || n > CLUSTER_SIZE_MAX {
        return Err(MembershipError::Size(n));
    }
    if (n - 1) % 3 != 0 {
        return Err(MembershipError::NotThreeFPlusOne(n));
    }
    for (i, key) in members.iter().enumerate() {
        if members[..i].contains(key) {
            return Err(MembershipError::Duplicate(*key));
        }
    }
    Ok(())
}

/// One member as the genesis names it: its node key and its signature
/// over the [`membership_digest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seat {
    pub key: PublicKey,
    pub acceptance: Signature,
}

impl Encode for Seat {
    fn encode(&self, writer: &mut Writer) {
        self.key.encode(writer);
        self.acceptance.encode(writer);
    }
}

impl Decode for Seat {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Seat {
            key: PublicKey::decode(reader)?,
            acceptance: Signature::decode(reader)?,
        })
    }
}

/// The membership a dataset is created with, carried by its `Create`
/// (and so by the first block of its chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterGenesis {
    /// [`GENESIS_EPOCH`]; a later membership change would carry the next.
    pub epoch: u64,
    /// In placement order: closest to the dataset id first.
    pub members: Vec<Seat>,
}

impl ClusterGenesis {
    /// The member keys, in order.
    pub fn keys(&self) -> Vec<PublicKey> {
        self.members.iter().map(|seat| seat.key).collect()
    }

    /// What each member signed.
    pub fn digest(&self, dataset: &DatasetId) -> [u8; 32] {
        membership_digest(dataset, self.epoch, &self.keys())
    }

    /// Shape: the epoch is the genesis one and the keys form a cluster.
    pub fn check_shape(&self) -> Result<(), MembershipError> {
        if self.epoch != GENESIS_EPOCH {
            return Err(MembershipError::Epoch(self.epoch));
        }
        check_member_list(&self.keys())
    }
}

impl Encode for ClusterGenesis {
    fn encode(&self, writer: &mut Writer) {
        writer.u64(self.epoch);
        writer.vec(&self.members);
    }
}

impl Decode for ClusterGenesis {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ClusterGenesis {
            epoch: reader.u64("membership epoch")?,
            members: reader.vec(CLUSTER_SIZE_MAX, "cluster members")?,
        })
    }
}

/// Why a node does not take an offer to serve a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It serves its maximum number of datasets.
    Full,
    /// It was started not to accept new datasets (`--no-accept`).
    NotAccepting,
    /// It runs alone (no consensus): it applies writes itself and serves
    /// no cluster.
    Alone,
}

impl Refusal {
    fn tag(self) -> u8 {
        match self {
            Refusal::Full => 1,
            Refusal::NotAccepting => 2,
            Refusal::Alone => 3,
        }
    }

    /// How a person reads it.
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Full => "full",
            Refusal::NotAccepting => "not accepting datasets",
            Refusal::Alone => "runs alone, serves no cluster",
        }
    }
}

/// A node's answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferAnswer {
    /// Its signature over the offered membership's digest.
    Accepted(Signature),
    Refused(Refusal),
}

impl Encode for OfferAnswer {
    fn encode(&self, writer: &mut Writer) {
        match self {
            OfferAnswer::Accepted(signature) => {
                writer.u8(1);
                signature.encode(writer);
            }
            OfferAnswer::Refused(refusal) => {
                writer.u8(2);
                writer.u8(refusal.tag());
            }
        }
    }
}

impl Decode for OfferAnswer {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("offer answer")? {
            1 => Ok(OfferAnswer::Accepted(Signature::decode(reader)?)),
            2 => Ok(OfferAnswer::Refused(match reader.u8("refusal")? {
                1 => Refusal::Full,
                2 => Refusal::NotAccepting,
                3 => Refusal::Alone,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "refusal",
                        tag,
                    })
                }
            })),
            tag => Err(DecodeError::UnknownTag {
                what: "offer answer",
                tag,
            }),
        }
    }
}

/// Where a member can be dialed, as the answering node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAddrs {
    pub key: PublicKey,
    /// Multiaddrs as text (without `/p2p/...`).
    pub addrs: Vec<String>,
}

impl Encode for MemberAddrs {
    fn encode(&self, writer: &mut Writer) {
        self.key.encode(writer);
        writer.len(self.addrs.len());
        for addr in &self.addrs {
            writer.str(addr);
        }
    }
}

impl Decode for MemberAddrs {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MemberAddrs {
            key: PublicKey::decode(reader)?,
            addrs: reader.vec_with(MEMBER_ADDRS_MAX, "member addresses", |r| {
                r.string(ADDR_LEN_MAX, "member address")
            })?,
        })
    }
}

/// A member's answer to `Route`: the dataset's genesis membership (which
/// the gateway checks: owner-signed inside the `Create`, member-signed
/// acceptances) and where the answering node dials each member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAnswer {
    /// The dataset's `Create` exactly as the owner signed it (the owner's
    /// signature covers the membership).
    pub create: crate::write::SignedWrite,
    pub addrs: Vec<MemberAddrs>,
}

impl Encode for RouteAnswer {
    fn encode(&self, writer: &mut Writer) {
        self.create.encode(writer);
        writer.vec(&self.addrs);
    }
}

impl Decode for RouteAnswer {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RouteAnswer {
            create: crate::write::SignedWrite::decode(reader)?,
            addrs: reader.vec(CLUSTER_SIZE_MAX, "member addresses")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: u8) -> Vec<PublicKey> {
        (1..=n).map(|i| PublicKey([i; 32])).collect()
    }

    #[test]
    fn member_lists_must_be_three_f_plus_one_without_repeats() {
        for n in [1u8, 4, 7, 64] {
            check_member_list(&keys(n)).unwrap();
        }
        assert_eq!(check_member_list(&[]), Err(MembershipError::Size(0)));
        assert_eq!(check_member_list(&keys(65)), Err(MembershipError::Size(65)));
        for n in [2u8, 3, 5, 6] {
            assert_eq!(
                check_member_list(&keys(n)),
                Err(MembershipError::NotThreeFPlusOne(n.into()))
            );
        }
        let mut twice = keys(4);
        twice[3] = twice[1];
        assert_eq!(
            check_member_list(&twice),
            Err(MembershipError::Duplicate(twice[1]))
        );
    }

    #[test]
    fn the_digest_binds_dataset_epoch_and_ordered_members() {
        let dataset = DatasetId([9; 32]);
        let members = keys(4);
        let digest = membership_digest(&dataset, 0, &members);
        assert_ne!(digest, membership_digest(&DatasetId([8; 32]), 0, &members));
        assert_ne!(digest, membership_digest(&dataset, 1, &members));
        let mut reordered = members.clone();
        reordered.swap(0, 1);
        assert_ne!(digest, membership_digest(&dataset, 0, &reordered));
        assert_ne!(digest, membership_digest(&dataset, 0, &members[..1]));
    }

    #[test]
    fn genesis_and_answers_round_trip_and_bounds_hold() {
        let genesis = ClusterGenesis {
            epoch: 0,
            members: keys(4)
                .into_iter()
                .map(|key| Seat {
                    key,
                    acceptance: Signature([7; 64]),
                })
                .collect(),
        };
        let bytes = genesis.to_bytes();
        assert_eq!(ClusterGenesis::from_bytes(&bytes).unwrap(), genesis);
        genesis.check_shape().unwrap();
        let later = ClusterGenesis {
            epoch: 1,
            ..genesis.clone()
        };
        assert_eq!(later.check_shape(), Err(MembershipError::Epoch(1)));
        // A list longer than the bound is refused before it is read.
        let mut writer = Writer::new();
        writer.u64(0);
        writer.len(CLUSTER_SIZE_MAX + 1);
        assert!(ClusterGenesis::from_bytes(&writer.into_bytes()).is_err());
        for answer in [
            OfferAnswer::Accepted(Signature([3; 64])),
            OfferAnswer::Refused(Refusal::Full),
            OfferAnswer::Refused(Refusal::NotAccepting),
            OfferAnswer::Refused(Refusal::Alone),
        ] {
            assert_eq!(OfferAnswer::from_bytes(&answer.to_bytes()).unwrap(), answer);
        }
        assert!(OfferAnswer::from_bytes(&[2, 9]).is_err());
    }
}
