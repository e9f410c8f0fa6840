//! Real files: reopening, corruption on disk, many datasets, concurrency.

mod common;

use std::cmp::Ordering;
use std::sync::Arc;

use common::*;
use fluence_proto::{OreBound, Plan};
use fluence_store::layout;
use fluence_store::{
    range_key, ApplyError, FindError, OreOrder, PlaintextOrder, Store, StoreError, MARKER_VALUE,
};
use redb::{Database, ReadableDatabase, ReadableTable};

type TestStore = Store<PlaintextOrder>;

fn dataset_file(dir: &std::path::Path, d: &fluence_proto::DatasetId) -> std::path::PathBuf {
    dir.join("datasets").join(format!("{}.redb", d.to_hex()))
}

fn range_plan(lo: u64, hi: u64) -> Plan {
    Plan::Range {
        index: RANGE,
        lower: Some(OreBound {
            ct: ore(lo),
            inclusive: true,
        }),
        upper: Some(OreBound {
            ct: ore(hi),
            inclusive: false,
        }),
    }
}

#[test]
fn reopening_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(1);
    let (info, all, ranged, proof) = {
        let store = TestStore::open(dir.path()).unwrap();
        create(&store, d);
        let ops = (0..500)
            .map(|n| insert(n, (n % 7) as u8, &[(n % 3) as u8], (n * 37) % 1000))
            .collect();
        store.apply(&batch(d, 1, ops)).unwrap();
        store
            .apply(&batch(d, 2, vec![delete(3, 1), update(4, 1, 0, &[], 5)]))
            .unwrap();
        (
            store.info(&d).unwrap(),
            find_all(&store, &d, &Plan::All, 64),
            find_all(&store, &d, &range_plan(100, 400), 64),
            store.prove(&d, &doc(10)).unwrap(),
        )
    };
    let store = TestStore::open(dir.path()).unwrap();
    assert_eq!(store.datasets(), vec![d]);
    assert_eq!(store.info(&d).unwrap(), info);
    assert_eq!(find_all(&store, &d, &Plan::All, 64), all);
    // The range index is persisted in plaintext order: no rebuild happened
    // (open read one meta record), yet seeks answer exactly as before.
    assert_eq!(find_all(&store, &d, &range_plan(100, 400), 64), ranged);
    // Doc 3 was deleted; doc 4 moved to value 5.
    let expected = sorted_docs(
        (0..500).filter(|n| *n != 3 && *n != 4 && (100..400).contains(&((n * 37) % 1000))),
    );
    assert_eq!(ranged, expected);
    assert_eq!(store.prove(&d, &doc(10)).unwrap(), proof);
    store.check(&d).unwrap();
    // Writes continue from the persisted seq.
    store
        .apply(&batch(d, 3, vec![insert(1000, 1, &[], 1)]))
        .unwrap();
    assert_eq!(store.info(&d).unwrap().doc_count, 500);
}

/// An order with another name: a file written under `PlaintextOrder`
/// must not be served under it (its range B-tree is in another order).
struct ReverseOrder;

impl OreOrder for ReverseOrder {
    const NAME: &'static str = "test-reverse";

    fn compare(a: &[u8], b: &[u8]) -> Ordering {
        b.cmp(a)
    }

    fn validate(ct: &[u8]) -> bool {
        !ct.is_empty()
    }
}

#[test]
fn a_file_is_bound_to_the_ore_order_it_was_written_with() {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(1);
    {
        let store = TestStore::open(dir.path()).unwrap();
        create(&store, d);
        store
            .apply(&batch(d, 1, vec![insert(1, 1, &[], 1)]))
            .unwrap();
    }
    let store = Store::<ReverseOrder>::open(dir.path()).unwrap();
    let error = store.find(&d, &range_plan(0, 10), None, 10).unwrap_err();
    assert!(
        matches!(error, FindError::Store(StoreError::Corrupt(_))),
        "{error:?}"
    );
    let error = store.apply(&batch(d, 2, vec![])).unwrap_err();
    assert!(
        matches!(error, ApplyError::Store(StoreError::Corrupt(_))),
        "{error:?}"
    );
}

