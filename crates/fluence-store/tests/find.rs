//! Queries: every plan kind, paging, bounds, posting maintenance and plan
//! validation.

mod common;

use std::collections::BTreeMap;

use common::*;
use fluence_proto::{DocId, DocOp, IndexEntry, IndexValues, OreBound, Plan, Precondition};
use fluence_store::{FindError, PlaintextOrder, Store, PAGE_BYTES_MAX};

type TestStore = Store<PlaintextOrder>;

/// A dataset of docs 0..40: eq token `n % 4`, text words `{n % 5, 100 + n % 2}`,
/// range value `n * 10`.
fn fixture() -> (tempfile::TempDir, TestStore, fluence_proto::DatasetId) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    let ops = (0..40)
        .map(|n| {
            insert(
                n,
                (n % 4) as u8,
                &[(n % 5) as u8, 100 + (n % 2) as u8],
                n * 10,
            )
        })
        .collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    (dir, store, d)
}

fn tokens(index: fluence_proto::IndexId, any_of: &[u8]) -> Plan {
    Plan::Tokens {
        index,
        any_of: any_of.iter().map(|t| token(*t)).collect(),
    }
}

fn bound(value: u64, inclusive: bool) -> Option<OreBound> {
    Some(OreBound {
        ct: ore(value),
        inclusive,
    })
}

fn range(lower: Option<OreBound>, upper: Option<OreBound>) -> Plan {
    Plan::Range {
        index: RANGE,
        lower,
        upper,
    }
}

#[test]
fn all_pages_through_every_doc_in_doc_id_order() {
    let (_dir, store, d) = fixture();
    for page in [1, 3, 7, 40, 1000] {
        assert_eq!(
            find_all(&store, &d, &Plan::All, page),
            sorted_docs(0..40),
            "page {page}"
        );
    }
    let first = store.find(&d, &Plan::All, None, 5).unwrap();
    assert_eq!(first.docs.len(), 5);
    assert_eq!(first.next, Some(first.docs[4].doc));
    // The served documents are the stored ones.
    for entry in &first.docs {
        assert_eq!(
            store.get(&d, &entry.doc).unwrap().as_ref(),
            Some(&entry.sealed)
        );
    }
    // Last page: exactly the remainder, then no cursor.
    let all = sorted_docs(0..40);
    let last = store.find(&d, &Plan::All, Some(all[35]), 4).unwrap();
    assert_eq!(last.docs.len(), 4);
    assert_eq!(last.next, None);
}

#[test]
fn ids_return_existing_docs_only() {
    let (_dir, store, d) = fixture();
    let plan = Plan::Ids(vec![doc(3), doc(1000), doc(3), doc(7), doc(39)]);
    assert_eq!(find_all(&store, &d, &plan, 1), sorted_docs([3, 7, 39]));
    assert!(find_all(&store, &d, &Plan::Ids(vec![]), 10).is_empty());
}

#[test]
fn tokens_are_a_union_of_postings() {
    let (_dir, store, d) = fixture();
    assert_eq!(
        find_all(&store, &d, &tokens(EQ, &[1]), 2),
        sorted_docs((0..40).filter(|n| n % 4 == 1))
    );
    assert_eq!(
        find_all(&store, &d, &tokens(EQ, &[1, 3, 1, 77]), 3),
        sorted_docs((0..40).filter(|n| n % 4 == 1 || n % 4 == 3))
    );
    assert_eq!(
        find_all(&store, &d, &tokens(TEXT, &[2, 101]), 4),
        sorted_docs((0..40).filter(|n| n % 5 == 2 || n % 2 == 1))
    );
    assert!(find_all(&store, &d, &tokens(TEXT, &[200]), 4).is_empty());
}

