//! Hand-written cases for the reference evaluator, from MongoDB's
//! documentation (page cited per test) and from the server's jstests
//! (`jstests/core/null_query_semantics.js`, `sort_dotted_paths.js`,
//! `sort_dotted_paths_positional.js`), whose expected results are transcribed.

use std::cmp::Ordering;

use bson::{doc, oid::ObjectId, Binary, Bson, DateTime, Document, Regex, Timestamp};

use super::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Does `filter` match `doc` (no text index)?
fn m(filter: Document, doc: Document) -> bool {
    matches(&filter, &doc, &[]).unwrap_or_else(|e| panic!("filter {filter} failed: {e}"))
}

/// The `_id`s of the documents `filter` matches, in insertion order.
fn ids(filter: Document, docs: &[Document]) -> Vec<Bson> {
    find(docs, &filter, None, 0, None, None, &[])
        .unwrap_or_else(|e| panic!("filter {filter} failed: {e}"))
        .into_iter()
        .map(|d| d.get("_id").cloned().unwrap_or(Bson::Null))
        .collect()
}

/// The Int32 `_id`s of all documents in `sort` order.
fn sorted_ids(docs: &[Document], sort: Document) -> Vec<i32> {
    find(docs, &doc! {}, Some(&sort), 0, None, None, &[])
        .unwrap_or_else(|e| panic!("sort {sort} failed: {e}"))
        .iter()
        .map(|d| d.get_i32("_id").expect("int _id"))
        .collect()
}

fn int_ids(ids: &[i32]) -> Vec<Bson> {
    ids.iter().map(|i| Bson::Int32(*i)).collect()
}

fn str_ids(ids: &[&str]) -> Vec<Bson> {
    ids.iter().map(|s| Bson::String(s.to_string())).collect()
}

fn update(doc: Document, update: Document) -> Document {
    apply_update(&doc, &update).unwrap_or_else(|e| panic!("update {update} failed: {e}"))
}

/// Strict document equality (field order and types matter).
#[track_caller]
fn assert_identical(actual: &Document, expected: &Document) {
    assert!(
        documents_identical(actual, expected),
        "\n  actual:   {actual}\n  expected: {expected}"
    );
}

fn regex(pattern: &str) -> Bson {
    Bson::RegularExpression(Regex {
        pattern: pattern.try_into().expect("no NUL"),
        options: "".try_into().expect("no NUL"),
    })
}

fn date(ms: i64) -> Bson {
    Bson::DateTime(DateTime::from_millis(ms))
}

// ---------------------------------------------------------------------------
// Equality, arrays and dotted paths
// ---------------------------------------------------------------------------

/// https://www.mongodb.com/docs/manual/tutorial/query-documents/#specify-equality-condition
#[test]
fn implicit_equality_on_a_scalar() {
    assert!(m(doc! {"status": "D"}, doc! {"status": "D"}));
    assert!(!m(doc! {"status": "D"}, doc! {"status": "A"}));
    assert!(!m(doc! {"status": "D"}, doc! {}));
    assert!(m(doc! {"status": {"$eq": "D"}}, doc! {"status": "D"}));
}

/// https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/#numeric-types
#[test]
fn numbers_are_equal_across_numeric_types() {
    for stored in [Bson::Int32(1), Bson::Int64(1), Bson::Double(1.0)] {
        for query in [Bson::Int32(1), Bson::Int64(1), Bson::Double(1.0)] {
            assert!(m(doc! {"a": query.clone()}, doc! {"a": stored.clone()}));
        }
    }
    assert!(!m(doc! {"a": 1}, doc! {"a": 1.5}));
    assert!(m(doc! {"a": -0.0}, doc! {"a": 0}));
}

/// Equality never crosses type brackets (other than numbers).
#[test]
fn equality_does_not_cross_types() {
    assert!(!m(doc! {"a": "1"}, doc! {"a": 1}));
    assert!(!m(doc! {"a": 1}, doc! {"a": "1"}));
    assert!(!m(doc! {"a": true}, doc! {"a": 1}));
    assert!(!m(doc! {"a": 0}, doc! {"a": false}));
    assert!(!m(doc! {"a": Bson::Null}, doc! {"a": 0}));
    assert!(!m(doc! {"a": Bson::Null}, doc! {"a": ""}));
    assert!(!m(doc! {"a": Bson::Null}, doc! {"a": false}));
}

/// https://www.mongodb.com/docs/manual/tutorial/query-arrays/ ("Match an
/// Array", "Query an Array for an Element").
#[test]
fn array_field_matches_an_element_or_the_whole_array() {
    let d = doc! {"tags": ["blank", "red"]};
    assert!(m(doc! {"tags": "red"}, d.clone()));
    assert!(m(doc! {"tags": ["blank", "red"]}, d.clone()));
    assert!(
        !m(doc! {"tags": ["red", "blank"]}, d.clone()),
        "order matters"
    );
    assert!(!m(doc! {"tags": ["blank"]}, d.clone()));
    assert!(!m(doc! {"tags": "blue"}, d));
}

/// A leaf array is opened one level: `{a: 1}` does not match `[[1, 2]]`.
#[test]
fn nested_arrays_are_opened_one_level_only() {
    let d = doc! {"a": [[1, 2], 3]};
    assert!(!m(doc! {"a": 1}, d.clone()));
    assert!(!m(doc! {"a": 2}, d.clone()));
    assert!(m(doc! {"a": [1, 2]}, d.clone()));
    assert!(m(doc! {"a": 3}, d.clone()));
    assert!(m(doc! {"a": [[1, 2], 3]}, d));
}

/// https://www.mongodb.com/docs/manual/tutorial/query-embedded-documents/#match-an-embedded-nested-document
/// ("Equality matches on the whole embedded document require an exact match
/// of the specified document, including the field order.")
#[test]
fn embedded_document_equality_is_exact_and_ordered() {
    let d = doc! {"size": {"h": 14, "w": 21, "uom": "cm"}};
    assert!(m(doc! {"size": {"h": 14, "w": 21, "uom": "cm"}}, d.clone()));
    assert!(!m(
        doc! {"size": {"w": 21, "h": 14, "uom": "cm"}},
        d.clone()
    ));
    assert!(!m(doc! {"size": {"h": 14, "w": 21}}, d.clone()));
    assert!(m(
        doc! {"size": {"h": 14.0, "w": Bson::Int64(21), "uom": "cm"}},
        d
    ));
}

/// https://www.mongodb.com/docs/manual/tutorial/query-embedded-documents/#query-on-nested-field
#[test]
fn dotted_path_into_an_embedded_document() {
    let d = doc! {"item": "paper", "size": {"h": 8.5, "w": 11, "uom": "in"}};
    assert!(m(doc! {"size.uom": "in"}, d.clone()));
    assert!(m(doc! {"size.h": {"$lt": 15}}, d.clone()));
    assert!(!m(doc! {"size.uom": "cm"}, d.clone()));
    assert!(!m(doc! {"size.x": 1}, d.clone()));
    assert!(m(doc! {"size.x": Bson::Null}, d));
}

/// https://www.mongodb.com/docs/manual/tutorial/query-array-of-documents/
/// ("Specify a Query Condition on a Field Embedded in an Array of Documents",
/// "A Combination of Elements Satisfies the Criteria").
#[test]
fn dotted_path_through_an_array_of_documents() {
    let d = doc! {"item": "journal", "instock": [
        {"warehouse": "A", "qty": 5}, {"warehouse": "C", "qty": 15}
    ]};
    assert!(m(doc! {"instock.qty": 5}, d.clone()));
    assert!(m(doc! {"instock.qty": {"$lte": 20}}, d.clone()));
    assert!(m(doc! {"instock.warehouse": "C"}, d.clone()));
    assert!(!m(doc! {"instock.qty": 6}, d.clone()));
    // 15 satisfies $gt 10 and 5 satisfies $lte 5: different elements suffice.
    assert!(m(doc! {"instock.qty": {"$gt": 10, "$lte": 5}}, d));
}

/// https://www.mongodb.com/docs/manual/tutorial/query-arrays/#query-for-an-element-by-the-array-index-position
/// and query-array-of-documents ("Use the Array Index to Query for a Field in
/// the Embedded Document").
#[test]
fn array_positions_in_paths() {
    let d = doc! {
        "tags": ["blank", "red"],
        "instock": [{"warehouse": "A", "qty": 5}, {"warehouse": "C", "qty": 15}],
    };
    assert!(m(doc! {"tags.1": "red"}, d.clone()));
    assert!(!m(doc! {"tags.0": "red"}, d.clone()));
    assert!(m(doc! {"instock.0.qty": {"$lte": 5}}, d.clone()));
    assert!(!m(doc! {"instock.1.qty": 5}, d.clone()));
    // Past the end of an array of scalars there is no value at all, not even
    // "missing": `$eq: null` does not match, `$exists: false` does.
    assert!(!m(doc! {"tags.2": "red"}, d.clone()));
    assert!(!m(doc! {"tags.2": Bson::Null}, d.clone()));
    assert!(m(doc! {"tags.2": {"$exists": false}}, d));
}

/// A numeric component also names a field of embedded documents
/// (path.cpp: documents in the array are searched with the whole remaining
/// path, and the element at that position is taken too).
#[test]
fn array_position_also_reads_fields_named_like_numbers() {
    assert!(m(doc! {"a.0": 5}, doc! {"a": {"0": 5}}));
    assert!(m(doc! {"a.0": 5}, doc! {"a": [{"0": 5}]}));
    assert!(m(doc! {"a.0": {"0": 5}}, doc! {"a": [{"0": 5}]}));
    // A document element without field "0" gives "missing" besides the element.
    assert!(m(doc! {"a.0": Bson::Null}, doc! {"a": [{"x": 1}]}));
}

#[test]
fn array_position_does_not_open_a_nested_array() {
    let d = doc! {"a": [[1, 2], 3]};
    assert!(!m(doc! {"a.0": 1}, d.clone()));
    assert!(m(doc! {"a.0": [1, 2]}, d.clone()));
    assert!(m(doc! {"a.0.1": 2}, d.clone()));
    assert!(m(doc! {"a.1": 3}, d));
}

#[test]
fn arrays_inside_arrays_are_not_searched_by_field_name() {
    let d = doc! {"a": [[{"b": 1}]]};
    assert!(!m(doc! {"a.b": 1}, d.clone()));
    assert!(m(doc! {"a.0.b": 1}, d));
}

// ---------------------------------------------------------------------------
// Null and missing
// ---------------------------------------------------------------------------

