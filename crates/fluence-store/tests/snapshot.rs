//! Snapshots: a dataset exported page by page and imported into another
//! store is the same dataset (state root, queries, later writes), and an
//! import that does not hash to its claimed root leaves nothing behind.

mod common;

use common::*;
use fluence_proto::{DatasetId, Hash32, IndexValues, Plan, SnapshotDoc};
use fluence_store::{ApplyError, Snapshot, IMPORTING_FILE_EXT};

/// A dataset with 300 documents, some updated, some deleted.
fn populated() -> (tempfile::TempDir, TestStore, DatasetId) {
    let (dir, store) = open();
    let d = dataset(1);
    create(&store, d);
    let ops = (0..300)
        .map(|n| insert(n, (n % 7) as u8, &[1, 2], n * 3))
        .collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    let mut ops: Vec<_> = (0..50).map(|n| update(n, 1, 9, &[3], 1000 + n)).collect();
    ops.extend((250..300).map(|n| delete(n, 1)));
    store.apply(&batch(d, 2, ops)).unwrap();
    (dir, store, d)
}

/// Every page of `snapshot`, at most `bytes_max` bytes each.
fn pages(snapshot: &Snapshot, bytes_max: usize) -> Vec<Vec<SnapshotDoc>> {
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..10_000 {
        let page = snapshot.docs(after, bytes_max).unwrap();
        after = page.docs.last().map(|d| d.doc).or(after);
        out.push(page.docs);
        if page.done {
            return out;
        }
    }
    panic!("snapshot paging did not finish");
}

#[test]
fn an_imported_snapshot_is_the_same_dataset() {
    let (_dir, source, d) = populated();
    let snapshot = source.snapshot(&d).unwrap();
    let header = snapshot.header();
    assert_eq!((header.info.seq, header.info.doc_count), (2, 250));
    let pages = pages(&snapshot, 10 * 1024);
    assert!(pages.len() > 3, "small pages: {} of them", pages.len());
    assert_eq!(pages.iter().map(Vec::len).sum::<usize>(), 250);

    let (_dir2, target) = open();
    let mut import = target.import(header.clone()).unwrap();
    for page in &pages {
        import.add(page).unwrap();
    }
    let applied = import.finish().unwrap();
    assert_eq!(
        (applied.seq, applied.state_root),
        (2, header.info.state_root)
    );

    let info = target.info(&d).unwrap();
    let original = source.info(&d).unwrap();
    assert_eq!(info, original);
    let report = target.check(&d).unwrap();
    assert_eq!(report.journal_entries, 0);
    for plan in [
        Plan::All,
        Plan::Tokens {
            index: EQ,
            any_of: vec![token(9)],
        },
        Plan::Range {
            index: RANGE,
            lower: Some(fluence_proto::OreBound {
                ct: ore(100),
                inclusive: true,
            }),
            upper: Some(fluence_proto::OreBound {
                ct: ore(600),
                inclusive: false,
            }),
        },
    ] {
        assert_eq!(
            find_all(&target, &d, &plan, 64),
            find_all(&source, &d, &plan, 64),
            "{plan:?}"
        );
    }

    // Both take the next write and stay equal; the journal starts there.
    let next = batch(
        d,
        3,
        vec![insert(1000, 1, &[], 5), update(60, 1, 2, &[], 7)],
    );
    let a = source.apply(&next).unwrap();
    let b = target.apply(&next).unwrap();
    assert_eq!(a, b);
    assert_eq!(target.check(&d).unwrap().journal_entries, 1);
    let journal = target.journal(&d, 0, 100).unwrap();
    assert_eq!(journal.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);

    // And the import survives a restart.
    drop(target);
    let reopened = TestStore::open(_dir2.path()).unwrap();
    assert_eq!(reopened.info(&d).unwrap().state_root, b.state_root);
    reopened.check(&d).unwrap();
}

#[test]
fn every_page_size_serves_every_document_once() {
    let (_dir, store) = open();
    let d = dataset(2);
    create(&store, d);
    let ops = (0..7).map(|n| insert(n, n as u8, &[1], n)).collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    let snapshot = store.snapshot(&d).unwrap();
    let all = pages(&snapshot, usize::MAX).concat();
    assert_eq!(all.len(), 7);
    // Every page limit, so that some page boundary falls just before the
    // last document.
    for bytes_max in 1..4096 {
        assert_eq!(
            pages(&snapshot, bytes_max).concat(),
            all,
            "bytes_max {bytes_max}"
        );
    }
}

#[test]
fn a_snapshot_does_not_see_later_writes() {
    let (_dir, store, d) = populated();
    let snapshot = store.snapshot(&d).unwrap();
    store
        .apply(&batch(d, 3, vec![insert(5000, 1, &[], 1), delete(100, 1)]))
        .unwrap();
    let docs: Vec<_> = pages(&snapshot, usize::MAX).concat();
    assert_eq!(docs.len(), 250);
    assert!(docs.iter().any(|e| e.doc == doc(100)));
    assert!(!docs.iter().any(|e| e.doc == doc(5000)));
}

