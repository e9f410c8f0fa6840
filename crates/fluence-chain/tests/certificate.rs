//! Finalization certificates as a gateway checks them: made here with the
//! consensus engine's own signing code (simplex finalize votes over the
//! block hash, under the dataset's namespace), then accepted or refused by
//! `CertificateVerifier`.

use commonware_codec::{DecodeExt, Encode as _};
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::{Finalization, Finalize, Proposal};
use commonware_consensus::types::{Epoch, Round, View};
use commonware_cryptography::certificate::Signers;
use commonware_cryptography::ed25519;
use commonware_cryptography::Signer as _;
use commonware_parallel::Sequential;
use commonware_utils::iter::NonEmpty;
use commonware_utils::ordered::Set;
use commonware_utils::Participant;
mod common;

use fluence_chain::{
    consensus_namespace, verify_history, Block, CertificateError, CertificateVerifier,
    CertifiedChange, ClusterHistory, FinalizedBlock, HistoryError,
};
use fluence_proto::{DatasetId, Hash32, PublicKey};
use fluence_proto::{Decode, Encode};

type Digest = commonware_cryptography::blake3::Digest;

const DATASET: DatasetId = DatasetId([0x42; 32]);

fn private_key(seed: u8) -> ed25519::PrivateKey {
    ed25519::PrivateKey::decode(bytes::Bytes::copy_from_slice(&[seed; 32]))
        .expect("every 32-byte seed is a key")
}

fn public(key: &ed25519::PrivateKey) -> PublicKey {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(key.public_key().as_ref());
    PublicKey(bytes)
}

/// Signers of a cluster over `participants`, in the set's (sorted) order.
struct Cluster {
    participants: Set<ed25519::PublicKey>,
    keys: Vec<ed25519::PrivateKey>,
}

impl Cluster {
    fn of(seeds: &[u8]) -> Cluster {
        let mut keys: Vec<ed25519::PrivateKey> = seeds.iter().map(|s| private_key(*s)).collect();
        keys.sort_by_key(|k| k.public_key());
        let participants = Set::from_iter_dedup(keys.iter().map(|k| k.public_key()));
        Cluster { participants, keys }
    }

    fn members(&self) -> Vec<PublicKey> {
        self.keys.iter().map(public).collect()
    }

    /// Finalize votes of the members at `signers` (positions in the set)
    /// for `block` in `dataset`'s namespace.
    fn votes(
        &self,
        dataset: &DatasetId,
        block: &Hash32,
        signers: &[usize],
    ) -> Vec<Finalize<Scheme, Digest>> {
        let proposal = Proposal::new(
            Round::new(Epoch::zero(), View::new(7)),
            View::new(6),
            commonware_cryptography::blake3::Digest(block.0),
        );
        signers
            .iter()
            .map(|&i| {
                let scheme = Scheme::signer(
                    &consensus_namespace(dataset),
                    self.participants.clone(),
                    self.keys[i].clone(),
                )
                .expect("a member signs");
                Finalize::sign(&scheme, proposal.clone()).expect("a member can vote")
            })
            .collect()
    }

    /// An assembled certificate (the engine refuses fewer than a quorum).
    fn certificate(&self, dataset: &DatasetId, block: &Hash32, signers: &[usize]) -> Vec<u8> {
        let mut votes = self.votes(dataset, block, signers).into_iter();
        let first = votes.next().expect("at least one signer");
        let scheme = Scheme::verifier(&consensus_namespace(dataset), self.participants.clone());
        Finalization::from_owned_finalizes(&scheme, NonEmpty::new(first, votes), &Sequential)
            .expect("a quorum assembles")
            .encode()
            .to_vec()
    }
}

fn block_hash(n: u8) -> Hash32 {
    Hash32([n; 32])
}