/// https://www.mongodb.com/docs/manual/tutorial/query-for-null-fields/
#[test]
fn null_matches_null_and_missing() {
    let docs = [
        doc! {"_id": 1, "item": Bson::Null},
        doc! {"_id": 2},
        doc! {"_id": 3, "item": "x"},
    ];
    assert_eq!(ids(doc! {"item": Bson::Null}, &docs), int_ids(&[1, 2]));
    assert_eq!(
        ids(doc! {"item": {"$eq": Bson::Null}}, &docs),
        int_ids(&[1, 2])
    );
    assert_eq!(
        ids(doc! {"item": {"$ne": Bson::Null}}, &docs),
        int_ids(&[3])
    );
    assert_eq!(ids(doc! {"item": {"$exists": false}}, &docs), int_ids(&[2]));
    assert_eq!(
        ids(doc! {"item": {"$exists": true}}, &docs),
        int_ids(&[1, 3])
    );
}

/// The documents of jstests/core/null_query_semantics.js.
fn null_semantics_docs() -> Vec<Document> {
    vec![
        doc! {"_id": "a_empty_subobject", "a": {}},
        doc! {"_id": "a_null", "a": Bson::Null},
        doc! {"_id": "a_number", "a": 4},
        doc! {"_id": "a_subobject_b_not_null", "a": {"b": "hi"}},
        doc! {"_id": "a_subobject_b_null", "a": {"b": Bson::Null}},
        doc! {"_id": "a_subobject_b_undefined", "a": {"b": Bson::Undefined}},
        doc! {"_id": "a_undefined", "a": Bson::Undefined},
        doc! {"_id": "no_a"},
        doc! {"_id": "a_double_array", "a": [[]]},
        doc! {"_id": "a_empty_array", "a": []},
        doc! {"_id": "a_object_array_all_b_nulls", "a": [{"b": Bson::Null}, {"b": Bson::Undefined}, {"b": Bson::Null}, {}]},
        doc! {"_id": "a_object_array_no_b_nulls", "a": [{"b": 1}, {"b": 3}, {"b": "string"}]},
        doc! {"_id": "a_object_array_some_b_nulls", "a": [{"b": Bson::Null}, {"b": 3}, {"b": Bson::Null}]},
        doc! {"_id": "a_object_array_some_b_undefined", "a": [{"b": Bson::Undefined}, {"b": 3}]},
        doc! {"_id": "a_object_array_some_b_missing", "a": [{"b": 3}, {}]},
        doc! {"_id": "a_value_array_all_nulls", "a": [Bson::Null, Bson::Null]},
        doc! {"_id": "a_value_array_no_nulls", "a": [1, "string", 4]},
        doc! {"_id": "a_value_array_with_null", "a": [1, "string", Bson::Null, 4]},
        doc! {"_id": "a_value_array_with_undefined", "a": [1, "string", Bson::Undefined, 4]},
    ]
}

/// `{a: {$eq: null}}` and `{a: {$ne: null}}` (null_query_semantics.js). In
/// the classic matcher `undefined` counts as null.
#[test]
fn null_query_semantics_top_level() {
    let docs = null_semantics_docs();
    assert_eq!(
        ids(doc! {"a": {"$eq": Bson::Null}}, &docs),
        str_ids(&[
            "a_null",
            "a_undefined",
            "no_a",
            "a_value_array_all_nulls",
            "a_value_array_with_null",
            "a_value_array_with_undefined",
        ])
    );
    assert_eq!(
        ids(doc! {"a": {"$ne": Bson::Null}}, &docs),
        str_ids(&[
            "a_empty_subobject",
            "a_number",
            "a_subobject_b_not_null",
            "a_subobject_b_null",
            "a_subobject_b_undefined",
            "a_double_array",
            "a_empty_array",
            "a_object_array_all_b_nulls",
            "a_object_array_no_b_nulls",
            "a_object_array_some_b_nulls",
            "a_object_array_some_b_undefined",
            "a_object_array_some_b_missing",
            "a_value_array_no_nulls",
        ])
    );
}

/// `{"a.b": {$eq: null}}` matches "a non-object, non-array value for a; a
/// subobject a with a missing, null, or undefined value for b; an array which
/// has at least one object in it which has a missing, null, or undefined value
/// for b" (null_query_semantics.js), and projecting `a.b` keeps documents in
/// arrays and drops scalars.
#[test]
fn null_query_semantics_dotted() {
    let docs = null_semantics_docs();
    let eq_null = vec![
        ("a_empty_subobject", doc! {"a": {}}),
        ("a_null", doc! {}),
        ("a_number", doc! {}),
        ("a_subobject_b_null", doc! {"a": {"b": Bson::Null}}),
        (
            "a_subobject_b_undefined",
            doc! {"a": {"b": Bson::Undefined}},
        ),
        ("a_undefined", doc! {}),
        ("no_a", doc! {}),
        (
            "a_object_array_all_b_nulls",
            doc! {"a": [{"b": Bson::Null}, {"b": Bson::Undefined}, {"b": Bson::Null}, {}]},
        ),
        (
            "a_object_array_some_b_nulls",
            doc! {"a": [{"b": Bson::Null}, {"b": 3}, {"b": Bson::Null}]},
        ),
        (
            "a_object_array_some_b_undefined",
            doc! {"a": [{"b": Bson::Undefined}, {"b": 3}]},
        ),
        ("a_object_array_some_b_missing", doc! {"a": [{"b": 3}, {}]}),
    ];
    let ne_null = vec![
        ("a_subobject_b_not_null", doc! {"a": {"b": "hi"}}),
        ("a_double_array", doc! {"a": [[]]}),
        ("a_empty_array", doc! {"a": []}),
        (
            "a_object_array_no_b_nulls",
            doc! {"a": [{"b": 1}, {"b": 3}, {"b": "string"}]},
        ),
        ("a_value_array_all_nulls", doc! {"a": []}),
        ("a_value_array_no_nulls", doc! {"a": []}),
        ("a_value_array_with_null", doc! {"a": []}),
        ("a_value_array_with_undefined", doc! {"a": []}),
    ];
    let projection = doc! {"_id": 0, "a.b": 1};
    for (filter, expected) in [
        (doc! {"a.b": {"$eq": Bson::Null}}, eq_null),
        (doc! {"a.b": {"$ne": Bson::Null}}, ne_null),
    ] {
        let mut expected_ids: Vec<&str> = expected.iter().map(|(id, _)| *id).collect();
        let mut actual_ids: Vec<Bson> = ids(filter.clone(), &docs);
        actual_ids.sort_by(compare_values);
        expected_ids.sort();
        assert_eq!(actual_ids, str_ids(&expected_ids), "filter {filter}");
        for (id, projected) in expected {
            let filter = doc! {"$and": [filter.clone(), {"_id": id}]};
            let found = find(&docs, &filter, None, 0, None, Some(&projection), &[]).unwrap();
            assert_eq!(found.len(), 1, "{id}");
            assert_identical(&found[0], &projected);
        }
    }
}

/// https://www.mongodb.com/docs/manual/reference/operator/query/in/ : a null
/// in the list matches missing fields too.
#[test]
fn in_with_null_matches_missing() {
    let docs = [
        doc! {"_id": 1, "a": Bson::Null},
        doc! {"_id": 2},
        doc! {"_id": 3, "a": 5},
        doc! {"_id": 4, "a": 6},
        doc! {"_id": 5, "a": [6, Bson::Null]},
    ];
    assert_eq!(
        ids(doc! {"a": {"$in": [Bson::Null, 5]}}, &docs),
        int_ids(&[1, 2, 3, 5])
    );
    assert_eq!(
        ids(doc! {"a": {"$nin": [Bson::Null, 5]}}, &docs),
        int_ids(&[4])
    );
    assert_eq!(ids(doc! {"a": {"$in": [5]}}, &docs), int_ids(&[3]));
}

/// `$gte: null` and `$lte: null` behave like `$eq: null`; `$gt/$lt: null`
/// match nothing (type bracketing: only null is in null's bracket).
#[test]
fn range_operators_against_null() {
    let docs = [
        doc! {"_id": 1, "a": Bson::Null},
        doc! {"_id": 2},
        doc! {"_id": 3, "a": 0},
        doc! {"_id": 4, "a": false},
        doc! {"_id": 5, "a": ""},
    ];
    assert_eq!(
        ids(doc! {"a": {"$gte": Bson::Null}}, &docs),
        int_ids(&[1, 2])
    );
    assert_eq!(
        ids(doc! {"a": {"$lte": Bson::Null}}, &docs),
        int_ids(&[1, 2])
    );
    assert_eq!(ids(doc! {"a": {"$gt": Bson::Null}}, &docs), int_ids(&[]));
    assert_eq!(ids(doc! {"a": {"$lt": Bson::Null}}, &docs), int_ids(&[]));
}

// ---------------------------------------------------------------------------
// $ne and $nin
// ---------------------------------------------------------------------------

/// https://www.mongodb.com/docs/manual/reference/operator/query/ne/ : "This
/// includes documents that do not contain the field."
#[test]
fn ne_matches_missing_and_other_types() {
    let docs = [
        doc! {"_id": 1, "qty": 20},
        doc! {"_id": 2, "qty": 20.0},
        doc! {"_id": 3, "qty": "20"},
        doc! {"_id": 4},
        doc! {"_id": 5, "qty": 15},
    ];
    assert_eq!(ids(doc! {"qty": {"$ne": 20}}, &docs), int_ids(&[3, 4, 5]));
}

/// `$ne` on an array field: no element (and not the whole array) may equal.
#[test]
fn ne_on_arrays_requires_that_no_element_equals() {
    assert!(!m(
        doc! {"tags": {"$ne": "red"}},
        doc! {"tags": ["red", "x"]}
    ));
    assert!(m(doc! {"tags": {"$ne": "red"}}, doc! {"tags": ["x"]}));
    assert!(m(doc! {"tags": {"$ne": "red"}}, doc! {"tags": []}));
    assert!(!m(doc! {"tags": {"$ne": ["red"]}}, doc! {"tags": ["red"]}));
}