#[test]
fn range_bounds_inclusive_exclusive_and_open() {
    let (_dir, store, d) = fixture();
    let values = |lo: u64, hi: u64| sorted_docs((0..40).filter(|n| (lo..=hi).contains(&(n * 10))));
    let cases = [
        (bound(100, true), bound(200, true), values(100, 200)),
        (bound(100, false), bound(200, true), values(101, 200)),
        (bound(100, true), bound(200, false), values(100, 199)),
        (bound(100, false), bound(200, false), values(101, 199)),
        (bound(105, true), bound(125, true), values(105, 125)),
        (None, bound(50, true), values(0, 50)),
        (bound(350, false), None, values(351, 1000)),
        (None, None, values(0, 1000)),
        (bound(200, true), bound(200, true), values(200, 200)),
        (bound(200, false), bound(200, true), vec![]),
        (bound(300, true), bound(100, true), vec![]),
        (bound(1000, true), None, vec![]),
    ];
    for (lower, upper, expected) in cases {
        let plan = range(lower.clone(), upper.clone());
        assert_eq!(
            find_all(&store, &d, &plan, 3),
            expected,
            "{lower:?}..{upper:?}"
        );
    }
}

#[test]
fn and_intersects_and_or_unites() {
    let (_dir, store, d) = fixture();
    let expect = |f: &dyn Fn(u64) -> bool| sorted_docs((0..40).filter(|n| f(*n)));
    let and = Plan::And(vec![
        tokens(EQ, &[0]),
        range(bound(100, true), None),
        Plan::All,
    ]);
    assert_eq!(
        find_all(&store, &d, &and, 2),
        expect(&|n| n % 4 == 0 && n >= 10)
    );
    let or = Plan::Or(vec![tokens(EQ, &[0]), range(None, bound(30, true))]);
    assert_eq!(
        find_all(&store, &d, &or, 2),
        expect(&|n| n % 4 == 0 || n <= 3)
    );
    let nested = Plan::And(vec![
        Plan::Or(vec![tokens(TEXT, &[1]), tokens(TEXT, &[2])]),
        Plan::Or(vec![
            range(None, bound(150, false)),
            Plan::Ids(vec![doc(37), doc(36)]),
        ]),
        tokens(TEXT, &[101]),
    ]);
    assert_eq!(
        find_all(&store, &d, &nested, 3),
        expect(&|n| (n % 5 == 1 || n % 5 == 2) && (n < 15 || n == 37 || n == 36) && n % 2 == 1)
    );
    // Identities: And of nothing is everything, Or of nothing is nothing,
    // an All child makes an Or everything and is ignored by an And.
    assert_eq!(
        find_all(&store, &d, &Plan::And(vec![]), 50),
        sorted_docs(0..40)
    );
    assert!(find_all(&store, &d, &Plan::Or(vec![]), 50).is_empty());
    assert_eq!(
        find_all(&store, &d, &Plan::Or(vec![tokens(EQ, &[9]), Plan::All]), 50),
        sorted_docs(0..40)
    );
    assert_eq!(
        find_all(&store, &d, &Plan::And(vec![Plan::All, Plan::All]), 50),
        sorted_docs(0..40)
    );
    let empty_and = Plan::And(vec![tokens(EQ, &[0]), Plan::Ids(vec![])]);
    assert!(find_all(&store, &d, &empty_and, 50).is_empty());
    // Range driving an And (a range smaller than the token set).
    let and_range = Plan::And(vec![
        tokens(TEXT, &[100, 101]),
        range(bound(50, true), bound(70, true)),
    ]);
    assert_eq!(
        find_all(&store, &d, &and_range, 1),
        expect(&|n| (5..=7).contains(&n))
    );
}

