//! Checks of the generators against the reference evaluator: what they
//! produce is accepted, hits documents, and obeys the algebraic laws the
//! reference must satisfy (so the reference is also tested on random input).

use std::cmp::Ordering;

use bson::{doc, Bson, Document};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use super::*;
use crate::reference::{
    apply_update, compare_values, documents_identical, find, matches, upsert_document,
};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// Draws `n` values from a strategy with a fixed seed.
fn sample<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("value").current())
        .collect()
}

proptest! {
    #![proptest_config(config(256))]

    /// Every generated filter is accepted by the reference, for every
    /// generated document.
    #[test]
    fn generated_filters_are_accepted(docs in arb_documents(8), filter in arb_filter(), (docs2, filter2) in arb_collection_and_filter(8)) {
        for (docs, filter) in [(docs, filter), (docs2, filter2)] {
            for d in &docs {
                let result = matches(&filter, d, TEXT_PATHS);
                prop_assert!(result.is_ok(), "{filter} on {d}: {result:?}");
            }
            prop_assert!(find(&docs, &filter, None, 0, None, None, TEXT_PATHS).is_ok());
        }
    }

    /// Generated sorts (which avoid parallel arrays), projections, skips and
    /// limits are accepted.
    #[test]
    fn generated_find_options_are_accepted(
        docs in arb_documents(10),
        filter in arb_filter(),
        sort in arb_sort(),
        projection in arb_projection(),
        (skip, limit) in arb_skip_limit(),
    ) {
        let result = find(&docs, &filter, Some(&sort), skip, limit, Some(&projection), TEXT_PATHS);
        prop_assert!(result.is_ok(), "sort {sort} projection {projection}: {result:?}");
    }

    /// Generated documents have unique `_id`s, first.
    #[test]
    fn generated_documents_have_unique_ids_first(docs in arb_documents(12)) {
        for (i, d) in docs.iter().enumerate() {
            prop_assert_eq!(d.keys().next().map(String::as_str), Some("_id"));
            for other in &docs[i + 1..] {
                prop_assert_ne!(
                    compare_values(d.get("_id").unwrap(), other.get("_id").unwrap()),
                    Ordering::Equal
                );
            }
        }
    }

    /// `$not`, `$ne`, `$nin` and `$nor` are exact complements.
    #[test]
    fn negations_are_complements(d in arb_document(), ops in arb_operator_doc(arb_operand()), path in select(FILTER_PATHS.to_vec()), operand in arb_operand(), list in prop::collection::vec(arb_operand(), 0..3), clauses in prop::collection::vec(arb_field_clause(OperandPools::default()), 1..3)) {
        let m = |f: Document| matches(&f, &d, &[]).unwrap();
        let mut plain = Document::new();
        plain.insert(path, Bson::Document(ops.clone()));
        let mut negated = Document::new();
        negated.insert(path, doc! {"$not": ops});
        prop_assert_eq!(m(plain), !m(negated));

        let mut eq = Document::new();
        eq.insert(path, doc! {"$eq": operand.clone()});
        let mut ne = Document::new();
        ne.insert(path, doc! {"$ne": operand});
        prop_assert_eq!(m(eq), !m(ne));

        let mut is_in = Document::new();
        is_in.insert(path, doc! {"$in": list.clone()});
        let mut nin = Document::new();
        nin.insert(path, doc! {"$nin": list});
        prop_assert_eq!(m(is_in), !m(nin));

        let clauses: Vec<Bson> = clauses.into_iter().map(Bson::Document).collect();
        prop_assert_eq!(m(doc! {"$or": clauses.clone()}), !m(doc! {"$nor": clauses.clone()}));
        let any = clauses.iter().any(|c| m(c.as_document().unwrap().clone()));
        prop_assert_eq!(m(doc! {"$or": clauses.clone()}), any);
        let all = clauses.iter().all(|c| m(c.as_document().unwrap().clone()));
        prop_assert_eq!(m(doc! {"$and": clauses}), all);
    }

    /// `$in: [v]` is `$eq: v`, and `$gte` is `$gt` or `$eq` (outside NaN and
    /// null/missing, where MongoDB's rules make both sides agree anyway).
    #[test]
    fn operator_identities(d in arb_document(), path in select(FILTER_PATHS.to_vec()), operand in arb_operand()) {
        let m = |op: &str, v: Bson| {
            let mut f = Document::new();
            let mut ops = Document::new();
            ops.insert(op, v);
            f.insert(path, ops);
            matches(&f, &d, &[]).unwrap()
        };
        prop_assert_eq!(m("$in", Bson::Array(vec![operand.clone()])), m("$eq", operand.clone()));
        if !matches!(operand, Bson::Double(f) if f.is_nan()) {
            prop_assert_eq!(m("$gte", operand.clone()), m("$gt", operand.clone()) || m("$eq", operand.clone()));
            prop_assert_eq!(m("$lte", operand.clone()), m("$lt", operand.clone()) || m("$eq", operand));
        }
    }

    /// compare_values is a total order on generated values (documents
    /// included).
    #[test]
    fn compare_values_is_a_total_order(a in arb_value(), b in arb_value(), c in arb_value()) {
        prop_assert_eq!(compare_values(&a, &a), Ordering::Equal);
        prop_assert_eq!(compare_values(&a, &b), compare_values(&b, &a).reverse());
        if compare_values(&a, &b) != Ordering::Greater && compare_values(&b, &c) != Ordering::Greater {
            prop_assert_ne!(compare_values(&a, &c), Ordering::Greater);
        }
    }

    /// skip and limit slice the full result; sort permutes it.
    #[test]
    fn skip_limit_and_sort_are_consistent(
        docs in arb_documents(10),
        filter in arb_filter_without_text(),
        sort in arb_sort(),
        (skip, limit) in arb_skip_limit(),
    ) {
        let unsorted = find(&docs, &filter, None, 0, None, None, &[]).unwrap();
        let sorted = find(&docs, &filter, Some(&sort), 0, None, None, &[]).unwrap();
        prop_assert_eq!(sorted.len(), unsorted.len());
        for d in &unsorted {
            prop_assert!(sorted.iter().any(|s| documents_identical(s, d)));
        }
        let page = find(&docs, &filter, Some(&sort), skip, limit, None, &[]).unwrap();
        let take = match limit { None | Some(0) => usize::MAX, Some(n) => n.unsigned_abs() as usize };
        let expected: Vec<Document> = sorted.into_iter().skip(skip as usize).take(take).collect();
        // (bson's `==` says NaN != NaN, so compare strictly instead.)
        prop_assert_eq!(page.len(), expected.len());
        for (p, e) in page.iter().zip(&expected) {
            prop_assert!(documents_identical(p, e), "{p} != {e}");
        }
    }

    /// After a successful `$set` the document matches the value set; after
    /// `$unset` of a top-level field it lacks it; a replacement keeps `_id`.
    #[test]
    fn updates_do_what_they_say(d in arb_document(), path in select(UPDATE_PATHS.to_vec()), value in arb_value(), top in select(vec!["a", "b", "c", "tags", "nested"]), replacement in arb_replacement()) {
        let mut set = Document::new();
        set.insert(path, value.clone());
        if let Ok(updated) = apply_update(&d, &doc! {"$set": set.clone()}) {
            prop_assert!(matches(&set, &updated, &[]).unwrap(), "{set} after $set on {d}: {updated}");
            prop_assert_eq!(updated.get("_id"), d.get("_id"));
        }
        let mut unset = Document::new();
        unset.insert(top, "");
        let updated = apply_update(&d, &doc! {"$unset": unset}).unwrap();
        prop_assert!(!updated.contains_key(top));
        let replaced = apply_update(&d, &replacement).unwrap();
        prop_assert_eq!(replaced.get("_id"), d.get("_id"));
        prop_assert_eq!(replaced.len(), replacement.len() + 1);
    }

    /// An upsert from a generated filter and update either fails or yields a
    /// document that, for operator updates without `$unset`, still matches
    /// the filter's equality fields (checked through upsert_seed's own
    /// output: the seed must match the filter's equalities).
    #[test]
    fn upsert_seed_matches_its_equalities(filter in arb_filter_without_text(), update in arb_update()) {
        if let Ok(seed) = crate::reference::upsert_seed(&filter) {
            // The seed satisfies every top-level implicit equality.
            for (path, value) in &filter {
                if path.starts_with('$') || matches!(value, Bson::Document(d) if d.keys().next().is_some_and(|k| k.starts_with('$'))) {
                    continue;
                }
                let mut eq = Document::new();
                eq.insert(path.clone(), value.clone());
                prop_assert!(matches(&eq, &seed, &[]).unwrap(), "{eq} on seed {seed}");
            }
        }
        let _ = upsert_document(&filter, &update);
    }
}

