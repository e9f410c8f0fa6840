//! Model-based test: random batches applied to a real store and to an
//! in-memory model (BTreeMaps), then random plans answered by both.
//!
//! The range index uses `NoisyOrder`, in which distinct ciphertexts of one
//! value compare `Equal` (as real ORE ciphertexts do), so the multimap's
//! shared keys and removals of (equal key, doc) are exercised.

mod common;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use common::{batch, create, dataset, doc, find_all, token, EQ, RANGE, RANGE2, TEXT};
use fluence_proto::{
    DocId, DocOp, IndexEntry, IndexValues, OreBound, Plan, Precondition, SealedDoc,
};
use fluence_store::{ApplyError, OreOrder, Store};
use proptest::prelude::*;

/// Ciphertext = 8-byte big-endian value ‖ 1 noise byte; only the value
/// orders, like ORE where every encryption of a value differs.
struct NoisyOrder;

impl OreOrder for NoisyOrder {
    const NAME: &'static str = "test-noisy";

    fn compare(a: &[u8], b: &[u8]) -> Ordering {
        // `get` keeps garbage (never stored: validate refuses it) panic-free.
        a.get(..8).cmp(&b.get(..8))
    }

    fn validate(ct: &[u8]) -> bool {
        ct.len() == 9
    }
}

fn ct(value: u64, noise: u8) -> Vec<u8> {
    let mut out = value.to_be_bytes().to_vec();
    out.push(noise);
    out
}

const DOCS: u64 = 24;
const EQ_VALUES: u8 = 4;
const WORDS: u8 = 6;
const VALUES: u64 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelDoc {
    version: u64,
    eq: u8,
    words: Vec<u8>,
    values: Vec<u64>,
}

#[derive(Debug, Clone)]
enum ModelOp {
    Put {
        n: u64,
        /// Use a precondition that does not hold.
        wrong: bool,
        eq: u8,
        words: Vec<u8>,
        values: Vec<u64>,
        noise: u8,
    },
    Delete {
        n: u64,
        wrong: bool,
    },
}

fn arb_op() -> impl Strategy<Value = ModelOp> {
    let wrong = prop::bool::weighted(0.05);
    prop_oneof![
        3 => (
            0..DOCS,
            wrong,
            0..EQ_VALUES,
            prop::collection::vec(0..WORDS, 0..4),
            prop::collection::vec(0..VALUES, 0..4),
            any::<u8>()
        )
            .prop_map(|(n, wrong, eq, words, values, noise)| ModelOp::Put {
                n,
                wrong,
                eq,
                words,
                values,
                noise
            }),
        1 => (0..DOCS, wrong).prop_map(|(n, wrong)| ModelOp::Delete { n, wrong }),
    ]
}

fn arb_bound() -> impl Strategy<Value = Option<(u64, bool)>> {
    prop::option::of((0..VALUES + 2, any::<bool>()))
}

fn arb_plan() -> impl Strategy<Value = Plan> {
    let leaf = prop_oneof![
        Just(Plan::All),
        prop::collection::vec(0..DOCS + 4, 0..5)
            .prop_map(|ns| Plan::Ids(ns.into_iter().map(doc).collect())),
        prop::collection::vec(0..EQ_VALUES + 1, 0..3).prop_map(|ts| Plan::Tokens {
            index: EQ,
            any_of: ts.into_iter().map(token).collect()
        }),
        prop::collection::vec(0..WORDS + 1, 0..3).prop_map(|ts| Plan::Tokens {
            index: TEXT,
            any_of: ts.into_iter().map(token).collect()
        }),
        (arb_bound(), arb_bound(), any::<u8>()).prop_map(|(lower, upper, noise)| Plan::Range {
            index: RANGE,
            lower: lower.map(|(v, inclusive)| OreBound {
                ct: ct(v, noise),
                inclusive
            }),
            upper: upper.map(|(v, inclusive)| OreBound {
                ct: ct(v, noise.wrapping_add(1)),
                inclusive
            }),
        }),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Plan::And),
            prop::collection::vec(inner, 0..4).prop_map(Plan::Or),
        ]
    })
}

fn value_of(ct: &[u8]) -> u64 {
    u64::from_be_bytes(ct[..8].try_into().unwrap())
}

