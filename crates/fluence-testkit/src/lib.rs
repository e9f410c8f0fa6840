//! Test support shared by Fluence's crates: a dataset owner that signs writes as a gateway would, and the client half of SCRAM-SHA-256.
//!
//! Only ever a dev-dependency. The chain, consensus and node tests all need
//! real owner signatures over real write bodies, and the gateway's MongoDB
//! tests a SCRAM client ([`scram`]); this is the one place that builds them.

pub mod scram;

use fluence_crypto::sign::SigningKey;
use fluence_proto::{
    Action, ClusterGenesis, DatasetId, DocOp, PublicKey, Seat, Signature, SignedWrite, WriteBody,
    SERVE_SIGNING_DOMAIN, WRITE_SIGNING_DOMAIN,
};

/// A dataset owner: a signing key and the dataset it names `name_tag`
/// (the id derived from both, as nodes check on `Create`).
pub struct Owner {
    pub key: SigningKey,
    pub name_tag: [u8; 32],
    pub dataset: DatasetId,
}

impl Owner {
    /// The owner whose ed25519 secret key is `secret`.
    pub fn new(secret: [u8; 32], name_tag: [u8; 32]) -> Self {
        let key = SigningKey::from_seed(&secret);
        let dataset = DatasetId(fluence_crypto::keys::dataset_id(
            &key.public_key(),
            &name_tag,
        ));
        Owner {
            key,
            name_tag,
            dataset,
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.public_key())
    }

    /// `body` signed under the write-signing domain.
    pub fn sign(&self, body: WriteBody) -> SignedWrite {
        let signature = Signature(self.key.sign(WRITE_SIGNING_DOMAIN, &body.digest()));
        SignedWrite { body, signature }
    }

    /// The `Create` of the dataset for a node that runs alone (no
    /// cluster), declaring no indexes.
    pub fn create(&self) -> SignedWrite {
        self.create_with(None)
    }

    /// The `Create` of the dataset replicated by the cluster of the node
    /// keys `members` (in this order), each of which signs its acceptance,
    /// as placement would gather them.
    pub fn create_for_cluster(&self, members: &[SigningKey]) -> SignedWrite {
        self.create_with(Some(genesis(&self.dataset, members)))
    }

    fn create_with(&self, cluster: Option<ClusterGenesis>) -> SignedWrite {
        self.sign(WriteBody {
            dataset: self.dataset,
            seq: 0,
            action: Action::Create {
                owner: self.public(),
                name_tag: self.name_tag,
                descriptor: b"sealed descriptor".to_vec(),
                indexes: Vec::new(),
                cluster,
            },
        })
    }

    /// Write `seq`: a batch of `ops` for the dataset `create` made (no
    /// indexes declared).
    pub fn batch(&self, seq: u64, ops: Vec<DocOp>) -> SignedWrite {
        self.sign(WriteBody {
            dataset: self.dataset,
            seq,
            action: Action::Batch {
                schema: fluence_proto::schema_digest(&[]),
                ops,
            },
        })
    }
}

/// The genesis membership of `dataset` with the node keys `members` (in
/// this order), every member's acceptance signed under
/// `FLUENCE_SERVE_V1` over the membership digest.
pub fn genesis(dataset: &DatasetId, members: &[SigningKey]) -> ClusterGenesis {
    let keys: Vec<PublicKey> = members.iter().map(|k| PublicKey(k.public_key())).collect();
    let digest = fluence_proto::cluster::membership_digest(dataset, 0, &keys);
    ClusterGenesis {
        epoch: 0,
        members: members
            .iter()
            .map(|key| Seat {
                key: PublicKey(key.public_key()),
                acceptance: Signature(key.sign(SERVE_SIGNING_DOMAIN, &digest)),
            })
            .collect(),
    }
}

/// The membership change to `epoch` that gives `newcomer` the seat of
/// `members[departed]` (members of the epoch before, in order), every new
/// member's acceptance signed, the departure `Unreachable`.
pub fn replacement(
    dataset: &DatasetId,
    epoch: u64,
    members: &[SigningKey],
    departed: usize,
    newcomer: &SigningKey,
) -> fluence_proto::MembershipChange {
    let mut next: Vec<&SigningKey> = members.iter().collect();
    next[departed] = newcomer;
    let keys: Vec<PublicKey> = next.iter().map(|k| PublicKey(k.public_key())).collect();
    let digest = fluence_proto::cluster::membership_digest(dataset, epoch, &keys);
    fluence_proto::MembershipChange {
        epoch,
        departed: PublicKey(members[departed].public_key()),
        departure: fluence_proto::Departure::Unreachable,
        members: next
            .iter()
            .map(|key| Seat {
                key: PublicKey(key.public_key()),
                acceptance: Signature(key.sign(SERVE_SIGNING_DOMAIN, &digest)),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_verify_under_the_owner_key_and_the_dataset_id_derives_from_it() {
        let owner = Owner::new([5; 32], [6; 32]);
        let create = owner.create();
        fluence_crypto::sign::verify(
            &owner.public().0,
            WRITE_SIGNING_DOMAIN,
            &create.body.digest(),
            &create.signature.0,
        )
        .unwrap();
        assert_eq!(
            owner.dataset.0,
            fluence_crypto::keys::dataset_id(&owner.public().0, &[6; 32])
        );
        assert_ne!(Owner::new([5; 32], [7; 32]).dataset, owner.dataset);
        let batch = owner.batch(1, Vec::new());
        let stranger = Owner::new([8; 32], [6; 32]);
        assert!(fluence_crypto::sign::verify(
            &stranger.public().0,
            WRITE_SIGNING_DOMAIN,
            &batch.body.digest(),
            &batch.signature.0,
        )
        .is_err());
    }
}
