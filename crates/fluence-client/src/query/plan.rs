//! Planning: which encrypted indexes can narrow a filter's candidates.
//!
//! The node answers an [`IndexPlan`] from its indexes; the gateway then
//! decrypts the candidates and applies the exact filter. The plan must be
//! **sound**: every document the filter matches must satisfy the plan, where
//! an index on a path holds, for each document, the values
//! [`index_values`](super::index_values) lists (array elements, whole
//! arrays, sub-documents; nothing for a missing field). Precision is
//! secondary: anything the planner cannot narrow soundly becomes
//! [`IndexPlan::All`].
//!
//! Semantics of the plan nodes (what the lowering layer must implement):
//!
//! - `Eq { path, values }`: the document holds, in the eq index on `path`, a
//!   value equal to one of `values` under MongoDB equality (`1 == 1.0`,
//!   `{a: 1} == {a: 1.0}`), so tokens should be built from
//!   [`equality_key`](super::compare::equality_key). An empty `values`
//!   matches nothing.
//! - `Range { path, lower, upper }`: the document holds, in the range index
//!   on `path`, a value of the *same type class* as the bounds (numbers,
//!   strings, booleans, dates or null) inside the bounds. Bounds are Int32,
//!   Int64, Double (never NaN), String, Boolean, DateTime or Null; numbers
//!   compare by value across types.
//! - `Text { paths, search }`: some normalised word of `search` occurs in a
//!   string the text index on one of `paths` holds.
//! - `And`/`Or`: intersection/union; `Or(vec![])` matches nothing.
//!
//! Soundness also depends on what the indexes hold, which the lowering
//! layer must guarantee:
//!
//! - an eq index holds a token for *every* value of `index_values(doc,
//!   path)`, arrays and sub-documents included;
//! - a range index holds every value of `index_values` of the classes above,
//!   in MongoDB's order: Int32, Int64, Double and Decimal128 values on one
//!   exact numeric scale (an Int64 above 2^53 must not collapse onto a
//!   neighbouring double, and a Decimal128 must be placed by value; where an
//!   encoding can only approximate, it must widen bounds to inclusive rather
//!   than lose a match), Symbols next to equal Strings;
//! - a text index holds the normalised words of every String in
//!   `index_values(doc, path)`.
//!
//! Rules:
//!
//! - equality (implicit or `$eq`) uses an eq index, else a range index as a
//!   point range; `$in` likewise (an `Or` of point ranges on a range index);
//! - `$gt`, `$gte`, `$lt`, `$lte` use a range index, one `Range` per
//!   operator. Bounds on the same path are deliberately **not** merged into
//!   one interval: `{a: {$gt: 5, $lt: 10}}` matches `{a: [3, 12]}` (each
//!   bound is met by a different element), which an interval `(5, 10)` over
//!   the index would miss;
//! - equality to null (and `$in` with null, `$gte`/`$lte` null, `$lt: MaxKey`,
//!   …) also matches missing fields, which no index holds: `All`;
//! - `$ne`, `$nin`, `$not`, `$nor`, `$exists`: `All`;
//! - `$and` is the `And` of its narrowing parts; `$or` narrows only if every
//!   branch does;
//! - `$text` searches every text-indexed path for the search's positive
//!   terms; without a text index it is an error, as in MongoDB.

use bson::Bson;

use super::error::QueryError;
use super::filter::{CompareOp, Expr, Filter};
use super::number::Number;

/// The kind of an encrypted index on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKindSpec {
    /// Equality tokens.
    Eq,
    /// Order-revealing ciphertexts.
    Range,
    /// Word tokens.
    Text,
}

/// Which documents the node should return (a superset of the matches).
// The variants follow the interface agreed with the lowering layer; plans
// are small trees built once per query, so variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum IndexPlan {
    /// Scan everything.
    All,
    /// The document has an eq-index value on `path` equal to any of `values`.
    Eq {
        path: String,
        values: Vec<Bson>,
    },
    /// The document has a range-index value on `path` within the bounds
    /// (`(value, inclusive)`; `None` is open).
    Range {
        path: String,
        lower: Option<(Bson, bool)>,
        upper: Option<(Bson, bool)>,
    },
    /// Any word of `search` in any of these text-indexed paths.
    Text {
        paths: Vec<String>,
        search: String,
    },
    And(Vec<IndexPlan>),
    Or(Vec<IndexPlan>),
}

