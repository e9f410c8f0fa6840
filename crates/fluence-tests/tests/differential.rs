//! Differential test: random documents, filters, sorts, projections,
//! updates and deletes run through the real planner, index lowering, node
//! service, store and decryption, and separately through the independent
//! plaintext reference evaluator. Results must be identical.

mod common;

use bson::{doc, Bson, Document};
use fluence_client::descriptor::IndexSpec;
use fluence_client::query::IndexKindSpec;
use fluence_client::FindOptions;
use fluence_tests::{gen, reference};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use common::{cases, runtime, Harness};

/// Queries per generated collection.
const QUERIES_PER_COLLECTION: usize = 40;
/// Writes per generated collection.
const WRITES_PER_COLLECTION: usize = 8;

fn indexes() -> Vec<IndexSpec> {
    let spec = IndexSpec::new;
    vec![
        spec("a", IndexKindSpec::Eq),
        spec("a", IndexKindSpec::Range),
        spec("b", IndexKindSpec::Range),
        spec("c", IndexKindSpec::Text),
        spec("tags", IndexKindSpec::Eq),
        spec("tags", IndexKindSpec::Text),
        spec("nested.x", IndexKindSpec::Range),
        spec("nested.x", IndexKindSpec::Eq),
        spec("nested.y", IndexKindSpec::Text),
        // `c` and `nested` themselves stay unindexed: their predicates run
        // in the gateway after decryption.
    ]
}

#[derive(Debug, Clone)]
struct Query {
    filter: Document,
    sort: Option<Document>,
    skip: u64,
    limit: Option<i64>,
    projection: Option<Document>,
}

#[derive(Debug, Clone)]
enum Write {
    Update { filter: Document, update: Document },
    Delete { filter: Document },
}

fn arb_case() -> impl Strategy<Value = (Vec<Document>, Vec<Query>, Vec<Write>)> {
    gen::arb_documents(24).prop_flat_map(|docs| {
        let query = (
            gen::arb_filter_for(&docs),
            prop::option::weighted(0.4, gen::arb_sort()),
            gen::arb_skip_limit(),
            prop::option::weighted(0.3, gen::arb_projection()),
        )
            .prop_map(|(filter, sort, (skip, limit), projection)| Query {
                filter,
                sort,
                skip,
                limit,
                projection,
            });
        let write = prop_oneof![
            3 => (gen::arb_filter_for(&docs), gen::arb_operator_update())
                .prop_map(|(filter, update)| Write::Update { filter, update }),
            1 => gen::arb_filter_for(&docs).prop_map(|filter| Write::Delete { filter }),
        ];
        (
            Just(docs),
            prop::collection::vec(query, QUERIES_PER_COLLECTION),
            prop::collection::vec(write, WRITES_PER_COLLECTION),
        )
    })
}

/// Sorting by `_id` last makes the order total, so skip and limit select the
/// same documents in both implementations (MongoDB leaves ties unordered).
fn total_sort(query: &Query) -> Option<Document> {
    match &query.sort {
        Some(sort) if sort.contains_key("_id") => Some(sort.clone()),
        Some(sort) => {
            let mut sort = sort.clone();
            sort.insert("_id", 1);
            Some(sort)
        }
        None if query.skip > 0 || query.limit.is_some_and(|l| l != 0) => Some(doc! {"_id": 1}),
        None => None,
    }
}

fn by_id(mut docs: Vec<Document>) -> Vec<Document> {
    docs.sort_by(|a, b| {
        reference::compare_values(
            a.get("_id").unwrap_or(&Bson::Null),
            b.get("_id").unwrap_or(&Bson::Null),
        )
    });
    docs
}

/// Without a sort, MongoDB leaves the order unspecified: compare as
/// multisets, ordered by a key that tells apart every BSON type and value.
fn as_multiset(mut docs: Vec<Document>) -> Vec<Document> {
    docs.sort_by_cached_key(|d| format!("{d:?}"));
    docs
}

fn same(ours: &[Document], theirs: &[Document]) -> bool {
    ours.len() == theirs.len()
        && ours
            .iter()
            .zip(theirs)
            .all(|(a, b)| reference::documents_identical(a, b))
}