#[test]
fn a_corrupted_document_record_is_reported_not_panicked_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(1);
    {
        let store = TestStore::open(dir.path()).unwrap();
        create(&store, d);
        store
            .apply(&batch(
                d,
                1,
                (0..10).map(|n| insert(n, 1, &[], n)).collect(),
            ))
            .unwrap();
    }
    // Overwrite doc 3's record and doc 4's entries through redb itself
    // (each at the row `ids` gives the document).
    {
        let db = Database::open(dataset_file(dir.path(), &d)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let ids = txn.open_table(layout::IDS).unwrap();
            let row = |n| layout::row_key(layout::row_of(&ids, &doc(n)).unwrap().unwrap());
            let mut docs = txn.open_table(layout::DOCS).unwrap();
            docs.insert(&row(3)[..], &[0xff, 0xff, 0xff][..]).unwrap();
            let mut entries = txn.open_table(layout::ENTRIES).unwrap();
            entries
                .insert(&row(4)[..], &[1, 2, 3, 4, 5, 6][..])
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = TestStore::open(dir.path()).unwrap();
    assert!(matches!(
        store.get(&d, &doc(3)),
        Err(StoreError::Corrupt(_))
    ));
    let error = store
        .find(&d, &Plan::Ids(vec![doc(3)]), None, 10)
        .unwrap_err();
    assert!(matches!(error, FindError::Store(StoreError::Corrupt(_))));
    assert!(matches!(
        error.to_node_error(),
        fluence_proto::NodeError::Corrupt(_)
    ));
    assert!(matches!(store.check(&d), Err(StoreError::Corrupt(_))));
    // Updating a doc whose entries are undecodable fails cleanly and
    // changes nothing.
    let error = store
        .apply(&batch(d, 2, vec![update(4, 1, 1, &[], 4)]))
        .unwrap_err();
    assert!(
        matches!(error, ApplyError::Store(StoreError::Corrupt(_))),
        "{error:?}"
    );
    // A doc's version is read from the first 8 bytes: a 3-byte record is
    // corrupt for writes too.
    let error = store.apply(&batch(d, 2, vec![delete(3, 1)])).unwrap_err();
    assert!(
        matches!(error, ApplyError::Store(StoreError::Corrupt(_))),
        "{error:?}"
    );
    assert_eq!(store.info(&d).unwrap().seq, 1);
    // Untouched docs are still served.
    let page = store.find(&d, &Plan::Ids(vec![doc(5)]), None, 10).unwrap();
    assert_eq!(page.docs.len(), 1);
}

#[test]
fn malformed_range_keys_on_disk_do_not_panic_the_comparator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(1);
    {
        let store = TestStore::open(dir.path()).unwrap();
        create(&store, d);
        store
            .apply(&batch(
                d,
                1,
                (0..50).map(|n| insert(n, 1, &[], n)).collect(),
            ))
            .unwrap();
    }
    {
        let db = Database::open(dataset_file(dir.path(), &d)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut range = txn
                .open_multimap_table(layout::range_table::<PlaintextOrder>())
                .unwrap();
            for garbage in [&[][..], &[1, 2, 3][..], &[0x4a; 40][..]] {
                range
                    .insert(garbage, &layout::range_value(1, &doc(1))[..])
                    .unwrap();
            }
            // A value key with an empty ciphertext (refused on ingress).
            let empty_ct = range_key(&RANGE, MARKER_VALUE, &[]);
            range
                .insert(empty_ct.as_slice(), &layout::range_value(2, &doc(2))[..])
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = TestStore::open(dir.path()).unwrap();
    // Malformed keys sort before every index: seeks are unaffected.
    assert_eq!(
        find_all(&store, &d, &range_plan(10, 20), 5),
        sorted_docs(10..20)
    );
    assert!(matches!(store.check(&d), Err(StoreError::Corrupt(_))));
}

#[test]
fn leftovers_of_a_crashed_create_are_removed_and_foreign_files_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let datasets = dir.path().join("datasets");
    std::fs::create_dir_all(&datasets).unwrap();
    let leftover = datasets.join(format!("{}.creating", dataset(1).to_hex()));
    std::fs::write(&leftover, b"half a database").unwrap();
    let foreign = datasets.join("README.txt");
    std::fs::write(&foreign, b"not ours").unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    assert!(!leftover.exists());
    assert!(foreign.exists());
    assert!(store.datasets().is_empty());
    create(&store, dataset(1));
}

#[test]
fn a_file_holding_another_dataset_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = TestStore::open(dir.path()).unwrap();
        create(&store, dataset(1));
    }
    std::fs::rename(
        dataset_file(dir.path(), &dataset(1)),
        dataset_file(dir.path(), &dataset(2)),
    )
    .unwrap();
    assert!(matches!(
        TestStore::open(dir.path()),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn many_datasets_in_one_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = TestStore::open(dir.path()).unwrap();
        for n in 0..40u8 {
            let d = dataset(n);
            store.apply(&create_write(d, owner(n % 3))).unwrap();
            store
                .apply(&batch(
                    d,
                    1,
                    (0..u64::from(n)).map(|i| insert(i, n, &[], i)).collect(),
                ))
                .unwrap();
        }
    }
    let store = TestStore::open(dir.path()).unwrap();
    assert_eq!(store.datasets().len(), 40);
    for o in 0..3u8 {
        let listed: Vec<_> = store
            .list(&owner(o))
            .unwrap()
            .into_iter()
            .map(|s| s.dataset)
            .collect();
        let expected: Vec<_> = (0..40u8).filter(|n| n % 3 == o).map(dataset).collect();
        assert_eq!(listed, expected);
    }
    assert!(store.list(&owner(9)).unwrap().is_empty());
    for n in 0..40u8 {
        let d = dataset(n);
        assert_eq!(store.info(&d).unwrap().doc_count, u64::from(n));
        let eq = Plan::Tokens {
            index: EQ,
            any_of: vec![token(n)],
        };
        assert_eq!(find_all(&store, &d, &eq, 7), sorted_docs(0..u64::from(n)));
    }
}

