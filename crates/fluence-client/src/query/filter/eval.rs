//! Exact MongoDB evaluation of a parsed filter against one document.
//!
//! A leaf predicate matches when any candidate of its path matches (see
//! [`super::super::path`]); `Not` inverts the whole child, so `$ne`, `$nin`
//! and `$not` match documents where the path is missing or where no
//! candidate satisfies the inner predicate (`{a: {$ne: 1}}` does not match
//! `{a: [1, 2]}`).
//!
//! Comparisons are type-bracketed like the server's
//! `ComparisonMatchExpression`: values of different canonical types never
//! compare, except that a `null` bound matches missing fields, `null` and
//! `undefined` for `$eq`, `$lte`, `$gte`, and `MinKey`/`MaxKey` bounds accept
//! every type for the comparisons that include everything. NaN equals NaN
//! but is neither greater nor less than anything.

use bson::{Bson, Document};

use super::super::compare::{canonical_rank, compare_bson};
use super::super::number::Number;
use super::super::path::{any_candidate, FieldPath};
use super::{CompareOp, Expr, Filter};

/// What evaluation needs besides the document: the text-indexed paths and
/// the word normaliser their index tokens were built with (the gateway
/// passes `fluence_crypto::text::normalize_words`).
pub struct EvalContext<'a> {
    text_paths: Vec<FieldPath>,
    normalize: &'a (dyn Fn(&str) -> Vec<String> + Sync),
}

fn no_words(_: &str) -> Vec<String> {
    Vec::new()
}

impl<'a> EvalContext<'a> {
    /// A context whose `$text` searches look at `text_paths`, splitting
    /// strings into words with `normalize`.
    pub fn new(text_paths: &[String], normalize: &'a (dyn Fn(&str) -> Vec<String> + Sync)) -> Self {
        EvalContext {
            text_paths: text_paths.iter().map(|p| FieldPath::new(p)).collect(),
            normalize,
        }
    }

    /// A context without text indexes: `$text` matches nothing.
    pub fn without_text() -> EvalContext<'static> {
        EvalContext {
            text_paths: Vec::new(),
            normalize: &no_words,
        }
    }

    pub(crate) fn text_paths(&self) -> &[FieldPath] {
        &self.text_paths
    }

    pub(crate) fn normalize(&self, text: &str) -> Vec<String> {
        (self.normalize)(text)
    }
}

/// Whether `doc` matches `filter`, with MongoDB's semantics.
pub fn eval(filter: &Filter, doc: &Document, ctx: &EvalContext<'_>) -> bool {
    eval_expr(filter.expr(), doc, ctx)
}

fn eval_expr(expr: &Expr, doc: &Document, ctx: &EvalContext<'_>) -> bool {
    match expr {
        Expr::And(children) => children.iter().all(|c| eval_expr(c, doc, ctx)),
        Expr::Or(children) => children.iter().any(|c| eval_expr(c, doc, ctx)),
        Expr::Nor(children) => !children.iter().any(|c| eval_expr(c, doc, ctx)),
        Expr::Not(child) => !eval_expr(child, doc, ctx),
        Expr::Compare { path, op, value } => any_candidate(doc, path.parts(), |candidate| {
            compare_matches(*op, value, candidate)
        }),
        Expr::In { path, values } => {
            let has_null = values.iter().any(|v| matches!(v, Bson::Null));
            any_candidate(doc, path.parts(), |candidate| {
                in_matches(values, has_null, candidate)
            })
        }
        Expr::Exists { path } => any_candidate(doc, path.parts(), |c| c.is_some()),
        Expr::Type { path, types } => any_candidate(doc, path.parts(), |c| {
            c.is_some_and(|value| types.iter().any(|t| type_matches(*t, value)))
        }),
        Expr::Text(search) => search.matches(doc, ctx),
        Expr::AlwaysTrue => true,
        Expr::AlwaysFalse => false,
    }
}

