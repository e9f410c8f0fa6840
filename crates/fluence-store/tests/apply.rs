//! Writes: sequencing, preconditions, validation, atomicity, reindex, drop
//! and the journal.

mod common;

use common::*;
use fluence_proto::{
    Action, Decode, DocOp, Hash32, IndexDecl, IndexEntry, IndexKind, IndexValues, NodeError, Plan,
    Precondition, SignedWrite,
};
use fluence_store::ApplyError;

#[test]
fn create_starts_at_seq_zero_and_only_once() {
    let (_dir, store) = open();
    let d = dataset(1);
    let mut wrong = create_write(d, owner(1));
    wrong.body.seq = 3;
    assert!(matches!(
        store.apply(&wrong),
        Err(ApplyError::SeqMismatch { expected: 0 })
    ));
    let applied = create(&store, d);
    assert_eq!(applied.seq, 0);
    let info = store.info(&d).unwrap();
    assert_eq!(info.seq, 0);
    assert_eq!(info.state_root, applied.state_root);
    assert_eq!(info.owner, owner(1));
    assert_eq!(info.indexes, decls());
    assert_eq!(info.doc_count, 0);
    assert!(matches!(
        store.apply(&create_write(d, owner(1))),
        Err(ApplyError::DatasetExists)
    ));
    store.check(&d).unwrap();
}

#[test]
fn create_refuses_duplicate_index_declarations() {
    let (_dir, store) = open();
    let d = dataset(1);
    let write = signed(
        d,
        0,
        Action::Create {
            owner: owner(1),
            name_tag: [0; 32],
            descriptor: vec![],
            indexes: vec![
                IndexDecl {
                    id: EQ,
                    kind: IndexKind::Eq,
                    unique: false,
                },
                IndexDecl {
                    id: EQ,
                    kind: IndexKind::Range,
                    unique: false,
                },
            ],
            cluster: None,
        },
    );
    assert!(matches!(store.apply(&write), Err(ApplyError::BadWrite(_))));
    // Nothing was created, not even a file.
    assert!(store.datasets().is_empty());
    assert!(matches!(
        store.info(&d),
        Err(fluence_store::StoreError::DatasetNotFound)
    ));
}

#[test]
fn writes_to_a_missing_dataset_are_refused() {
    let (_dir, store) = open();
    let write = batch(dataset(7), 1, vec![insert(1, 1, &[], 1)]);
    assert!(matches!(
        store.apply(&write),
        Err(ApplyError::DatasetNotFound)
    ));
    let drop = signed(dataset(7), 1, Action::Drop);
    assert!(matches!(
        store.apply(&drop),
        Err(ApplyError::DatasetNotFound)
    ));
}

#[test]
fn batches_need_the_next_seq() {
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    for seq in [0, 2, 5, u64::MAX] {
        let error = store.apply(&batch(d, seq, vec![])).unwrap_err();
        assert!(
            matches!(error, ApplyError::SeqMismatch { expected: 1 }),
            "{error:?}"
        );
        assert_eq!(
            error.to_node_error(),
            NodeError::SeqMismatch { expected: 1 }
        );
    }
    assert_eq!(store.apply(&batch(d, 1, vec![])).unwrap().seq, 1);
    // A replay of an applied write is refused too.
    assert!(matches!(
        store.apply(&batch(d, 1, vec![])),
        Err(ApplyError::SeqMismatch { expected: 2 })
    ));
    assert_eq!(store.info(&d).unwrap().seq, 1);
}

#[test]
fn preconditions_see_earlier_ops_of_the_same_batch() {
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    // Insert then update then delete then re-insert the same doc, in one batch.
    let ops = vec![
        insert(1, 1, &[1], 10),
        update(1, 1, 2, &[2], 20),
        delete(1, 2),
        insert(1, 3, &[3], 30),
        insert(2, 1, &[1], 5),
    ];
    store.apply(&batch(d, 1, ops)).unwrap();
    assert_eq!(store.get(&d, &doc(1)).unwrap().unwrap().version, 1);
    assert_eq!(store.info(&d).unwrap().doc_count, 2);
    let by_eq = |t| Plan::Tokens {
        index: EQ,
        any_of: vec![token(t)],
    };
    assert_eq!(find_all(&store, &d, &by_eq(3), 10), vec![doc(1)]);
    assert!(find_all(&store, &d, &by_eq(2), 10).is_empty());
    store.check(&d).unwrap();
}

