//! Sequences of writes in one transaction: how a cluster member applies a
//! finalized block (one commit) and tries a proposed one (no commit).

mod common;

use common::*;
use fluence_proto::{Action, DocOp, Hash32};
use fluence_store::{ApplyError, SequenceError};

#[test]
fn simulating_a_create_predicts_its_root_without_creating_the_file() {
    let (_dir, store) = open();
    let write = create_write(dataset(1), owner(1));
    let predicted = store
        .simulate_sequence(std::slice::from_ref(&write))
        .unwrap();
    assert!(
        store.datasets().is_empty(),
        "simulation created the dataset"
    );
    let applied = store.apply_sequence(std::slice::from_ref(&write)).unwrap();
    assert_eq!(predicted, applied);
    let refused = store.simulate_sequence(&[write]).unwrap_err();
    assert!(
        matches!(refused.error, ApplyError::DatasetExists),
        "{refused}"
    );
}

#[test]
fn simulation_predicts_every_root_and_changes_nothing() {
    let (_dir, store) = open();
    let id = dataset(2);
    let created = create(&store, id);
    let writes = vec![
        batch(id, 1, vec![insert(1, 1, &[1], 10), insert(2, 2, &[2], 20)]),
        batch(id, 2, vec![update(1, 1, 3, &[3], 30)]),
        batch(id, 3, vec![delete(2, 1)]),
    ];
    let predicted = store.simulate_sequence(&writes).unwrap();
    let info = store.info(&id).unwrap();
    assert_eq!((info.seq, info.state_root), (0, created.state_root));
    assert_eq!(store.journal(&id, 1, 10).unwrap(), vec![]);

    let applied = store.apply_sequence(&writes).unwrap();
    assert_eq!(predicted, applied);
    assert_eq!(
        applied.iter().map(|a| a.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let info = store.info(&id).unwrap();
    assert_eq!((info.seq, info.state_root), (3, applied[2].state_root));
    assert_eq!(store.journal(&id, 1, 10).unwrap().len(), 3);
    // One by one gives the same roots as one transaction.
    let (_other_dir, other) = open();
    create(&other, id);
    for (write, expected) in writes.iter().zip(&applied) {
        assert_eq!(other.apply(write).unwrap(), *expected);
    }
}

#[test]
fn a_refused_write_names_its_index_and_the_sequence_applies_nothing() {
    let (_dir, store) = open();
    let id = dataset(3);
    let created = create(&store, id);
    let writes = vec![
        batch(id, 1, vec![insert(1, 1, &[1], 10)]),
        // Inserting the same document again fails its precondition.
        batch(id, 2, vec![insert(1, 1, &[1], 10)]),
    ];
    for result in [
        store.simulate_sequence(&writes),
        store.apply_sequence(&writes),
    ] {
        let SequenceError { index, error } = result.unwrap_err();
        assert_eq!(index, 1);
        assert!(
            matches!(error, ApplyError::Precondition { op_index: 0, .. }),
            "{error}"
        );
    }
    let info = store.info(&id).unwrap();
    assert_eq!((info.seq, info.state_root), (0, created.state_root));
    let gap = store
        .apply_sequence(&[batch(id, 1, vec![]), batch(id, 3, vec![])])
        .unwrap_err();
    assert_eq!(gap.index, 1);
    assert!(matches!(gap.error, ApplyError::SeqMismatch { expected: 2 }));
}

#[test]
fn lifecycle_writes_stand_alone_and_sequences_stay_in_one_dataset() {
    let (_dir, store) = open();
    let id = dataset(4);
    create(&store, id);
    let drop = signed(id, 2, Action::Drop);
    let mixed = store
        .apply_sequence(&[batch(id, 1, vec![]), drop.clone()])
        .unwrap_err();
    assert_eq!(mixed.index, 1);
    assert!(matches!(mixed.error, ApplyError::BadWrite(_)));
    let foreign = store
        .simulate_sequence(&[
            batch(id, 1, vec![]),
            batch(dataset(5), 2, Vec::<DocOp>::new()),
        ])
        .unwrap_err();
    assert_eq!(foreign.index, 1);

    // A lone Drop is checked against the sequence, then applied.
    let early = store
        .simulate_sequence(std::slice::from_ref(&drop))
        .unwrap_err();
    assert!(matches!(
        early.error,
        ApplyError::SeqMismatch { expected: 1 }
    ));
    store.apply_sequence(&[batch(id, 1, vec![])]).unwrap();
    let predicted = store
        .simulate_sequence(std::slice::from_ref(&drop))
        .unwrap();
    assert_eq!(predicted[0].state_root, Hash32([0; 32]));
    assert_eq!(store.info(&id).unwrap().seq, 1, "simulating a drop dropped");
    assert_eq!(store.apply_sequence(&[drop]).unwrap(), predicted);
    assert!(store.datasets().is_empty());
    assert_eq!(store.apply_sequence(&[]).unwrap(), vec![]);
}

/// Writes 1..=3 of `id`: inserts, an update and a delete.
fn three_writes(id: fluence_proto::DatasetId) -> Vec<fluence_proto::SignedWrite> {
    vec![
        batch(id, 1, vec![insert(1, 1, &[1], 10), insert(2, 2, &[2], 20)]),
        batch(id, 2, vec![update(1, 1, 3, &[3], 30)]),
        batch(id, 3, vec![delete(2, 1)]),
    ]
}

#[test]
fn a_staged_sequence_commits_what_apply_would_and_is_invisible_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let id = dataset(6);
    let writes = three_writes(id);
    let (_twin_dir, twin) = open();
    create(&twin, id);
    let expected = twin.apply_sequence(&writes).unwrap();

    let store = TestStore::open(dir.path()).unwrap();
    let created = create(&store, id);
    let staged = store.stage_sequence(&writes).unwrap();
    assert_eq!(staged.applied(), expected.as_slice());
    // Readers see the committed state only.
    let info = store.info(&id).unwrap();
    assert_eq!((info.seq, info.state_root), (0, created.state_root));
    assert_eq!(
        find_all(&store, &id, &fluence_proto::Plan::All, 100).len(),
        0
    );

    assert_eq!(staged.commit().unwrap(), expected);
    let info = store.info(&id).unwrap();
    assert_eq!((info.seq, info.state_root), (3, expected[2].state_root));
    assert_eq!(store.journal(&id, 1, 10).unwrap().len(), 3);
    // Durable: a reopened store holds it, and writing goes on.
    drop(store);
    let store = TestStore::open(dir.path()).unwrap();
    assert_eq!(store.info(&id).unwrap().state_root, expected[2].state_root);
    assert_eq!(
        find_all(&store, &id, &fluence_proto::Plan::All, 100),
        sorted_docs([1])
    );
    store.apply(&batch(id, 4, vec![delete(1, 2)])).unwrap();
}

#[test]
fn a_dropped_staged_sequence_changes_nothing_and_blocks_no_one_after() {
    let (_dir, store) = open();
    let id = dataset(7);
    let created = create(&store, id);
    let writes = three_writes(id);
    let staged = store.stage_sequence(&writes).unwrap();
    // Other writers are refused, typed, rather than blocked.
    for refused in [
        store.apply_sequence(&writes[..1]).unwrap_err(),
        store.simulate_sequence(&writes[..1]).unwrap_err(),
        store.stage_sequence(&writes[..1]).err().unwrap(),
    ] {
        assert!(
            matches!(
                refused.error,
                ApplyError::Store(fluence_store::StoreError::Staged)
            ),
            "{refused}"
        );
    }
    assert!(matches!(
        store.apply(&signed(id, 1, Action::Drop)).unwrap_err(),
        ApplyError::Store(fluence_store::StoreError::Staged)
    ));
    drop(staged);
    let info = store.info(&id).unwrap();
    assert_eq!((info.seq, info.state_root), (0, created.state_root));
    assert_eq!(store.journal(&id, 1, 10).unwrap(), vec![]);
    // Writable again: the same writes apply as if never staged.
    let (_twin_dir, twin) = open();
    create(&twin, id);
    assert_eq!(
        store.apply_sequence(&writes).unwrap(),
        twin.apply_sequence(&writes).unwrap()
    );
}

#[test]
fn a_dropped_staged_sequence_leaves_no_trace_in_the_tree() {
    // The staged writes' Merkle nodes live in the transaction's overlay;
    // dropping it must leave the tree of the committed state. Later writes
    // touching other buckets would otherwise carry the dropped documents'
    // leaves into their roots, and proofs would show them.
    let (_dir, store) = open();
    let id = dataset(8);
    create(&store, id);
    let dropped: Vec<DocOp> = (0..200).map(|n| insert(n, 1, &[], n)).collect();
    let kept: Vec<DocOp> = (1000..1050).map(|n| insert(n, 2, &[], n)).collect();
    drop(store.stage_sequence(&[batch(id, 1, dropped)]).unwrap());
    let applied = store.apply_sequence(&[batch(id, 1, kept.clone())]).unwrap();

    let (_twin_dir, twin) = open();
    create(&twin, id);
    assert_eq!(applied, twin.apply_sequence(&[batch(id, 1, kept)]).unwrap());
    let root = store.info(&id).unwrap().state_root;
    for n in [0, 99, 199] {
        let proof = store.prove(&id, &doc(n)).unwrap();
        assert_eq!(
            fluence_store::verify_proof(&id, &root, &proof).unwrap(),
            None,
            "doc {n} of the dropped sequence is absent"
        );
    }
    store.check(&id).unwrap();
}

#[test]
fn staging_refuses_as_applying_does_and_leaves_the_dataset_writable() {
    let (_dir, store) = open();
    let id = dataset(8);
    create(&store, id);
    let writes = vec![
        batch(id, 1, vec![insert(1, 1, &[1], 10)]),
        batch(id, 2, vec![insert(1, 1, &[1], 10)]),
    ];
    let SequenceError { index, error } = store.stage_sequence(&writes).err().unwrap();
    assert_eq!(index, 1);
    assert!(
        matches!(error, ApplyError::Precondition { op_index: 0, .. }),
        "{error}"
    );
    let nothing = store.stage_sequence(&[]).err().unwrap();
    assert!(matches!(nothing.error, ApplyError::BadWrite(_)));
    let lifecycle = store
        .stage_sequence(&[signed(id, 1, Action::Drop)])
        .err()
        .unwrap();
    assert!(matches!(lifecycle.error, ApplyError::BadWrite(_)));
    assert_eq!(store.apply_sequence(&writes[..1]).unwrap()[0].seq, 1);
}
