//! Unique `eq` indexes and the schema digest that batches and finds name.

mod common;

use common::*;
use fluence_proto::{Action, DatasetId, Hash32, IndexDecl, IndexKind, Plan};
use fluence_store::{ApplyError, FindError, PlaintextOrder, Store};

type TestStore = Store<PlaintextOrder>;

/// The common declarations with the `eq` index made unique.
fn unique_decls() -> Vec<IndexDecl> {
    let mut decls = decls();
    decls[0].unique = true;
    decls
}

fn open_unique() -> (tempfile::TempDir, TestStore, DatasetId) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    store
        .apply(&signed(
            d,
            0,
            Action::Create {
                owner: owner(1),
                name_tag: [9; 32],
                descriptor: vec![],
                indexes: unique_decls(),
                cluster: None,
            },
        ))
        .unwrap();
    (dir, store, d)
}

fn unique_batch(
    d: DatasetId,
    seq: u64,
    ops: Vec<fluence_proto::DocOp>,
) -> fluence_proto::SignedWrite {
    batch_for(&unique_decls(), d, seq, ops)
}

#[test]
fn a_second_document_with_a_unique_token_is_refused_and_nothing_changes() {
    let (_dir, store, d) = open_unique();
    store
        .apply(&unique_batch(
            d,
            1,
            vec![insert(1, 7, &[], 10), insert(2, 8, &[], 20)],
        ))
        .unwrap();
    let before = store.info(&d).unwrap();
    let refused = store.apply(&unique_batch(
        d,
        2,
        vec![insert(3, 9, &[], 30), insert(4, 7, &[], 40)],
    ));
    match refused {
        Err(ApplyError::UniqueViolation { op_index, index }) => {
            assert_eq!((op_index, index), (1, EQ));
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    let after = store.info(&d).unwrap();
    assert_eq!((after.seq, after.doc_count), (before.seq, before.doc_count));
    assert_eq!(after.state_root, before.state_root);
    store.check(&d).unwrap();
}

#[test]
fn two_new_documents_in_one_batch_cannot_share_a_unique_token() {
    let (_dir, store, d) = open_unique();
    let refused = store.apply(&unique_batch(
        d,
        1,
        vec![insert(1, 5, &[], 1), insert(2, 5, &[], 2)],
    ));
    assert!(matches!(
        refused,
        Err(ApplyError::UniqueViolation { op_index: 1, .. })
    ));
}

#[test]
fn updates_keep_or_free_their_own_value() {
    let (_dir, store, d) = open_unique();
    store
        .apply(&unique_batch(
            d,
            1,
            vec![insert(1, 7, &[], 10), insert(2, 8, &[], 20)],
        ))
        .unwrap();
    // Same token, new content: the posting is the document's own.
    store
        .apply(&unique_batch(d, 2, vec![update(1, 1, 7, &[1], 11)]))
        .unwrap();
    // Taking another document's token is refused...
    assert!(matches!(
        store.apply(&unique_batch(d, 3, vec![update(2, 1, 7, &[], 20)])),
        Err(ApplyError::UniqueViolation { op_index: 0, .. })
    ));
    // ...until that document moves away, in the same batch.
    store
        .apply(&unique_batch(
            d,
            3,
            vec![update(1, 2, 9, &[], 11), update(2, 1, 7, &[], 20)],
        ))
        .unwrap();
    // A deleted document frees its token.
    store
        .apply(&unique_batch(
            d,
            4,
            vec![delete(2, 2), insert(3, 7, &[], 5)],
        ))
        .unwrap();
    store.check(&d).unwrap();
}

#[test]
fn only_eq_indexes_can_be_unique() {
    let (_dir, store, d) = open_unique();
    let mut decls = unique_decls();
    decls[2].unique = true; // the range index
    let refused = store.apply(&signed(
        d,
        1,
        Action::Reindex {
            descriptor: vec![],
            indexes: decls,
        },
    ));
    assert!(matches!(refused, Err(ApplyError::BadWrite(m)) if m.contains("only eq indexes")));
}

#[test]
fn making_an_index_unique_empties_it_for_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    // Two documents share token 7 while the index is not unique.
    store
        .apply(&batch(
            d,
            1,
            vec![insert(1, 7, &[], 10), insert(2, 7, &[], 20)],
        ))
        .unwrap();
    store
        .apply(&signed(
            d,
            2,
            Action::Reindex {
                descriptor: vec![],
                indexes: unique_decls(),
            },
        ))
        .unwrap();
    let eq7 = Plan::Tokens {
        index: EQ,
        any_of: vec![token(7)],
    };
    assert!(store.find(&d, &eq7, None, 100).unwrap().docs.is_empty());
    store.check(&d).unwrap();
    // The rebuild rewrites each document; the second holder is refused.
    store
        .apply(&unique_batch(d, 3, vec![update(1, 1, 7, &[], 10)]))
        .unwrap();
    assert!(matches!(
        store.apply(&unique_batch(d, 4, vec![update(2, 1, 7, &[], 20)])),
        Err(ApplyError::UniqueViolation { .. })
    ));
    assert_eq!(store.find(&d, &eq7, None, 100).unwrap().docs.len(), 1);
}

#[test]
fn batches_and_finds_made_for_other_indexes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    let stale = batch_for(&unique_decls(), d, 1, vec![insert(1, 7, &[], 10)]);
    assert!(matches!(store.apply(&stale), Err(ApplyError::StaleSchema)));
    assert_eq!(store.info(&d).unwrap().seq, 0);
    store
        .apply(&batch(d, 1, vec![insert(1, 7, &[], 10)]))
        .unwrap();

    let current = fluence_proto::schema_digest(&decls());
    let page = store
        .find_planned_for(&d, Some(&current), &Plan::All, None, 10)
        .unwrap();
    assert_eq!(page.docs.len(), 1);
    assert!(matches!(
        store.find_planned_for(&d, Some(&Hash32([0; 32])), &Plan::All, None, 10),
        Err(FindError::StaleSchema)
    ));
    // Changing the indexes makes the old digest stale.
    store
        .apply(&signed(
            d,
            2,
            Action::Reindex {
                descriptor: vec![],
                indexes: vec![IndexDecl {
                    id: EQ,
                    kind: IndexKind::Eq,
                    unique: false,
                }],
            },
        ))
        .unwrap();
    assert!(matches!(
        store.find_planned_for(&d, Some(&current), &Plan::All, None, 10),
        Err(FindError::StaleSchema)
    ));
}
