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
//! The genesis membership is epoch 0. A membership change
//! ([`MembershipChange`], carried alone in a block of the dataset's chain)
//! replaces one member and starts the next epoch: the new list's members
//! sign their acceptance of it exactly as at creation, and a member that
//! leaves of its own accord signs its departure (a [`Departure::Left`]
//! over [`leave_digest`] under [`LEAVE_SIGNING_DOMAIN`]).

use crate::codec::{Decode, DecodeError, Encode, Reader, Writer};
use crate::ids::{DatasetId, PublicKey, Signature};
use crate::limits::CLUSTER_MEMBERS_MAX;
use crate::ops::{ADDR_LEN_MAX, MEMBER_ADDRS_MAX};

/// Domain of a member's acceptance signature. Changing it breaks every
/// existing genesis.
pub const SERVE_SIGNING_DOMAIN: &[u8] = b"FLUENCE_SERVE_V1";
/// BLAKE3 key-derivation context of [`membership_digest`].
const MEMBERSHIP_DIGEST_CONTEXT: &str = "FLUENCE_MEMBERSHIP_V1";
/// Domain of a member's signature asking to leave a cluster.
pub const LEAVE_SIGNING_DOMAIN: &[u8] = b"FLUENCE_LEAVE_V1";
/// BLAKE3 key-derivation context of [`leave_digest`].
const LEAVE_DIGEST_CONTEXT: &str = "FLUENCE_LEAVE_DIGEST_V1";
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

/// The digest a member signs to leave `dataset`'s cluster as it stands at
/// `epoch`: `BLAKE3-derive-key("FLUENCE_LEAVE_DIGEST_V1", D · e (u64 LE))`.
/// Bound to the epoch, so one departure cannot be replayed against a
/// later membership that includes the member again.
pub fn leave_digest(dataset: &DatasetId, epoch: u64) -> [u8; 32] {
    let mut writer = Writer::new();
    dataset.encode(&mut writer);
    writer.u64(epoch);
    *blake3::Hasher::new_derive_key(LEAVE_DIGEST_CONTEXT)
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
    #[error("a change to epoch {found} does not follow epoch {current}")]
    ChangeEpoch { current: u64, found: u64 },
    #[error("{0} is not a member, so it cannot be replaced")]
    NotReplaceable(PublicKey),
    #[error("a membership change replaces exactly one member with one newcomer, in its seat")]
    NotOneReplacement,
    #[error("the departure signature of {0} does not verify")]
    BadDeparture(PublicKey),
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

/// The keys of `seats`, in order.
fn seat_keys(seats: &[Seat]) -> Vec<PublicKey> {
    seats.iter().map(|seat| seat.key).collect()
}

/// The membership a dataset is created with, carried by its `Create`
/// (and so by the first block of its chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterGenesis {
    /// [`GENESIS_EPOCH`]; each [`MembershipChange`] carries the next.
    pub epoch: u64,
    /// In placement order: closest to the dataset id first.
    pub members: Vec<Seat>,
}

impl ClusterGenesis {
    /// The member keys, in order.
    pub fn keys(&self) -> Vec<PublicKey> {
        seat_keys(&self.members)
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

/// Why a member leaves the cluster in a [`MembershipChange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// It stopped answering for longer than the grace period. Not
    /// provable: each member votes for such a change only if it has not
    /// heard from the departing member for the grace period itself.
    Unreachable,
    /// It asked to leave: its signature over [`leave_digest`] of the
    /// epoch it leaves.
    Left(Signature),
}

impl Encode for Departure {
    fn encode(&self, writer: &mut Writer) {
        match self {
            Departure::Unreachable => writer.u8(1),
            Departure::Left(signature) => {
                writer.u8(2);
                signature.encode(writer);
            }
        }
    }
}

impl Decode for Departure {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match reader.u8("departure")? {
            1 => Ok(Departure::Unreachable),
            2 => Ok(Departure::Left(Signature::decode(reader)?)),
            tag => Err(DecodeError::UnknownTag {
                what: "departure",
                tag,
            }),
        }
    }
}

/// One member replaced by a newcomer, starting epoch `epoch`. Carried
/// alone in a block of the dataset's chain (no writes), finalized by the
/// members of the epoch before; the members of `members` run every block
/// after it. Signatures are checked by `fluence_chain::genesis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    /// The epoch this change starts: the chain's current epoch + 1.
    pub epoch: u64,
    /// The member that leaves.
    pub departed: PublicKey,
    pub departure: Departure,
    /// The new membership: the previous members without the departed one,
    /// plus the newcomer (in the order the members signed), every member's
    /// acceptance over the [`membership_digest`] of `epoch` and these keys.
    pub members: Vec<Seat>,
}

impl MembershipChange {
    /// The new member keys, in order.
    pub fn keys(&self) -> Vec<PublicKey> {
        seat_keys(&self.members)
    }

    /// What each new member signed.
    pub fn digest(&self, dataset: &DatasetId) -> [u8; 32] {
        membership_digest(dataset, self.epoch, &self.keys())
    }