#[test]
fn an_update_replaces_postings_and_a_delete_removes_them() {
    let (_dir, store, d) = fixture();
    // Doc 0: eq 0, text {0, 100}, value 0. Move it to eq 9, text {55}, 999.
    store
        .apply(&batch(d, 2, vec![update(0, 1, 9, &[55], 999)]))
        .unwrap();
    let has_doc0 = |plan: &Plan| find_all(&store, &d, plan, 100).contains(&doc(0));
    assert!(!has_doc0(&tokens(EQ, &[0])));
    assert!(!has_doc0(&tokens(TEXT, &[0, 100])));
    assert!(!has_doc0(&range(None, bound(0, true))));
    assert!(has_doc0(&tokens(EQ, &[9])));
    assert!(has_doc0(&tokens(TEXT, &[55])));
    assert!(has_doc0(&range(bound(999, true), bound(999, true))));
    // As an And filter too (membership is checked through the entries).
    assert!(!has_doc0(&Plan::And(vec![
        Plan::Ids(vec![doc(0)]),
        range(None, bound(0, true))
    ])));
    assert!(has_doc0(&Plan::And(vec![
        Plan::Ids(vec![doc(0)]),
        range(bound(990, true), None)
    ])));

    store
        .apply(&batch(d, 3, vec![delete(0, 2), delete(4, 1)]))
        .unwrap();
    for plan in [
        Plan::All,
        tokens(EQ, &[9, 0]),
        tokens(TEXT, &[55, 4, 100]),
        range(None, None),
        Plan::Ids(vec![doc(0), doc(4)]),
    ] {
        let found = find_all(&store, &d, &plan, 100);
        assert!(
            !found.contains(&doc(0)) && !found.contains(&doc(4)),
            "{plan:?}"
        );
    }
    assert_eq!(store.info(&d).unwrap().doc_count, 38);
    store.check(&d).unwrap();
}

#[test]
fn a_doc_with_several_range_values_matches_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    let op = DocOp::Put {
        doc: doc(1),
        expect: Precondition::Absent,
        sealed: sealed(1, b"array"),
        entries: vec![IndexEntry {
            index: RANGE,
            values: IndexValues::Ore(vec![ore(5), ore(7), ore(9), ore(7)]),
        }],
    };
    store.apply(&batch(d, 1, vec![op])).unwrap();
    assert_eq!(
        find_all(&store, &d, &range(bound(6, true), None), 10),
        vec![doc(1)]
    );
    assert_eq!(
        find_all(&store, &d, &range(bound(6, true), bound(6, true)), 10),
        vec![]
    );
    assert_eq!(find_all(&store, &d, &range(None, None), 1), vec![doc(1)]);
}

#[test]
fn big_range_results_are_windowed_and_still_complete() {
    // More matches than one range window (RANGE_CHUNK_DOCS_MAX) forces
    // rescans; pages must still be complete and ordered.
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    let n_docs = fluence_store::RANGE_CHUNK_DOCS_MAX as u64 + 500;
    let ops = (0..n_docs).map(|n| insert(n, 0, &[], n % 1000)).collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    let plan = range(bound(1, true), None);
    let expected = sorted_docs((0..n_docs).filter(|n| n % 1000 >= 1));
    // Pages larger than the window consume it within one query, and an
    // And driven by the range re-scans it too.
    for page in [3000, 10_000] {
        assert_eq!(find_all(&store, &d, &plan, page), expected, "page {page}");
    }
    let one_page = store.find(&d, &plan, None, 10_000).unwrap();
    assert_eq!(one_page.docs.len(), expected.len());
    assert_eq!(one_page.next, None);
    let and = Plan::And(vec![plan.clone(), Plan::All]);
    assert_eq!(find_all(&store, &d, &and, 10_000), expected);
}