#[test]
fn a_tampered_snapshot_is_refused_and_leaves_nothing() {
    let (_dir, source, d) = populated();
    let snapshot = source.snapshot(&d).unwrap();
    let header = snapshot.header();
    let docs: Vec<_> = pages(&snapshot, usize::MAX).concat();

    let tamperings: Vec<Box<dyn Fn(&mut Vec<SnapshotDoc>)>> = vec![
        Box::new(|docs| docs[10].sealed.ciphertext[0] ^= 1),
        Box::new(|docs| docs[20].sealed.version += 1),
        Box::new(|docs| {
            if let IndexValues::Tokens(tokens) = &mut docs[30].entries[0].values {
                tokens[0] = token(200);
            }
        }),
        Box::new(|docs| {
            docs.remove(40);
        }),
    ];
    let (dir2, target) = open();
    for tamper in tamperings {
        let mut docs = docs.clone();
        tamper(&mut docs);
        let mut header = header.clone();
        header.info.doc_count = docs.len() as u64;
        let mut import = target.import(header).unwrap();
        import.add(&docs).unwrap();
        match import.finish() {
            Err(ApplyError::BadWrite(message)) => {
                assert!(message.contains("state root"), "{message}")
            }
            other => panic!("expected a root mismatch, got {other:?}"),
        }
        assert!(target.info(&d).is_err());
    }
    // A wrong count is refused before any hashing.
    let mut header_wrong_count = header.clone();
    header_wrong_count.info.doc_count += 1;
    let mut import = target.import(header_wrong_count).unwrap();
    import.add(&docs).unwrap();
    assert!(matches!(import.finish(), Err(ApplyError::BadWrite(_))));
    // A header claiming another root.
    let mut header_wrong_root = header.clone();
    header_wrong_root.info.state_root = Hash32([7; 32]);
    let mut import = target.import(header_wrong_root).unwrap();
    import.add(&docs).unwrap();
    assert!(import.finish().is_err());

    let leftovers: Vec<_> = std::fs::read_dir(dir2.path().join("datasets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The untampered snapshot still imports.
    let mut import = target.import(header.clone()).unwrap();
    import.add(&docs).unwrap();
    assert_eq!(import.finish().unwrap().state_root, header.info.state_root);
}

#[test]
fn pages_out_of_order_or_repeated_are_refused_without_changing_anything() {
    let (_dir, source, d) = populated();
    let snapshot = source.snapshot(&d).unwrap();
    let docs: Vec<_> = pages(&snapshot, usize::MAX).concat();
    let (_dir2, target) = open();
    let mut import = target.import(snapshot.header()).unwrap();
    import.add(&docs[..100]).unwrap();
    // Repeats the last document of the previous page.
    assert!(matches!(
        import.add(&docs[99..150]),
        Err(ApplyError::BadWrite(_))
    ));
    // Out of order inside a page.
    let mut swapped = docs[100..150].to_vec();
    swapped.swap(3, 4);
    assert!(matches!(import.add(&swapped), Err(ApplyError::BadWrite(_))));
    // An undeclared index.
    let mut bad_entry = docs[100..150].to_vec();
    bad_entry[0].entries[0].index = fluence_proto::IndexId([0x99; 16]);
    assert!(matches!(
        import.add(&bad_entry),
        Err(ApplyError::BadWrite(_))
    ));
    // The refusals changed nothing: the rest completes the same dataset.
    import.add(&docs[100..]).unwrap();
    assert_eq!(
        import.finish().unwrap().state_root,
        source.info(&d).unwrap().state_root
    );
}

#[test]
fn an_existing_dataset_is_not_imported_over_and_an_unfinished_import_is_removed() {
    let (_dir, source, d) = populated();
    let snapshot = source.snapshot(&d).unwrap();
    assert!(matches!(
        source.import(snapshot.header()),
        Err(ApplyError::DatasetExists)
    ));

    let (dir2, target) = open();
    let mut import = target.import(snapshot.header()).unwrap();
    import
        .add(&snapshot.docs(None, 4096).unwrap().docs)
        .unwrap();
    let importing = dir2
        .path()
        .join("datasets")
        .join(format!("{}.{IMPORTING_FILE_EXT}", d.to_hex()));
    assert!(importing.exists());
    // A crash mid-import: the file stays until the next open removes it.
    std::mem::forget(import);
    drop(target);
    let reopened = TestStore::open(dir2.path()).unwrap();
    assert!(!importing.exists());
    assert!(reopened.info(&d).is_err());
}

#[test]
fn a_discarded_dataset_is_gone_for_good_and_can_be_imported_again() {
    let (dir, store, d) = populated();
    let snapshot = store.snapshot(&d).unwrap();
    let header = snapshot.header();
    let docs = pages(&snapshot, usize::MAX);
    drop(snapshot);
    store.discard(&d).unwrap();
    // Absent now, and discarding again is not an error.
    assert!(store.info(&d).is_err());
    store.discard(&d).unwrap();
    drop(store);
    let store = TestStore::open(dir.path()).unwrap();
    assert!(store.info(&d).is_err(), "the discard is durable");
    let mut import = store.import(header.clone()).unwrap();
    for page in &docs {
        import.add(page).unwrap();
    }
    import.finish().unwrap();
    assert_eq!(store.info(&d).unwrap().state_root, header.info.state_root);
}