#[test]
fn precondition_failures_name_the_op_and_the_found_version() {
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    store
        .apply(&batch(d, 1, vec![insert(1, 1, &[], 1)]))
        .unwrap();
    let cases: Vec<(Vec<DocOp>, u32, Option<u64>)> = vec![
        // Insert of an existing doc.
        (vec![insert(1, 1, &[], 1)], 0, Some(1)),
        // Update at the wrong version.
        (
            vec![insert(2, 1, &[], 1), update(1, 5, 1, &[], 1)],
            1,
            Some(1),
        ),
        // Update of a missing doc.
        (vec![update(3, 1, 1, &[], 1)], 0, None),
        // Delete at the wrong version, and of a missing doc.
        (vec![delete(1, 2)], 0, Some(1)),
        (vec![delete(1, 1), delete(1, 1)], 1, None),
    ];
    for (ops, op_index, found_version) in cases {
        let error = store.apply(&batch(d, 2, ops)).unwrap_err();
        match error {
            ApplyError::Precondition {
                op_index: i,
                found_version: f,
            } => assert_eq!((i, f), (op_index, found_version)),
            other => panic!("expected a precondition failure, got {other:?}"),
        }
    }
    assert_eq!(store.info(&d).unwrap().seq, 1);
}

#[test]
fn a_failing_batch_applies_nothing() {
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    store
        .apply(&batch(d, 1, vec![insert(1, 1, &[1], 10)]))
        .unwrap();
    let before = store.info(&d).unwrap();
    let journal_before = store.journal(&d, 0, 100).unwrap();
    // Many valid ops, then one that fails its precondition.
    let mut ops: Vec<DocOp> = (10..60).map(|n| insert(n, 2, &[2], n)).collect();
    ops.push(update(1, 1, 3, &[3], 99));
    ops.push(delete(1, 7));
    let error = store.apply(&batch(d, 2, ops)).unwrap_err();
    assert!(
        matches!(
            error,
            ApplyError::Precondition {
                op_index: 51,
                found_version: Some(2)
            }
        ),
        "{error:?}"
    );
    assert_eq!(store.info(&d).unwrap(), before);
    assert_eq!(store.journal(&d, 0, 100).unwrap(), journal_before);
    assert_eq!(find_all(&store, &d, &Plan::All, 100), vec![doc(1)]);
    let tokens = |t| Plan::Tokens {
        index: EQ,
        any_of: vec![token(t)],
    };
    assert!(find_all(&store, &d, &tokens(2), 100).is_empty());
    assert_eq!(find_all(&store, &d, &tokens(1), 100), vec![doc(1)]);
    assert_eq!(store.get(&d, &doc(1)).unwrap().unwrap().version, 1);
    store.check(&d).unwrap();
    // The same seq is still free.
    store
        .apply(&batch(d, 2, vec![update(1, 1, 3, &[3], 99)]))
        .unwrap();
}

/// A write whose encoding exceeds the message limit could never be served
/// back (journal reads, snapshots): it is refused, alone or in a sequence,
/// and nothing changes.
#[test]
fn writes_too_large_to_serve_back_are_refused() {
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    let before = store.info(&d).unwrap();
    let huge = DocOp::Put {
        doc: doc(1),
        expect: Precondition::Absent,
        sealed: sealed(1, &vec![0u8; fluence_proto::limits::MESSAGE_LEN_MAX]),
        entries: vec![],
    };
    let write = batch(d, 1, vec![huge]);
    let error = store.apply(&write).unwrap_err();
    assert!(
        matches!(&error, ApplyError::BadWrite(why) if why.contains("MESSAGE_LEN_MAX")),
        "{error:?}"
    );
    let refused = store
        .apply_sequence(&[batch(d, 1, vec![]), batch(d, 2, vec![]), write])
        .unwrap_err();
    assert_eq!(refused.index, 2);
    assert!(matches!(refused.error, ApplyError::BadWrite(_)));
    assert_eq!(store.info(&d).unwrap(), before);
    assert_eq!(store.apply(&batch(d, 1, vec![])).unwrap().seq, 1);
}

#[test]
fn versions_start_at_one_and_grow_by_one() {
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    let mut bad_insert = insert(1, 1, &[], 1);
    if let DocOp::Put { sealed, .. } = &mut bad_insert {
        sealed.version = 2;
    }
    assert!(matches!(
        store.apply(&batch(d, 1, vec![bad_insert])),
        Err(ApplyError::BadWrite(_))
    ));
    store
        .apply(&batch(d, 1, vec![insert(1, 1, &[], 1)]))
        .unwrap();
    let mut bad_update = update(1, 1, 1, &[], 1);
    if let DocOp::Put { sealed, .. } = &mut bad_update {
        sealed.version = 1;
    }
    assert!(matches!(
        store.apply(&batch(d, 2, vec![bad_update])),
        Err(ApplyError::BadWrite(_))
    ));
}