/// https://www.mongodb.com/docs/manual/reference/operator/query/nin/ (its
/// inventory examples).
#[test]
fn nin_matches_missing_and_arrays_without_listed_values() {
    let docs = [
        doc! {"_id": 1, "item": "Pens", "quantity": 350, "tags": ["school", "office"]},
        doc! {"_id": 2, "item": "Erasers", "quantity": 15, "tags": ["school", "home"]},
        doc! {"_id": 3, "item": "Maps", "tags": ["office", "storage"]},
        doc! {"_id": 4, "item": "Books", "quantity": 5, "tags": ["school", "storage", "home"]},
    ];
    assert_eq!(
        ids(doc! {"quantity": {"$nin": [5, 15]}}, &docs),
        int_ids(&[1, 3])
    );
    assert_eq!(
        ids(doc! {"tags": {"$nin": ["school"]}}, &docs),
        int_ids(&[3])
    );
}

// ---------------------------------------------------------------------------
// Comparison operators and type bracketing
// ---------------------------------------------------------------------------

/// https://www.mongodb.com/docs/manual/reference/method/db.collection.find/#type-bracketing
#[test]
fn comparisons_are_type_bracketed() {
    let docs = [
        doc! {"_id": 1, "a": 2},
        doc! {"_id": 2, "a": 1.5},
        doc! {"_id": 3, "a": Bson::Int64(3)},
        doc! {"_id": 4, "a": "2"},
        doc! {"_id": 5, "a": true},
        doc! {"_id": 6, "a": Bson::Null},
        doc! {"_id": 7},
        doc! {"_id": 8, "a": [0, 5]},
        doc! {"_id": 9, "a": date(5_000)},
        doc! {"_id": 10, "a": 1},
    ];
    assert_eq!(ids(doc! {"a": {"$gt": 1}}, &docs), int_ids(&[1, 2, 3, 8]));
    assert_eq!(ids(doc! {"a": {"$lte": 1}}, &docs), int_ids(&[8, 10]));
    assert_eq!(ids(doc! {"a": {"$gte": "1"}}, &docs), int_ids(&[4]));
}

/// Strings compare by UTF-8 bytes: "B" < "a" < "ab" < "b" < "é".
#[test]
fn strings_compare_by_utf8_bytes() {
    for s in ["B", "a", "ab", ""] {
        assert!(m(doc! {"s": {"$lt": "b"}}, doc! {"s": s}), "{s}");
    }
    for s in ["b", "ba", "é", "z"] {
        assert!(!m(doc! {"s": {"$lt": "b"}}, doc! {"s": s}), "{s}");
    }
}

/// https://www.mongodb.com/docs/manual/tutorial/query-arrays/#query-an-array-with-compound-filter-conditions-on-the-array-elements
#[test]
fn range_on_an_array_can_be_satisfied_by_different_elements() {
    let filter = doc! {"dim_cm": {"$gt": 15, "$lt": 20}};
    assert!(m(filter.clone(), doc! {"dim_cm": [14, 21]}));
    assert!(m(filter.clone(), doc! {"dim_cm": [10, 15.25]}));
    assert!(!m(filter.clone(), doc! {"dim_cm": [22.85, 30]}));
    assert!(!m(filter, doc! {"dim_cm": []}));
}

/// An array operand compares with whole arrays (and array elements that are
/// arrays), lexicographically.
#[test]
fn comparison_with_an_array_operand_compares_whole_arrays() {
    let filter = doc! {"a": {"$gt": [1]}};
    assert!(m(filter.clone(), doc! {"a": [2]}));
    assert!(m(filter.clone(), doc! {"a": [1, 0]}));
    assert!(m(filter.clone(), doc! {"a": [[2]]}));
    assert!(!m(filter.clone(), doc! {"a": [1]}));
    assert!(!m(filter.clone(), doc! {"a": [0, 5]}));
    assert!(!m(filter, doc! {"a": 5}));
}

#[test]
fn booleans_and_dates_compare_within_their_type() {
    assert!(m(doc! {"a": {"$gt": false}}, doc! {"a": true}));
    assert!(!m(doc! {"a": {"$gt": false}}, doc! {"a": false}));
    assert!(!m(doc! {"a": {"$gt": false}}, doc! {"a": 1}));
    let filter = doc! {"d": {"$gte": date(1_000)}};
    assert!(m(filter.clone(), doc! {"d": date(1_000)}));
    assert!(m(filter.clone(), doc! {"d": date(2_000)}));
    assert!(!m(filter.clone(), doc! {"d": date(999)}));
    assert!(!m(filter, doc! {"d": Bson::Int64(5_000)}));
}

/// NaN equals NaN; range operators never match NaN except `$gte/$lte: NaN`
/// on NaN (server: ComparisonMatchExpression::matchesSingleElement).
#[test]
fn nan_rules() {
    let nan = doc! {"a": f64::NAN};
    assert!(m(doc! {"a": f64::NAN}, nan.clone()));
    assert!(m(doc! {"a": {"$in": [f64::NAN]}}, nan.clone()));
    assert!(m(doc! {"a": {"$gte": f64::NAN}}, nan.clone()));
    assert!(m(doc! {"a": {"$lte": f64::NAN}}, nan.clone()));
    assert!(!m(doc! {"a": {"$gt": f64::NAN}}, nan.clone()));
    assert!(!m(doc! {"a": {"$lt": 5}}, nan.clone()));
    assert!(!m(doc! {"a": {"$lte": 5}}, nan.clone()));
    assert!(!m(doc! {"a": {"$gt": f64::NEG_INFINITY}}, nan.clone()));
    assert!(!m(doc! {"a": {"$ne": f64::NAN}}, nan.clone()));
    assert!(!m(doc! {"a": {"$gte": f64::NAN}}, doc! {"a": 5}));
    assert!(!m(doc! {"a": {"$lt": f64::NAN}}, doc! {"a": 5}));
    assert!(m(doc! {"a": {"$ne": f64::NAN}}, doc! {"a": 5}));
    assert!(!m(doc! {"a": 0}, nan));
}

/// Int64 against Double compares exactly, without rounding to a double.
#[test]
fn large_integers_compare_exactly_with_doubles() {
    let two_pow_53 = 9_007_199_254_740_992_i64;
    let d = doc! {"a": Bson::Int64(two_pow_53 + 1)};
    assert!(m(doc! {"a": {"$gt": two_pow_53 as f64}}, d.clone()));
    assert!(!m(doc! {"a": two_pow_53 as f64}, d));
    assert!(m(
        doc! {"a": two_pow_53 as f64},
        doc! {"a": Bson::Int64(two_pow_53)}
    ));
    assert!(m(
        doc! {"a": {"$lt": 1e300}},
        doc! {"a": Bson::Int64(i64::MAX)}
    ));
}

/// A MinKey operand is below every value and a MaxKey operand above, even a
/// missing one (server: ComparisonMatchExpression::matchesSingleElement).
#[test]
fn minkey_and_maxkey_operands() {
    for d in [
        doc! {"a": 1},
        doc! {"a": "x"},
        doc! {"a": Bson::Null},
        doc! {},
    ] {
        assert!(m(doc! {"a": {"$gt": Bson::MinKey}}, d.clone()), "{d}");
        assert!(m(doc! {"a": {"$lte": Bson::MaxKey}}, d.clone()), "{d}");
        assert!(!m(doc! {"a": {"$lt": Bson::MinKey}}, d.clone()), "{d}");
        assert!(!m(doc! {"a": Bson::MinKey}, d), "equality is exact");
    }
    assert!(m(doc! {"a": Bson::MinKey}, doc! {"a": Bson::MinKey}));
}

// ---------------------------------------------------------------------------
// $in
// ---------------------------------------------------------------------------

/// https://www.mongodb.com/docs/manual/reference/operator/query/in/ ("Use the
/// $in Operator to Match Values in an Array").
#[test]
fn in_matches_scalars_elements_and_whole_arrays() {
    let d = doc! {"tags": ["school", "office"]};
    assert!(m(doc! {"tags": {"$in": ["home", "school"]}}, d.clone()));
    assert!(!m(doc! {"tags": {"$in": ["home", "garden"]}}, d.clone()));
    assert!(m(doc! {"tags": {"$in": [["school", "office"]]}}, d.clone()));
    assert!(!m(doc! {"tags": {"$in": [["office", "school"]]}}, d));
    assert!(m(
        doc! {"tags": {"$in": ["school"]}},
        doc! {"tags": "school"}
    ));
}

#[test]
fn empty_in_matches_nothing_and_empty_nin_everything() {
    for d in [doc! {"a": 1}, doc! {}, doc! {"a": []}] {
        assert!(!m(doc! {"a": {"$in": []}}, d.clone()));
        assert!(m(doc! {"a": {"$nin": []}}, d));
    }
}

#[test]
fn in_compares_numbers_by_value() {
    assert!(m(doc! {"a": {"$in": [1]}}, doc! {"a": 1.0}));
    assert!(m(doc! {"a": {"$in": [Bson::Int64(2), "x"]}}, doc! {"a": 2}));
    assert!(!m(doc! {"a": {"$in": ["1"]}}, doc! {"a": 1}));
}

// ---------------------------------------------------------------------------
// Logical operators
// ---------------------------------------------------------------------------

/// https://www.mongodb.com/docs/manual/reference/operator/query/and/ and
/// https://www.mongodb.com/docs/manual/reference/operator/query/or/
#[test]
fn and_and_or() {
    let docs = [
        doc! {"_id": 1, "price": 1.99, "quantity": 5},
        doc! {"_id": 2, "price": 10, "quantity": 50},
        doc! {"_id": 3, "quantity": 30},
        doc! {"_id": 4, "price": 3, "quantity": 30},
    ];
    let and = doc! {"$and": [{"price": {"$ne": 1.99}}, {"price": {"$exists": true}}]};
    assert_eq!(ids(and, &docs), int_ids(&[2, 4]));
    let or = doc! {"$or": [{"quantity": {"$lt": 20}}, {"price": 10}]};
    assert_eq!(ids(or, &docs), int_ids(&[1, 2]));
    // Implicit AND of two conditions on one field, and of two fields.
    assert_eq!(
        ids(doc! {"quantity": {"$gt": 10, "$lt": 40}, "price": 3}, &docs),
        int_ids(&[4])
    );
}

/// https://www.mongodb.com/docs/manual/reference/operator/query/nor/ : the
/// `{$nor: [{price: 1.99}, {sale: true}]}` example returns documents whether
/// or not they contain the fields.
#[test]
fn nor_matches_documents_failing_every_clause() {
    let docs = [
        doc! {"_id": 1, "price": 1.99, "sale": true},
        doc! {"_id": 2, "price": 1.99, "sale": false},
        doc! {"_id": 3, "price": 2.0, "sale": true},
        doc! {"_id": 4, "price": 2.0, "sale": false},
        doc! {"_id": 5, "price": 2.0},
        doc! {"_id": 6, "sale": false},
        doc! {"_id": 7},
    ];
    let nor = doc! {"$nor": [{"price": 1.99}, {"sale": true}]};
    assert_eq!(ids(nor, &docs), int_ids(&[4, 5, 6, 7]));
}