#[test]
fn encrypted_queries_match_the_reference() {
    let rt = runtime();
    let harness = Harness::new();
    let mut runner = TestRunner::new(Config {
        cases: cases(100, 2000),
        failure_persistence: None,
        ..Config::default()
    });
    let collection = std::cell::Cell::new(0u64);
    let compared = std::cell::Cell::new(0u64);
    let result = runner.run(&arb_case(), |(docs, queries, writes)| {
        collection.set(collection.get() + 1);
        let name = format!("c{}", collection.get());
        rt.block_on(harness.client.create_dataset(&name, indexes())).expect("create");
        if !docs.is_empty() {
            rt.block_on(harness.client.insert(&name, docs.clone())).expect("insert");
        }
        let mut state = docs;
        for query in &queries {
            let sort = total_sort(query);
            let expected = reference::find(
                &state,
                &query.filter,
                sort.as_ref(),
                query.skip,
                query.limit,
                query.projection.as_ref(),
                gen::TEXT_PATHS,
            );
            let ours = rt.block_on(harness.client.find(
                &name,
                FindOptions {
                    filter: query.filter.clone(),
                    sort: sort.clone(),
                    skip: query.skip,
                    limit: query.limit.unwrap_or(0),
                    projection: query.projection.clone(),
                },
            ));
            match (expected, ours) {
                (Ok(expected), Ok(ours)) => {
                    let (expected, ours) = if sort.is_some() { (expected, ours) } else { (as_multiset(expected), as_multiset(ours)) };
                    prop_assert!(same(&ours, &expected), "query {query:?}\n ours:     {ours:?}\n expected: {expected:?}\n docs: {state:?}");
                }
                (Err(_), Err(_)) => {}
                (expected, ours) => prop_assert!(false, "query {query:?}: reference {expected:?}, ours {ours:?}\n docs: {state:?}"),
            }
            compared.set(compared.get() + 1);
        }
        for write in &writes {
            match write {
                Write::Update { filter, update } => {
                    // Reference: every matching document, atomically (all or
                    // nothing, which is Fluence's documented behaviour).
                    let mut next = Vec::with_capacity(state.len());
                    // Errors an update raises on an empty document are
                    // MongoDB parse-time errors (conflicting paths,
                    // non-numeric $inc): raised even when nothing matches.
                    let mut failed = reference::apply_update(&doc! {"_id": 0}, update).err();
                    for doc in state.iter().take(if failed.is_some() { 0 } else { usize::MAX }) {
                        match reference::matches(filter, doc, gen::TEXT_PATHS) {
                            Ok(true) => match reference::apply_update(doc, update) {
                                Ok(updated) => next.push(updated),
                                Err(e) => {
                                    failed = Some(e);
                                    break;
                                }
                            },
                            Ok(false) => next.push(doc.clone()),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    let ours = rt.block_on(harness.client.update(&name, filter, update, true, false));
                    match (failed, ours) {
                        (None, Ok(_)) => state = next,
                        (Some(_), Err(_)) => {}
                        (failed, ours) => prop_assert!(false, "update {filter:?} {update:?}: reference error {failed:?}, ours {ours:?}\n docs: {state:?}"),
                    }
                }
                Write::Delete { filter } => {
                    let keep: Result<Vec<Document>, String> = state
                        .iter()
                        .filter_map(|d| match reference::matches(filter, d, gen::TEXT_PATHS) {
                            Ok(true) => None,
                            Ok(false) => Some(Ok(d.clone())),
                            Err(e) => Some(Err(e)),
                        })
                        .collect();
                    let ours = rt.block_on(harness.client.delete(&name, filter, true));
                    match (keep, ours) {
                        (Ok(keep), Ok(deleted)) => {
                            prop_assert_eq!(deleted as usize, state.len() - keep.len());
                            state = keep;
                        }
                        (Err(_), Err(_)) => {}
                        (keep, ours) => prop_assert!(false, "delete {filter:?}: reference {keep:?}, ours {ours:?}"),
                    }
                }
            }
            let all = rt.block_on(harness.client.find(&name, FindOptions::default())).expect("find all");
            prop_assert!(same(&by_id(all.clone()), &by_id(state.clone())), "after {write:?}\n ours: {all:?}\n expected: {state:?}");
            compared.set(compared.get() + 1);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let (collections, compared) = (collection.get(), compared.get());
    eprintln!("differential: {collections} collections, {compared} comparisons");
    assert!(compared >= 1000, "only {compared} comparisons ran");
}