    /// Shape against the membership it changes (`previous`, in any
    /// order, at `current_epoch`): the next epoch, a valid cluster of the
    /// same size, the departed member gone and exactly one key that was
    /// not a member in its place (the order of the new list is the one
    /// its members signed). Returns the newcomer.
    pub fn check_against(
        &self,
        current_epoch: u64,
        previous: &[PublicKey],
    ) -> Result<PublicKey, MembershipError> {
        if current_epoch.checked_add(1) != Some(self.epoch) {
            return Err(MembershipError::ChangeEpoch {
                current: current_epoch,
                found: self.epoch,
            });
        }
        let keys = self.keys();
        check_member_list(&keys)?;
        if !previous.contains(&self.departed) {
            return Err(MembershipError::NotReplaceable(self.departed));
        }
        let mut newcomers = keys.iter().filter(|key| !previous.contains(key));
        match (newcomers.next(), newcomers.next()) {
            (Some(newcomer), None)
                if keys.len() == previous.len() && !keys.contains(&self.departed) =>
            {
                Ok(*newcomer)
            }
            _ => Err(MembershipError::NotOneReplacement),
        }
    }
}

impl Encode for MembershipChange {
    fn encode(&self, writer: &mut Writer) {
        writer.u64(self.epoch);
        self.departed.encode(writer);
        self.departure.encode(writer);
        writer.vec(&self.members);
    }
}

impl Decode for MembershipChange {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(MembershipChange {
            epoch: reader.u64("membership epoch")?,
            departed: PublicKey::decode(reader)?,
            departure: Departure::decode(reader)?,
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
    /// Every membership change since, each with the blocks that prove it
    /// was finalized (`fluence_chain::CertifiedChange`s, encoded as a
    /// vector; opaque here, checked by the gateway from the `Create` on).
    pub changes: Vec<u8>,
    /// Where the current members listen.
    pub addrs: Vec<MemberAddrs>,
}

/// The largest encoded list of membership changes a route carries.
pub const ROUTE_CHANGES_LEN_MAX: usize = 16 * 1024 * 1024;

impl Encode for RouteAnswer {
    fn encode(&self, writer: &mut Writer) {
        self.create.encode(writer);
        writer.bytes(&self.changes);
        writer.vec(&self.addrs);
    }
}

impl Decode for RouteAnswer {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RouteAnswer {
            create: crate::write::SignedWrite::decode(reader)?,
            changes: reader.bytes(ROUTE_CHANGES_LEN_MAX, "membership changes")?,
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

    fn seats(keys: &[PublicKey]) -> Vec<Seat> {
        keys.iter()
            .map(|key| Seat {
                key: *key,
                acceptance: Signature([7; 64]),
            })
            .collect()
    }

    #[test]
    fn a_change_replaces_exactly_the_departed_member_with_one_newcomer() {
        let previous = keys(4);
        let newcomer = PublicKey([99; 32]);
        let mut next = previous.clone();
        next[2] = newcomer;
        let change = MembershipChange {
            epoch: 4,
            departed: previous[2],
            departure: Departure::Unreachable,
            members: seats(&next),
        };
        assert_eq!(change.check_against(3, &previous), Ok(newcomer));
        assert_eq!(
            change.check_against(4, &previous),
            Err(MembershipError::ChangeEpoch {
                current: 4,
                found: 4
            })
        );
        // The order of the new list is free (its members sign it).
        let mut moved = next.clone();
        moved.swap(2, 3);
        let reordered = MembershipChange {
            members: seats(&moved),
            ..change.clone()
        };
        assert_eq!(reordered.check_against(3, &previous), Ok(newcomer));
        // The departed member still listed, a non-member dropped instead.
        let mut kept = next.clone();
        kept[0] = previous[2];
        kept[2] = newcomer;
        let bad = MembershipChange {
            members: seats(&kept),
            ..change.clone()
        };
        assert!(bad.check_against(3, &previous).is_err());
        // A "newcomer" that is already a member (a shrinking cluster).
        let mut twice = previous.clone();
        twice[2] = previous[0];
        let bad = MembershipChange {
            members: seats(&twice),
            ..change.clone()
        };
        assert!(bad.check_against(3, &previous).is_err());
        // Replacing a key that is not a member.
        let bad = MembershipChange {
            departed: newcomer,
            ..change.clone()
        };
        assert_eq!(
            bad.check_against(3, &previous),
            Err(MembershipError::NotReplaceable(newcomer))
        );
        // Two seats changed.
        let mut two = next.clone();
        two[0] = PublicKey([98; 32]);
        let bad = MembershipChange {
            members: seats(&two),
            ..change.clone()
        };
        assert_eq!(
            bad.check_against(3, &previous),
            Err(MembershipError::NotOneReplacement)
        );
        for departure in [Departure::Unreachable, Departure::Left(Signature([5; 64]))] {
            let change = MembershipChange {
                departure,
                ..change.clone()
            };
            assert_eq!(
                MembershipChange::from_bytes(&change.to_bytes()).unwrap(),
                change
            );
        }
        assert_ne!(
            leave_digest(&DatasetId([1; 32]), 3),
            leave_digest(&DatasetId([1; 32]), 4)
        );
    }
}
