//! Property tests across the query engine:
//!
//! - planner soundness: every document `eval` matches satisfies the plan,
//!   judged against what the indexes hold (`index_values`);
//! - `index_values` agrees with `eval` (each indexed value matches by
//!   equality);
//! - `compare_bson` is a total order consistent with `equality_key`, and
//!   sorting yields keys in order;
//! - updates, filters, sorts and projections built from random documents
//!   never panic, and updated documents round-trip through BSON.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::str::FromStr;

use bson::{Bson, Decimal128, Document};
use proptest::prelude::*;

use super::compare::{
    canonical_rank, compare_bson, documents_identical, equality_key, values_equal,
};
use super::filter::{eval, parse_filter, EvalContext};
use super::path::index_values;
use super::plan::{plan, IndexKindSpec, IndexPlan};
use super::project::Projection;
use super::sort::SortSpec;
use super::update::Update;

const FIELDS: &[&str] = &["a", "b", "0"];
const PATHS: &[&str] = &["a", "b", "a.b", "a.0", "b.a", "a.b.a", "a.0.b", "a.a"];

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn scalar() -> impl Strategy<Value = Bson> {
    // Weighted towards numbers and strings, where planning narrows the most.
    prop_oneof![
        6 => (-3i32..3).prop_map(Bson::Int32),
        1 => (-3i64..3).prop_map(Bson::Int64),
        2 => prop::sample::select(vec![-1.5, 0.0, -0.0, 2.0, 2.5, f64::NAN, f64::INFINITY])
            .prop_map(Bson::Double),
        1 => prop::sample::select(vec!["1", "2.5", "-0", "NaN"]).prop_map(|s| {
            Bson::Decimal128(Decimal128::from_str(s).unwrap_or(Decimal128::from_bytes([0; 16])))
        }),
        3 => prop::sample::select(vec!["", "a", "b", "ab", "A b", "a-b c"])
            .prop_map(|s| Bson::String(s.into())),
        1 => any::<bool>().prop_map(Bson::Boolean),
        1 => Just(Bson::Null),
        1 => Just(Bson::Undefined),
        1 => (-2i64..2).prop_map(|ms| Bson::DateTime(bson::DateTime::from_millis(ms))),
        1 => prop::sample::select(vec![Bson::MinKey, Bson::MaxKey, Bson::Symbol("a".into())]),
    ]
}

fn value() -> impl Strategy<Value = Bson> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Bson::Array),
            prop::collection::vec((prop::sample::select(FIELDS), inner), 0..3).prop_map(|fields| {
                let mut d = Document::new();
                for (k, v) in fields {
                    d.insert(k, v);
                }
                Bson::Document(d)
            }),
        ]
    })
}

fn int_array() -> impl Strategy<Value = Bson> {
    prop::collection::vec((-3i32..3).prop_map(Bson::Int32), 0..4).prop_map(Bson::Array)
}

fn field_value() -> impl Strategy<Value = Bson> {
    prop_oneof![
        3 => value(),
        // Arrays of small integers, directly or in sub-documents, are where
        // multikey semantics bite.
        2 => int_array(),
        1 => prop::collection::vec((prop::sample::select(&FIELDS[..2]), int_array()), 1..3)
            .prop_map(|fields| {
                let mut d = Document::new();
                for (k, v) in fields {
                    d.insert(k, v);
                }
                Bson::Document(d)
            }),
    ]
}

fn document() -> impl Strategy<Value = Document> {
    prop::collection::vec((prop::sample::select(&FIELDS[..2]), field_value()), 0..3).prop_map(
        |fields| {
            let mut d = Document::new();
            for (k, v) in fields {
                d.insert(k, v);
            }
            d
        },
    )
}

/// A comparison operand: mostly scalars, sometimes arrays and documents.
fn operand() -> impl Strategy<Value = Bson> {
    prop_oneof![3 => scalar(), 1 => value()]
}

fn range_pair(lo_op: &str, lo: Bson, hi_op: &str, hi: Bson) -> Bson {
    let mut d = Document::new();
    d.insert(lo_op, lo);
    d.insert(hi_op, hi);
    Bson::Document(d)
}