#[test]
fn big_token_and_multi_valued_results_are_windowed_and_still_complete() {
    // Postings and `multi` marks are in row (insertion) order, so token and
    // multi-valued leaves answer from a window of RANGE_CHUNK_DOCS_MAX doc
    // ids; more matches than that force rescans. Doc n holds words
    // {n % 3, 7} (7: in every doc, duplicated by the union below) and
    // range values {n, n + 5000}: every doc is multi-valued, and the And of
    // `>= 5000` and `< 100` matches doc n < 100 only through two values.
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    let n_docs = fluence_store::RANGE_CHUNK_DOCS_MAX as u64 + 700;
    let ops = (0..n_docs)
        .map(|n| DocOp::Put {
            doc: doc(n),
            expect: Precondition::Absent,
            sealed: sealed(1, b"x"),
            entries: vec![
                IndexEntry {
                    index: TEXT,
                    values: IndexValues::Tokens(vec![token((n % 3) as u8), token(7)]),
                },
                IndexEntry {
                    index: RANGE,
                    values: IndexValues::Ore(vec![ore(n), ore(n + 5000)]),
                },
            ],
        })
        .collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    let every = sorted_docs(0..n_docs);
    let union = tokens(TEXT, &[7, 0, 1]);
    let one = tokens(TEXT, &[1]);
    for page in [1000, 3000, 10_000] {
        assert_eq!(find_all(&store, &d, &union, page), every, "page {page}");
        assert_eq!(
            find_all(&store, &d, &one, page),
            sorted_docs((0..n_docs).filter(|n| n % 3 == 1)),
            "page {page}"
        );
    }
    let meet = Plan::And(vec![
        range(bound(5000, true), None),
        range(None, bound(100, false)),
    ]);
    assert_eq!(find_all(&store, &d, &meet, 10_000), sorted_docs(0..100));
    // A driver whose window is rescanned while an And filters it.
    let and = Plan::And(vec![union, tokens(TEXT, &[2])]);
    assert_eq!(
        find_all(&store, &d, &and, 10_000),
        sorted_docs((0..n_docs).filter(|n| n % 3 == 2))
    );
}

#[test]
fn pages_stop_at_the_byte_budget() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    // Three docs of 7 MiB: two fit under 16 MiB, the third goes on page 2.
    let body = vec![0x5a; 7 * 1024 * 1024];
    let ops = (0..3)
        .map(|n| DocOp::Put {
            doc: doc(n),
            expect: Precondition::Absent,
            sealed: sealed(1, &body),
            entries: vec![],
        })
        .collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    let first = store.find(&d, &Plan::All, None, 100).unwrap();
    assert_eq!(first.docs.len(), 2);
    let bytes: usize = first.docs.iter().map(|e| e.sealed.ciphertext.len()).sum();
    assert!(bytes <= PAGE_BYTES_MAX);
    let second = store.find(&d, &Plan::All, first.next, 100).unwrap();
    assert_eq!(second.docs.len(), 1);
    assert_eq!(second.next, None);
}

#[test]
fn plans_that_do_not_fit_the_dataset_are_refused() {
    let (_dir, store, d) = fixture();
    let undeclared = fluence_proto::IndexId([0x99; 16]);
    let bad_plans = vec![
        tokens(undeclared, &[1]),
        tokens(RANGE, &[1]),
        Plan::Range {
            index: EQ,
            lower: None,
            upper: None,
        },
        // PlaintextOrder refuses empty ciphertexts.
        range(
            Some(OreBound {
                ct: vec![],
                inclusive: true,
            }),
            None,
        ),
        Plan::And(vec![Plan::All, Plan::Or(vec![tokens(undeclared, &[1])])]),
    ];
    for plan in bad_plans {
        let error = store.find(&d, &plan, None, 10).unwrap_err();
        assert!(
            matches!(error, FindError::BadPlan(_)),
            "{plan:?}: {error:?}"
        );
    }
    let mut deep = Plan::All;
    for _ in 0..40 {
        deep = Plan::And(vec![deep]);
    }
    assert!(matches!(
        store.find(&d, &deep, None, 10),
        Err(FindError::BadPlan(_))
    ));
    assert!(matches!(
        store.find(&d, &Plan::All, None, 0),
        Err(FindError::BadPlan(_))
    ));
    assert!(matches!(
        store.find(&dataset(99), &Plan::All, None, 10),
        Err(FindError::DatasetNotFound)
    ));
}