/// Plans `filter` against the indexes `(path, kind)` of a collection.
pub fn plan(filter: &Filter, indexes: &[(String, IndexKindSpec)]) -> Result<IndexPlan, QueryError> {
    let planner = Planner { indexes };
    if filter.text_search().is_some() && planner.text_paths().is_empty() {
        return Err(QueryError::TextIndexRequired);
    }
    Ok(planner.plan(filter.expr()))
}

struct Planner<'a> {
    indexes: &'a [(String, IndexKindSpec)],
}

impl Planner<'_> {
    fn has(&self, path: &str, kind: IndexKindSpec) -> bool {
        self.indexes.iter().any(|(p, k)| p == path && *k == kind)
    }

    fn text_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = Vec::new();
        for (path, kind) in self.indexes {
            if *kind == IndexKindSpec::Text && !paths.contains(path) {
                paths.push(path.clone());
            }
        }
        paths
    }

    fn plan(&self, expr: &Expr) -> IndexPlan {
        match expr {
            Expr::And(children) => and(children.iter().map(|c| self.plan(c)).collect()),
            Expr::Or(children) => or(children.iter().map(|c| self.plan(c)).collect()),
            Expr::AlwaysFalse => IndexPlan::Or(Vec::new()),
            Expr::Text(search) => IndexPlan::Text {
                paths: self.text_paths(),
                search: search.positive_text(),
            },
            Expr::Compare { path, op, value } => self.compare(path.as_str(), *op, value),
            Expr::In { path, values } => self.in_list(path.as_str(), values),
            // Negations and existence tests can match documents that hold
            // no indexed value at all.
            Expr::Nor(_)
            | Expr::Not(_)
            | Expr::Exists { .. }
            | Expr::Type { .. }
            | Expr::AlwaysTrue => IndexPlan::All,
        }
    }

    fn compare(&self, path: &str, op: CompareOp, value: &Bson) -> IndexPlan {
        match op {
            CompareOp::Eq => self.in_list(path, std::slice::from_ref(value)),
            _ => {
                // Bounds that also admit missing fields or every type.
                let admits_missing =
                    matches!(value, Bson::Null) && matches!(op, CompareOp::Gte | CompareOp::Lte);
                if admits_missing || !range_bound_ok(value) || !self.has(path, IndexKindSpec::Range)
                {
                    return IndexPlan::All;
                }
                let bound = Some((value.clone(), matches!(op, CompareOp::Gte | CompareOp::Lte)));
                let (lower, upper) = match op {
                    CompareOp::Gt | CompareOp::Gte => (bound, None),
                    _ => (None, bound),
                };
                IndexPlan::Range {
                    path: path.to_string(),
                    lower,
                    upper,
                }
            }
        }
    }

    /// Equality to any of `values` (`$eq` is the one-value case).
    fn in_list(&self, path: &str, values: &[Bson]) -> IndexPlan {
        // Null also matches missing fields and undefined, which no index holds.
        if values.iter().any(|v| matches!(v, Bson::Null)) {
            return IndexPlan::All;
        }
        if self.has(path, IndexKindSpec::Eq) {
            return IndexPlan::Eq {
                path: path.to_string(),
                values: values.to_vec(),
            };
        }
        if self.has(path, IndexKindSpec::Range) && values.iter().all(range_bound_ok) {
            let points: Vec<IndexPlan> = values
                .iter()
                .map(|v| IndexPlan::Range {
                    path: path.to_string(),
                    lower: Some((v.clone(), true)),
                    upper: Some((v.clone(), true)),
                })
                .collect();
            return or(points);
        }
        IndexPlan::All
    }
}

/// Bound types the range lowering supports. NaN is excluded so the lowering
/// never has to place NaN in its order; plans fall back to `All` instead.
fn range_bound_ok(value: &Bson) -> bool {
    match value {
        Bson::Int32(_) | Bson::Int64(_) => true,
        Bson::Double(_) => !Number::of(value).is_some_and(|n| n.is_nan()),
        Bson::String(_) | Bson::Boolean(_) | Bson::DateTime(_) | Bson::Null => true,
        _ => false,
    }
}