fn leaf_condition() -> impl Strategy<Value = Bson> {
    let ops = prop::sample::select(vec!["$eq", "$ne", "$gt", "$gte", "$lt", "$lte"]);
    let lower_op = prop::sample::select(vec!["$gt", "$gte"]);
    let upper_op = prop::sample::select(vec!["$lt", "$lte"]);
    prop_oneof![
        2 => operand(),
        2 => (ops, operand()).prop_map(|(op, v)| {
            let mut d = Document::new();
            d.insert(op, v);
            Bson::Document(d)
        }),
        1 => (prop::sample::select(vec!["$in", "$nin"]), prop::collection::vec(operand(), 0..3))
            .prop_map(|(op, vs)| {
                let mut d = Document::new();
                d.insert(op, Bson::Array(vs));
                Bson::Document(d)
            }),
        1 => any::<bool>().prop_map(|b| {
            let mut d = Document::new();
            d.insert("$exists", b);
            Bson::Document(d)
        }),
        // Two bounds on one path, which different array elements may meet.
        3 => (lower_op.clone(), -3i32..3, upper_op.clone(), -3i32..3)
            .prop_map(|(lo_op, lo, hi_op, hi)| range_pair(lo_op, Bson::Int32(lo), hi_op, Bson::Int32(hi))),
        1 => (lower_op, scalar(), upper_op, scalar())
            .prop_map(|(lo_op, lo, hi_op, hi)| range_pair(lo_op, lo, hi_op, hi)),
        1 => (prop::sample::select(vec!["$gt", "$eq", "$in"]), scalar()).prop_map(|(op, v)| {
            let mut inner = Document::new();
            let v = if op == "$in" { Bson::Array(vec![v]) } else { v };
            inner.insert(op, v);
            let mut d = Document::new();
            d.insert("$not", inner);
            Bson::Document(d)
        }),
    ]
}

fn filter_path() -> impl Strategy<Value = &'static str> {
    prop_oneof![2 => prop::sample::select(&PATHS[..2]), 1 => prop::sample::select(PATHS)]
}

fn filter() -> impl Strategy<Value = Document> {
    let leaf = (filter_path(), leaf_condition()).prop_map(|(p, c)| {
        let mut d = Document::new();
        d.insert(p, c);
        d
    });
    let text = prop::sample::select(vec!["a", "b ab", "-a b", "\"a b\"", "zzz"]).prop_map(|s| {
        let mut spec = Document::new();
        spec.insert("$search", s);
        let mut d = Document::new();
        d.insert("$text", spec);
        d
    });
    let base = prop_oneof![8 => leaf, 1 => text];
    base.prop_recursive(3, 16, 3, |inner| {
        (
            prop::sample::select(vec!["$and", "$or", "$nor"]),
            prop::collection::vec(inner, 1..3),
        )
            .prop_map(|(op, children)| {
                let mut d = Document::new();
                d.insert(
                    op,
                    Bson::Array(children.into_iter().map(Bson::Document).collect()),
                );
                d
            })
    })
}

fn index_config() -> impl Strategy<Value = Vec<(String, IndexKindSpec)>> {
    prop::collection::vec(
        (
            prop::sample::select(PATHS),
            prop::sample::select(vec![
                IndexKindSpec::Eq,
                IndexKindSpec::Range,
                IndexKindSpec::Text,
            ]),
        ),
        0..6,
    )
    .prop_map(|v| v.into_iter().map(|(p, k)| (p.to_string(), k)).collect())
}