/// https://www.mongodb.com/docs/manual/reference/operator/query/not/ :
/// `{price: {$not: {$gt: 1.99}}}` selects price <= 1.99, missing price, and
/// (type bracketing) non-numeric prices.
#[test]
fn not_is_the_negation_of_the_operator_expression() {
    let docs = [
        doc! {"_id": 1, "price": 1.99},
        doc! {"_id": 2, "price": 1.0},
        doc! {"_id": 3, "price": 2.0},
        doc! {"_id": 4},
        doc! {"_id": 5, "price": "3"},
    ];
    assert_eq!(
        ids(doc! {"price": {"$not": {"$gt": 1.99}}}, &docs),
        int_ids(&[1, 2, 4, 5])
    );
    assert_eq!(ids(doc! {"price": {"$lte": 1.99}}, &docs), int_ids(&[1, 2]));
}

/// `$not` with several operators negates their conjunction, which on arrays
/// differs from the complementary range.
#[test]
fn not_with_several_operators_and_arrays() {
    let not_between = doc! {"a": {"$not": {"$gt": 1, "$lt": 5}}};
    assert!(!m(not_between.clone(), doc! {"a": 3}));
    assert!(m(not_between.clone(), doc! {"a": 7}));
    assert!(m(not_between.clone(), doc! {"a": 0}));
    assert!(!m(not_between, doc! {"a": [0, 7]}));
    assert!(!m(doc! {"a": {"$not": {"$gt": 5}}}, doc! {"a": [1, 10]}));
    assert!(m(doc! {"a": {"$lte": 5}}, doc! {"a": [1, 10]}));
    assert!(m(
        doc! {"a": {"$not": {"$eq": "red"}}},
        doc! {"a": ["blue"]}
    ));
}

#[test]
fn nested_logical_operators() {
    let filter = doc! {"$or": [
        {"$and": [{"a": 1}, {"b": {"$exists": false}}]},
        {"$nor": [{"a": {"$gte": 0}}, {"c": "x"}]},
    ]};
    assert!(m(filter.clone(), doc! {"a": 1}));
    assert!(!m(filter.clone(), doc! {"a": 1, "b": 2}));
    assert!(m(filter.clone(), doc! {"a": -1}));
    assert!(!m(filter.clone(), doc! {"a": -1, "c": "x"}));
    assert!(m(filter, doc! {}));
}

#[test]
fn empty_filter_matches_every_document() {
    assert!(m(doc! {}, doc! {}));
    assert!(m(doc! {}, doc! {"a": 1}));
}

// ---------------------------------------------------------------------------
// $exists
// ---------------------------------------------------------------------------

/// https://www.mongodb.com/docs/manual/reference/operator/query/exists/ :
/// "matches the documents that contain the field, including documents where
/// the field value is null."
#[test]
fn exists_true_includes_null_values() {
    assert!(m(doc! {"qty": {"$exists": true}}, doc! {"qty": Bson::Null}));
    assert!(m(doc! {"qty": {"$exists": true}}, doc! {"qty": 0}));
    assert!(!m(doc! {"qty": {"$exists": true}}, doc! {}));
    assert!(m(doc! {"qty": {"$exists": false}}, doc! {}));
    assert!(!m(
        doc! {"qty": {"$exists": false}},
        doc! {"qty": Bson::Null}
    ));
}

#[test]
fn exists_through_arrays() {
    let exists = doc! {"a.b": {"$exists": true}};
    assert!(m(exists.clone(), doc! {"a": [{"c": 1}, {"b": 2}]}));
    assert!(m(exists.clone(), doc! {"a": {"b": Bson::Null}}));
    assert!(!m(exists.clone(), doc! {"a": [{"c": 1}]}));
    assert!(!m(exists.clone(), doc! {"a": [1, 2]}));
    assert!(!m(exists, doc! {"a": []}));
    assert!(m(doc! {"a.b": {"$exists": false}}, doc! {"a": [1, 2]}));
    assert!(m(doc! {"a": {"$exists": true}}, doc! {"a": []}));
}

#[test]
fn exists_reads_its_argument_as_a_boolean() {
    assert!(m(doc! {"a": {"$exists": 0}}, doc! {}));
    assert!(m(doc! {"a": {"$exists": 1}}, doc! {"a": 1}));
    assert!(m(doc! {"a": {"$exists": Bson::Null}}, doc! {}));
    assert!(m(doc! {"a": {"$exists": "yes"}}, doc! {"a": 1}));
}

#[test]
fn exists_on_an_array_position() {
    assert!(m(
        doc! {"tags.1": {"$exists": true}},
        doc! {"tags": ["a", "b"]}
    ));
    assert!(!m(doc! {"tags.1": {"$exists": true}}, doc! {"tags": ["a"]}));
}

// ---------------------------------------------------------------------------
// $text
// ---------------------------------------------------------------------------

fn text(search: &str) -> Document {
    doc! {"$text": {"$search": search}}
}

#[test]
fn text_matches_any_search_word_case_insensitively() {
    let paths = ["title", "tags"];
    let d = doc! {"title": "Coffee and Cakes", "tags": ["Hot-Drinks", "bakery"], "other": "tea"};
    let t = |s: &str| matches(&text(s), &d, &paths).unwrap();
    assert!(t("coffee"));
    assert!(t("COFFEE tea"));
    assert!(t("drinks"), "Hot-Drinks splits into hot and drinks");
    assert!(t("bakery"));
    assert!(t("and"), "no stop words");
    assert!(!t("tea"), "only text paths are searched");
    assert!(!t("cake"), "no stemming");
    assert!(t("hot-tea"), "searches hot and tea");
}

#[test]
fn text_searches_dotted_paths_through_arrays() {
    let paths = ["title", "notes.text"];
    let d = doc! {"title": "x", "body": "coffee", "notes": [{"text": "Tea time"}, {"other": 1}]};
    assert!(!matches(&text("coffee"), &d, &paths).unwrap());
    assert!(matches(&text("tea"), &d, &paths).unwrap());
    assert!(!matches(&text("tea"), &doc! {"notes": "tea"}, &paths).unwrap());
}

#[test]
fn text_words_split_on_non_alphanumeric_unicode() {
    assert_eq!(
        text_words("Éclair au CAFÉ, 2×crème-brûlée!"),
        ["éclair", "au", "café", "2", "crème", "brûlée"]
    );
    assert!(text_words(" ,; ").is_empty());
    assert!(!matches(&text(" ,; "), &doc! {"t": "a b"}, &["t"]).unwrap());
    assert!(matches(&text("CAFÉ"), &doc! {"t": "un café"}, &["t"]).unwrap());
}

#[test]
fn text_combines_with_other_conditions() {
    let filter = doc! {"$text": {"$search": "tea"}, "price": {"$lt": 5}};
    let paths = ["t"];
    assert!(matches(&filter, &doc! {"t": "green tea", "price": 3}, &paths).unwrap());
    assert!(!matches(&filter, &doc! {"t": "green tea", "price": 7}, &paths).unwrap());
    assert!(!matches(&filter, &doc! {"t": "coffee", "price": 3}, &paths).unwrap());
}

#[test]
fn text_without_text_paths_is_an_error() {
    assert!(matches(&text("tea"), &doc! {"t": "tea"}, &[]).is_err());
    assert!(find(&[], &text("tea"), None, 0, None, None, &[]).is_err());
}

// ---------------------------------------------------------------------------
// Malformed filters
// ---------------------------------------------------------------------------

#[test]
fn malformed_filters_are_errors() {
    let bad = [
        doc! {"a": {"$foo": 1}},
        doc! {"$foo": [{"a": 1}]},
        doc! {"$and": []},
        doc! {"$or": {"a": 1}},
        doc! {"$nor": [1]},
        doc! {"a": {"$in": 5}},
        doc! {"a": {"$nin": "x"}},
        doc! {"a": {"$in": [{"$gt": 1}]}},
        doc! {"a": {"$not": {}}},
        doc! {"a": {"$not": 5}},
        doc! {"a": {"$not": {"b": 1}}},
        doc! {"a": {"$gt": 1, "b": 2}},
        doc! {"a": {"$eq": Bson::Undefined}},
        doc! {"a": {"$regex": "x"}},
        doc! {"a": {"$elemMatch": {"b": 1}}},
        doc! {"a": regex("x")},
        doc! {"$text": {"$search": 5}},
        doc! {"$text": {"$search": "x", "$language": "en"}},
        doc! {"a": 1, "$where": "true"},
    ];
    for filter in bad {
        assert!(
            matches(&filter, &doc! {}, &["t"]).is_err(),
            "{filter} should be an error"
        );
    }
    // A document whose first key is not an operator is a literal value.
    assert!(m(
        doc! {"a": {"b": 1, "$gt": 2}},
        doc! {"a": {"b": 1, "$gt": 2}}
    ));
}

// ---------------------------------------------------------------------------
// compare_values
// ---------------------------------------------------------------------------

/// https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
#[test]
fn bson_types_compare_in_mongodb_order() {
    let ordered = [
        Bson::MinKey,
        Bson::Null,
        Bson::Double(f64::NAN),
        Bson::Int32(-5),
        Bson::Double(2.5),
        Bson::Int64(3),
        Bson::String("".into()),
        Bson::String("a".into()),
        Bson::Document(doc! {}),
        Bson::Document(doc! {"a": 1}),
        Bson::Array(vec![]),
        Bson::Array(vec![Bson::Int32(1)]),
        Bson::Binary(Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![9],
        }),
        Bson::Binary(Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: vec![0, 0],
        }),
        Bson::ObjectId(ObjectId::from_bytes([0; 12])),
        Bson::ObjectId(ObjectId::from_bytes([1; 12])),
        Bson::Boolean(false),
        Bson::Boolean(true),
        date(-1),
        date(0),
        Bson::Timestamp(Timestamp {
            time: 1,
            increment: 5,
        }),
        Bson::Timestamp(Timestamp {
            time: 2,
            increment: 0,
        }),
        regex("a"),
        Bson::MaxKey,
    ];
    for (i, a) in ordered.iter().enumerate() {
        assert_eq!(compare_values(a, a), Ordering::Equal, "{a:?}");
        for b in &ordered[i + 1..] {
            assert_eq!(compare_values(a, b), Ordering::Less, "{a:?} < {b:?}");
            assert_eq!(compare_values(b, a), Ordering::Greater, "{b:?} > {a:?}");
        }
    }
}

