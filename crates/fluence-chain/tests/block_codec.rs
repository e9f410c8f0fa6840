//! Canonical encoding of blocks: round trips, one encoding per block, and
//! refusal of malformed or oversized input without panics.

use fluence_chain::{Attestation, Block, Evidence, FinalizedBlock, BLOCK_FORMAT_VERSION};
use fluence_proto::limits::{
    BLOCK_LEN_MAX, CERTIFICATE_LEN_MAX, CLUSTER_MEMBERS_MAX, WRITES_PER_BLOCK_MAX,
};
use fluence_proto::{
    Action, DatasetId, Decode, DecodeError, Departure, DocId, DocOp, Encode, Hash32,
    MembershipChange, PublicKey, Seat, Signature, SignedWrite, WriteBody, Writer,
};
use proptest::prelude::*;

fn arb_hash() -> impl Strategy<Value = Hash32> {
    any::<[u8; 32]>().prop_map(Hash32)
}

fn arb_signature() -> impl Strategy<Value = Signature> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&a);
        bytes[32..].copy_from_slice(&b);
        Signature(bytes)
    })
}

fn arb_write(dataset: DatasetId) -> impl Strategy<Value = SignedWrite> {
    (
        any::<u64>(),
        prop::collection::vec((any::<[u8; 16]>(), any::<u64>()), 0..4),
        arb_signature(),
    )
        .prop_map(move |(seq, deletes, signature)| SignedWrite {
            body: WriteBody {
                dataset,
                seq,
                action: Action::Batch {
                    schema: fluence_proto::Hash32([0x5c; 32]),
                    ops: deletes
                        .into_iter()
                        .map(|(doc, version)| DocOp::Delete {
                            doc: DocId(doc),
                            expect_version: version,
                        })
                        .collect(),
                },
            },
            signature,
        })
}

fn arb_block() -> impl Strategy<Value = Block> {
    any::<[u8; 32]>().prop_flat_map(|dataset| {
        let dataset = DatasetId(dataset);
        (
            any::<u64>(),
            arb_hash(),
            any::<u64>(),
            prop::collection::vec(arb_write(dataset), 0..5),
            arb_hash(),
            prop::collection::btree_map(any::<[u8; 32]>(), arb_signature(), 0..6),
            prop::collection::btree_map(any::<[u8; 32]>(), (arb_hash(), arb_signature()), 0..4),
            prop::option::of((
                any::<u64>(),
                any::<[u8; 32]>(),
                prop::option::of(arb_signature()),
                prop::collection::vec(any::<[u8; 32]>(), 1..5),
            )),
        )
            .prop_map(
                move |(
                    height,
                    parent,
                    timestamp_ms,
                    writes,
                    state_root,
                    attest,
                    evidence,
                    change,
                )| Block {
                    dataset,
                    height,
                    parent,
                    timestamp_ms,
                    writes,
                    state_root,
                    attestations: attest
                        .into_iter()
                        .map(|(member, signature)| Attestation {
                            member: PublicKey(member),
                            signature,
                        })
                        .collect(),
                    evidence: evidence
                        .into_iter()
                        .map(|(member, (root, signature))| Evidence {
                            member: PublicKey(member),
                            root,
                            signature,
                        })
                        .collect(),
                    change: change.map(|(epoch, departed, left, keys)| MembershipChange {
                        epoch,
                        departed: PublicKey(departed),
                        departure: left.map_or(Departure::Unreachable, Departure::Left),
                        members: keys
                            .into_iter()
                            .map(|key| Seat {
                                key: PublicKey(key),
                                acceptance: Signature([key[0]; 64]),
                            })
                            .collect(),
                    }),
                },
            )
    })
}