#[test]
fn range_seeks_match_a_btreemap_model_with_duplicates() {
    // Values with many duplicates across docs, checked against a BTreeMap.
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    let mut model: BTreeMap<u64, Vec<DocId>> = BTreeMap::new();
    let ops = (0..200u64)
        .map(|n| {
            let value = (n * 7919) % 23;
            model.entry(value).or_default().push(doc(n));
            insert(n, 0, &[], value)
        })
        .collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    for lo in 0..25u64 {
        for hi in [lo, lo + 1, lo + 5, 30] {
            for (li, ui) in [(true, true), (true, false), (false, true), (false, false)] {
                let lower = if li {
                    std::ops::Bound::Included(lo)
                } else {
                    std::ops::Bound::Excluded(lo)
                };
                let upper = if ui {
                    std::ops::Bound::Included(hi)
                } else {
                    std::ops::Bound::Excluded(hi)
                };
                let mut expected: Vec<DocId> = if lo > hi || (lo == hi && !(li && ui)) {
                    vec![]
                } else {
                    model
                        .range((lower, upper))
                        .flat_map(|(_, docs)| docs.clone())
                        .collect()
                };
                expected.sort();
                let plan = range(bound(lo, li), bound(hi, ui));
                assert_eq!(
                    find_all(&store, &d, &plan, 50),
                    expected,
                    "{lower:?} {upper:?}"
                );
            }
        }
    }
}

/// `{f: {$gte: 10, $lt: 20}}` reaches the node as two half-open ranges;
/// MongoDB matches each against any element of an array, so `[5, 25]`
/// matches although no element lies in [10, 20).
#[test]
fn an_and_of_ranges_on_one_index_keeps_array_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::open(dir.path()).unwrap();
    let d = dataset(1);
    create(&store, d);
    let docs: [(u64, &[u64], u8); 8] = [
        (0, &[5, 25], 1),
        (1, &[15], 1),
        (2, &[5], 2),
        (3, &[25], 2),
        (4, &[15, 15], 2),
        (5, &[1, 2], 1),
        (6, &[], 1),
        (7, &[10, 20], 2),
    ];
    let ops = docs
        .iter()
        .map(|(n, values, eq)| DocOp::Put {
            doc: doc(*n),
            expect: Precondition::Absent,
            sealed: sealed(1, b"doc"),
            entries: vec![
                IndexEntry {
                    index: EQ,
                    values: IndexValues::Tokens(vec![token(*eq)]),
                },
                IndexEntry {
                    index: RANGE,
                    values: IndexValues::Ore(values.iter().map(|v| ore(*v)).collect()),
                },
            ],
        })
        .collect();
    store.apply(&batch(d, 1, ops)).unwrap();
    let gte10 = range(bound(10, true), None);
    let lt20 = range(None, bound(20, false));
    let cases = [
        (
            Plan::And(vec![gte10.clone(), lt20.clone()]),
            vec![0, 1, 4, 7],
        ),
        // Disjoint intervals: only documents with two values can match.
        (
            Plan::And(vec![
                range(bound(20, false), None),
                range(None, bound(5, true)),
            ]),
            vec![0],
        ),
        // Three ranges, one of them closed, plus a token child.
        (
            Plan::And(vec![
                gte10.clone(),
                lt20.clone(),
                range(bound(15, true), bound(30, true)),
            ]),
            vec![0, 1, 4, 7],
        ),
        (
            Plan::And(vec![gte10.clone(), tokens(EQ, &[2]), lt20.clone()]),
            vec![4, 7],
        ),
        // Exclusive and inclusive bounds at the stored values.
        (
            Plan::And(vec![
                range(bound(20, false), None),
                range(None, bound(25, false)),
            ]),
            vec![0],
        ),
        (
            Plan::And(vec![
                range(bound(20, true), None),
                range(None, bound(25, true)),
            ]),
            vec![0, 3, 7],
        ),
    ];
    for (plan, expected) in cases {
        for page in [1, 2, 100] {
            assert_eq!(
                find_all(&store, &d, &plan, page),
                sorted_docs(expected.iter().copied()),
                "{plan:?}"
            );
        }
    }
    store.check(&d).unwrap();
}