#[test]
fn numbers_compare_by_value_with_nan_smallest() {
    let eq = |a: Bson, b: Bson| compare_values(&a, &b) == Ordering::Equal;
    let lt = |a: Bson, b: Bson| compare_values(&a, &b) == Ordering::Less;
    assert!(eq(Bson::Int32(1), Bson::Int64(1)));
    assert!(eq(Bson::Int32(1), Bson::Double(1.0)));
    assert!(eq(Bson::Double(f64::NAN), Bson::Double(f64::NAN)));
    assert!(eq(Bson::Double(-0.0), Bson::Int32(0)));
    assert!(lt(Bson::Double(f64::NAN), Bson::Double(f64::NEG_INFINITY)));
    assert!(lt(Bson::Double(f64::NEG_INFINITY), Bson::Int64(i64::MIN)));
    assert!(lt(Bson::Int64(i64::MAX), Bson::Double(f64::INFINITY)));
    assert!(lt(Bson::Double(-1.5), Bson::Int32(-1)));
    assert!(lt(Bson::Int32(-1), Bson::Double(-0.5)));
    assert!(lt(Bson::Double(0.5), Bson::Int64(1)));
    assert!(lt(Bson::Double(f64::NAN), Bson::Int32(i32::MIN)));
}

#[test]
fn documents_and_arrays_compare_element_by_element() {
    let lt = |a: Bson, b: Bson| compare_values(&a, &b) == Ordering::Less;
    let d = |d: Document| Bson::Document(d);
    assert!(lt(d(doc! {"a": 1}), d(doc! {"a": 2})));
    assert!(
        lt(d(doc! {"a": 1}), d(doc! {"b": 0})),
        "field name before value"
    );
    assert!(
        lt(d(doc! {"b": 1}), d(doc! {"a": "x"})),
        "value type before field name"
    );
    assert!(lt(d(doc! {}), d(doc! {"a": Bson::MinKey})));
    assert!(lt(d(doc! {"a": 1}), d(doc! {"a": 1, "b": 1})));
    assert!(
        lt(d(doc! {"a": 1, "b": 2}), d(doc! {"b": 2, "a": 1})),
        "field order matters"
    );
    let a = |v: Vec<Bson>| Bson::Array(v);
    assert!(lt(a(vec![1.into(), 2.into()]), a(vec![1.into(), 3.into()])));
    assert!(lt(a(vec![1.into()]), a(vec![1.into(), 0.into()])));
    assert!(lt(a(vec![]), a(vec![Bson::MinKey])));
    assert!(lt(a(vec![1.into(), 5.into()]), a(vec![2.into()])));
    assert_eq!(
        compare_values(
            &a(vec![1.into(), "x".into()]),
            &a(vec![1.0.into(), "x".into()])
        ),
        Ordering::Equal
    );
}

#[test]
fn bson_identical_is_strict() {
    assert!(bson_identical(
        &Bson::Double(f64::NAN),
        &Bson::Double(f64::NAN)
    ));
    assert!(!bson_identical(&Bson::Int32(1), &Bson::Double(1.0)));
    assert!(!bson_identical(&Bson::Double(0.0), &Bson::Double(-0.0)));
    assert!(!documents_identical(
        &doc! {"a": 1, "b": 2},
        &doc! {"b": 2, "a": 1}
    ));
    assert!(documents_identical(
        &doc! {"a": [1, {"b": 2}]},
        &doc! {"a": [1, {"b": 2}]}
    ));
}

// ---------------------------------------------------------------------------
// find: sort
// ---------------------------------------------------------------------------

/// sort_dotted_paths.js: undefined, null, missing, {}, [] and nested arrays.
#[test]
fn sort_jstest_basic_values() {
    let docs = [
        doc! {"_id": 1, "a": 1},
        doc! {"_id": 2, "a": Bson::Undefined},
        doc! {"_id": 3, "a": Bson::Null},
        doc! {"_id": 4, "a": {}},
        doc! {"_id": 5, "a": []},
        doc! {"_id": 6, "a": [1]},
        doc! {"_id": 7, "a": [[1]]},
        doc! {"_id": 8},
        doc! {"_id": 9, "a": [Bson::Undefined]},
    ];
    assert_eq!(
        sorted_ids(&docs, doc! {"a": 1, "_id": 1}),
        [2, 5, 9, 3, 8, 1, 6, 4, 7]
    );
    assert_eq!(
        sorted_ids(&docs, doc! {"a": -1, "_id": 1}),
        [7, 4, 1, 6, 3, 8, 2, 5, 9]
    );
    // sort_dotted_paths_positional.js on the same documents.
    assert_eq!(
        sorted_ids(&docs, doc! {"a.0": 1, "_id": 1}),
        [9, 1, 2, 3, 4, 5, 8, 6, 7]
    );
    assert_eq!(
        sorted_ids(&docs, doc! {"a.0": -1, "_id": 1}),
        [7, 6, 1, 2, 3, 4, 5, 8, 9]
    );
}

/// sort_dotted_paths.js: `a` an array in some documents, `b` in others.
#[test]
fn sort_jstest_compound_with_arrays_in_different_documents() {
    let docs = [
        doc! {"_id": 1, "a": 1, "b": [2]},
        doc! {"_id": 2, "a": 2, "b": []},
        doc! {"_id": 3, "a": [], "b": 4},
        doc! {"_id": 4, "a": [1], "b": 4},
        doc! {"_id": 5, "a": [2, 3], "b": 2},
        doc! {"_id": 6, "a": 2, "b": [3, 5]},
        doc! {"_id": 7, "a": 1, "b": [1, 3]},
        doc! {"_id": 8, "a": [1, 2], "b": 3},
        doc! {"_id": 9, "a": 2, "b": 3},
    ];
    let cases = [
        (doc! {"a": 1, "b": 1, "_id": 1}, [3, 7, 1, 8, 4, 2, 5, 6, 9]),
        (
            doc! {"a": 1, "b": -1, "_id": 1},
            [3, 4, 7, 8, 1, 6, 9, 5, 2],
        ),
        (
            doc! {"a": -1, "b": 1, "_id": 1},
            [5, 2, 6, 8, 9, 7, 1, 4, 3],
        ),
        (
            doc! {"a": -1, "b": -1, "_id": 1},
            [5, 6, 8, 9, 2, 4, 7, 1, 3],
        ),
    ];
    for (sort, expected) in cases {
        assert_eq!(sorted_ids(&docs, sort.clone()), expected, "{sort}");
    }
}

/// sort_dotted_paths.js: a path of length 2.
#[test]
fn sort_jstest_path_of_length_two() {
    let docs = [
        doc! {"_id": 1, "a": {"b": 2}},
        doc! {"_id": 2, "a": {"b": []}},
        doc! {"_id": 3, "a": {"b": [2, 3]}},
        doc! {"_id": 4, "a": {"c": 1}},
        doc! {"_id": 5, "a": []},
        doc! {"_id": 6, "a": [{"b": [5]}]},
        doc! {"_id": 7, "a": [{"b": [4, 5]}, {"b": 7}]},
        doc! {"_id": 8, "a": [{"b": [1, 3]}, {"b": [2, 5]}]},
        doc! {"_id": 9, "a": [{"b": []}, {"b": [1, 3]}]},
    ];
    let cases = [
        (doc! {"a.b": 1, "_id": 1}, [2, 9, 4, 5, 8, 1, 3, 7, 6]),
        (doc! {"a.b": 1, "_id": -1}, [9, 2, 5, 4, 8, 3, 1, 7, 6]),
        (doc! {"a.b": -1, "_id": 1}, [7, 6, 8, 3, 9, 1, 4, 5, 2]),
        (doc! {"a.b": -1, "_id": -1}, [7, 8, 6, 9, 3, 1, 5, 4, 2]),
    ];
    for (sort, expected) in cases {
        assert_eq!(sorted_ids(&docs, sort.clone()), expected, "{sort}");
    }
}

/// sort_dotted_paths.js: two paths through the same array keep the values of
/// one element together (`a.c` then `a.b`), and a path with its prefix.
#[test]
fn sort_jstest_paths_with_a_common_prefix() {
    let docs = [
        doc! {"_id": 1, "a": [{"b": 4, "c": 1}, {"b": 1, "c": 2}]},
        doc! {"_id": 2, "a": [{"b": 2, "c": 1}, {"b": 4, "c": 2}]},
        doc! {"_id": 3, "a": [{"b": 6, "c": 1}, {"b": 9, "c": 2}]},
        doc! {"_id": 4, "a": [{"b": 4, "c": 1}, {"b": 5, "c": 3}]},
        doc! {"_id": 5, "a": [{"b": 2, "c": 1}, {"b": 7, "c": 3}]},
        doc! {"_id": 6, "a": [{"b": 5, "c": 1}, {"b": 3, "c": 3}]},
        doc! {"_id": 7, "a": [{"b": 7, "c": 2}, {"b": 2, "c": 3}]},
        doc! {"_id": 8, "a": [{"b": 3, "c": 2}, {"b": 8, "c": 3}]},
        doc! {"_id": 9, "a": [{"b": 8, "c": 2}, {"b": 6, "c": 3}]},
    ];
    let cases = [
        (
            doc! {"a.c": 1, "a.b": 1, "_id": 1},
            [2, 5, 1, 4, 6, 3, 8, 7, 9],
        ),
        (
            doc! {"a.c": 1, "a.b": -1, "_id": 1},
            [3, 6, 1, 4, 2, 5, 9, 7, 8],
        ),
        (
            doc! {"a.c": -1, "a.b": 1, "_id": 1},
            [7, 6, 4, 9, 5, 8, 1, 2, 3],
        ),
        (
            doc! {"a.c": -1, "a.b": -1, "_id": 1},
            [8, 5, 9, 4, 6, 7, 3, 2, 1],
        ),
        (
            doc! {"a.c": 1, "a": 1, "_id": 1},
            [2, 5, 1, 4, 6, 3, 8, 7, 9],
        ),
        (
            doc! {"a.c": 1, "a": -1, "_id": 1},
            [3, 6, 1, 4, 2, 5, 9, 7, 8],
        ),
        (
            doc! {"a.c": -1, "a": 1, "_id": 1},
            [7, 6, 4, 9, 5, 8, 1, 2, 3],
        ),
        (
            doc! {"a.c": -1, "a": -1, "_id": 1},
            [8, 5, 9, 4, 6, 7, 3, 2, 1],
        ),
    ];
    for (sort, expected) in cases {
        assert_eq!(sorted_ids(&docs, sort.clone()), expected, "{sort}");
    }
}

