//! Real owner keys and signed writes for the chain tests.

#![allow(dead_code)]

use fluence_chain::{AttestationBody, Block, SignedAttestation};
use fluence_crypto::sign::SigningKey;
use fluence_proto::{DocId, DocOp, Hash32, Precondition, PublicKey, SealedDoc, SignedWrite};

pub use fluence_testkit::Owner;

/// The owner with key seed `seed` and its dataset.
pub fn test_owner(seed: u8) -> Owner {
    Owner::new([seed; 32], [seed.wrapping_add(1); 32])
}

/// A one-document insert with sequence number `seq` (the dataset declares
/// no indexes).
pub fn insert(owner: &Owner, seq: u64, doc: u8) -> SignedWrite {
    owner.batch(
        seq,
        vec![DocOp::Put {
            doc: DocId([doc; 16]),
            expect: Precondition::Absent,
            sealed: SealedDoc {
                version: 1,
                wrapped_key: vec![1; 72],
                ciphertext: vec![doc; 40],
            },
            entries: Vec::new(),
        }],
    )
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
        change: None,
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
