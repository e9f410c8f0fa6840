//! Criterion benchmark of a MongoDB range query on a range-indexed field as
//! the client lowers it: `{f: {$gte: lo, $lt: hi}}` arrives as the `And` of
//! two half-open ranges on the same index (MongoDB array semantics forbid
//! merging them in the plan), each closed at the edge of the value's type
//! class, every bound inclusive.
//!
//! Run: `cargo bench -p fluence-store --bench range_and` (or `-- --quick`).
//! `PlaintextOrder` stands in for Lewi–Wu ORE: the store's work (seeks,
//! scans, entries lookups) is the same, only each comparison is cheaper.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fluence_proto::{
    Action, DatasetId, DocId, DocOp, IndexEntry, IndexId, IndexKind, IndexValues, OreBound, Plan,
    Precondition, SealedDoc,
};
use fluence_store::{PlaintextOrder, Store};

mod support;
use support::signed;

const RANGE: IndexId = IndexId([0x4a; 16]);
/// Documents per dataset.
const DOCS: u64 = 100_000;
/// Documents per setup batch (well below `OPS_PER_BATCH_MAX`).
const BATCH_DOCS: u64 = 10_000;
/// First value of the queried interval; it selects `SELECTED` documents.
const LOW: u64 = 50_000;
const SELECTED: u64 = 100;
/// In the second dataset every `MULTI_EVERY`-th document holds a second
/// value (its own plus one), so it lands in the multi-valued table without
/// changing the result.
const MULTI_EVERY: u64 = 100;

/// A doc id spread like a keyed hash, so DocId order is not value order.
fn doc(n: u64) -> DocId {
    let hash = blake3::hash(&n.to_le_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&hash.as_bytes()[..16]);
    DocId(id)
}

fn ore(value: u64) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

fn bound(value: u64) -> Option<OreBound> {
    Some(OreBound {
        ct: ore(value),
        inclusive: true,
    })
}

/// Creates a dataset of `DOCS` documents, doc `n` holding value `n` (and,
/// when `multi`, every `MULTI_EVERY`-th also `n + 1`).
fn populate(store: &Store<PlaintextOrder>, dataset: DatasetId, multi: bool) {
    let schema = support::create(store, dataset, &[(RANGE, IndexKind::Range)]);
    for (seq, start) in (0..DOCS).step_by(BATCH_DOCS as usize).enumerate() {
        let ops = (start..start + BATCH_DOCS)
            .map(|n| {
                let mut values = vec![ore(n)];
                if multi && n % MULTI_EVERY == 0 {
                    values.push(ore(n + 1));
                }
                DocOp::Put {
                    doc: doc(n),
                    expect: Precondition::Absent,
                    sealed: SealedDoc {
                        version: 1,
                        wrapped_key: vec![0xaa; 72],
                        ciphertext: vec![0x5a; 256],
                    },
                    entries: vec![IndexEntry {
                        index: RANGE,
                        values: IndexValues::Ore(values),
                    }],
                }
            })
            .collect();
        store
            .apply(&signed(
                dataset,
                seq as u64 + 1,
                Action::Batch { schema, ops },
            ))
            .expect("batch");
    }
}

/// Every document of a query, following the cursor (bounded: the result
/// is `SELECTED` documents, a page holds up to 1000).
fn run(store: &Store<PlaintextOrder>, dataset: &DatasetId, plan: &Plan) -> usize {
    let mut found = 0;
    let mut after = None;
    for _ in 0..1_000 {
        let page = store.find(dataset, plan, after, 1_000).expect("find");
        found += page.docs.len();
        match page.next {
            Some(next) => after = Some(next),
            None => return found,
        }
    }
    panic!("query did not finish");
}

fn range_and(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::<PlaintextOrder>::open(dir.path()).expect("open");
    let single = DatasetId([1; 32]);
    let multi = DatasetId([2; 32]);
    populate(&store, single, false);
    populate(&store, multi, true);

    // `$gte: LOW` closed at the class's top, `$lt: LOW + SELECTED` closed at
    // its bottom (lowered inclusively, as the client does).
    let and = Plan::And(vec![
        Plan::Range {
            index: RANGE,
            lower: bound(LOW),
            upper: bound(u64::MAX),
        },
        Plan::Range {
            index: RANGE,
            lower: bound(0),
            upper: bound(LOW + SELECTED - 1),
        },
    ]);
    // The one-interval plan, for reference: what a scalar field would cost.
    let interval = Plan::Range {
        index: RANGE,
        lower: bound(LOW),
        upper: bound(LOW + SELECTED - 1),
    };
    assert_eq!(run(&store, &single, &and), SELECTED as usize);
    // Doc LOW - 1 would be the only new match of a second value n + 1, and
    // it holds one value: the multi dataset selects the same documents.
    assert_eq!(run(&store, &multi, &and), SELECTED as usize);

    let mut group = c.benchmark_group("range_and");
    group.sample_size(20);
    group.bench_function("and_of_half_open_100_of_100k", |b| {
        b.iter(|| run(&store, black_box(&single), black_box(&and)))
    });
    group.bench_function("and_of_half_open_100_of_100k_1pct_multi", |b| {
        b.iter(|| run(&store, black_box(&multi), black_box(&and)))
    });
    group.bench_function("single_interval_100_of_100k", |b| {
        b.iter(|| run(&store, black_box(&single), black_box(&interval)))
    });
    group.finish();
}

criterion_group!(benches, range_and);
criterion_main!(benches);
