//! Block rules with real keys: each rule accepts an honest block and
//! refuses the violation it exists for, with its typed error.

mod common;

use common::{attest, child, insert, members, public, test_owner, Owner};
use fluence_chain::{
    check_attestations, check_link, check_timestamp, check_write_signatures, check_writes_shape,
    verify_block, verify_write_signature, Attestation, Block, BlockError, ChainRules, Evidence,
    VerifyContext, WriteAuthError,
};
use fluence_proto::{DatasetId, Hash32, MembershipError, PublicKey, Signature};

const ROOT_A: Hash32 = Hash32([0xA; 32]);
const ROOT_B: Hash32 = Hash32([0xB; 32]);

#[test]
fn link_checks_dataset_height_parent_and_time_order() {
    let owner = test_owner(1);
    let genesis = Block::genesis(owner.dataset);
    let block = child(&genesis, vec![owner.create()], ROOT_A);
    check_link(&block, &genesis, &genesis.hash()).unwrap();

    let mut wrong = block.clone();
    wrong.height = 2;
    assert!(matches!(
        check_link(&wrong, &genesis, &genesis.hash()),
        Err(BlockError::WrongHeight {
            expected: 1,
            found: 2
        })
    ));
    let mut wrong = block.clone();
    wrong.parent = Hash32([1; 32]);
    assert!(matches!(
        check_link(&wrong, &genesis, &genesis.hash()),
        Err(BlockError::WrongParent { .. })
    ));
    let mut wrong = block.clone();
    wrong.dataset = DatasetId([0; 32]);
    assert!(matches!(
        check_link(&wrong, &genesis, &genesis.hash()),
        Err(BlockError::WrongDataset { .. })
    ));
    let second = child(&block, vec![], ROOT_A);
    let mut earlier = second.clone();
    earlier.timestamp_ms = block.timestamp_ms - 1;
    assert!(matches!(
        check_link(&earlier, &block, &block.hash()),
        Err(BlockError::TimestampBeforeParent { .. })
    ));
}

#[test]
fn timestamps_ahead_of_the_local_clock_beyond_the_bound_are_refused() {
    let rules = ChainRules {
        timestamp_ahead_max_ms: 1_000,
    };
    let mut block = Block::genesis(DatasetId([1; 32]));
    block.timestamp_ms = 11_000;
    check_timestamp(&block, 10_000, &rules).unwrap();
    check_timestamp(&block, 50_000, &rules).unwrap();
    assert_eq!(
        check_timestamp(&block, 9_999, &rules),
        Err(BlockError::TimestampAhead {
            block_ms: 11_000,
            now_ms: 9_999,
            ahead_max_ms: 1_000
        })
    );
}

#[test]
fn writes_must_be_this_datasets_consecutive_and_lifecycle_alone() {
    let owner = test_owner(2);
    let stranger = test_owner(3);
    let genesis = Block::genesis(owner.dataset);
    check_writes_shape(&child(
        &genesis,
        vec![insert(&owner, 4, 1), insert(&owner, 5, 2)],
        ROOT_A,
    ))
    .unwrap();
    assert!(matches!(
        check_writes_shape(&child(
            &genesis,
            vec![insert(&owner, 4, 1), insert(&owner, 6, 2)],
            ROOT_A
        )),
        Err(BlockError::SeqGap {
            index: 1,
            expected: 5,
            found: 6
        })
    ));
    assert!(matches!(
        check_writes_shape(&child(&genesis, vec![insert(&stranger, 1, 1)], ROOT_A)),
        Err(BlockError::ForeignWrite { index: 0, .. })
    ));
    assert!(matches!(
        check_writes_shape(&child(
            &genesis,
            vec![owner.create(), insert(&owner, 1, 2)],
            ROOT_A
        )),
        Err(BlockError::LifecycleNotAlone { index: 0 })
    ));
    check_writes_shape(&child(&genesis, vec![owner.create()], ROOT_A)).unwrap();
}

