//! Row ids: given in insertion order, kept by updates, never reused; and
//! `check` holding `ids`, `docs`, `entries` and the derived tables to each
//! other. Reads and tampers with the dataset file through redb (the store
//! is closed meanwhile: redb locks a file to one opener).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use fluence_proto::{DatasetId, DocId, Plan};
use fluence_store::layout::{self, Meta};
use fluence_store::{FindError, PlaintextOrder, Store, StoreError};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};

type TestStore = Store<PlaintextOrder>;

fn dataset_file(dir: &Path, d: &DatasetId) -> PathBuf {
    dir.join("datasets").join(format!("{}.redb", d.to_hex()))
}

/// What the file says about rows: doc id → row from `ids`, row → doc id
/// from `docs`, and the meta's next row id.
struct Rows {
    by_doc: BTreeMap<DocId, u64>,
    by_row: BTreeMap<u64, DocId>,
    next_row: u64,
}

fn rows(dir: &Path, d: &DatasetId) -> Rows {
    let db = Database::open(dataset_file(dir, d)).unwrap();
    let txn = db.begin_read().unwrap();
    let ids = txn.open_table(layout::IDS).unwrap();
    let mut by_doc = BTreeMap::new();
    for item in ids.iter().unwrap() {
        let (key, value) = item.unwrap();
        let (row, _) = layout::decode_id_record(value.value()).unwrap();
        by_doc.insert(layout::doc_id(key.value()).unwrap(), row);
    }
    let docs = txn.open_table(layout::DOCS).unwrap();
    let mut by_row = BTreeMap::new();
    for item in docs.iter().unwrap() {
        let (key, value) = item.unwrap();
        let (doc, _) = layout::split_doc_record(value.value()).unwrap();
        by_row.insert(layout::row_id(key.value()).unwrap(), doc);
    }
    let meta = txn.open_table(layout::META).unwrap();
    let next_row = Meta::decode(meta.get(layout::META_KEY).unwrap().unwrap().value())
        .unwrap()
        .next_row;
    Rows {
        by_doc,
        by_row,
        next_row,
    }
}

#[test]
fn row_ids_follow_insertion_order_and_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(1);
    {
        let store = TestStore::open(dir.path()).unwrap();
        create(&store, d);
        // Op order, not doc id order, decides: rows 0..5 go to docs 4..0.
        let ops = (0..5).rev().map(|n| insert(n, 1, &[2], n)).collect();
        store.apply(&batch(d, 1, ops)).unwrap();
        // A refused batch takes no row id.
        let refused = vec![insert(10, 1, &[], 1), insert(4, 1, &[], 1)];
        assert!(store.apply(&batch(d, 2, refused)).is_err());
        // Delete doc 2 (row 2), then insert it again and a new doc.
        let ops = vec![delete(2, 1), insert(2, 3, &[], 7), insert(5, 1, &[], 5)];
        store.apply(&batch(d, 2, ops)).unwrap();
        store.check(&d).unwrap();
    }
    let found = rows(dir.path(), &d);
    let expected: BTreeMap<DocId, u64> = [(4, 0), (3, 1), (1, 3), (0, 4), (2, 5), (5, 6)]
        .into_iter()
        .map(|(n, row)| (doc(n), row))
        .collect();
    assert_eq!(found.by_doc, expected);
    // Row 2 (doc 2 before its delete) is gone for good; doc 2 came back at
    // the tail.
    assert_eq!(
        found.by_row.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 3, 4, 5, 6]
    );
    assert!(found.by_row.iter().all(|(row, d)| found.by_doc[d] == *row));
    assert_eq!(found.next_row, 7);

    // The counter survives a reopen: the next new doc gets row 7, even
    // after the tail rows were deleted.
    {
        let store = TestStore::open(dir.path()).unwrap();
        store
            .apply(&batch(d, 3, vec![delete(5, 1), delete(2, 1)]))
            .unwrap();
        store
            .apply(&batch(d, 4, vec![insert(6, 1, &[], 1)]))
            .unwrap();
        store.check(&d).unwrap();
    }
    let found = rows(dir.path(), &d);
    assert_eq!(found.by_doc[&doc(6)], 7);
    assert!(!found.by_doc.contains_key(&doc(5)));
    assert_eq!(found.next_row, 8);
}