/// Generated updates are mostly valid on generated documents, and some are
/// not (conflicts, non-numeric `$inc`, `$push` onto a scalar...).
#[test]
fn generated_updates_are_mostly_valid() {
    let cases = sample((arb_document(), arb_update()), 2_000);
    let ok = cases
        .iter()
        .filter(|(d, u)| apply_update(d, u).is_ok())
        .count();
    assert!(
        ok > cases.len() * 6 / 10,
        "only {ok} of {} updates valid",
        cases.len()
    );
    assert!(ok < cases.len(), "no invalid update generated");
    // On a document with no fields but `_id`, only malformed updates fail.
    let on_empty = sample(arb_update(), 2_000);
    let ok = on_empty
        .iter()
        .filter(|u| apply_update(&doc! {"_id": 0}, u).is_ok())
        .count();
    assert!(
        ok > on_empty.len() * 8 / 10,
        "only {ok} of {} updates valid on {{_id: 0}}",
        on_empty.len()
    );
}

/// Generated filters are selective: many match some documents of their
/// collection and not others. Filters built for their collection
/// ([`arb_collection_and_filter`]) do so more often.
#[test]
fn generated_filters_hit_and_miss() {
    fn count(cases: &[(Vec<Document>, Document)]) -> (usize, usize, f64) {
        let (mut some_not_all, mut used, mut hits, mut total) = (0, 0, 0, 0);
        for (docs, filter) in cases.iter().filter(|(docs, _)| docs.len() >= 4) {
            let n = docs
                .iter()
                .filter(|d| matches(filter, d, TEXT_PATHS).unwrap())
                .count();
            some_not_all += usize::from(n > 0 && n < docs.len());
            used += 1;
            hits += n;
            total += docs.len();
        }
        (some_not_all, used, hits as f64 / total as f64)
    }
    let correlated = sample(arb_collection_and_filter(10), 1_000);
    let (selective, used, rate) = count(&correlated);
    assert!(
        selective * 4 > used,
        "only {selective} of {used} filters are selective"
    );
    assert!((0.15..0.85).contains(&rate), "hit rate {rate}");

    let independent = sample((arb_documents(10), arb_filter()), 1_000);
    let (selective, used, rate) = count(&independent);
    assert!(
        selective * 8 > used,
        "only {selective} of {used} filters are selective"
    );
    assert!((0.1..0.9).contains(&rate), "hit rate {rate}");
}

/// Every operator appears in generated filters, and `$text` sometimes.
#[test]
fn generated_filters_use_every_operator() {
    let text: String = sample(arb_filter(), 500)
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for op in [
        "$eq",
        "$ne",
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$in",
        "$nin",
        "$and",
        "$or",
        "$nor",
        "$not",
        "$exists",
        "$text",
        "nested.0.x",
        "tags.1",
        "c.x",
    ] {
        assert!(text.contains(&format!("\"{op}\"")), "{op} never generated");
    }
}