#[test]
fn write_signatures_are_checked_against_the_owner() {
    let owner = test_owner(4);
    let stranger = test_owner(5);
    verify_write_signature(&owner.create(), None).unwrap();
    verify_write_signature(&insert(&owner, 1, 1), Some(&owner.public())).unwrap();
    assert_eq!(
        verify_write_signature(&insert(&owner, 1, 1), None),
        Err(WriteAuthError::NoOwner)
    );
    assert_eq!(
        verify_write_signature(&insert(&owner, 1, 1), Some(&stranger.public())),
        Err(WriteAuthError::BadSignature)
    );
    // Someone else's key cannot create an id derived from the owner's key.
    let mut squat = owner.create();
    squat.body.dataset = stranger.dataset;
    let squat = owner.sign(squat.body);
    assert_eq!(
        verify_write_signature(&squat, None),
        Err(WriteAuthError::IdNotDerived)
    );
    let mut tampered = insert(&owner, 1, 1);
    tampered.body.seq = 2;
    assert_eq!(
        verify_write_signature(&tampered, Some(&owner.public())),
        Err(WriteAuthError::BadSignature)
    );
    let genesis = Block::genesis(owner.dataset);
    assert!(matches!(
        check_write_signatures(
            &child(&genesis, vec![tampered], ROOT_A),
            Some(&owner.public())
        ),
        Err(BlockError::Unauthorised {
            index: 0,
            reason: WriteAuthError::BadSignature
        })
    ));
}

/// A parent at height 3 with root A, and its child.
fn parent_and_child(owner: &Owner) -> (Block, Block) {
    let mut parent = Block::genesis(owner.dataset);
    parent.height = 3;
    parent.state_root = ROOT_A;
    let block = child(&parent, vec![], ROOT_A);
    (parent, block)
}

#[test]
fn attestations_must_be_members_signing_the_parent_root() {
    let owner = test_owner(6);
    let keys = members(4);
    let member_keys: Vec<PublicKey> = keys.iter().map(public).collect();
    let (parent, mut block) = parent_and_child(&owner);
    let mut attestations: Vec<Attestation> = keys[..3]
        .iter()
        .map(|key| {
            let signed = attest(key, &parent, ROOT_A);
            Attestation {
                member: signed.member,
                signature: signed.signature,
            }
        })
        .collect();
    attestations.sort_by_key(|a| a.member);
    let dissent = attest(&keys[3], &parent, ROOT_B);
    block.attestations = attestations.clone();
    block.evidence = vec![Evidence {
        member: dissent.member,
        root: ROOT_B,
        signature: dissent.signature,
    }];
    check_attestations(&block, &parent, &parent.hash(), &member_keys).unwrap();

    // Evidence that agrees with the parent is an attestation in disguise.
    let mut agreeing = block.clone();
    let signed = attest(&keys[3], &parent, ROOT_A);
    agreeing.evidence = vec![Evidence {
        member: signed.member,
        root: ROOT_A,
        signature: signed.signature,
    }];
    assert!(matches!(
        check_attestations(&agreeing, &parent, &parent.hash(), &member_keys),
        Err(BlockError::EvidenceAgrees { .. })
    ));

    // A signature over another root is refused as an attestation.
    let mut forged = block.clone();
    forged.attestations[0].signature = dissent.signature;
    assert!(matches!(
        check_attestations(&forged, &parent, &parent.hash(), &member_keys),
        Err(BlockError::BadAttestation { .. })
    ));

    // An attestation of a competing block at the same height, with the
    // same root, does not attest this parent.
    let mut other_block = block.clone();
    let mut competitor = parent.clone();
    competitor.timestamp_ms += 1;
    let signed = attest(&keys[0], &competitor, ROOT_A);
    other_block.attestations[0] = Attestation {
        member: signed.member,
        signature: signed.signature,
    };
    other_block.attestations.sort_by_key(|a| a.member);
    assert!(matches!(
        check_attestations(&other_block, &parent, &parent.hash(), &member_keys),
        Err(BlockError::BadAttestation { .. })
    ));

    // Outsiders cannot attest.
    let outsider = fluence_crypto::sign::SigningKey::from_seed(&[77; 32]);
    let mut foreign = block.clone();
    let signed = attest(&outsider, &parent, ROOT_A);
    foreign.evidence.clear();
    foreign.attestations.push(Attestation {
        member: signed.member,
        signature: signed.signature,
    });
    foreign.attestations.sort_by_key(|a| a.member);
    assert!(matches!(
        check_attestations(&foreign, &parent, &parent.hash(), &member_keys),
        Err(BlockError::NotAMember { .. })
    ));

    // A member may not both attest and be named in evidence.
    let mut both = block.clone();
    let signed = attest(&keys[0], &parent, ROOT_B);
    both.evidence = vec![Evidence {
        member: signed.member,
        root: ROOT_B,
        signature: signed.signature,
    }];
    assert!(matches!(
        check_attestations(&both, &parent, &parent.hash(), &member_keys),
        Err(BlockError::AttesterInEvidence { .. })
    ));
}