#[test]
fn a_quorum_of_member_signatures_over_the_block_is_accepted() {
    let cluster = Cluster::of(&[1, 2, 3, 4]);
    let verifier = CertificateVerifier::new(&DATASET, 0, &cluster.members()).unwrap();
    for signers in [&[0, 1, 2][..], &[1, 2, 3], &[0, 1, 2, 3]] {
        let certificate = cluster.certificate(&DATASET, &block_hash(9), signers);
        assert_eq!(verifier.verify(&block_hash(9), &certificate), Ok(()));
    }
    // Member order in the configuration does not matter.
    let mut reversed = cluster.members();
    reversed.reverse();
    let verifier = CertificateVerifier::new(&DATASET, 0, &reversed).unwrap();
    let certificate = cluster.certificate(&DATASET, &block_hash(9), &[0, 2, 3]);
    assert_eq!(verifier.verify(&block_hash(9), &certificate), Ok(()));
    // The same members' certificate proves nothing in another epoch.
    let later = CertificateVerifier::new(&DATASET, 1, &cluster.members()).unwrap();
    assert_eq!(
        later.verify(&block_hash(9), &certificate),
        Err(CertificateError::OtherEpoch {
            expected: 1,
            found: 0
        })
    );
}

#[test]
fn a_certificate_of_another_block_is_refused() {
    let cluster = Cluster::of(&[1, 2, 3, 4]);
    let verifier = CertificateVerifier::new(&DATASET, 0, &cluster.members()).unwrap();
    let certificate = cluster.certificate(&DATASET, &block_hash(9), &[0, 1, 2]);
    assert_eq!(
        verifier.verify(&block_hash(8), &certificate),
        Err(CertificateError::WrongBlock {
            certified: block_hash(9),
            expected: block_hash(8),
        })
    );
    // Votes of another dataset's cluster (another namespace) for the same
    // block hash prove nothing here.
    let other = cluster.certificate(&DatasetId([7; 32]), &block_hash(9), &[0, 1, 2]);
    assert_eq!(
        verifier.verify(&block_hash(9), &other),
        Err(CertificateError::Invalid)
    );
}

#[test]
fn too_few_signatures_are_refused() {
    let cluster = Cluster::of(&[1, 2, 3, 4]);
    let verifier = CertificateVerifier::new(&DATASET, 0, &cluster.members()).unwrap();
    // Two valid votes of four members: below 2f + 1 = 3. The engine will
    // not assemble this, so it is built field by field.
    let votes = cluster.votes(&DATASET, &block_hash(9), &[0, 1]);
    let proposal = votes[0].proposal.clone();
    let signers = Signers::try_from((
        &cluster.participants,
        [Participant::new(0), Participant::new(1)],
    ))
    .unwrap();
    let certificate = commonware_cryptography::ed25519::certificate::Certificate {
        signers,
        signatures: votes.into_iter().map(|v| v.attestation.signature).collect(),
    };
    let bytes = Finalization::<Scheme, Digest> {
        proposal,
        certificate,
    }
    .encode()
    .to_vec();
    assert_eq!(
        verifier.verify(&block_hash(9), &bytes),
        Err(CertificateError::Invalid)
    );
}

#[test]
fn signatures_of_a_non_member_are_refused() {
    // Three signers, one of them (seed 9) not in the configured cluster:
    // the certificate is valid for their own set, not for ours.
    let ours = Cluster::of(&[1, 2, 3, 4]);
    let theirs = Cluster::of(&[1, 2, 3, 9]);
    let stranger = theirs
        .keys
        .iter()
        .position(|k| public(k) == public(&private_key(9)))
        .unwrap();
    let mut signers: Vec<usize> = (0..4).filter(|&i| i != stranger).take(2).collect();
    signers.push(stranger);
    signers.sort_unstable();
    let certificate = theirs.certificate(&DATASET, &block_hash(9), &signers);
    let verifier = CertificateVerifier::new(&DATASET, 0, &ours.members()).unwrap();
    assert_eq!(
        verifier.verify(&block_hash(9), &certificate),
        Err(CertificateError::Invalid)
    );
    // The same votes do verify against the set that holds the stranger.
    let theirs_verifier = CertificateVerifier::new(&DATASET, 0, &theirs.members()).unwrap();
    assert_eq!(theirs_verifier.verify(&block_hash(9), &certificate), Ok(()));
}