/// Intersection, simplified: `All` parts dropped, nested `And`s flattened.
fn and(parts: Vec<IndexPlan>) -> IndexPlan {
    let mut flat = Vec::new();
    for part in parts {
        match part {
            IndexPlan::All => {}
            IndexPlan::And(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    match flat.len() {
        0 => IndexPlan::All,
        1 => flat.pop().unwrap_or(IndexPlan::All),
        _ => IndexPlan::And(flat),
    }
}

/// Union, simplified: `All` if any branch is `All`, nested `Or`s flattened.
fn or(parts: Vec<IndexPlan>) -> IndexPlan {
    let mut flat = Vec::new();
    for part in parts {
        match part {
            IndexPlan::All => return IndexPlan::All,
            IndexPlan::Or(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    if flat.len() == 1 {
        return flat.pop().unwrap_or(IndexPlan::All);
    }
    IndexPlan::Or(flat)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::filter::parse_filter;
    use bson::{bson, doc, Document};

    fn indexes() -> Vec<(String, IndexKindSpec)> {
        vec![
            ("e".to_string(), IndexKindSpec::Eq),
            ("r".to_string(), IndexKindSpec::Range),
            ("b".to_string(), IndexKindSpec::Eq),
            ("b".to_string(), IndexKindSpec::Range),
            ("t".to_string(), IndexKindSpec::Text),
            ("u".to_string(), IndexKindSpec::Text),
        ]
    }

    fn planned(filter: Document) -> IndexPlan {
        plan(&parse_filter(&filter).unwrap(), &indexes()).unwrap()
    }

    fn eq(path: &str, values: Vec<Bson>) -> IndexPlan {
        IndexPlan::Eq {
            path: path.to_string(),
            values,
        }
    }

    fn range(path: &str, lower: Option<(Bson, bool)>, upper: Option<(Bson, bool)>) -> IndexPlan {
        IndexPlan::Range {
            path: path.to_string(),
            lower,
            upper,
        }
    }

    #[test]
    fn equality_prefers_eq_indexes_then_point_ranges() {
        assert_eq!(planned(doc! {"e": 1}), eq("e", vec![bson!(1)]));
        assert_eq!(planned(doc! {"b": {"$eq": "x"}}), eq("b", vec![bson!("x")]));
        assert_eq!(
            planned(doc! {"r": 5}),
            range("r", Some((bson!(5), true)), Some((bson!(5), true)))
        );
        assert_eq!(planned(doc! {"nope": 1}), IndexPlan::All);
        // Whole documents and arrays are held by eq indexes, not range ones.
        assert_eq!(
            planned(doc! {"e": {"x": 1}}),
            eq("e", vec![bson!({"x": 1})])
        );
        assert_eq!(planned(doc! {"r": [1, 2]}), IndexPlan::All);
    }

    #[test]
    fn in_lists() {
        assert_eq!(
            planned(doc! {"e": {"$in": [1, "a"]}}),
            eq("e", vec![bson!(1), bson!("a")])
        );
        assert_eq!(
            planned(doc! {"r": {"$in": [1, 2]}}),
            IndexPlan::Or(vec![
                range("r", Some((bson!(1), true)), Some((bson!(1), true))),
                range("r", Some((bson!(2), true)), Some((bson!(2), true))),
            ])
        );
        assert_eq!(planned(doc! {"e": {"$in": []}}), eq("e", vec![]));
        assert_eq!(planned(doc! {"r": {"$in": []}}), IndexPlan::Or(vec![]));
        assert_eq!(
            planned(doc! {"e": {"$in": [1, Bson::Null]}}),
            IndexPlan::All
        );
        assert_eq!(planned(doc! {"r": {"$in": [1, {"x": 1}]}}), IndexPlan::All);
    }

    #[test]
    fn ranges_keep_one_bound_per_operator() {
        assert_eq!(
            planned(doc! {"r": {"$gt": 5}}),
            range("r", Some((bson!(5), false)), None)
        );
        assert_eq!(
            planned(doc! {"r": {"$lte": "m"}}),
            range("r", None, Some((bson!("m"), true)))
        );
        assert_eq!(
            planned(doc! {"r": {"$gte": 1, "$lt": 9}}),
            IndexPlan::And(vec![
                range("r", Some((bson!(1), true)), None),
                range("r", None, Some((bson!(9), false))),
            ])
        );
        assert_eq!(planned(doc! {"e": {"$gt": 5}}), IndexPlan::All);
        assert_eq!(planned(doc! {"r": {"$gt": f64::NAN}}), IndexPlan::All);
        assert_eq!(
            planned(doc! {"r": {"$gt": bson::oid::ObjectId::new()}}),
            IndexPlan::All
        );
        assert_eq!(planned(doc! {"r": {"$lt": Bson::MaxKey}}), IndexPlan::All);
        assert_eq!(planned(doc! {"r": {"$gte": Bson::Null}}), IndexPlan::All);
        assert_eq!(
            planned(doc! {"r": {"$gt": Bson::Null}}),
            range("r", Some((Bson::Null, false)), None)
        );
    }

    #[test]
    fn null_negations_and_existence_scan_everything() {
        for filter in [
            doc! {"e": Bson::Null},
            doc! {"e": {"$ne": 1}},
            doc! {"e": {"$nin": [1]}},
            doc! {"e": {"$exists": true}},
            doc! {"e": {"$not": {"$eq": 1}}},
            doc! {"$nor": [{"e": 1}]},
        ] {
            assert_eq!(planned(filter), IndexPlan::All);
        }
    }

    #[test]
    fn and_or_composition() {
        assert_eq!(
            planned(doc! {"e": 1, "x": 2, "r": {"$lt": 3}}),
            IndexPlan::And(vec![
                eq("e", vec![bson!(1)]),
                range("r", None, Some((bson!(3), false)))
            ])
        );
        assert_eq!(
            planned(doc! {"$or": [{"e": 1}, {"r": 2}]}),
            IndexPlan::Or(vec![
                eq("e", vec![bson!(1)]),
                range("r", Some((bson!(2), true)), Some((bson!(2), true))),
            ])
        );
        assert_eq!(planned(doc! {"$or": [{"e": 1}, {"x": 2}]}), IndexPlan::All);
        assert_eq!(
            planned(doc! {"$and": [{"$and": [{"e": 1}]}, {"b": 2}]}),
            IndexPlan::And(vec![eq("e", vec![bson!(1)]), eq("b", vec![bson!(2)])])
        );
        assert_eq!(planned(doc! {"$alwaysFalse": 1}), IndexPlan::Or(vec![]));
    }

    #[test]
    fn plans_hold_for_multikey_and_missing_counterexamples() {
        use crate::query::filter::{eval, EvalContext};
        use crate::query::path::index_values;
        // Each bound met by a different element: a merged interval would miss it.
        let f = parse_filter(&doc! {"r": {"$gt": 5, "$lt": 10}}).unwrap();
        let d = doc! {"r": [3, 12]};
        assert!(eval(&f, &d, &EvalContext::without_text()));
        let p = plan(&f, &indexes()).unwrap();
        let IndexPlan::And(parts) = p else {
            panic!("expected one range per bound")
        };
        let values = index_values(&d, "r");
        for part in parts {
            let IndexPlan::Range { lower, upper, .. } = part else {
                panic!("expected ranges")
            };
            let holds = values.iter().any(|v| {
                lower
                    .as_ref()
                    .is_none_or(|(b, _)| crate::query::compare_bson(v, b).is_gt())
                    && upper
                        .as_ref()
                        .is_none_or(|(b, _)| crate::query::compare_bson(v, b).is_lt())
            });
            assert!(holds);
        }
    }

    #[test]
    fn text_uses_every_text_index() {
        assert_eq!(
            planned(doc! {"$text": {"$search": "coffee -tea \"shop\""}, "e": 1}),
            IndexPlan::And(vec![
                IndexPlan::Text {
                    paths: vec!["t".to_string(), "u".to_string()],
                    search: "coffee shop".to_string()
                },
                eq("e", vec![bson!(1)]),
            ])
        );
        let f = parse_filter(&doc! {"$text": {"$search": "x"}}).unwrap();
        assert_eq!(
            plan(&f, &[("e".to_string(), IndexKindSpec::Eq)]),
            Err(QueryError::TextIndexRequired)
        );
    }
}