#[test]
fn concurrent_writers_and_readers_share_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(TestStore::open(dir.path()).unwrap());
    for n in 0..4u8 {
        create(&store, dataset(n));
    }
    let mut handles = Vec::new();
    for n in 0..4u8 {
        let writer = Arc::clone(&store);
        handles.push(std::thread::spawn(move || {
            let store = writer;
            let d = dataset(n);
            for seq in 1..=10u64 {
                store
                    .apply(&batch(d, seq, vec![insert(seq, 1, &[], seq)]))
                    .unwrap();
            }
        }));
        let reader = Arc::clone(&store);
        handles.push(std::thread::spawn(move || {
            let store = reader;
            let d = dataset(n);
            // Readers see a consistent snapshot: the count matches the docs.
            for _ in 0..20 {
                let docs = find_all(&store, &d, &Plan::All, 3);
                assert!(docs.len() <= 10);
            }
        }));
    }
    for handle in handles {
        handle.join().unwrap();
    }
    // Two writers racing on one dataset with the same seq: exactly one wins.
    let racers: Vec<_> = (0..2u64)
        .map(|i| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                store
                    .apply(&batch(dataset(0), 11, vec![insert(100 + i, 1, &[], 1)]))
                    .is_ok()
            })
        })
        .collect();
    let wins = racers
        .into_iter()
        .map(|r| r.join().unwrap())
        .filter(|won| *won)
        .count();
    assert_eq!(wins, 1);
    for n in 0..4u8 {
        let info = store.info(&dataset(n)).unwrap();
        assert_eq!(info.seq, if n == 0 { 11 } else { 10 });
        assert_eq!(info.doc_count, if n == 0 { 11 } else { 10 });
        store.check(&dataset(n)).unwrap();
    }
}

/// `{f: {$gte: lo, $lt: hi}}` as the client sends it: two half-open ranges.
fn and_plan(lo: u64, hi: u64) -> Plan {
    Plan::And(vec![
        Plan::Range {
            index: RANGE,
            lower: Some(OreBound {
                ct: ore(lo),
                inclusive: true,
            }),
            upper: None,
        },
        Plan::Range {
            index: RANGE,
            lower: None,
            upper: Some(OreBound {
                ct: ore(hi),
                inclusive: false,
            }),
        },
    ])
}

fn put_values(n: u64, values: &[u64]) -> fluence_proto::DocOp {
    fluence_proto::DocOp::Put {
        doc: doc(n),
        expect: fluence_proto::Precondition::Absent,
        sealed: sealed(1, b"array"),
        entries: vec![fluence_proto::IndexEntry {
            index: RANGE,
            values: fluence_proto::IndexValues::Ore(values.iter().map(|v| ore(*v)).collect()),
        }],
    }
}

#[test]
fn multi_valued_marks_are_persisted_not_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(1);
    let expected = sorted_docs([1, 3]);
    {
        let store = TestStore::open(dir.path()).unwrap();
        create(&store, d);
        // Doc 1 matches `$gte 10, $lt 20` only through two values (25 ≥ 10,
        // 5 < 20); doc 2 holds two values below 10; doc 3 one value inside.
        let ops = vec![
            put_values(1, &[5, 25]),
            put_values(2, &[1, 2]),
            put_values(3, &[15]),
            put_values(4, &[30]),
        ];
        store.apply(&batch(d, 1, ops)).unwrap();
        assert_eq!(find_all(&store, &d, &and_plan(10, 20), 1), expected);
        assert_eq!(store.check(&d).unwrap().multi_valued, 2);
    }
    let marks = |db: &Database| -> usize {
        let txn = db.begin_read().unwrap();
        txn.open_table(layout::MULTI)
            .unwrap()
            .iter()
            .unwrap()
            .count()
    };
    // The marks are on disk ...
    let db = Database::open(dataset_file(dir.path(), &d)).unwrap();
    assert_eq!(marks(&db), 2);
    drop(db);
    // ... and a reopened store answers from them.
    let store = TestStore::open(dir.path()).unwrap();
    assert_eq!(find_all(&store, &d, &and_plan(10, 20), 1), expected);
    store.check(&d).unwrap();
    drop(store);
    // Proof that it reads them rather than rescanning: with the marks gone
    // (only reachable by tampering), doc 1 is no longer found and `check`
    // reports the damage.
    let db = Database::open(dataset_file(dir.path(), &d)).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(layout::MULTI)
        .unwrap()
        .retain(|_, _| false)
        .unwrap();
    txn.commit().unwrap();
    drop(db);
    let store = TestStore::open(dir.path()).unwrap();
    assert_eq!(find_all(&store, &d, &and_plan(10, 20), 1), sorted_docs([3]));
    assert!(matches!(store.check(&d), Err(StoreError::Corrupt(_))));
}