#[test]
fn malformed_certificates_are_typed_errors() {
    let cluster = Cluster::of(&[1, 2, 3, 4]);
    let verifier = CertificateVerifier::new(&DATASET, 0, &cluster.members()).unwrap();
    assert_eq!(
        verifier.verify(&block_hash(9), &[]),
        Err(CertificateError::Missing)
    );
    let certificate = cluster.certificate(&DATASET, &block_hash(9), &[0, 1, 2]);
    for cut in [1, certificate.len() / 2, certificate.len() - 1] {
        assert!(matches!(
            verifier.verify(&block_hash(9), &certificate[..cut]),
            Err(CertificateError::Undecodable(_))
        ));
    }
    let mut longer = certificate.clone();
    longer.push(0);
    assert!(matches!(
        verifier.verify(&block_hash(9), &longer),
        Err(CertificateError::Undecodable(_))
    ));
    let mut flipped = certificate.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    assert!(verifier.verify(&block_hash(9), &flipped).is_err());
    let huge = vec![0u8; fluence_proto::limits::CERTIFICATE_LEN_MAX + 1];
    assert!(matches!(
        verifier.verify(&block_hash(9), &huge),
        Err(CertificateError::TooLong(_))
    ));
    assert!(matches!(
        CertificateVerifier::new(&DATASET, 0, &[]),
        Err(CertificateError::BadClusterSize(0))
    ));
    let twice = vec![cluster.members()[0]; 2];
    assert!(matches!(
        CertificateVerifier::new(&DATASET, 0, &twice),
        Err(CertificateError::BadClusterSize(1))
    ));
}

/// A dataset's history with one change: a Create by the members of seeds
/// 1..=4, its block at height 1, and a block at height 2 giving the seat
/// of the member at `departed` (in the Create's order) to seed 5.
struct Replaced {
    cluster: Cluster,
    create: fluence_proto::SignedWrite,
    change_block: Block,
}

fn replaced(departed: usize) -> Replaced {
    let cluster = Cluster::of(&[1, 2, 3, 4]);
    let signers: Vec<fluence_crypto::sign::SigningKey> = [1u8, 2, 3, 4]
        .iter()
        .map(|s| fluence_crypto::sign::SigningKey::from_seed(&[*s; 32]))
        .collect();
    let newcomer = fluence_crypto::sign::SigningKey::from_seed(&[5; 32]);
    let owner = common::test_owner(3);
    let create = owner.create_for_cluster(&signers);
    let genesis = Block::genesis(owner.dataset);
    let first = common::child(&genesis, vec![create.clone()], Hash32([1; 32]));
    let mut change_block = common::child(&first, Vec::new(), Hash32([1; 32]));
    change_block.change = Some(fluence_testkit::replacement(
        &owner.dataset,
        1,
        &signers,
        departed,
        &newcomer,
    ));
    Replaced {
        cluster,
        create,
        change_block,
    }
}

fn finalized(block: &Block, certificate: Vec<u8>) -> FinalizedBlock {
    FinalizedBlock {
        block: block.clone(),
        certificate,
    }
}

#[test]
fn a_history_names_the_members_each_finalized_change_installed() {
    let r = replaced(2);
    let dataset = r.create.body.dataset;
    let certificate = r
        .cluster
        .certificate(&dataset, &r.change_block.hash(), &[0, 1, 3]);
    let history = ClusterHistory {
        create: r.create.clone(),
        changes: vec![CertifiedChange {
            blocks: vec![finalized(&r.change_block, certificate)],
        }],
    };
    let epochs = verify_history(&history).unwrap();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[0].members.len(), 4);
    assert_eq!(epochs[1].epoch, 1);
    assert_eq!(epochs[1].base_height(), 2);
    assert_eq!(epochs[1].base.as_ref(), Some(&r.change_block));
    let newcomer = PublicKey(fluence_crypto::sign::SigningKey::from_seed(&[5; 32]).public_key());
    assert!(epochs[1].members.contains(&newcomer));
    assert!(!epochs[1].members.contains(&epochs[0].members[2]));
    // It travels intact.
    assert_eq!(
        ClusterHistory::from_bytes(&history.to_bytes()).unwrap(),
        history
    );
    // Without changes, the genesis membership is current.
    let bare = ClusterHistory {
        create: r.create,
        changes: Vec::new(),
    };
    assert_eq!(verify_history(&bare).unwrap().len(), 1);
}