#[test]
fn nobody_attests_the_genesis_block() {
    let owner = test_owner(7);
    let keys = members(4);
    let genesis = Block::genesis(owner.dataset);
    let mut block = child(&genesis, vec![], ROOT_A);
    let signed = attest(&keys[0], &genesis, genesis.state_root);
    block.attestations = vec![Attestation {
        member: signed.member,
        signature: signed.signature,
    }];
    let member_keys: Vec<PublicKey> = keys.iter().map(public).collect();
    assert!(matches!(
        check_attestations(&block, &genesis, &genesis.hash(), &member_keys),
        Err(BlockError::AttestsGenesis { .. })
    ));
}

#[test]
fn verify_block_runs_every_rule() {
    let owner = test_owner(8);
    let keys = members(4);
    let member_keys: Vec<PublicKey> = keys.iter().map(public).collect();
    let rules = ChainRules::default();
    let genesis = Block::genesis(owner.dataset);
    let created = child(&genesis, vec![owner.create_for_cluster(&keys)], ROOT_A);
    let context = VerifyContext {
        rules: &rules,
        members: &member_keys,
        now_ms: 0,
        owner: None,
        epoch: 0,
    };
    verify_block(&created, &genesis, &genesis.hash(), &context).unwrap();

    // The creation must name exactly this cluster, every member having
    // accepted: no membership, another cluster, or a forged acceptance
    // are refused.
    let alone = child(&genesis, vec![owner.create()], ROOT_A);
    assert!(matches!(
        verify_block(&alone, &genesis, &genesis.hash(), &context),
        Err(BlockError::Membership {
            index: 0,
            reason: MembershipError::Missing
        })
    ));
    let others = members(7);
    let elsewhere = child(
        &genesis,
        vec![owner.create_for_cluster(&others[3..])],
        ROOT_A,
    );
    assert!(matches!(
        verify_block(&elsewhere, &genesis, &genesis.hash(), &context),
        Err(BlockError::Membership {
            reason: MembershipError::Mismatch { .. },
            ..
        })
    ));
    let mut forged_create = owner.create_for_cluster(&keys);
    if let fluence_proto::Action::Create {
        cluster: Some(cluster),
        ..
    } = &mut forged_create.body.action
    {
        cluster.members[2].acceptance = Signature([7; 64]);
    }
    let forged_create = owner.sign(forged_create.body);
    let forged = child(&genesis, vec![forged_create], ROOT_A);
    assert!(matches!(
        verify_block(&forged, &genesis, &genesis.hash(), &context),
        Err(BlockError::Membership {
            reason: MembershipError::BadAcceptance(_),
            ..
        })
    ));

    let batch = child(
        &created,
        vec![insert(&owner, 1, 1), insert(&owner, 2, 2)],
        ROOT_B,
    );
    let owned = VerifyContext {
        owner: Some(&owner.public()),
        epoch: 0,
        ..context
    };
    verify_block(&batch, &created, &created.hash(), &owned).unwrap();
    assert!(matches!(
        verify_block(&batch, &created, &created.hash(), &context),
        Err(BlockError::Unauthorised {
            reason: WriteAuthError::NoOwner,
            ..
        })
    ));
    let mut bad_signature = batch.clone();
    bad_signature.writes[1].signature = Signature([0; 64]);
    assert!(matches!(
        verify_block(&bad_signature, &created, &created.hash(), &owned),
        Err(BlockError::Unauthorised { index: 1, .. })
    ));
    let mut future = batch.clone();
    future.timestamp_ms = rules.timestamp_ahead_max_ms + 1_000;
    assert!(matches!(
        verify_block(&future, &created, &created.hash(), &owned),
        Err(BlockError::TimestampAhead { .. })
    ));
}