fn put_with(entries: Vec<IndexEntry>) -> DocOp {
    DocOp::Put {
        doc: doc(1),
        expect: Precondition::Absent,
        sealed: sealed(1, b"x"),
        entries,
    }
}

#[test]
fn index_entries_are_validated_on_ingress() {
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    let undeclared = fluence_proto::IndexId([0x99; 16]);
    let cases = vec![
        // Undeclared index.
        vec![IndexEntry {
            index: undeclared,
            values: IndexValues::Tokens(vec![token(1)]),
        }],
        // Tokens for a range index, ORE values for an eq index.
        vec![IndexEntry {
            index: RANGE,
            values: IndexValues::Tokens(vec![token(1)]),
        }],
        vec![IndexEntry {
            index: EQ,
            values: IndexValues::Ore(vec![ore(1)]),
        }],
        // Two entries for one index.
        vec![
            IndexEntry {
                index: EQ,
                values: IndexValues::Tokens(vec![token(1)]),
            },
            IndexEntry {
                index: EQ,
                values: IndexValues::Tokens(vec![token(2)]),
            },
        ],
        // An ORE ciphertext the order refuses (PlaintextOrder: empty).
        vec![IndexEntry {
            index: RANGE,
            values: IndexValues::Ore(vec![vec![]]),
        }],
    ];
    for entries in cases {
        let error = store
            .apply(&batch(d, 1, vec![put_with(entries.clone())]))
            .unwrap_err();
        assert!(
            matches!(error, ApplyError::BadWrite(_)),
            "{entries:?}: {error:?}"
        );
        assert!(matches!(error.to_node_error(), NodeError::BadRequest(_)));
    }
    assert_eq!(store.info(&d).unwrap().doc_count, 0);
    // Several values per index, duplicates included, and no entry at all
    // for some indexes are fine.
    let fine = vec![
        IndexEntry {
            index: TEXT,
            values: IndexValues::Tokens(vec![token(1), token(1), token(2)]),
        },
        IndexEntry {
            index: RANGE,
            values: IndexValues::Ore(vec![ore(3), ore(3), ore(1)]),
        },
    ];
    store.apply(&batch(d, 1, vec![put_with(fine)])).unwrap();
    store.check(&d).unwrap();
}

#[test]
fn reindex_replaces_declarations_and_drops_removed_postings() {
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    let ops = (0..30)
        .map(|n| insert(n, (n % 3) as u8, &[n as u8], n))
        .collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    let root_before = store.info(&d).unwrap().state_root;

    // Keep EQ, drop TEXT and RANGE, change RANGE2 into an eq index.
    let new_indexes = vec![
        IndexDecl {
            id: EQ,
            kind: IndexKind::Eq,
            unique: false,
        },
        IndexDecl {
            id: RANGE2,
            kind: IndexKind::Eq,
            unique: false,
        },
    ];
    let reindex = signed(
        d,
        2,
        Action::Reindex {
            descriptor: b"new descriptor".to_vec(),
            indexes: new_indexes.clone(),
        },
    );
    let applied = store.apply(&reindex).unwrap();
    let info = store.info(&d).unwrap();
    assert_eq!(info.indexes, new_indexes);
    assert_eq!(info.descriptor, b"new descriptor".to_vec());
    assert_eq!(info.doc_count, 30);
    assert_ne!(applied.state_root, root_before);
    let report = store.check(&d).unwrap();
    assert_eq!(report.range_postings, 0);
    assert_eq!(report.postings, 30, "only the eq postings remain");
    // Queries on removed indexes are refused; kept ones still answer.
    let error = store.find(
        &d,
        &Plan::Range {
            index: RANGE,
            lower: None,
            upper: None,
        },
        None,
        10,
    );
    assert!(matches!(error, Err(fluence_store::FindError::BadPlan(_))));
    let eq0 = Plan::Tokens {
        index: EQ,
        any_of: vec![token(0)],
    };
    assert_eq!(
        find_all(&store, &d, &eq0, 100),
        sorted_docs((0..30).filter(|n| n % 3 == 0))
    );

    // Re-declaring TEXT starts it empty: documents are re-put to fill it.
    let readd = signed(
        d,
        3,
        Action::Reindex {
            descriptor: b"again".to_vec(),
            indexes: vec![
                IndexDecl {
                    id: EQ,
                    kind: IndexKind::Eq,
                    unique: false,
                },
                IndexDecl {
                    id: TEXT,
                    kind: IndexKind::Text,
                    unique: false,
                },
            ],
        },
    );
    store.apply(&readd).unwrap();
    let text5 = Plan::Tokens {
        index: TEXT,
        any_of: vec![token(5)],
    };
    assert!(find_all(&store, &d, &text5, 100).is_empty());
    let reput = DocOp::Put {
        doc: doc(5),
        expect: Precondition::Version(1),
        sealed: sealed(2, b"v2"),
        entries: vec![IndexEntry {
            index: TEXT,
            values: IndexValues::Tokens(vec![token(5)]),
        }],
    };
    let current = store.info(&d).unwrap().indexes;
    store
        .apply(&batch_for(&current, d, 4, vec![reput]))
        .unwrap();
    assert_eq!(find_all(&store, &d, &text5, 100), vec![doc(5)]);
    store.check(&d).unwrap();
}