/// One candidate against one comparison (`None` is a missing field, which
/// MongoDB ranks like `undefined`).
fn compare_matches(op: CompareOp, bound: &Bson, candidate: Option<&Bson>) -> bool {
    let candidate_rank = candidate.map_or(0, canonical_rank);
    let bound_rank = canonical_rank(bound);
    let Some(value) = candidate.filter(|_| candidate_rank == bound_rank) else {
        // Different canonical types. Missing/undefined (0) against null (5):
        // null bounds treat them as null.
        if candidate_rank + bound_rank == 5 {
            return matches!(op, CompareOp::Eq | CompareOp::Lte | CompareOp::Gte);
        }
        return match bound {
            Bson::MaxKey => matches!(op, CompareOp::Lt | CompareOp::Lte),
            Bson::MinKey => matches!(op, CompareOp::Gt | CompareOp::Gte),
            _ => false,
        };
    };
    if op != CompareOp::Eq {
        let value_nan = Number::of(value).is_some_and(|n| n.is_nan());
        let bound_nan = Number::of(bound).is_some_and(|n| n.is_nan());
        if value_nan || bound_nan {
            return matches!(op, CompareOp::Lte | CompareOp::Gte) && value_nan && bound_nan;
        }
    }
    let order = compare_bson(value, bound);
    match op {
        CompareOp::Eq => order.is_eq(),
        CompareOp::Gt => order.is_gt(),
        CompareOp::Gte => order.is_ge(),
        CompareOp::Lt => order.is_lt(),
        CompareOp::Lte => order.is_le(),
    }
}