/// A node's view of `plan` for one document: only what `index_values`
/// gives each index, with type-bracketed range checks.
fn satisfies(plan: &IndexPlan, doc: &Document) -> bool {
    match plan {
        IndexPlan::All => true,
        IndexPlan::Eq { path, values } => index_values(doc, path)
            .iter()
            .any(|v| values.iter().any(|x| values_equal(v, x))),
        IndexPlan::Range { path, lower, upper } => index_values(doc, path).iter().any(|v| {
            let within = |bound: &Option<(Bson, bool)>, wanted: Ordering| match bound {
                None => true,
                Some((b, inclusive)) => {
                    canonical_rank(v) == canonical_rank(b) && {
                        let order = compare_bson(v, b);
                        order == wanted || (*inclusive && order == Ordering::Equal)
                    }
                }
            };
            within(lower, Ordering::Greater) && within(upper, Ordering::Less)
        }),
        IndexPlan::Text { paths, search } => {
            let wanted: HashSet<String> = words(search).into_iter().collect();
            paths.iter().any(|p| {
                index_values(doc, p).iter().any(|v| match v {
                    Bson::String(s) => words(s).iter().any(|w| wanted.contains(w)),
                    _ => false,
                })
            })
        }
        IndexPlan::And(parts) => parts.iter().all(|p| satisfies(p, doc)),
        IndexPlan::Or(parts) => parts.iter().any(|p| satisfies(p, doc)),
    }
}

fn every_kind_everywhere() -> Vec<(String, IndexKindSpec)> {
    PATHS
        .iter()
        .flat_map(|p| {
            [IndexKindSpec::Eq, IndexKindSpec::Range, IndexKindSpec::Text]
                .into_iter()
                .map(|k| (p.to_string(), k))
        })
        .collect()
}

fn range_only_everywhere() -> Vec<(String, IndexKindSpec)> {
    PATHS
        .iter()
        .flat_map(|p| {
            [IndexKindSpec::Range, IndexKindSpec::Text]
                .into_iter()
                .map(|k| (p.to_string(), k))
        })
        .collect()
}

