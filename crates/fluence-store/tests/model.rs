//! Model-based test: random batches applied to a real store and to an
//! in-memory model (BTreeMaps), then random plans answered by both.
//!
//! The range index uses `NoisyOrder`, in which distinct ciphertexts of one
//! value compare `Equal` (as real ORE ciphertexts do), so the multimap's
//! shared keys and removals of (equal key, doc) are exercised.

mod common;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use common::{batch, create, dataset, doc, find_all, token, EQ, RANGE, TEXT};
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