#[test]
fn an_update_keeps_its_row_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(1);
    {
        let store = TestStore::open(dir.path()).unwrap();
        create(&store, d);
        let ops = (0..3).map(|n| insert(n, 1, &[1], n)).collect();
        store.apply(&batch(d, 1, ops)).unwrap();
        // Updates with new entries, twice, in separate and in one batch.
        store
            .apply(&batch(d, 2, vec![update(1, 1, 2, &[3, 4], 50)]))
            .unwrap();
        store
            .apply(&batch(
                d,
                3,
                vec![update(1, 2, 3, &[], 60), update(0, 1, 3, &[5], 70)],
            ))
            .unwrap();
        let eq3 = Plan::Tokens {
            index: EQ,
            any_of: vec![token(3)],
        };
        assert_eq!(find_all(&store, &d, &eq3, 10), sorted_docs([0, 1]));
        assert_eq!(store.get(&d, &doc(1)).unwrap().unwrap().version, 3);
        store.check(&d).unwrap();
    }
    let found = rows(dir.path(), &d);
    let expected: BTreeMap<DocId, u64> = (0..3).map(|n| (doc(n), n)).collect();
    assert_eq!(found.by_doc, expected);
    assert_eq!(found.next_row, 3);
}

/// A dataset of docs 0..6 (doc n: eq token n % 2, word 9, range values
/// {n, n + 100}, so every doc is multi-valued), closed. Doc n is at row n;
/// row 6 is free (its doc was deleted) and below the counter, 7.
fn populated() -> (tempfile::TempDir, DatasetId) {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(1);
    let store = TestStore::open(dir.path()).unwrap();
    create(&store, d);
    let ops = (0..7u64)
        .map(|n| {
            let mut op = insert(n, (n % 2) as u8, &[9], n);
            if let fluence_proto::DocOp::Put { entries, .. } = &mut op {
                entries[2].values = fluence_proto::IndexValues::Ore(vec![ore(n), ore(n + 100)]);
            }
            op
        })
        .collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    store.apply(&batch(d, 2, vec![delete(6, 1)])).unwrap();
    let report = store.check(&d).unwrap();
    assert_eq!((report.docs, report.multi_valued), (6, 6));
    (dir, d)
}

/// Applies `tamper` to the closed dataset file, then reopens the store.
fn tampered(
    dir: &Path,
    d: &DatasetId,
    tamper: impl FnOnce(&redb::WriteTransaction, &dyn Fn(u64) -> u64),
) -> TestStore {
    {
        let db = Database::open(dataset_file(dir, d)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let ids = txn.open_table(layout::IDS).unwrap();
            let row_of: BTreeMap<u64, u64> = (0..6)
                .map(|n| (n, layout::row_of(&ids, &doc(n)).unwrap().unwrap()))
                .collect();
            drop(ids);
            tamper(&txn, &|n| row_of[&n]);
        }
        txn.commit().unwrap();
    }
    TestStore::open(dir).unwrap()
}

fn assert_corrupt(store: &TestStore, d: &DatasetId, what: &str) {
    match store.check(d) {
        Err(StoreError::Corrupt(message)) => assert!(!message.is_empty()),
        other => panic!("{what}: check answered {other:?}"),
    }
}