proptest! {
    // Failures print their minimal input; nothing is written outside the source tree.
    #![proptest_config(ProptestConfig {
        cases: 384,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn index_values_match_by_equality(doc in document(), path in prop::sample::select(PATHS)) {
        for v in index_values(&doc, path) {
            if matches!(v, Bson::Null | Bson::Undefined) {
                continue; // equality to null is not an index lookup
            }
            let mut cond = Document::new();
            cond.insert("$eq", v.clone());
            let mut f = Document::new();
            f.insert(path, cond);
            let filter = parse_filter(&f).unwrap();
            prop_assert!(eval(&filter, &doc, &EvalContext::without_text()), "{} {} {}", doc, path, v);
        }
    }

    #[test]
    fn compare_is_a_total_order(a in value(), b in value(), c in value()) {
        prop_assert_eq!(compare_bson(&a, &a), Ordering::Equal);
        prop_assert_eq!(compare_bson(&a, &b), compare_bson(&b, &a).reverse());
        if compare_bson(&a, &b) != Ordering::Greater && compare_bson(&b, &c) != Ordering::Greater {
            prop_assert_ne!(compare_bson(&a, &c), Ordering::Greater);
        }
        prop_assert_eq!(
            compare_bson(&a, &b) == Ordering::Equal,
            equality_key(&a) == equality_key(&b)
        );
    }

    #[test]
    fn sorting_orders_keys(
        docs in prop::collection::vec(document(), 0..8),
        fields in prop::collection::vec((prop::sample::select(PATHS), any::<bool>()), 1..3),
    ) {
        let mut spec_doc = Document::new();
        for (p, desc) in &fields {
            spec_doc.insert(*p, if *desc { -1 } else { 1 });
        }
        let spec = SortSpec::parse(&spec_doc).unwrap();
        let mut sorted = docs.clone();
        match spec.sort(&mut sorted) {
            Ok(()) => {
                prop_assert_eq!(sorted.len(), docs.len());
                let keys: Vec<_> = sorted.iter().map(|d| spec.key(d).unwrap()).collect();
                for pair in keys.windows(2) {
                    prop_assert_ne!(spec.compare_keys(&pair[0], &pair[1]), Ordering::Greater);
                }
            }
            // Only MongoDB's sort-time errors, and the input is left as it was.
            Err(e) => {
                prop_assert!(e.code() == 2 || e.code() == 16746, "{}", e);
                prop_assert!(sorted.len() == docs.len()
                    && sorted.iter().zip(&docs).all(|(x, y)| documents_identical(x, y)));
            }
        }
    }

    #[test]
    fn updates_never_panic_and_round_trip(
        doc in document(),
        ops in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "$set", "$unset", "$inc", "$mul", "$min", "$max", "$push", "$addToSet",
                    "$pop", "$pull", "$pullAll", "$setOnInsert", "$rename", "$foo", "plain",
                ]),
                prop::sample::select(vec![
                    "a", "b", "a.b", "a.0", "a.1.b", "b.5", "_id", "a.$", "a..b", "$x", "a.b.c",
                ]),
                prop_oneof![
                    value(),
                    prop::collection::vec(value(), 0..3).prop_map(|v| {
                        let mut d = Document::new();
                        d.insert("$each", Bson::Array(v));
                        d.insert("$slice", -1);
                        Bson::Document(d)
                    }),
                    value().prop_map(|v| {
                        let mut d = Document::new();
                        d.insert("$gte", v);
                        Bson::Document(d)
                    }),
                ],
            ),
            0..4,
        ),
    ) {
        let mut update = Document::new();
        for (op, path, value) in ops {
            if op == "plain" {
                update.insert(path, value);
                continue;
            }
            let entry = update.entry(op.to_string()).or_insert_with(|| Bson::Document(Document::new()));
            if let Bson::Document(fields) = entry {
                fields.insert(path, value);
            }
        }
        let Ok(parsed) = Update::parse(&update) else { return Ok(()); };
        let mut work = doc.clone();
        let _ = parsed.apply(&mut work);
        let _ = parsed.apply_upsert(&doc);
        // The result survives BSON encoding and can be used as input again.
        let bytes = work.to_vec().unwrap();
        let back = Document::from_reader(&bytes[..]).unwrap();
        prop_assert!(documents_identical(&back, &work));
        if let Ok(again) = Update::parse(&back) {
            let mut copy = doc.clone();
            let _ = again.apply(&mut copy);
        }
        let _ = parse_filter(&back).map(|f| eval(&f, &doc, &EvalContext::without_text()));
        let _ = Projection::parse(&back).map(|p| p.apply(&doc));
        let _ = SortSpec::parse(&back).map(|s| s.key(&doc));
    }

    #[test]
    fn arbitrary_filters_never_panic(
        filter_doc in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "a", "$and", "$or", "$nor", "$not", "$text", "$in", "$gt", "$exists",
                    "$comment", "$where", "$bogus", "",
                ]),
                value(),
            ),
            0..4,
        ),
        doc in document(),
    ) {
        let mut f = Document::new();
        for (k, v) in filter_doc {
            f.insert(k, v);
        }
        if let Ok(parsed) = parse_filter(&f) {
            let _ = eval(&parsed, &doc, &EvalContext::without_text());
            let _ = plan(&parsed, &every_kind_everywhere());
        }
    }
}

proptest! {
    // Multikey counterexamples are rare among random inputs (about one case
    // in a hundred exercises a range over an array), so this property gets
    // more cases; each one is cheap.
    #![proptest_config(ProptestConfig {
        cases: 3000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn planner_is_sound(
        filter_doc in filter(),
        docs in prop::collection::vec(document(), 1..6),
        random_indexes in index_config(),
    ) {
        let Ok(filter) = parse_filter(&filter_doc) else { return Ok(()); };
        for indexes in [random_indexes, every_kind_everywhere(), range_only_everywhere()] {
            let text_paths: Vec<String> = indexes
                .iter()
                .filter(|(_, k)| *k == IndexKindSpec::Text)
                .map(|(p, _)| p.clone())
                .collect();
            let ctx = EvalContext::new(&text_paths, &words);
            let Ok(plan) = plan(&filter, &indexes) else {
                prop_assert!(filter.text_search().is_some() && text_paths.is_empty());
                continue;
            };
            for doc in &docs {
                if eval(&filter, doc, &ctx) {
                    prop_assert!(
                        satisfies(&plan, doc),
                        "unsound plan {:?}\nfilter {}\ndoc {}\nindexes {:?}",
                        plan, filter_doc, doc, indexes
                    );
                }
            }
        }
    }
}
