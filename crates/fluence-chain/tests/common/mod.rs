//! Real owner keys and signed writes for the chain tests.

#![allow(dead_code)]

use fluence_chain::{AttestationBody, Block, SignedAttestation};
use fluence_crypto::sign::SigningKey;
use fluence_proto::{
    Action, DatasetId, DocId, DocOp, Hash32, Precondition, PublicKey, SealedDoc, Signature,
    SignedWrite, WriteBody, WRITE_SIGNING_DOMAIN,
};

/// A dataset owner: its key and the id of its dataset named `name_tag`.
pub struct Owner {
    pub key: SigningKey,
    pub name_tag: [u8; 32],
    pub dataset: DatasetId,
}

impl Owner {
    pub fn new(seed: u8) -> Self {
        let key = SigningKey::from_seed(&[seed; 32]);
        let name_tag = [seed.wrapping_add(1); 32];
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

    pub fn sign(&self, body: WriteBody) -> SignedWrite {
        let signature = Signature(self.key.sign(WRITE_SIGNING_DOMAIN, &body.digest()));
        SignedWrite { body, signature }
    }

    pub fn create(&self) -> SignedWrite {
        self.sign(WriteBody {
            dataset: self.dataset,
            seq: 0,
            action: Action::Create {
                owner: self.public(),
                name_tag: self.name_tag,
                descriptor: vec![7; 16],
                indexes: Vec::new(),
            },
        })
    }

    /// A one-document insert with sequence number `seq`.
    pub fn insert(&self, seq: u64, doc: u8) -> SignedWrite {
        self.sign(WriteBody {
            dataset: self.dataset,
            seq,
            // The dataset declares no indexes.
            action: Action::Batch {
                schema: fluence_proto::schema_digest(&[]),
                ops: vec![DocOp::Put {
                    doc: DocId([doc; 16]),
                    expect: Precondition::Absent,
                    sealed: SealedDoc {
                        version: 1,
                        wrapped_key: vec![1; 72],
                        ciphertext: vec![doc; 40],
                    },
                    entries: Vec::new(),
                }],
            },
        })
    }
}

/// Cluster member keys.
pub fn members(n: u8) -> Vec<SigningKey> {
    (0..n)
        .map(|i| SigningKey::from_seed(&[100 + i; 32]))
        .collect()
}

pub fn public(key: &SigningKey) -> PublicKey {
    PublicKey(key.public_key())
}

/// A child of `parent` holding `writes`, with no attestations.
pub fn child(parent: &Block, writes: Vec<SignedWrite>, root: Hash32) -> Block {
    Block {
        dataset: parent.dataset,
        height: parent.height + 1,
        parent: parent.hash(),
        timestamp_ms: parent.timestamp_ms + 10,
        writes,
        state_root: root,
        attestations: Vec::new(),
        evidence: Vec::new(),
    }
}

pub fn attest(key: &SigningKey, block: &Block, root: Hash32) -> SignedAttestation {
    SignedAttestation::sign(
        key,
        AttestationBody {
            dataset: block.dataset,
            height: block.height,
            block: block.hash(),
            root,
        },
    )
}
