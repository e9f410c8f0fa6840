//! The genesis membership of a dataset's cluster: checking that a
//! `Create` names a well-formed cluster every member of which signed its
//! acceptance (`fluence_proto::cluster`), and signing such an acceptance.
//!
//! The owner's signature over the `Create` (checked by
//! [`crate::verify_write_signature`]) covers the member list and the
//! acceptances; this checks the acceptances. Together they mean: the
//! owner chose these members, and each of them agreed to serve the
//! dataset with exactly these others. A node cannot claim to be a member
//! it is not, and a gateway shown a membership can check it without
//! trusting whoever showed it.

use fluence_crypto::sign::SigningKey;
use fluence_proto::cluster::{leave_digest, membership_digest};
use fluence_proto::{
    Action, ClusterGenesis, DatasetId, Departure, MembershipChange, MembershipError, PublicKey,
    Seat, Signature, SignedWrite, LEAVE_SIGNING_DOMAIN, SERVE_SIGNING_DOMAIN,
};

/// A member's acceptance of serving `dataset` with `members` at `epoch`:
/// its signature over the membership digest under `FLUENCE_SERVE_V1`.
pub fn sign_acceptance(
    key: &SigningKey,
    dataset: &DatasetId,
    epoch: u64,
    members: &[PublicKey],
) -> Signature {
    Signature(key.sign(
        SERVE_SIGNING_DOMAIN,
        &membership_digest(dataset, epoch, members),
    ))
}

/// Checks `genesis` for `dataset`: its shape (epoch 0, n = 3f + 1 members
/// up to `CLUSTER_SIZE_MAX`, none twice), every key a strong ed25519 key,
/// and every member's acceptance signature.
pub fn verify_genesis(
    dataset: &DatasetId,
    genesis: &ClusterGenesis,
) -> Result<(), MembershipError> {
    genesis.check_shape()?;
    verify_acceptances(&genesis.members, &genesis.digest(dataset))
}

/// Checks a membership change of `dataset` against the membership it
/// changes (`previous` at `current_epoch`): its shape
/// (`MembershipChange::check_against`), every new key a strong ed25519
/// key, every new member's acceptance of the new list, and, for a member
/// that left of its own accord, its signature over the leave digest of
/// `current_epoch`. Returns the newcomer.
pub fn verify_change(
    dataset: &DatasetId,
    current_epoch: u64,
    previous: &[PublicKey],
    change: &MembershipChange,
) -> Result<PublicKey, MembershipError> {
    let newcomer = change.check_against(current_epoch, previous)?;
    verify_acceptances(&change.members, &change.digest(dataset))?;
    if let Departure::Left(signature) = &change.departure {
        fluence_crypto::sign::verify(
            &change.departed.0,
            LEAVE_SIGNING_DOMAIN,
            &leave_digest(dataset, current_epoch),
            &signature.0,
        )
        .map_err(|_| MembershipError::BadDeparture(change.departed))?;
    }
    Ok(newcomer)
}

/// A member's signed request to leave `dataset`'s cluster at `epoch`.
pub fn sign_departure(key: &SigningKey, dataset: &DatasetId, epoch: u64) -> Signature {
    Signature(key.sign(LEAVE_SIGNING_DOMAIN, &leave_digest(dataset, epoch)))
}

fn verify_acceptances(seats: &[Seat], digest: &[u8; 32]) -> Result<(), MembershipError> {
    for seat in seats {
        fluence_crypto::sign::check_public_key(&seat.key.0)
            .map_err(|_| MembershipError::BadKey(seat.key))?;
        fluence_crypto::sign::verify(
            &seat.key.0,
            SERVE_SIGNING_DOMAIN,
            digest,
            &seat.acceptance.0,
        )
        .map_err(|_| MembershipError::BadAcceptance(seat.key))?;
    }
    Ok(())
}

/// The genesis a `Create` carries, if `write` is one that carries it.
pub fn genesis_of(write: &SignedWrite) -> Option<&ClusterGenesis> {
    match &write.body.action {
        Action::Create { cluster, .. } => cluster.as_ref(),
        _ => None,
    }
}

/// Checks that `create` is the owner-signed `Create` of a cluster: it
/// carries a genesis that [`verify_genesis`] accepts, and the owner's
/// signature over the whole body verifies. Returns the genesis.
pub fn verify_create(create: &SignedWrite) -> Result<&ClusterGenesis, CreateError> {
    let genesis = genesis_of(create).ok_or(CreateError::Membership(MembershipError::Missing))?;
    crate::verify_write_signature(create, None).map_err(CreateError::Owner)?;
    verify_genesis(&create.body.dataset, genesis).map_err(CreateError::Membership)?;
    Ok(genesis)
}