/// sort_dotted_paths.js: common prefix, with arrays inside the elements too.
#[test]
fn sort_jstest_common_prefix_with_inner_arrays() {
    let docs = [
        doc! {"_id": 1, "a": [{"b": [4, 1], "c": 1}, {"b": [1, 5], "c": 2}]},
        doc! {"_id": 2, "a": [{"b": 2, "c": [1, 3]}, {"b": 4, "c": [2, 4]}]},
        doc! {"_id": 3, "a": [{"b": [6, 4], "c": 1}, {"b": [9, 7], "c": 2}]},
        doc! {"_id": 4, "a": [{"b": 4, "c": [1, 2]}, {"b": 5, "c": [3, 2]}]},
        doc! {"_id": 5, "a": [{"b": [2, 3], "c": 1}, {"b": [7, 6], "c": 3}]},
        doc! {"_id": 6, "a": [{"b": 5, "c": []}, {"b": 3, "c": 3}]},
        doc! {"_id": 7, "a": [{"b": [], "c": 2}, {"b": 2, "c": 3}]},
        doc! {"_id": 8, "a": [{"b": 3, "c": [2]}, {"b": 8, "c": [3]}]},
        doc! {"_id": 9, "a": [{"b": [8], "c": 2}, {"b": [6], "c": 3}]},
    ];
    let cases = [
        (
            doc! {"a.c": 1, "a.b": 1, "_id": 1},
            [6, 1, 2, 5, 3, 4, 7, 8, 9],
        ),
        (
            doc! {"a.c": 1, "a.b": -1, "_id": 1},
            [6, 3, 1, 4, 5, 2, 9, 8, 7],
        ),
        (
            doc! {"a.c": -1, "a.b": 1, "_id": 1},
            [2, 7, 6, 4, 5, 9, 8, 1, 3],
        ),
        (
            doc! {"a.c": -1, "a.b": -1, "_id": 1},
            [2, 8, 5, 9, 4, 6, 7, 3, 1],
        ),
        (
            doc! {"a.b": 1, "a": 1, "_id": 1},
            [7, 1, 2, 5, 6, 8, 4, 3, 9],
        ),
        (
            doc! {"a.b": 1, "a": -1, "_id": 1},
            [7, 1, 5, 2, 8, 6, 3, 4, 9],
        ),
        (
            doc! {"a.b": -1, "a": 1, "_id": 1},
            [3, 8, 9, 5, 6, 4, 1, 2, 7],
        ),
        (
            doc! {"a.b": -1, "a": -1, "_id": 1},
            [3, 9, 8, 5, 1, 4, 6, 2, 7],
        ),
    ];
    for (sort, expected) in cases {
        assert_eq!(sorted_ids(&docs, sort.clone()), expected, "{sort}");
    }
    // sort_dotted_paths_positional.js on the same documents.
    let positional = [
        (doc! {"a.0.b": 1, "_id": 1}, [7, 1, 2, 5, 8, 3, 4, 6, 9]),
        (doc! {"a.0.b": 1, "_id": -1}, [7, 1, 5, 2, 8, 4, 3, 6, 9]),
        (doc! {"a.0.b": -1, "_id": 1}, [9, 3, 6, 1, 4, 5, 8, 2, 7]),
        (doc! {"a.0.b": -1, "_id": -1}, [9, 3, 6, 4, 1, 8, 5, 2, 7]),
    ];
    for (sort, expected) in positional {
        assert_eq!(sorted_ids(&docs, sort.clone()), expected, "{sort}");
    }
}

/// sort_dotted_paths.js: two paths of length 2 without a common prefix.
#[test]
fn sort_jstest_paths_without_a_common_prefix() {
    let docs = [
        doc! {"_id": 1, "a": {"b": 1}, "c": [{"d": [4, 1]}, {"d": [1, 5]}]},
        doc! {"_id": 2, "a": [{"b": [1, 3]}, {"b": [2, 4]}], "c": {"d": 2}},
        doc! {"_id": 3, "a": {"b": 1}, "c": [{"d": [6, 4]}, {"d": [9, 7]}]},
        doc! {"_id": 4, "a": [{"b": [2]}, {"b": [3, 2]}], "c": {"d": 4}},
        doc! {"_id": 5, "a": {"b": 1}, "c": [{"d": [2, 3]}, {"d": [7, 6]}]},
        doc! {"_id": 6, "a": [{"b": []}, {"b": 3}], "c": {"d": 4}},
        doc! {"_id": 7, "a": {"b": 2}, "c": [{"d": []}, {"d": 2}]},
        doc! {"_id": 8, "a": [{"b": [2]}, {"b": [3]}], "c": {"d": 3}},
        doc! {"_id": 9, "a": {"b": 3}, "c": [{"d": [8]}, {"d": [6]}]},
    ];
    let cases = [
        (
            doc! {"a.b": 1, "c.d": 1, "_id": 1},
            [6, 1, 2, 5, 3, 7, 8, 4, 9],
        ),
        (
            doc! {"a.b": 1, "c.d": -1, "_id": 1},
            [6, 3, 5, 1, 2, 4, 8, 7, 9],
        ),
        (
            doc! {"a.b": -1, "c.d": 1, "_id": 1},
            [2, 8, 4, 6, 9, 7, 1, 5, 3],
        ),
        (
            doc! {"a.b": -1, "c.d": -1, "_id": 1},
            [2, 9, 4, 6, 8, 7, 3, 5, 1],
        ),
    ];
    for (sort, expected) in cases {
        assert_eq!(sorted_ids(&docs, sort.clone()), expected, "{sort}");
    }
}

/// sort_dotted_paths.js: a path of length 3.
#[test]
fn sort_jstest_path_of_length_three() {
    let docs = [
        doc! {"_id": 1, "a": {"b": {"c": 2}}},
        doc! {"_id": 2, "a": {"b": {"c": []}}},
        doc! {"_id": 3, "a": [{"b": []}, {"b": {"c": []}}]},
        doc! {"_id": 4, "a": [{"b": {"c": 1}}]},
        doc! {"_id": 5, "a": {"b": [{"c": 3}, {"d": 1}]}},
        doc! {"_id": 6, "a": {"b": [{"c": [5]}]}},
        doc! {"_id": 7, "a": []},
        doc! {"_id": 8, "a": {"b": [{"c": [1, 3]}, {"c": [2, 5]}]}},
        doc! {"_id": 9, "a": [{"b": [{"c": []}, {"c": [1, 3]}]}]},
    ];
    let cases = [
        (doc! {"a.b.c": 1, "_id": 1}, [2, 3, 9, 5, 7, 4, 8, 1, 6]),
        (doc! {"a.b.c": 1, "_id": -1}, [9, 3, 2, 7, 5, 8, 4, 1, 6]),
        (doc! {"a.b.c": -1, "_id": 1}, [6, 8, 5, 9, 1, 4, 3, 7, 2]),
        (doc! {"a.b.c": -1, "_id": -1}, [8, 6, 9, 5, 1, 4, 7, 3, 2]),
    ];
    for (sort, expected) in cases {
        assert_eq!(sorted_ids(&docs, sort.clone()), expected, "{sort}");
    }
}

/// sort_dotted_paths_parallel_arrays.js: sorting on two different arrays of
/// one document is an error, unless the filter excludes that document.
#[test]
fn parallel_arrays_are_an_error_unless_filtered_out() {
    let docs = [
        doc! {"_id": 1, "a": [], "b": 1},
        doc! {"_id": 2, "a": 1, "b": []},
        doc! {"_id": 3, "a": [], "b": []},
    ];
    let sort = doc! {"a": 1, "b": 1};
    assert!(find(&docs, &doc! {}, Some(&sort), 0, None, None, &[]).is_err());
    let filter = doc! {"_id": {"$ne": 3}};
    let found = find(&docs, &filter, Some(&sort), 0, None, None, &[]).unwrap();
    assert_eq!(found, docs[..2].to_vec());
    // Nested arrays on one path are not parallel: a.b through a and b.
    let nested = [doc! {"_id": 1, "a": [{"b": [1, 2]}], "c": 1}];
    assert!(find(
        &nested,
        &doc! {},
        Some(&doc! {"a.b": 1, "c": 1}),
        0,
        None,
        None,
        &[]
    )
    .is_ok());
    // Two arrays inside the same element are.
    let inner = [doc! {"_id": 1, "a": [{"b": [1], "c": [2]}]}];
    assert!(find(
        &inner,
        &doc! {},
        Some(&doc! {"a.b": 1, "a.c": 1}),
        0,
        None,
        None,
        &[]
    )
    .is_err());
}

/// https://www.mongodb.com/docs/manual/reference/method/cursor.sort/#sort-consistency
/// leaves ties unspecified; the reference keeps insertion order.
#[test]
fn sort_ties_keep_insertion_order_and_missing_sorts_as_null() {
    let docs = [
        doc! {"_id": 1, "a": 2},
        doc! {"_id": 2},
        doc! {"_id": 3, "a": 1.0},
        doc! {"_id": 4, "a": Bson::Null},
        doc! {"_id": 5, "a": Bson::Int64(1)},
        doc! {"_id": 6, "a": "x"},
        doc! {"_id": 7, "a": 1},
    ];
    assert_eq!(sorted_ids(&docs, doc! {"a": 1}), [2, 4, 3, 5, 7, 1, 6]);
    assert_eq!(sorted_ids(&docs, doc! {"a": -1}), [6, 1, 3, 5, 7, 2, 4]);
}

/// https://www.mongodb.com/docs/manual/reference/method/cursor.limit/ and
/// cursor.skip/.
#[test]
fn skip_and_limit() {
    let docs: Vec<Document> = (1..=5).map(|i| doc! {"_id": i}).collect();
    let run = |skip: u64, limit: Option<i64>| -> Vec<Bson> {
        find(
            &docs,
            &doc! {},
            Some(&doc! {"_id": -1}),
            skip,
            limit,
            None,
            &[],
        )
        .unwrap()
        .into_iter()
        .map(|d| d.get("_id").cloned().unwrap())
        .collect()
    };
    assert_eq!(run(0, None), int_ids(&[5, 4, 3, 2, 1]));
    assert_eq!(run(0, Some(0)), int_ids(&[5, 4, 3, 2, 1]));
    assert_eq!(run(0, Some(2)), int_ids(&[5, 4]));
    assert_eq!(run(0, Some(-2)), int_ids(&[5, 4]));
    assert_eq!(run(1, Some(2)), int_ids(&[4, 3]));
    assert_eq!(run(4, Some(3)), int_ids(&[1]));
    assert_eq!(run(9, None), int_ids(&[]));
}