/// Rewrites the version field (the first of the meta record, u16 LE) of
/// dataset `d`'s file, running `more` in the same transaction.
fn set_format_version(
    dir: &std::path::Path,
    d: &fluence_proto::DatasetId,
    version: u16,
    more: impl FnOnce(&redb::WriteTransaction),
) {
    let db = Database::open(dataset_file(dir, d)).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(layout::META).unwrap();
        let mut bytes = meta
            .get(layout::META_KEY)
            .unwrap()
            .unwrap()
            .value()
            .to_vec();
        bytes[..2].copy_from_slice(&version.to_le_bytes());
        meta.insert(layout::META_KEY, bytes.as_slice()).unwrap();
    }
    more(&txn);
    txn.commit().unwrap();
}

fn format_version(dir: &std::path::Path, d: &fluence_proto::DatasetId) -> u16 {
    let db = Database::open(dataset_file(dir, d)).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(layout::META).unwrap();
    let bytes = meta
        .get(layout::META_KEY)
        .unwrap()
        .unwrap()
        .value()
        .to_vec();
    u16::from_le_bytes([bytes[0], bytes[1]])
}

#[test]
fn files_of_older_format_versions_are_refused_at_open() {
    // Version 1 files have no `multi` table; version 2 files key documents
    // by doc id; version 3 files lack unique flags. None is misread: open
    // refuses them by their version.
    for old in [1u16, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let d = dataset(1);
        {
            let store = TestStore::open(dir.path()).unwrap();
            create(&store, d);
        }
        set_format_version(dir.path(), &d, old, |txn| {
            if old == 1 {
                txn.delete_table(layout::MULTI).unwrap();
            }
        });
        let error = TestStore::open(dir.path()).err().expect("refused");
        assert!(
            matches!(
                error,
                StoreError::UnsupportedFormat {
                    found,
                    supported: layout::FORMAT_VERSION
                } if found == old
            ),
            "{error:?}"
        );
    }
    assert_eq!(layout::FORMAT_VERSION, 5);
}

#[test]
fn a_version_4_file_is_read_and_upgraded_by_its_first_write() {
    // Version 4 stored the Merkle tree's nodes in a `merkle` table; version
    // 5 rebuilds them in memory. A version-4 file serves as it is, and its
    // first write drops the table and marks the file version 5.
    let dir = tempfile::tempdir().unwrap();
    let d = dataset(1);
    let (info, proof) = {
        let store = TestStore::open(dir.path()).unwrap();
        create(&store, d);
        let ops = (0..300).map(|n| insert(n, (n % 5) as u8, &[], n)).collect();
        store.apply(&batch(d, 1, ops)).unwrap();
        (store.info(&d).unwrap(), store.prove(&d, &doc(7)).unwrap())
    };
    set_format_version(dir.path(), &d, 4, |txn| {
        // What a version-4 build left: node hashes by heap index. Their
        // values do not matter to version 5, which never reads them.
        let mut legacy = txn.open_table(layout::LEGACY_MERKLE).unwrap();
        legacy.insert(1u32, &[0xab; 32][..]).unwrap();
    });
    {
        let store = TestStore::open(dir.path()).unwrap();
        assert_eq!(store.info(&d).unwrap(), info);
        assert_eq!(store.prove(&d, &doc(7)).unwrap(), proof);
        store.check(&d).unwrap();
    }
    assert_eq!(format_version(dir.path(), &d), 4, "reads change nothing");
    {
        let store = TestStore::open(dir.path()).unwrap();
        store
            .apply(&batch(d, 2, vec![insert(1000, 1, &[], 1)]))
            .unwrap();
        store.check(&d).unwrap();
    }
    assert_eq!(format_version(dir.path(), &d), 5);
    let db = Database::open(dataset_file(dir.path(), &d)).unwrap();
    let txn = db.begin_read().unwrap();
    assert!(
        txn.open_table(layout::LEGACY_MERKLE).is_err(),
        "the legacy tree table is dropped by the first write"
    );
}