#[test]
fn a_change_finalized_through_a_descendant_is_proven_by_the_linking_blocks() {
    let r = replaced(0);
    let dataset = r.create.body.dataset;
    let above = common::child(&r.change_block, Vec::new(), Hash32([1; 32]));
    let certificate = r.cluster.certificate(&dataset, &above.hash(), &[0, 2, 3]);
    let history = ClusterHistory {
        create: r.create.clone(),
        changes: vec![CertifiedChange {
            blocks: vec![
                finalized(&r.change_block, Vec::new()),
                finalized(&above, certificate.clone()),
            ],
        }],
    };
    assert_eq!(verify_history(&history).unwrap()[1].epoch, 1);

    // The linking block must be an empty child of the change block.
    let mut with_write = above.clone();
    with_write.writes = vec![common::insert(&common::test_owner(3), 1, 1)];
    let forged = ClusterHistory {
        create: r.create.clone(),
        changes: vec![CertifiedChange {
            blocks: vec![
                finalized(&r.change_block, Vec::new()),
                finalized(&with_write, certificate),
            ],
        }],
    };
    assert!(matches!(
        verify_history(&forged),
        Err(HistoryError::Link { index: 0, .. })
    ));
    // Nothing certified at all.
    let uncertified = ClusterHistory {
        create: r.create,
        changes: vec![CertifiedChange {
            blocks: vec![finalized(&r.change_block, Vec::new())],
        }],
    };
    assert!(matches!(
        verify_history(&uncertified),
        Err(HistoryError::Certificate {
            error: CertificateError::Missing,
            ..
        })
    ));
}

#[test]
fn a_change_not_finalized_by_the_members_it_replaces_is_refused() {
    let r = replaced(1);
    let dataset = r.create.body.dataset;
    // Certified by another cluster (the newcomer among them).
    let others = Cluster::of(&[2, 3, 4, 5]);
    let certificate = others.certificate(&dataset, &r.change_block.hash(), &[0, 1, 2]);
    let history = ClusterHistory {
        create: r.create.clone(),
        changes: vec![CertifiedChange {
            blocks: vec![finalized(&r.change_block, certificate)],
        }],
    };
    assert!(matches!(
        verify_history(&history),
        Err(HistoryError::Certificate { index: 0, .. })
    ));
    // A block without a change, or a change skipping an epoch.
    let certificate = |block: &Block| r.cluster.certificate(&dataset, &block.hash(), &[0, 1, 2]);
    let mut plain = r.change_block.clone();
    plain.change = None;
    let mut skipping = r.change_block.clone();
    if let Some(change) = skipping.change.as_mut() {
        change.epoch = 2;
    }
    for (block, expected) in [(&plain, "NoChange"), (&skipping, "Change")] {
        let history = ClusterHistory {
            create: r.create.clone(),
            changes: vec![CertifiedChange {
                blocks: vec![finalized(block, certificate(block))],
            }],
        };
        let error = verify_history(&history).unwrap_err();
        assert!(format!("{error:?}").starts_with(expected), "{error:?}");
    }
    // A second change must build on the first: the same change again is
    // of the wrong epoch.
    let good = CertifiedChange {
        blocks: vec![finalized(&r.change_block, certificate(&r.change_block))],
    };
    let twice = ClusterHistory {
        create: r.create,
        changes: vec![good.clone(), good],
    };
    assert!(matches!(
        verify_history(&twice),
        Err(HistoryError::Height { index: 1, .. }) | Err(HistoryError::Change { index: 1, .. })
    ));
}