#[test]
fn malformed_sorts_are_errors() {
    for sort in [
        doc! {"a": 0},
        doc! {"a": 2},
        doc! {"a": "asc"},
        doc! {"a": {"$meta": "textScore"}},
        doc! {"a..b": 1},
    ] {
        assert!(
            find(&[], &doc! {}, Some(&sort), 0, None, None, &[]).is_err(),
            "{sort}"
        );
    }
    for sort in [doc! {"a": 1.0}, doc! {"a": Bson::Int64(-1)}, doc! {}] {
        assert!(
            find(&[], &doc! {}, Some(&sort), 0, None, None, &[]).is_ok(),
            "{sort}"
        );
    }
}

// ---------------------------------------------------------------------------
// find: projection
// ---------------------------------------------------------------------------

fn project(doc: Document, projection: Document) -> Document {
    let mut found = find(&[doc], &doc! {}, None, 0, None, Some(&projection), &[])
        .unwrap_or_else(|e| panic!("projection {projection} failed: {e}"));
    found.remove(0)
}

/// https://www.mongodb.com/docs/manual/tutorial/project-fields-from-query-results/
#[test]
fn inclusion_projection() {
    let d = doc! {
        "_id": 1, "item": "journal", "status": "A",
        "size": {"h": 14, "w": 21, "uom": "cm"},
        "instock": [{"warehouse": "A", "qty": 5}, 7, [{"qty": 1, "x": 2}]],
    };
    assert_identical(
        &project(d.clone(), doc! {"item": 1, "status": 1}),
        &doc! {"_id": 1, "item": "journal", "status": "A"},
    );
    assert_identical(
        &project(d.clone(), doc! {"status": true, "item": 1, "_id": 0}),
        &doc! {"item": "journal", "status": "A"},
    );
    assert_identical(
        &project(d.clone(), doc! {"item": 1, "size.uom": 1, "nothing": 1}),
        &doc! {"_id": 1, "item": "journal", "size": {"uom": "cm"}},
    );
    assert_identical(
        &project(d.clone(), doc! {"instock.qty": 1.0}),
        &doc! {"_id": 1, "instock": [{"qty": 5}, [{"qty": 1}]]},
    );
    assert_identical(&project(d.clone(), doc! {"_id": 1}), &doc! {"_id": 1});
    assert_identical(
        &project(d.clone(), doc! {"size.x": 1, "item.x": 1}),
        &doc! {"_id": 1, "size": {}},
    );
    assert_identical(&project(d.clone(), doc! {}), &d);
}

/// https://www.mongodb.com/docs/manual/tutorial/project-fields-from-query-results/#return-all-but-the-excluded-fields
#[test]
fn exclusion_projection() {
    let d = doc! {
        "_id": 1, "item": "journal", "status": "A",
        "size": {"h": 14, "w": 21, "uom": "cm"},
        "instock": [{"warehouse": "A", "qty": 5}, 7],
    };
    assert_identical(
        &project(d.clone(), doc! {"status": 0, "instock": false}),
        &doc! {"_id": 1, "item": "journal", "size": {"h": 14, "w": 21, "uom": "cm"}},
    );
    assert_identical(
        &project(d.clone(), doc! {"_id": 0}),
        &doc! {"item": "journal", "status": "A", "size": {"h": 14, "w": 21, "uom": "cm"}, "instock": [{"warehouse": "A", "qty": 5}, 7]},
    );
    assert_identical(
        &project(
            d.clone(),
            doc! {"size.uom": 0, "instock.qty": 0, "item.x": 0},
        ),
        &doc! {"_id": 1, "item": "journal", "status": "A", "size": {"h": 14, "w": 21}, "instock": [{"warehouse": "A"}, 7]},
    );
    assert_identical(
        &project(
            d,
            doc! {"_id": 1, "item": 0, "status": 0, "size": 0, "instock": 0},
        ),
        &doc! {"_id": 1},
    );
}

#[test]
fn malformed_projections_are_errors() {
    for projection in [
        doc! {"a": 1, "b": 0},
        doc! {"a": 1, "a.b": 1},
        doc! {"a.b": 0, "a": 0},
        doc! {"a": "$b"},
        doc! {"a": {"$slice": 1}},
        doc! {"a.$": 1},
        doc! {"$a": 1},
    ] {
        assert!(
            find(
                &[doc! {"a": 1}],
                &doc! {},
                None,
                0,
                None,
                Some(&projection),
                &[]
            )
            .is_err(),
            "{projection}"
        );
    }
}

// ---------------------------------------------------------------------------
// Updates
// ---------------------------------------------------------------------------

/// https://www.mongodb.com/docs/manual/reference/operator/update/set/ (its
/// `products` examples).
#[test]
fn set_examples_from_the_docs() {
    let product = doc! {
        "_id": 100, "quantity": 250, "instock": true, "reorder": false,
        "details": {"model": "14QQ", "make": "Clothes Corp"},
        "tags": ["apparel", "clothing"],
        "ratings": [{"by": "Customer007", "rating": 4}],
    };
    assert_identical(
        &update(
            product.clone(),
            doc! {"$set": {
                "quantity": 500,
                "details": {"model": "2600", "make": "Fashionaires"},
                "tags": ["coats", "outerwear", "clothing"],
            }},
        ),
        &doc! {
            "_id": 100, "quantity": 500, "instock": true, "reorder": false,
            "details": {"model": "2600", "make": "Fashionaires"},
            "tags": ["coats", "outerwear", "clothing"],
            "ratings": [{"by": "Customer007", "rating": 4}],
        },
    );
    assert_identical(
        &update(
            product.clone(),
            doc! {"$set": {"details.make": "Kustom Kidz"}},
        ),
        &doc! {
            "_id": 100, "quantity": 250, "instock": true, "reorder": false,
            "details": {"model": "14QQ", "make": "Kustom Kidz"},
            "tags": ["apparel", "clothing"],
            "ratings": [{"by": "Customer007", "rating": 4}],
        },
    );
    assert_identical(
        &update(
            product,
            doc! {"$set": {"tags.1": "rain gear", "ratings.0.rating": 2}},
        ),
        &doc! {
            "_id": 100, "quantity": 250, "instock": true, "reorder": false,
            "details": {"model": "14QQ", "make": "Clothes Corp"},
            "tags": ["apparel", "rain gear"],
            "ratings": [{"by": "Customer007", "rating": 2}],
        },
    );
}

#[test]
fn set_creates_missing_documents_and_pads_arrays() {
    assert_identical(
        &update(doc! {"_id": 1}, doc! {"$set": {"a.b.c": 1}}),
        &doc! {"_id": 1, "a": {"b": {"c": 1}}},
    );
    assert_identical(
        &update(doc! {"_id": 1, "t": ["a"]}, doc! {"$set": {"t.3": "x"}}),
        &doc! {"_id": 1, "t": ["a", Bson::Null, Bson::Null, "x"]},
    );
    assert_identical(
        &update(doc! {"_id": 1, "t": []}, doc! {"$set": {"t.1.y": 2}}),
        &doc! {"_id": 1, "t": [Bson::Null, {"y": 2}]},
    );
    // A number names a field when there is no array.
    assert_identical(
        &update(doc! {"_id": 1}, doc! {"$set": {"m.0": 1}}),
        &doc! {"_id": 1, "m": {"0": 1}},
    );
}

#[test]
fn set_through_a_scalar_or_an_array_by_name_is_an_error() {
    for d in [
        doc! {"a": 5},
        doc! {"a": Bson::Null},
        doc! {"a": [{"b": 0}]},
        doc! {"a": "text"},
    ] {
        assert!(apply_update(&d, &doc! {"$set": {"a.b": 1}}).is_err(), "{d}");
        assert!(apply_update(&d, &doc! {"$inc": {"a.b": 1}}).is_err(), "{d}");
        assert!(
            apply_update(&d, &doc! {"$push": {"a.b": 1}}).is_err(),
            "{d}"
        );
        // $unset and $pull leave such paths alone.
        assert_identical(&update(d.clone(), doc! {"$unset": {"a.b": ""}}), &d);
        assert_identical(&update(d.clone(), doc! {"$pull": {"a.b": 1}}), &d);
    }
}

/// https://www.mongodb.com/docs/manual/reference/operator/update/unset/
#[test]
fn unset_examples() {
    assert_identical(
        &update(
            doc! {"_id": 1, "sku": "unknown", "quantity": 2, "instock": true},
            doc! {"$unset": {"quantity": "", "instock": ""}},
        ),
        &doc! {"_id": 1, "sku": "unknown"},
    );
    // On an array element: set to null, the array keeps its length.
    assert_identical(
        &update(
            doc! {"_id": 1, "t": ["a", "b"]},
            doc! {"$unset": {"t.0": 1, "t.5": 1}},
        ),
        &doc! {"_id": 1, "t": [Bson::Null, "b"]},
    );
    assert_identical(
        &update(doc! {"_id": 1}, doc! {"$unset": {"x": "", "y.z": ""}}),
        &doc! {"_id": 1},
    );
}

/// https://www.mongodb.com/docs/manual/reference/operator/update/inc/
#[test]
fn inc_example_from_the_docs() {
    assert_identical(
        &update(
            doc! {"_id": 1, "sku": "abc123", "quantity": 10, "metrics": {"orders": 2, "ratings": 3.5}},
            doc! {"$inc": {"quantity": -2, "metrics.orders": 1}},
        ),
        &doc! {"_id": 1, "sku": "abc123", "quantity": 8, "metrics": {"orders": 3, "ratings": 3.5}},
    );
}

#[test]
fn inc_number_types() {
    let inc = |current: Bson, delta: Bson| -> Result<Bson, String> {
        apply_update(&doc! {"a": current}, &doc! {"$inc": {"a": delta}})
            .map(|d| d.get("a").unwrap().clone())
    };
    assert_eq!(inc(1.into(), 2.into()), Ok(Bson::Int32(3)));
    assert_eq!(
        inc(i32::MAX.into(), 1.into()),
        Ok(Bson::Int64(i64::from(i32::MAX) + 1))
    );
    assert_eq!(inc(1.into(), Bson::Int64(2)), Ok(Bson::Int64(3)));
    assert_eq!(inc(Bson::Int64(1), 2.into()), Ok(Bson::Int64(3)));
    assert_eq!(inc(1.into(), 0.5.into()), Ok(Bson::Double(1.5)));
    assert_eq!(inc(1.5.into(), 1.into()), Ok(Bson::Double(2.5)));
    assert!(inc(Bson::Int64(i64::MAX), 1.into()).is_err());
    assert!(inc("1".into(), 1.into()).is_err());
    assert!(inc(Bson::Null, 1.into()).is_err());
    assert!(inc(1.into(), "1".into()).is_err());
    assert_identical(
        &update(doc! {"_id": 1}, doc! {"$inc": {"n": Bson::Int64(0)}}),
        &doc! {"_id": 1, "n": Bson::Int64(0)},
    );
}