#[test]
fn a_membership_change_stands_alone_keeps_the_root_and_ends_its_epochs_writes() {
    let owner = test_owner(9);
    let keys = members(5);
    let member_keys: Vec<PublicKey> = keys[..4].iter().map(public).collect();
    let next_keys: Vec<PublicKey> = [0, 1, 4, 3].iter().map(|&i| public(&keys[i])).collect();
    let rules = ChainRules::default();
    let genesis = Block::genesis(owner.dataset);
    let created = child(&genesis, vec![owner.create_for_cluster(&keys[..4])], ROOT_A);
    let context = VerifyContext {
        rules: &rules,
        members: &member_keys,
        now_ms: 0,
        owner: Some(&owner.public()),
        epoch: 0,
    };
    let change = fluence_testkit::replacement(&owner.dataset, 1, &keys[..4], 2, &keys[4]);
    let mut changed = child(&created, vec![], ROOT_A);
    changed.change = Some(change.clone());
    verify_block(&changed, &created, &created.hash(), &context).unwrap();

    // Nothing else in the block, the root unchanged.
    let mut with_write = changed.clone();
    with_write.writes = vec![insert(&owner, 1, 1)];
    assert_eq!(
        verify_block(&with_write, &created, &created.hash(), &context),
        Err(BlockError::ChangeNotAlone)
    );
    let mut moved = changed.clone();
    moved.state_root = ROOT_B;
    assert_eq!(
        verify_block(&moved, &created, &created.hash(), &context),
        Err(BlockError::ChangeMovesRoot)
    );
    // Proposed in the wrong epoch, or with the members of the next one.
    let later = VerifyContext {
        epoch: 1,
        ..context
    };
    assert!(matches!(
        verify_block(&changed, &created, &created.hash(), &later),
        Err(BlockError::Change(MembershipError::ChangeEpoch { .. }))
    ));
    let wrong_members = VerifyContext {
        members: &next_keys,
        ..context
    };
    assert!(matches!(
        verify_block(&changed, &created, &created.hash(), &wrong_members),
        Err(BlockError::Change(_))
    ));

    // Above the change, its own epoch adds only empty blocks; the next
    // epoch (its new members) builds on it with writes.
    let empty = child(&changed, vec![], ROOT_A);
    verify_block(&empty, &changed, &changed.hash(), &context).unwrap();
    let writes = child(&changed, vec![insert(&owner, 1, 1)], ROOT_B);
    assert_eq!(
        verify_block(&writes, &changed, &changed.hash(), &context),
        Err(BlockError::AfterChange)
    );
    let next_epoch = VerifyContext {
        members: &next_keys,
        epoch: 1,
        ..context
    };
    verify_block(&writes, &changed, &changed.hash(), &next_epoch).unwrap();
}