proptest! {
    #[test]
    fn blocks_round_trip_and_hash_stably(block in arb_block()) {
        let bytes = block.to_bytes();
        let decoded = Block::from_untrusted(&bytes).unwrap();
        prop_assert_eq!(&decoded, &block);
        prop_assert_eq!(decoded.hash(), block.hash());
        prop_assert_eq!(decoded.to_bounded_bytes().unwrap(), bytes);
    }

    #[test]
    fn every_strict_prefix_is_refused(block in arb_block(), cut in any::<prop::sample::Index>()) {
        let bytes = block.to_bytes();
        let cut = cut.index(bytes.len());
        prop_assert!(Block::from_untrusted(&bytes[..cut]).is_err());
    }

    #[test]
    fn trailing_bytes_are_refused(block in arb_block(), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = block.to_bytes();
        bytes.extend_from_slice(&extra);
        prop_assert_eq!(
            Block::from_untrusted(&bytes).unwrap_err(),
            DecodeError::TrailingBytes(extra.len())
        );
    }

    /// Whatever a mutated encoding decodes to re-encodes to exactly those
    /// bytes: no block has two encodings (and so no two hashes).
    #[test]
    fn decoding_is_canonical(
        block in arb_block(),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut bytes = block.to_bytes();
        let at = at.index(bytes.len());
        bytes[at] = value;
        if let Ok(decoded) = Block::from_untrusted(&bytes) {
            prop_assert_eq!(decoded.to_bytes(), bytes);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Block::from_untrusted(&bytes);
        let _ = FinalizedBlock::from_bytes(&bytes);
    }

    #[test]
    fn finalized_blocks_round_trip(
        block in arb_block(),
        certificate in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let finalized = FinalizedBlock { block, certificate };
        let bytes = finalized.to_bytes();
        prop_assert_eq!(FinalizedBlock::from_bytes(&bytes).unwrap(), finalized);
    }
}

/// The encoding of a block's fields before its writes.
fn header() -> Writer {
    let mut writer = Writer::new();
    writer.u16(BLOCK_FORMAT_VERSION);
    DatasetId([1; 32]).encode(&mut writer);
    writer.u64(1);
    Hash32([2; 32]).encode(&mut writer);
    writer.u64(3);
    writer
}

/// A block without writes up to its attestation count, and nothing after.
fn header_with_attestation_count(count: u32) -> Vec<u8> {
    let mut writer = header();
    writer.u32(0); // no writes
    Hash32([4; 32]).encode(&mut writer);
    writer.u32(count);
    writer.into_bytes()
}

#[test]
fn counts_above_their_limits_are_refused_before_reading_items() {
    let too_many = u32::try_from(CLUSTER_MEMBERS_MAX + 1).unwrap();
    let error = Block::from_untrusted(&header_with_attestation_count(too_many)).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::TooLong {
                what: "block attestations",
                ..
            }
        ),
        "{error:?}"
    );

    let mut writer = header();
    writer.u32(u32::try_from(WRITES_PER_BLOCK_MAX + 1).unwrap());
    let error = Block::from_untrusted(&writer.into_bytes()).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::TooLong {
                what: "block writes",
                ..
            }
        ),
        "{error:?}"
    );

    // A huge count with nothing behind it is a truncation, not an allocation.
    let error = Block::from_untrusted(&header_with_attestation_count(64)).unwrap_err();
    assert!(matches!(error, DecodeError::Truncated(_)), "{error:?}");
}

#[test]
fn oversized_blocks_and_certificates_are_refused() {
    let huge = vec![0u8; BLOCK_LEN_MAX + 1];
    let error = Block::from_untrusted(&huge).unwrap_err();
    assert!(
        matches!(error, DecodeError::TooLong { what: "block", .. }),
        "{error:?}"
    );

    let finalized = FinalizedBlock {
        block: Block::genesis(DatasetId([9; 32])),
        certificate: vec![0; CERTIFICATE_LEN_MAX + 1],
    };
    let error = FinalizedBlock::from_bytes(&finalized.to_bytes()).unwrap_err();
    assert!(
        matches!(
            error,
            DecodeError::TooLong {
                what: "finalization certificate",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn unsorted_or_repeated_members_are_refused() {
    let attestation = |member: u8| Attestation {
        member: PublicKey([member; 32]),
        signature: Signature([0; 64]),
    };
    let mut block = Block::genesis(DatasetId([3; 32]));
    block.attestations = vec![attestation(2), attestation(1)];
    assert!(matches!(
        Block::from_untrusted(&block.to_bytes()),
        Err(DecodeError::Invalid(_))
    ));
    block.attestations = vec![attestation(1), attestation(1)];
    assert!(matches!(
        Block::from_untrusted(&block.to_bytes()),
        Err(DecodeError::Invalid(_))
    ));
    block.attestations = vec![attestation(1), attestation(2)];
    assert!(Block::from_untrusted(&block.to_bytes()).is_ok());
}

#[test]
fn other_format_versions_are_refused() {
    let mut bytes = Block::genesis(DatasetId([3; 32])).to_bytes();
    // Version 1 blocks (before membership changes) and unknown later ones.
    for version in [1, BLOCK_FORMAT_VERSION + 1] {
        bytes[..2].copy_from_slice(&version.to_le_bytes());
        assert_eq!(
            Block::from_untrusted(&bytes).unwrap_err(),
            DecodeError::UnsupportedVersion {
                found: version,
                supported: BLOCK_FORMAT_VERSION
            }
        );
    }
}

#[test]
fn the_hash_is_domain_separated_and_covers_every_field() {
    let block = Block::genesis(DatasetId([5; 32]));
    let plain = blake3::hash(&block.to_bytes());
    assert_ne!(block.hash().0, *plain.as_bytes());
    let mut later = block.clone();
    later.timestamp_ms = 1;
    assert_ne!(later.hash(), block.hash());
    let mut other_root = block.clone();
    other_root.state_root = Hash32([1; 32]);
    assert_ne!(other_root.hash(), block.hash());
}