/// The model's answer to a plan for one document.
fn matches(plan: &Plan, id: &DocId, d: &ModelDoc) -> bool {
    match plan {
        Plan::All => true,
        Plan::Ids(ids) => ids.contains(id),
        Plan::Tokens { index, any_of } => {
            if *index == EQ {
                any_of.contains(&token(d.eq))
            } else {
                d.words.iter().any(|w| any_of.contains(&token(*w)))
            }
        }
        Plan::Range { lower, upper, .. } => d.values.iter().any(|v| {
            let above = lower.as_ref().is_none_or(|b| {
                let l = value_of(&b.ct);
                *v > l || (*v == l && b.inclusive)
            });
            let below = upper.as_ref().is_none_or(|b| {
                let u = value_of(&b.ct);
                *v < u || (*v == u && b.inclusive)
            });
            above && below
        }),
        Plan::And(children) => children.iter().all(|c| matches(c, id, d)),
        Plan::Or(children) => children.iter().any(|c| matches(c, id, d)),
    }
}

/// Turns model ops into document ops against the model state as the
/// earlier ops of the batch leave it; returns the ops and the expected
/// outcome (the failing op, if any, and what it found).
type Outcome = Result<BTreeMap<u64, ModelDoc>, (u32, Option<u64>)>;

fn to_doc_ops(model: &BTreeMap<u64, ModelDoc>, ops: &[ModelOp]) -> (Vec<DocOp>, Outcome) {
    let mut state = model.clone();
    let mut out = Vec::new();
    let mut failure = None;
    for (i, op) in ops.iter().enumerate() {
        match op {
            ModelOp::Put {
                n,
                wrong,
                eq,
                words,
                values,
                noise,
            } => {
                let found = state.get(n).map(|d| d.version);
                let (expect, holds) = match (found, wrong) {
                    (None, false) => (Precondition::Absent, true),
                    (None, true) => (Precondition::Version(1), false),
                    (Some(v), false) => (Precondition::Version(v), true),
                    (Some(_), true) => (Precondition::Absent, false),
                };
                let version = found.map_or(1, |v| v + 1);
                out.push(DocOp::Put {
                    doc: doc(*n),
                    expect,
                    sealed: SealedDoc {
                        version,
                        wrapped_key: vec![*eq; 8],
                        ciphertext: format!("{n}:{version}").into_bytes(),
                    },
                    entries: vec![
                        IndexEntry {
                            index: EQ,
                            values: IndexValues::Tokens(vec![token(*eq)]),
                        },
                        IndexEntry {
                            index: TEXT,
                            values: IndexValues::Tokens(words.iter().map(|w| token(*w)).collect()),
                        },
                        IndexEntry {
                            index: RANGE,
                            values: IndexValues::Ore(
                                values
                                    .iter()
                                    .enumerate()
                                    .map(|(j, v)| ct(*v, noise.wrapping_add(j as u8)))
                                    .collect(),
                            ),
                        },
                    ],
                });
                if failure.is_none() {
                    if holds {
                        state.insert(
                            *n,
                            ModelDoc {
                                version,
                                eq: *eq,
                                words: words.clone(),
                                values: values.clone(),
                            },
                        );
                    } else {
                        failure = Some((i as u32, found));
                    }
                }
            }
            ModelOp::Delete { n, wrong } => {
                let found = state.get(n).map(|d| d.version);
                let expect_version = match found {
                    Some(v) if !wrong => v,
                    Some(v) => v + 3,
                    None => 1,
                };
                out.push(DocOp::Delete {
                    doc: doc(*n),
                    expect_version,
                });
                if failure.is_none() {
                    if found == Some(expect_version) {
                        state.remove(n);
                    } else {
                        failure = Some((i as u32, found));
                    }
                }
            }
        }
    }
    (out, failure.map_or(Ok(state), Err))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn store_agrees_with_the_model(
        batches in prop::collection::vec(prop::collection::vec(arb_op(), 1..10), 1..7),
        plans in prop::collection::vec(arb_plan(), 1..10),
        page_docs in 1usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<NoisyOrder>::open(dir.path()).unwrap();
        let d = dataset(1);
        create(&store, d);
        let mut model: BTreeMap<u64, ModelDoc> = BTreeMap::new();
        let mut seq = 0u64;
        for ops in &batches {
            let (doc_ops, expected) = to_doc_ops(&model, ops);
            let result = store.apply(&batch(d, seq + 1, doc_ops));
            match (result, expected) {
                (Ok(applied), Ok(state)) => {
                    seq += 1;
                    prop_assert_eq!(applied.seq, seq);
                    model = state;
                }
                (Err(ApplyError::Precondition { op_index, found_version }), Err(failure)) => {
                    prop_assert_eq!((op_index, found_version), failure);
                }
                (result, expected) => {
                    prop_assert!(false, "store {:?}, model {:?}", result.map(|a| a.seq), expected.map(|_| ()));
                }
            }
            prop_assert_eq!(store.info(&d).unwrap().doc_count, model.len() as u64);
        }
        store.check(&d).unwrap();

        let by_id: BTreeMap<DocId, &ModelDoc> = model.iter().map(|(n, m)| (doc(*n), m)).collect();
        for plan in &plans {
            let expected: Vec<DocId> = by_id
                .iter()
                .filter(|(id, m)| matches(plan, id, m))
                .map(|(id, _)| *id)
                .collect();
            let found = find_all(&store, &d, plan, page_docs);
            prop_assert_eq!(&found, &expected, "plan {:?}", plan);
            // Served documents are the model's current versions.
            let page = store.find(&d, plan, None, 100).unwrap();
            for entry in &page.docs {
                prop_assert_eq!(entry.sealed.version, by_id[&entry.doc].version);
            }
        }
        let all: BTreeSet<DocId> = find_all(&store, &d, &Plan::All, 4).into_iter().collect();
        prop_assert_eq!(all, by_id.keys().copied().collect::<BTreeSet<_>>());
    }
}