/// One candidate against an `$in` list, which the parser sorted with
/// [`compare_bson`].
fn in_matches(values: &[Bson], has_null: bool, candidate: Option<&Bson>) -> bool {
    match candidate {
        None | Some(Bson::Undefined) if has_null => true,
        None => false,
        Some(value) => values.binary_search_by(|v| compare_bson(v, value)).is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_filter;
    use super::*;
    use bson::{doc, Decimal128, Regex};
    use std::str::FromStr;

    fn words(s: &str) -> Vec<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    }

    fn matches(filter: Document, doc: Document) -> bool {
        let f = parse_filter(&filter).unwrap();
        eval(&f, &doc, &EvalContext::without_text())
    }

    fn matching(filter: Document, docs: &[Document]) -> Vec<usize> {
        let f = parse_filter(&filter).unwrap();
        docs.iter()
            .enumerate()
            .filter(|(_, d)| eval(&f, d, &EvalContext::without_text()))
            .map(|(i, _)| i)
            .collect()
    }

    #[test]
    fn implicit_and_explicit_equality() {
        assert!(matches(doc! {"a": 1}, doc! {"a": 1}));
        assert!(matches(doc! {"a": {"$eq": 1}}, doc! {"a": 1.0}));
        assert!(matches(doc! {"a": 1}, doc! {"a": 1_i64}));
        assert!(!matches(doc! {"a": 1}, doc! {"a": "1"}));
        assert!(matches(doc! {"a.b": "x"}, doc! {"a": {"b": "x"}}));
        assert!(matches(doc! {}, doc! {"anything": 1}));
    }

    #[test]
    fn decimal_equality() {
        let d = Decimal128::from_str("2.50").unwrap();
        assert!(matches(doc! {"a": 2.5}, doc! {"a": d}));
        assert!(matches(doc! {"a": {"$gt": 2}}, doc! {"a": d}));
    }

    #[test]
    fn array_fields_match_any_element_or_the_whole_array() {
        // MongoDB manual, "Query an Array".
        let docs = [
            doc! {"tags": ["blank", "red"]},
            doc! {"tags": ["red", "blank"]},
            doc! {"tags": ["red"]},
            doc! {"tags": "red"},
            doc! {"tags": [["red"]]},
        ];
        assert_eq!(matching(doc! {"tags": "red"}, &docs), vec![0, 1, 2, 3]);
        assert_eq!(matching(doc! {"tags": ["red", "blank"]}, &docs), vec![1]);
        assert_eq!(matching(doc! {"tags": ["red"]}, &docs), vec![2, 4]);
        // A range condition can be met by different elements.
        let dim = [doc! {"dim": [14, 21]}, doc! {"dim": [22.85, 30]}];
        assert_eq!(
            matching(doc! {"dim": {"$gt": 15, "$lt": 20}}, &dim),
            vec![0]
        );
        assert_eq!(matching(doc! {"dim.1": {"$gt": 25}}, &dim), vec![1]);
    }

    #[test]
    fn arrays_of_documents() {
        // MongoDB manual, "Query an Array of Embedded Documents".
        let docs = [
            doc! {"instock": [{"warehouse": "A", "qty": 5}, {"warehouse": "C", "qty": 15}]},
            doc! {"instock": [{"warehouse": "C", "qty": 5}]},
            doc! {"instock": [{"warehouse": "A", "qty": 40}, {"warehouse": "B", "qty": 5}]},
        ];
        assert_eq!(
            matching(doc! {"instock": {"warehouse": "A", "qty": 5}}, &docs),
            vec![0]
        );
        // Field order matters for embedded-document equality.
        assert!(matching(doc! {"instock": {"qty": 5, "warehouse": "A"}}, &docs).is_empty());
        assert_eq!(
            matching(doc! {"instock.qty": {"$lte": 5}}, &docs),
            vec![0, 1, 2]
        );
        assert_eq!(
            matching(doc! {"instock.0.qty": {"$lte": 5}}, &docs),
            vec![0, 1]
        );
        assert_eq!(
            matching(doc! {"instock.qty": 5, "instock.warehouse": "A"}, &docs),
            vec![0, 2]
        );
    }

    #[test]
    fn null_matches_null_missing_and_undefined() {
        // MongoDB manual, "Query for Null or Missing Fields".
        let docs = [
            doc! {"_id": 1, "item": Bson::Null},
            doc! {"_id": 2},
            doc! {"_id": 3, "item": Bson::Undefined},
            doc! {"_id": 4, "item": [Bson::Null]},
            doc! {"_id": 5, "item": []},
            doc! {"_id": 6, "item": 0},
        ];
        assert_eq!(matching(doc! {"item": Bson::Null}, &docs), vec![0, 1, 2, 3]);
        assert_eq!(
            matching(doc! {"item": {"$ne": Bson::Null}}, &docs),
            vec![4, 5]
        );
        assert_eq!(matching(doc! {"item": {"$exists": false}}, &docs), vec![1]);
        assert_eq!(
            matching(doc! {"item": {"$in": [Bson::Null]}}, &docs),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            matching(doc! {"item": {"$gte": Bson::Null}}, &docs),
            vec![0, 1, 2, 3]
        );
        assert!(matching(doc! {"item": {"$gt": Bson::Null}}, &docs).is_empty());
        // Through arrays of documents, an element without the field is "missing".
        assert!(matches(
            doc! {"a.b": Bson::Null},
            doc! {"a": [{"b": 1}, {"c": 2}]}
        ));
        assert!(!matches(doc! {"a.b": Bson::Null}, doc! {"a": [{"b": 1}]}));
        // Scalars in a non-leaf array yield no candidate at all.
        assert!(!matches(doc! {"a.b": Bson::Null}, doc! {"a": [1, 2]}));
        assert!(matches(doc! {"a.b": Bson::Null}, doc! {"a": 5}));
    }

    #[test]
    fn comparisons_are_type_bracketed() {
        let docs = [
            doc! {"a": 5},
            doc! {"a": "5"},
            doc! {"a": true},
            doc! {"a": bson::DateTime::from_millis(5)},
            doc! {"a": Bson::Null},
            doc! {},
            doc! {"a": [1, "z"]},
        ];
        assert_eq!(matching(doc! {"a": {"$gt": 1}}, &docs), vec![0]);
        assert_eq!(matching(doc! {"a": {"$gt": ""}}, &docs), vec![1, 6]);
        assert_eq!(matching(doc! {"a": {"$lt": 2}}, &docs), vec![6]);
        assert_eq!(matching(doc! {"a": {"$gte": false}}, &docs), vec![2]);
        assert_eq!(
            matching(doc! {"a": {"$lt": bson::DateTime::from_millis(10)}}, &docs),
            vec![3]
        );
        // MinKey/MaxKey bounds take every type, missing included.
        assert_eq!(
            matching(doc! {"a": {"$lt": Bson::MaxKey}}, &docs),
            vec![0, 1, 2, 3, 4, 5, 6]
        );
        assert_eq!(
            matching(doc! {"a": {"$gte": Bson::MinKey}}, &docs),
            vec![0, 1, 2, 3, 4, 5, 6]
        );
        assert!(matching(doc! {"a": {"$gt": Bson::MaxKey}}, &docs).is_empty());
        assert!(matching(doc! {"a": Bson::MaxKey}, &docs).is_empty());
    }

    #[test]
    fn nan_equals_only_nan() {
        let docs = [
            doc! {"a": f64::NAN},
            doc! {"a": 1},
            doc! {"a": f64::NEG_INFINITY},
        ];
        assert_eq!(matching(doc! {"a": f64::NAN}, &docs), vec![0]);
        assert_eq!(matching(doc! {"a": {"$gte": f64::NAN}}, &docs), vec![0]);
        assert!(matching(doc! {"a": {"$lt": f64::NAN}}, &docs).is_empty());
        assert_eq!(matching(doc! {"a": {"$lt": 5}}, &docs), vec![1, 2]);
        assert_eq!(matching(doc! {"a": {"$ne": f64::NAN}}, &docs), vec![1, 2]);
    }

    #[test]
    fn ne_and_nin_on_arrays_and_missing() {
        let docs = [
            doc! {"a": [1, 2]},
            doc! {"a": [2, 3]},
            doc! {"a": 1},
            doc! {},
        ];
        assert_eq!(matching(doc! {"a": {"$ne": 1}}, &docs), vec![1, 3]);
        assert_eq!(matching(doc! {"a": {"$nin": [1, 3]}}, &docs), vec![3]);
        assert_eq!(matching(doc! {"a": {"$in": [3, 1]}}, &docs), vec![0, 1, 2]);
        assert_eq!(matching(doc! {"a": {"$in": [[1, 2]]}}, &docs), vec![0]);
        assert!(matching(doc! {"a": {"$in": []}}, &docs).is_empty());
        assert_eq!(matching(doc! {"a": {"$nin": []}}, &docs), vec![0, 1, 2, 3]);
    }

    #[test]
    fn not_inverts_including_missing() {
        let docs = [doc! {"p": 1.99}, doc! {"p": 2.5}, doc! {"p": "x"}, doc! {}];
        assert_eq!(
            matching(doc! {"p": {"$not": {"$gt": 1.99}}}, &docs),
            vec![0, 2, 3]
        );
        assert_eq!(
            matching(doc! {"p": {"$not": {"$gt": 1, "$lt": 2}}}, &docs),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn exists() {
        let docs = [
            doc! {"a": Bson::Null},
            doc! {"a": {"b": 1}},
            doc! {"a": [{"c": 1}, {"b": 2}]},
            doc! {"a": [1, 2]},
            doc! {},
        ];
        assert_eq!(
            matching(doc! {"a": {"$exists": true}}, &docs),
            vec![0, 1, 2, 3]
        );
        assert_eq!(matching(doc! {"a.b": {"$exists": 1}}, &docs), vec![1, 2]);
        assert_eq!(
            matching(doc! {"a.b": {"$exists": false}}, &docs),
            vec![0, 3, 4]
        );
    }

    #[test]
    fn logical_operators() {
        let docs = [doc! {"a": 1, "b": 1}, doc! {"a": 1, "b": 2}, doc! {"a": 2}];
        assert_eq!(
            matching(doc! {"$or": [{"a": 2}, {"b": 2}]}, &docs),
            vec![1, 2]
        );
        assert_eq!(
            matching(doc! {"$and": [{"a": 1}, {"b": 2}]}, &docs),
            vec![1]
        );
        assert_eq!(
            matching(doc! {"$nor": [{"a": 2}, {"b": 2}]}, &docs),
            vec![0]
        );
        assert_eq!(
            matching(
                doc! {"$and": [{"$or": [{"a": 1}]}, {"$nor": [{"b": 1}]}]},
                &docs
            ),
            vec![1]
        );
        assert_eq!(
            matching(doc! {"$alwaysFalse": 1}, &docs),
            Vec::<usize>::new()
        );
        assert_eq!(matching(doc! {"$alwaysTrue": 1}, &docs), vec![0, 1, 2]);
    }

    #[test]
    fn equality_to_regex_values_and_special_types() {
        let re = Regex {
            pattern: "ab".try_into().unwrap(),
            options: "i".try_into().unwrap(),
        };
        assert!(matches(
            doc! {"r": {"$eq": Bson::RegularExpression(re.clone())}},
            doc! {"r": Bson::RegularExpression(re)}
        ));
        let id = bson::oid::ObjectId::new();
        assert!(matches(doc! {"_id": id}, doc! {"_id": id}));
        assert!(matches(
            doc! {"a": {"$gt": bson::oid::ObjectId::from_bytes([0; 12])}},
            doc! {"a": id}
        ));
    }

    #[test]
    fn text_search_over_indexed_paths() {
        let paths = vec!["title".to_string(), "tags".to_string()];
        let ctx = EvalContext::new(&paths, &words);
        let f = |search: &str| parse_filter(&doc! {"$text": {"$search": search}}).unwrap();
        let d1 = doc! {"title": "Coffee shop owner", "tags": ["Espresso", "cake"], "body": "tea"};
        let d2 = doc! {"title": "Tea and cake"};
        assert!(eval(&f("coffee"), &d1, &ctx));
        assert!(eval(&f("ESPRESSO milk"), &d1, &ctx));
        assert!(!eval(&f("tea"), &d1, &ctx), "body is not text-indexed");
        assert!(eval(&f("cake -tea"), &d1, &ctx));
        assert!(!eval(&f("cake -tea"), &d2, &ctx));
        assert!(eval(&f("\"shop owner\""), &d1, &ctx));
        assert!(!eval(&f("\"owner shop\""), &d1, &ctx));
        assert!(!eval(&f("coffee -\"shop owner\""), &d1, &ctx));
        assert!(
            !eval(&f("-coffee"), &d1, &ctx),
            "no positive term matches nothing"
        );
        assert!(!eval(&f("coffee"), &d1, &EvalContext::without_text()));
        // $text combines with other predicates.
        let g =
            parse_filter(&doc! {"$text": {"$search": "cake"}, "title": {"$ne": "Tea and cake"}})
                .unwrap();
        assert!(eval(&g, &d1, &ctx));
        assert!(!eval(&g, &d2, &ctx));
    }
}

/// Whether `value` is of the type `$type` names.
fn type_matches(set: super::TypeSet, value: &Bson) -> bool {
    match set {
        super::TypeSet::Number => matches!(
            value,
            Bson::Int32(_) | Bson::Int64(_) | Bson::Double(_) | Bson::Decimal128(_)
        ),
        super::TypeSet::Code(code) => i32::from(value.element_type() as u8 as i8) == code,
    }
}

#[cfg(test)]
mod type_tests {
    use bson::{doc, Document};

    use crate::query::{eval, parse_filter, EvalContext};

    fn matches(filter: Document, doc: Document) -> bool {
        eval(
            &parse_filter(&filter).unwrap(),
            &doc,
            &EvalContext::without_text(),
        )
    }

    #[test]
    fn type_matches_by_alias_number_and_through_arrays() {
        assert!(matches(doc! {"a": {"$type": "null"}}, doc! {"a": null}));
        assert!(!matches(doc! {"a": {"$type": "null"}}, doc! {}));
        assert!(matches(doc! {"a": {"$type": 16}}, doc! {"a": 1}));
        assert!(!matches(doc! {"a": {"$type": "long"}}, doc! {"a": 1}));
        assert!(matches(doc! {"a": {"$type": "number"}}, doc! {"a": 1.5}));
        assert!(matches(
            doc! {"a": {"$type": ["string", "bool"]}},
            doc! {"a": true}
        ));
        // An array matches "array" and the types of its elements.
        assert!(matches(doc! {"a": {"$type": "array"}}, doc! {"a": [1]}));
        assert!(matches(doc! {"a": {"$type": "int"}}, doc! {"a": ["x", 1]}));
        assert!(matches(
            doc! {"a.b": {"$type": "string"}},
            doc! {"a": [{"b": "x"}]}
        ));
        assert!(matches(
            doc! {"a": {"$type": "minKey"}},
            doc! {"a": bson::Bson::MinKey}
        ));
        assert!(matches(doc! {"a": {"$not": {"$type": "string"}}}, doc! {}));
        for bad in [
            doc! {"a": {"$type": "nope"}},
            doc! {"a": {"$type": 42}},
            doc! {"a": {"$type": []}},
            doc! {"a": {"$type": {}}},
        ] {
            assert!(parse_filter(&bad).is_err(), "{bad}");
        }
    }
}