/// Why a `Create` does not establish a cluster.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreateError {
    #[error("the creation is not the owner's: {0}")]
    Owner(crate::WriteAuthError),
    #[error("the cluster membership is invalid: {0}")]
    Membership(MembershipError),
}

/// A `Create` in a chain names exactly the chain's members (`members`
/// are the replica's, in any order: consensus keeps them sorted), with
/// every acceptance valid.
pub fn check_create_members(
    write: &SignedWrite,
    members: &[PublicKey],
) -> Result<(), MembershipError> {
    let genesis = match &write.body.action {
        Action::Create { cluster, .. } => cluster.as_ref().ok_or(MembershipError::Missing)?,
        _ => return Ok(()),
    };
    let mut found = genesis.keys();
    found.sort_unstable();
    let mut expected = members.to_vec();
    expected.sort_unstable();
    if found != expected {
        return Err(MembershipError::Mismatch { expected, found });
    }
    verify_genesis(&write.body.dataset, genesis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis(dataset: &DatasetId, keys: &[SigningKey]) -> ClusterGenesis {
        fluence_testkit::genesis(dataset, keys)
    }

    #[test]
    fn every_acceptance_must_verify_for_this_dataset_and_list() {
        let keys: Vec<SigningKey> = (1..=4u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
        let dataset = DatasetId([5; 32]);
        let good = genesis(&dataset, &keys);
        verify_genesis(&dataset, &good).unwrap();
        // Signed for another dataset.
        assert!(matches!(
            verify_genesis(&DatasetId([6; 32]), &good),
            Err(MembershipError::BadAcceptance(_))
        ));
        // A member's seat taken by a key that did not sign.
        let mut forged = good.clone();
        let intruder = SigningKey::from_seed(&[9; 32]);
        forged.members[2].key = PublicKey(intruder.public_key());
        assert!(matches!(
            verify_genesis(&dataset, &forged),
            Err(MembershipError::BadAcceptance(_))
        ));
        // A member's acceptance of a different list does not carry over.
        let others = genesis(&dataset, &keys[..1]);
        let mut swapped = good.clone();
        swapped.members[0].acceptance = others.members[0].acceptance;
        assert_eq!(
            verify_genesis(&dataset, &swapped),
            Err(MembershipError::BadAcceptance(swapped.members[0].key))
        );
        // Reordering the members changes the digest everyone signed.
        let mut reordered = good.clone();
        reordered.members.swap(0, 1);
        assert!(verify_genesis(&dataset, &reordered).is_err());
        // Shape first: five members is not 3f + 1.
        let five: Vec<SigningKey> = (1..=5u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
        assert_eq!(
            verify_genesis(&dataset, &genesis(&dataset, &five)),
            Err(MembershipError::NotThreeFPlusOne(5))
        );
    }

    #[test]
    fn a_change_needs_every_new_acceptance_and_a_leavers_own_signature() {
        let keys: Vec<SigningKey> = (1..=5u8).map(|i| SigningKey::from_seed(&[i; 32])).collect();
        let public: Vec<PublicKey> = keys.iter().map(|k| PublicKey(k.public_key())).collect();
        let dataset = DatasetId([5; 32]);
        let previous = public[..4].to_vec();
        let next = [public[0], public[1], public[4], public[3]];
        let seats = |epoch: u64| -> Vec<Seat> {
            next.iter()
                .map(|key| {
                    let signer = &keys[public.iter().position(|k| k == key).unwrap()];
                    Seat {
                        key: *key,
                        acceptance: sign_acceptance(signer, &dataset, epoch, &next),
                    }
                })
                .collect()
        };
        let change = MembershipChange {
            epoch: 3,
            departed: public[2],
            departure: Departure::Unreachable,
            members: seats(3),
        };
        assert_eq!(
            verify_change(&dataset, 2, &previous, &change),
            Ok(public[4])
        );
        // Acceptances of another epoch's list do not carry over.
        let stale = MembershipChange {
            members: seats(2),
            ..change.clone()
        };
        assert!(matches!(
            verify_change(&dataset, 2, &previous, &stale),
            Err(MembershipError::BadAcceptance(_))
        ));
        // A departure signed by the leaver for this epoch verifies; one
        // for another epoch, or by someone else, does not.
        let left = |signer: &SigningKey, epoch| MembershipChange {
            departure: Departure::Left(sign_departure(signer, &dataset, epoch)),
            ..change.clone()
        };
        assert_eq!(
            verify_change(&dataset, 2, &previous, &left(&keys[2], 2)),
            Ok(public[4])
        );
        assert_eq!(
            verify_change(&dataset, 2, &previous, &left(&keys[2], 1)),
            Err(MembershipError::BadDeparture(public[2]))
        );
        assert_eq!(
            verify_change(&dataset, 2, &previous, &left(&keys[0], 2)),
            Err(MembershipError::BadDeparture(public[2]))
        );
    }
}