/// Values per range index in the `And`-of-ranges test: few, so documents
/// often share values and hold equal values twice.
const MEET_VALUES: u64 = 5;

/// One document of the `And`-of-ranges model: values in `RANGE` and
/// `RANGE2` (0..3 each, duplicates allowed) and an eq token.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MeetDoc {
    version: u64,
    eq: u8,
    r1: Vec<u64>,
    r2: Vec<u64>,
}

/// Put doc `n` with these values, or delete it (`None`).
type MeetOp = (u64, Option<(u8, Vec<u64>, Vec<u64>, u8)>);

fn arb_meet_op() -> impl Strategy<Value = MeetOp> {
    let values = || prop::collection::vec(0..MEET_VALUES, 0..4);
    (
        0..DOCS,
        prop::option::weighted(0.85, (0..EQ_VALUES, values(), values(), any::<u8>())),
    )
}

fn arb_meet_bound() -> impl Strategy<Value = Option<OreBound>> {
    prop::option::weighted(
        0.8,
        (0..MEET_VALUES + 1, any::<bool>(), any::<u8>()).prop_map(|(v, inclusive, noise)| {
            OreBound {
                ct: ct(v, noise),
                inclusive,
            }
        }),
    )
}

/// A child of the `And`: mostly ranges of `RANGE` (so they merge), some of
/// `RANGE2`, some eq tokens.
fn arb_meet_child() -> impl Strategy<Value = Plan> {
    let range = |index| {
        (arb_meet_bound(), arb_meet_bound()).prop_map(move |(lower, upper)| Plan::Range {
            index,
            lower,
            upper,
        })
    };
    prop_oneof![
        6 => range(RANGE),
        2 => range(RANGE2),
        1 => prop::collection::vec(0..EQ_VALUES, 1..3).prop_map(|ts| Plan::Tokens {
            index: EQ,
            any_of: ts.into_iter().map(token).collect()
        }),
    ]
}

fn arb_meet_plan() -> impl Strategy<Value = Plan> {
    let and = || prop::collection::vec(arb_meet_child(), 2..6).prop_map(Plan::And);
    prop_oneof![
        4 => and(),
        // Inside an `Or` (seeks with cached answers) and an `And` (as a
        // filter when a small token child drives).
        1 => (and(), arb_meet_child()).prop_map(|(a, c)| Plan::Or(vec![a, c])),
        1 => (and(), 0..EQ_VALUES).prop_map(|(a, t)| Plan::And(vec![
            Plan::Tokens { index: EQ, any_of: vec![token(t)] },
            a,
        ])),
    ]
}

/// Brute force: the plan's meaning on one model document.
fn meet_matches(plan: &Plan, d: &MeetDoc) -> bool {
    match plan {
        Plan::All => true,
        Plan::Ids(_) => unreachable!("not generated"),
        Plan::Tokens { any_of, .. } => any_of.contains(&token(d.eq)),
        Plan::Range {
            index,
            lower,
            upper,
        } => {
            let values = if *index == RANGE { &d.r1 } else { &d.r2 };
            values.iter().any(|v| {
                lower.as_ref().is_none_or(|b| {
                    let l = value_of(&b.ct);
                    *v > l || (*v == l && b.inclusive)
                }) && upper.as_ref().is_none_or(|b| {
                    let u = value_of(&b.ct);
                    *v < u || (*v == u && b.inclusive)
                })
            })
        }
        Plan::And(children) => children.iter().all(|c| meet_matches(c, d)),
        Plan::Or(children) => children.iter().any(|c| meet_matches(c, d)),
    }
}