/// https://www.mongodb.com/docs/manual/reference/operator/update/push/
#[test]
fn push_examples() {
    assert_identical(
        &update(
            doc! {"_id": 1, "scores": [44, 78, 38, 80]},
            doc! {"$push": {"scores": 89}},
        ),
        &doc! {"_id": 1, "scores": [44, 78, 38, 80, 89]},
    );
    assert_identical(
        &update(
            doc! {"_id": 1},
            doc! {"$push": {"scores": {"$each": [90, 92, 85]}}},
        ),
        &doc! {"_id": 1, "scores": [90, 92, 85]},
    );
    assert_identical(
        &update(
            doc! {"_id": 1, "a": []},
            doc! {"$push": {"a": [1, 2], "b": {"x": 1}}},
        ),
        &doc! {"_id": 1, "a": [[1, 2]], "b": [{"x": 1}]},
    );
    assert!(apply_update(&doc! {"a": 1}, &doc! {"$push": {"a": 2}}).is_err());
    assert!(apply_update(&doc! {"a": []}, &doc! {"$push": {"a": {"$each": 2}}}).is_err());
    assert!(apply_update(
        &doc! {"a": []},
        &doc! {"$push": {"a": {"$each": [1], "$slice": 1}}}
    )
    .is_err());
}

/// https://www.mongodb.com/docs/manual/reference/operator/update/pull/ (its
/// `stores`, `profiles` and `survey` examples).
#[test]
fn pull_examples() {
    assert_identical(
        &update(
            doc! {"_id": 1,
            "fruits": ["apples", "pears", "oranges", "grapes", "bananas"],
            "vegetables": ["carrots", "celery", "squash", "carrots"]},
            doc! {"$pull": {"fruits": {"$in": ["apples", "oranges"]}, "vegetables": "carrots"}},
        ),
        &doc! {"_id": 1, "fruits": ["pears", "grapes", "bananas"], "vegetables": ["celery", "squash"]},
    );
    assert_identical(
        &update(
            doc! {"_id": 1, "votes": [3, 5, 6, 7, 7, 8]},
            doc! {"$pull": {"votes": {"$gte": 6}}},
        ),
        &doc! {"_id": 1, "votes": [3, 5]},
    );
    let pull_b8 = doc! {"$pull": {"results": {"score": 8, "item": "B"}}};
    assert_identical(
        &update(
            doc! {"_id": 1, "results": [{"item": "A", "score": 5}, {"item": "B", "score": 8}]},
            pull_b8.clone(),
        ),
        &doc! {"_id": 1, "results": [{"item": "A", "score": 5}]},
    );
    let untouched =
        doc! {"_id": 2, "results": [{"item": "C", "score": 8}, {"item": "B", "score": 4}]};
    assert_identical(&update(untouched.clone(), pull_b8), &untouched);
}

#[test]
fn pull_by_value_and_by_condition() {
    let d = doc! {"a": [1, 1.0, Bson::Int64(1), "1", [1], {"x": 1}]};
    assert_identical(
        &update(d.clone(), doc! {"$pull": {"a": 1}}),
        &doc! {"a": ["1", [1], {"x": 1}]},
    );
    assert_identical(
        &update(d.clone(), doc! {"$pull": {"a": [1]}}),
        &doc! {"a": [1, 1.0, Bson::Int64(1), "1", {"x": 1}]},
    );
    // A query document only removes document elements.
    assert_identical(
        &update(d.clone(), doc! {"$pull": {"a": {"x": 1}}}),
        &doc! {"a": [1, 1.0, Bson::Int64(1), "1", [1]]},
    );
    assert_identical(
        &update(d.clone(), doc! {"$pull": {"a": {}}}),
        &doc! {"a": [1, 1.0, Bson::Int64(1), "1", [1]]},
    );
    // An operator condition tests each element as a field value, so an array
    // element matches if one of its elements does.
    assert_identical(
        &update(d, doc! {"$pull": {"a": {"$in": [1]}}}),
        &doc! {"a": ["1", {"x": 1}]},
    );
    assert_identical(
        &update(doc! {"_id": 1}, doc! {"$pull": {"a": 1}}),
        &doc! {"_id": 1},
    );
    assert!(apply_update(&doc! {"a": 1}, &doc! {"$pull": {"a": 1}}).is_err());
    assert!(apply_update(&doc! {"a": [1]}, &doc! {"$pull": {"a": {"$foo": 1}}}).is_err());
}

/// https://www.mongodb.com/docs/manual/reference/method/db.collection.replaceOne/
#[test]
fn replacement_documents() {
    let d = doc! {"_id": 7, "a": 1, "b": 2};
    assert_identical(
        &update(d.clone(), doc! {"c": 3, "a": 4}),
        &doc! {"_id": 7, "c": 3, "a": 4},
    );
    assert_identical(
        &update(d.clone(), doc! {"c": 3, "_id": 7}),
        &doc! {"_id": 7, "c": 3},
    );
    assert_identical(&update(d.clone(), doc! {}), &doc! {"_id": 7});
    assert!(apply_update(&d, &doc! {"_id": 8}).is_err());
    assert!(apply_update(&d, &doc! {"_id": 7.0}).is_err());
    assert!(apply_update(&d, &doc! {"a": 1, "$set": {"b": 1}}).is_err());
    assert!(apply_update(&d, &doc! {"$set": {"b": 1}, "a": 1}).is_err());
}

#[test]
fn conflicting_update_paths_are_errors() {
    let d = doc! {"_id": 1, "a": {"b": 1}};
    assert!(apply_update(&d, &doc! {"$set": {"a": 1}, "$inc": {"a.b": 1}}).is_err());
    assert!(apply_update(&d, &doc! {"$set": {"a.b": 1}, "$unset": {"a.b": ""}}).is_err());
    assert!(apply_update(&d, &doc! {"$set": {"a.b": 1, "a.c": 1}}).is_ok());
    assert!(apply_update(&d, &doc! {"$set": {"a.b": 1, "a.bc": 1}}).is_ok());
}

/// "Starting in MongoDB 5.0, update operators process document fields with
/// string-based names in lexicographic order. Fields with numeric names are
/// processed in numeric order."
#[test]
fn new_fields_are_added_in_lexicographic_order() {
    let d = update(
        doc! {"_id": 1, "m": 0},
        doc! {"$set": {"z": 1, "b": 1}, "$inc": {"a": 1}},
    );
    assert_eq!(d.keys().collect::<Vec<_>>(), ["_id", "m", "a", "b", "z"]);
    let d = update(
        doc! {"_id": 1},
        doc! {"$set": {"x.10": 1, "x.9": 1, "x.a": 1}},
    );
    assert_identical(&d, &doc! {"_id": 1, "x": {"9": 1, "10": 1, "a": 1}});
}

#[test]
fn id_cannot_change() {
    let d = doc! {"_id": 1, "a": 1};
    assert!(apply_update(&d, &doc! {"$set": {"_id": 2}}).is_err());
    assert!(apply_update(&d, &doc! {"$set": {"_id": 1.0}}).is_err());
    assert!(apply_update(&d, &doc! {"$unset": {"_id": ""}}).is_err());
    assert!(apply_update(&d, &doc! {"$inc": {"_id": 1}}).is_err());
    assert_identical(&update(d.clone(), doc! {"$set": {"_id": 1}}), &d);
}

#[test]
fn malformed_updates_are_errors() {
    let d = doc! {"_id": 1, "a": [1]};
    for u in [
        doc! {"$rename": {"a": "b"}},
        doc! {"$set": 1},
        doc! {"$set": {"": 1}},
        doc! {"$set": {"a..b": 1}},
        doc! {"$set": {"a.$": 1}},
        doc! {"$inc": {"a": "x"}},
        doc! {"$set": {"a": 1}, "b": 2},
    ] {
        assert!(apply_update(&d, &u).is_err(), "{u}");
    }
    assert_identical(&update(d.clone(), doc! {"$set": {}}), &d);
}

/// https://www.mongodb.com/docs/manual/reference/method/db.collection.update/#upsert-behavior
#[test]
fn upsert_seed_takes_the_equality_conditions() {
    let filter = doc! {
        "a": 1, "b.c": "x", "d": {"$gt": 5}, "e": {"$eq": 2, "$lt": 9},
        "$and": [{"f": true}], "$or": [{"g": [1, 2]}], "$nor": [{"h": 1}],
        "_id": 7, "i": {"$in": [3]}, "j": {"$in": [3, 4]}, "k": Bson::Null,
    };
    assert_identical(
        &upsert_seed(&filter).unwrap(),
        &doc! {"_id": 7, "a": 1, "b": {"c": "x"}, "e": 2, "f": true, "g": [1, 2], "i": 3, "k": Bson::Null},
    );
    assert_identical(
        &upsert_seed(&doc! {"$or": [{"a": 1}, {"a": 2}]}).unwrap(),
        &doc! {},
    );
    assert!(upsert_seed(&doc! {"a": 1, "a.b": 2}).is_err());
    assert!(upsert_seed(&doc! {"$and": [{"a": 1}, {"a": 2}]}).is_err());
    assert!(upsert_seed(&doc! {"a": {"$foo": 1}}).is_err());
}

#[test]
fn upsert_document_applies_the_update_to_the_seed() {
    assert_identical(
        &upsert_document(
            &doc! {"name": "x", "qty": {"$gt": 1}},
            &doc! {"$set": {"qty": 5}, "$inc": {"n": 1}},
        )
        .unwrap(),
        &doc! {"name": "x", "n": 1, "qty": 5},
    );
    assert_identical(
        &upsert_document(&doc! {"_id": 3, "a": 1}, &doc! {"b": 2}).unwrap(),
        &doc! {"_id": 3, "b": 2},
    );
    assert!(upsert_document(&doc! {"a": 1}, &doc! {"$set": {"a.b": 1}}).is_err());
}