#[test]
fn drop_deletes_the_dataset_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    store
        .apply(&batch(d, 1, vec![insert(1, 1, &[], 1)]))
        .unwrap();
    let file = dir
        .path()
        .join("datasets")
        .join(format!("{}.redb", d.to_hex()));
    assert!(file.exists());
    assert!(matches!(
        store.apply(&signed(d, 5, Action::Drop)),
        Err(ApplyError::SeqMismatch { expected: 2 })
    ));
    let applied = store.apply(&signed(d, 2, Action::Drop)).unwrap();
    assert_eq!(applied.seq, 2);
    assert_eq!(applied.state_root, Hash32([0; 32]));
    assert!(!file.exists());
    assert!(matches!(
        store.info(&d),
        Err(fluence_store::StoreError::DatasetNotFound)
    ));
    assert!(store.list(&owner(1)).unwrap().is_empty());
    // The id is free again.
    create(&store, d);
    assert_eq!(store.info(&d).unwrap().doc_count, 0);
}

#[test]
fn the_journal_holds_every_applied_write_in_order() {
    let (_dir, store) = open();
    let d = dataset(1);
    let create_w = create_write(d, owner(1));
    store.apply(&create_w).unwrap();
    let mut writes = vec![create_w];
    for seq in 1..=5u64 {
        let write = batch(d, seq, vec![insert(seq, 1, &[], seq)]);
        store.apply(&write).unwrap();
        writes.push(write);
    }
    // A refused write is not journaled.
    assert!(store
        .apply(&batch(d, 6, vec![insert(1, 1, &[], 1)]))
        .is_err());
    let journal = store.journal(&d, 0, 100).unwrap();
    assert_eq!(journal.len(), 6);
    for (entry, write) in journal.iter().zip(&writes) {
        assert_eq!(entry.seq, write.body.seq);
        assert_eq!(&SignedWrite::from_bytes(&entry.write).unwrap(), write);
    }
    let tail = store.journal(&d, 4, 1).unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].seq, 4);
    assert!(store.journal(&d, 6, 10).unwrap().is_empty());
    assert_eq!(store.check(&d).unwrap().journal_entries, 6);
}

#[test]
fn node_errors_do_not_leak_storage_internals() {
    let error = ApplyError::Store(fluence_store::StoreError::Io {
        path: "/secret/path".into(),
        source: std::io::Error::other("disk on fire"),
    });
    match error.to_node_error() {
        NodeError::Internal(text) => assert!(!text.contains("secret") && !text.contains("fire")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_merkle_bucket_refuses_documents_beyond_its_bound() {
    // Doc ids are keyed hashes, so a full bucket means ~2^32 documents or
    // an owner forging ids; either way proofs must stay bounded.
    let (_dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    let same_bucket = |i: u64| {
        let mut id = [0x42u8; 16];
        id[8..].copy_from_slice(&i.to_be_bytes());
        DocOp::Put {
            doc: fluence_proto::DocId(id),
            expect: Precondition::Absent,
            sealed: sealed(1, b""),
            entries: vec![],
        }
    };
    let max = fluence_store::BUCKET_DOCS_MAX as u64;
    store
        .apply(&batch(d, 1, (0..max).map(same_bucket).collect()))
        .unwrap();
    let error = store
        .apply(&batch(d, 2, vec![same_bucket(max)]))
        .unwrap_err();
    assert!(
        matches!(error, ApplyError::BucketFull { bucket: 0x4242 }),
        "{error:?}"
    );
    assert_eq!(store.info(&d).unwrap().doc_count, max);
    // Other buckets still take documents.
    store
        .apply(&batch(d, 2, vec![insert(1, 1, &[], 1)]))
        .unwrap();
}