#[test]
fn check_holds_ids_docs_and_entries_to_each_other() {
    // `ids` points a doc at another doc's row.
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, row| {
        let mut ids = txn.open_table(layout::IDS).unwrap();
        let digest = layout::decode_id_record(ids.get(&doc(1).0[..]).unwrap().unwrap().value())
            .unwrap()
            .1;
        ids.insert(&doc(1).0[..], &layout::id_record(row(2), &digest)[..])
            .unwrap();
    });
    assert_corrupt(&store, &d, "ids pointing at another row");
    // Served through `get`, the wrong row is refused rather than returned.
    assert!(matches!(
        store.get(&d, &doc(1)),
        Err(StoreError::Corrupt(_))
    ));
    drop(store);

    // A docs record naming another document.
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, row| {
        let mut docs = txn.open_table(layout::DOCS).unwrap();
        let key = layout::row_key(row(3));
        let record = docs.get(&key[..]).unwrap().unwrap().value().to_vec();
        let (_, sealed) = layout::split_doc_record(&record).unwrap();
        docs.insert(&key[..], layout::doc_record(&doc(4), sealed).as_slice())
            .unwrap();
    });
    assert_corrupt(&store, &d, "docs record naming another doc");
    drop(store);

    // An orphan docs row (below the counter, no id leads to it).
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, row| {
        let mut docs = txn.open_table(layout::DOCS).unwrap();
        let record = docs
            .get(&layout::row_key(row(5))[..])
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        docs.insert(&layout::row_key(6)[..], record.as_slice())
            .unwrap();
    });
    assert_corrupt(&store, &d, "orphan docs row");
    drop(store);

    // A doc's record moved to a free row: same counts, but its id's row is
    // empty.
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, row| {
        let mut docs = txn.open_table(layout::DOCS).unwrap();
        let record = docs
            .remove(&layout::row_key(row(0))[..])
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        docs.insert(&layout::row_key(6)[..], record.as_slice())
            .unwrap();
    });
    assert_corrupt(&store, &d, "docs record at the wrong row");
    drop(store);

    // The same for an entries record.
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, row| {
        let mut entries = txn.open_table(layout::ENTRIES).unwrap();
        let record = entries
            .remove(&layout::row_key(row(0))[..])
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        entries
            .insert(&layout::row_key(6)[..], record.as_slice())
            .unwrap();
    });
    assert_corrupt(&store, &d, "entries record at the wrong row");
    drop(store);

    // The row counter behind the rows given (a reused row would follow).
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, _| {
        let mut meta_table = txn.open_table(layout::META).unwrap();
        let mut meta =
            Meta::decode(meta_table.get(layout::META_KEY).unwrap().unwrap().value()).unwrap();
        // Row 5 (doc 5) is at the counter, so it would be given again.
        meta.next_row = 5;
        meta_table
            .insert(layout::META_KEY, meta.encode().as_slice())
            .unwrap();
    });
    assert_corrupt(&store, &d, "row counter behind the rows");
    // A write refuses to overwrite the row the counter gives again (row 5
    // holds doc 5).
    let error = store
        .apply(&batch(d, 3, vec![insert(50, 1, &[], 1)]))
        .unwrap_err();
    assert!(
        matches!(
            error,
            fluence_store::ApplyError::Store(StoreError::Corrupt(_))
        ),
        "{error:?}"
    );
}

#[test]
fn check_holds_the_derived_tables_to_the_rows_they_name() {
    // A posting naming another document than its row holds.
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, row| {
        let mut postings = txn.open_table(layout::POSTINGS).unwrap();
        let key = layout::posting_key(&TEXT, &token(9), row(2));
        postings.insert(&key[..], &doc(3).0[..]).unwrap();
    });
    assert_corrupt(&store, &d, "posting naming another doc");
    // The query refuses to serve it (row 2's record names doc 2).
    let word = Plan::Tokens {
        index: TEXT,
        any_of: vec![token(9)],
    };
    let error = store.find(&d, &word, None, 100).unwrap_err();
    assert!(
        matches!(error, FindError::Store(StoreError::Corrupt(_))),
        "{error:?}"
    );
    drop(store);

    // A posting at a row that holds no document.
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, _| {
        let mut postings = txn.open_table(layout::POSTINGS).unwrap();
        let key = layout::posting_key(&EQ, &token(0), 99);
        postings.insert(&key[..], &doc(99).0[..]).unwrap();
    });
    assert_corrupt(&store, &d, "posting of a missing row");
    drop(store);

    // A range value with the right row but another doc id.
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, row| {
        let mut range = txn
            .open_multimap_table(layout::range_table::<PlaintextOrder>())
            .unwrap();
        let key = fluence_store::range_key(&RANGE, fluence_store::MARKER_VALUE, &ore(4));
        assert!(range
            .remove(key.as_slice(), &layout::range_value(row(4), &doc(4))[..])
            .unwrap());
        range
            .insert(key.as_slice(), &layout::range_value(row(4), &doc(1))[..])
            .unwrap();
    });
    assert_corrupt(&store, &d, "range value naming another doc");
    drop(store);

    // A multi-valued mark naming another doc.
    let (dir, d) = populated();
    let store = tampered(dir.path(), &d, |txn, row| {
        let mut multi = txn.open_table(layout::MULTI).unwrap();
        let key = layout::multi_key(&RANGE, row(0));
        multi.insert(&key[..], &doc(5).0[..]).unwrap();
        assert_eq!(multi.len().unwrap(), 6);
    });
    assert_corrupt(&store, &d, "multi mark naming another doc");
}