/// The plan with every range wrapped in a two-branch `Or` of itself: same
/// meaning, but no longer a direct range child of an `And`, so the store
/// evaluates it without merging (range by range, as before `Meet`).
fn unmerged(plan: &Plan) -> Plan {
    match plan {
        Plan::Range { .. } => Plan::Or(vec![plan.clone(), plan.clone()]),
        Plan::And(children) => Plan::And(children.iter().map(unmerged).collect()),
        Plan::Or(children) => Plan::Or(children.iter().map(unmerged).collect()),
        other => other.clone(),
    }
}

fn meet_entries(eq: u8, r1: &[u64], r2: &[u64], noise: u8) -> Vec<IndexEntry> {
    // Distinct noise per value: equal values get different ciphertext
    // bytes, as real ORE encryptions do.
    let cts = |values: &[u64], salt: u8| -> Vec<Vec<u8>> {
        values
            .iter()
            .enumerate()
            .map(|(j, v)| ct(*v, noise.wrapping_add(salt).wrapping_add(j as u8)))
            .collect()
    };
    let mut entries = vec![
        IndexEntry {
            index: EQ,
            values: IndexValues::Tokens(vec![token(eq)]),
        },
        // Present even when empty (a field holding an empty array).
        IndexEntry {
            index: RANGE,
            values: IndexValues::Ore(cts(r1, 0)),
        },
    ];
    // Absent when empty (a missing field).
    if !r2.is_empty() {
        entries.push(IndexEntry {
            index: RANGE2,
            values: IndexValues::Ore(cts(r2, 100)),
        });
    }
    entries
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// `And`s of ranges on one index (merged into one intersection scan
    /// plus a walk of multi-valued docs) select exactly what brute force
    /// does, and what the unmerged evaluation does, page by page.
    #[test]
    fn and_of_ranges_agrees_with_brute_force(
        batches in prop::collection::vec(prop::collection::vec(arb_meet_op(), 1..12), 1..5),
        plans in prop::collection::vec(arb_meet_plan(), 1..12),
        page_docs in 1usize..6,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::<NoisyOrder>::open(dir.path()).unwrap();
        let d = dataset(1);
        create(&store, d);
        let mut model: BTreeMap<u64, MeetDoc> = BTreeMap::new();
        for (i, ops) in batches.iter().enumerate() {
            let mut doc_ops = Vec::new();
            for (n, put) in ops {
                let found = model.get(n).map(|m| m.version);
                match (put, found) {
                    (Some((eq, r1, r2, noise)), _) => {
                        let version = found.map_or(1, |v| v + 1);
                        doc_ops.push(DocOp::Put {
                            doc: doc(*n),
                            expect: found.map_or(Precondition::Absent, Precondition::Version),
                            sealed: SealedDoc {
                                version,
                                wrapped_key: vec![],
                                ciphertext: format!("{n}:{version}").into_bytes(),
                            },
                            entries: meet_entries(*eq, r1, r2, *noise),
                        });
                        model.insert(*n, MeetDoc { version, eq: *eq, r1: r1.clone(), r2: r2.clone() });
                    }
                    (None, Some(version)) => {
                        doc_ops.push(DocOp::Delete { doc: doc(*n), expect_version: version });
                        model.remove(n);
                    }
                    (None, None) => {}
                }
            }
            store.apply(&batch(d, i as u64 + 1, doc_ops)).unwrap();
        }
        // The multi-valued table is exactly the docs with two distinct
        // values in an index (`check` verifies the set).
        let report = store.check(&d).unwrap();
        let distinct = |values: &[u64]| values.iter().collect::<BTreeSet<_>>().len();
        let multi_expected = model
            .values()
            .map(|m| u64::from(distinct(&m.r1) >= 2) + u64::from(distinct(&m.r2) >= 2))
            .sum::<u64>();
        prop_assert_eq!(report.multi_valued, multi_expected);

        for plan in &plans {
            let expected: Vec<DocId> = model
                .iter()
                .filter(|(_, m)| meet_matches(plan, m))
                .map(|(n, _)| doc(*n))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let found = find_all(&store, &d, plan, page_docs);
            prop_assert_eq!(&found, &expected, "plan {:?}", plan);
            let before = find_all(&store, &d, &unmerged(plan), page_docs);
            prop_assert_eq!(&before, &expected, "unmerged plan {:?}", plan);
        }
    }
}
