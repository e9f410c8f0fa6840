//! Unit tests of update parsing, application and upserts.

use bson::{bson, doc, Bson, Document};

use super::{upsert_seed, Update};
use crate::query::error::QueryError;

fn applied(update: Document, mut doc: Document) -> Document {
    Update::parse(&update).unwrap().apply(&mut doc).unwrap();
    doc
}

fn apply_err(update: Document, doc: Document) -> QueryError {
    let mut work = doc.clone();
    let err = Update::parse(&update)
        .unwrap()
        .apply(&mut work)
        .unwrap_err();
    assert_eq!(
        work, doc,
        "a failed update must leave the document untouched"
    );
    err
}

fn parse_err(update: Document) -> String {
    Update::parse(&update).unwrap_err().to_string()
}

#[test]
fn set_creates_paths_and_reports_changes() {
    let mut d = doc! {"_id": 1, "a": 1};
    let u = Update::parse(&doc! {"$set": {"b.c": 2, "a": 1}}).unwrap();
    assert!(u.apply(&mut d).unwrap());
    assert_eq!(d, doc! {"_id": 1, "a": 1, "b": {"c": 2}});
    // Same values again: not modified.
    assert!(!u.apply(&mut d).unwrap());
    // 1 over 1.0 changes the bytes, so it is a modification.
    let mut d = doc! {"a": 1.0};
    assert!(Update::parse(&doc! {"$set": {"a": 1}})
        .unwrap()
        .apply(&mut d)
        .unwrap());
}

#[test]
fn new_fields_are_added_in_lexicographic_order() {
    assert_eq!(
        applied(
            doc! {"$set": {"b": 1, "a": 1}, "$inc": {"c": 1}},
            doc! {"_id": 0}
        ),
        doc! {"_id": 0, "a": 1, "b": 1, "c": 1}
    );
    // Numeric components in numeric order.
    assert_eq!(
        applied(doc! {"$set": {"x.10": 1, "x.9": 1}}, doc! {}),
        doc! {"x": {"9": 1, "10": 1}}
    );
}

#[test]
fn set_through_arrays_uses_positions_and_pads() {
    assert_eq!(
        applied(doc! {"$set": {"a.1": "x"}}, doc! {"a": [0, 1, 2]}),
        doc! {"a": [0, "x", 2]}
    );
    assert_eq!(
        applied(doc! {"$set": {"a.3": 9}}, doc! {"a": [0]}),
        doc! {"a": [0, Bson::Null, Bson::Null, 9]}
    );
    assert_eq!(
        applied(doc! {"$set": {"a.0.b": 1}}, doc! {"a": [{"b": 0, "c": 1}]}),
        doc! {"a": [{"b": 1, "c": 1}]}
    );
    assert_eq!(
        applied(doc! {"$set": {"a.2.b": 1}}, doc! {"a": []}),
        doc! {"a": [Bson::Null, Bson::Null, {"b": 1}]}
    );
    let err = apply_err(doc! {"$set": {"a.b": 1}}, doc! {"a": [1, 2]});
    assert_eq!(err.code(), 28);
    assert!(err
        .to_string()
        .starts_with("Cannot create field 'b' in element {a: [1, 2]"));
    assert_eq!(
        apply_err(doc! {"$set": {"a.b": 1}}, doc! {"a": 5}).to_string(),
        "Cannot create field 'b' in element {a: 5}"
    );
    assert!(apply_err(doc! {"$set": {"a.2000000": 1}}, doc! {"a": []})
        .to_string()
        .contains("backfill"));
}

#[test]
fn unset_removes_fields_and_nulls_array_elements() {
    assert_eq!(
        applied(
            doc! {"$unset": {"a": "", "b.c": 1, "missing.x": 1}},
            doc! {"a": 1, "b": {"c": 1, "d": 2}}
        ),
        doc! {"b": {"d": 2}}
    );
    assert_eq!(
        applied(doc! {"$unset": {"a.1": ""}}, doc! {"a": [1, 2, 3]}),
        doc! {"a": [1, Bson::Null, 3]}
    );
    // Through scalars and non-numeric array components: nothing to do.
    assert_eq!(
        applied(doc! {"$unset": {"a.b": 1}}, doc! {"a": 5}),
        doc! {"a": 5}
    );
    assert_eq!(
        applied(doc! {"$unset": {"a.b": 1}}, doc! {"a": [{"b": 1}]}),
        doc! {"a": [{"b": 1}]}
    );
}

#[test]
fn inc_and_mul_follow_mongodb_numeric_rules() {
    assert_eq!(
        applied(
            doc! {"$inc": {"a": 1, "b": -2, "c": 1.5}},
            doc! {"a": 1, "b": 5_i64, "c": 1}
        ),
        doc! {"a": 2, "b": 3_i64, "c": 2.5}
    );
    assert_eq!(applied(doc! {"$inc": {"n": 5}}, doc! {}), doc! {"n": 5});
    assert_eq!(
        applied(doc! {"$inc": {"a": 1}}, doc! {"a": i32::MAX}),
        doc! {"a": i64::from(i32::MAX) + 1}
    );
    assert_eq!(
        applied(doc! {"$mul": {"a": 2_i64}}, doc! {}),
        doc! {"a": 0_i64}
    );
    assert_eq!(
        applied(doc! {"$mul": {"a": 2.5}}, doc! {"a": 2}),
        doc! {"a": 5.0}
    );
    let err = apply_err(doc! {"$inc": {"a": 1}}, doc! {"_id": 1, "a": "x"});
    assert_eq!(
        err.to_string(),
        "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 'a' of \
         non-numeric type string"
    );
    assert_eq!(err.code(), 14);
    let err = apply_err(doc! {"$inc": {"a": 1}}, doc! {"_id": 1, "a": i64::MAX});
    assert!(err
        .to_string()
        .starts_with("Failed to apply $inc operations to current value"));
    assert_eq!(
        parse_err(doc! {"$inc": {"a": "1"}}),
        "Cannot increment with non-numeric argument: {a: \"1\"}"
    );
    assert_eq!(
        parse_err(doc! {"$mul": {"a": Bson::Null}}),
        "Cannot multiply with non-numeric argument: {a: null}"
    );
}

#[test]
fn min_and_max_use_bson_order() {
    assert_eq!(
        applied(
            doc! {"$min": {"lo": 3, "miss": 1}, "$max": {"hi": "a"}},
            doc! {"lo": 5, "hi": 10}
        ),
        doc! {"lo": 3, "hi": "a", "miss": 1}
    );
    let mut d = doc! {"lo": 1};
    assert!(!Update::parse(&doc! {"$min": {"lo": 2}})
        .unwrap()
        .apply(&mut d)
        .unwrap());
}

#[test]
fn push_with_modifiers() {
    assert_eq!(
        applied(doc! {"$push": {"a": 3}}, doc! {"a": [1, 2]}),
        doc! {"a": [1, 2, 3]}
    );
    assert_eq!(
        applied(doc! {"$push": {"a": [1]}}, doc! {}),
        doc! {"a": [[1]]}
    );
    assert_eq!(
        applied(doc! {"$push": {"a": {"$each": [3, 4]}}}, doc! {"a": [1]}),
        doc! {"a": [1, 3, 4]}
    );
    assert_eq!(
        applied(
            doc! {"$push": {"a": {"$each": [9], "$position": 0}}},
            doc! {"a": [1, 2]}
        ),
        doc! {"a": [9, 1, 2]}
    );
    assert_eq!(
        applied(
            doc! {"$push": {"a": {"$each": [9], "$position": -1}}},
            doc! {"a": [1, 2]}
        ),
        doc! {"a": [1, 9, 2]}
    );
    // MongoDB manual: $each + $sort + $slice keeps the top scores.
    assert_eq!(
        applied(
            doc! {"$push": {"quizzes": {
                "$each": [{"wk": 5, "score": 8}, {"wk": 6, "score": 7}],
                "$sort": {"score": -1},
                "$slice": 3
            }}},
            doc! {"quizzes": [{"wk": 1, "score": 10}, {"wk": 2, "score": 8}, {"wk": 3, "score": 5}]}
        ),
        doc! {"quizzes": [{"wk": 1, "score": 10}, {"wk": 2, "score": 8}, {"wk": 5, "score": 8}]}
    );
    assert_eq!(
        applied(
            doc! {"$push": {"a": {"$each": [5, 0], "$sort": 1, "$slice": -2}}},
            doc! {"a": [3]}
        ),
        doc! {"a": [3, 5]}
    );
    let err = apply_err(doc! {"$push": {"a": 1}}, doc! {"_id": 1, "a": 5});
    assert_eq!(
        err.to_string(),
        "The field 'a' must be an array but is of type int in document {_id: 1}"
    );
    assert_eq!(
        parse_err(doc! {"$push": {"a": {"$each": 1}}}),
        "The argument to $each in $push must be an array but it was of type: int"
    );
    assert_eq!(
        parse_err(doc! {"$push": {"a": {"$each": [], "$foo": 1}}}),
        "Unrecognized clause in $push: $foo"
    );
    assert!(parse_err(doc! {"$push": {"a": {"$each": [], "$sort": 2}}})
        .starts_with("The $sort is invalid"));
}

#[test]
fn add_to_set_pop_pull_and_pull_all() {
    assert_eq!(
        applied(
            doc! {"$addToSet": {"a": {"$each": [1.0, 4, 4]}}},
            doc! {"a": [1, 2]}
        ),
        doc! {"a": [1, 2, 4]}
    );
    assert_eq!(
        applied(
            doc! {"$pop": {"a": -1, "b": 1, "c": 1}},
            doc! {"a": [1, 2], "b": [1, 2], "c": []}
        ),
        doc! {"a": [2], "b": [1], "c": []}
    );
    // MongoDB manual, $pull examples.
    assert_eq!(
        applied(
            doc! {"$pull": {"fruits": {"$in": ["apples", "oranges"]}, "vegetables": "carrots"}},
            doc! {"fruits": ["apples", "pears", "oranges"], "vegetables": ["carrots", "celery"]}
        ),
        doc! {"fruits": ["pears"], "vegetables": ["celery"]}
    );
    assert_eq!(
        applied(
            doc! {"$pull": {"votes": {"$gte": 6}}},
            doc! {"votes": [3, 5, 6, 7, 7, 8]}
        ),
        doc! {"votes": [3, 5]}
    );
    assert_eq!(
        applied(
            doc! {"$pull": {"results": {"score": 8, "item": "B"}}},
            doc! {"results": [{"item": "A", "score": 5}, {"item": "B", "score": 8, "x": 1}, 8]}
        ),
        doc! {"results": [{"item": "A", "score": 5}, 8]}
    );
    assert_eq!(
        applied(doc! {"$pull": {"a": 1}}, doc! {"a": [1, 1.0, [1], 2]}),
        doc! {"a": [[1], 2]}
    );
    assert_eq!(
        applied(doc! {"$pullAll": {"a": [0, 5]}}, doc! {"a": [0, 2, 5, 5]}),
        doc! {"a": [2]}
    );
    assert_eq!(applied(doc! {"$pull": {"missing": 1}}, doc! {}), doc! {});
    assert_eq!(
        apply_err(doc! {"$pull": {"a": 1}}, doc! {"a": 1}).to_string(),
        "Cannot apply $pull to a non-array value"
    );
    assert_eq!(
        parse_err(doc! {"$pop": {"a": 2}}),
        "$pop expects 1 or -1, found: 2"
    );
}

#[test]
fn mixing_operators_and_fields_is_rejected() {
    assert_eq!(
        parse_err(doc! {"$set": {"a": 1}, "b": 2}),
        "Unknown modifier: b. Expected a valid update modifier or pipeline-style update \
         specified as an array"
    );
    let err = Update::parse(&doc! {"b": 2, "$set": {"a": 1}}).unwrap_err();
    assert_eq!(err.code(), 52);
    assert!(err
        .to_string()
        .starts_with("The dollar ($) prefixed field '$set' in '$set'"));
    assert_eq!(
        parse_err(doc! {"$foo": {"a": 1}}),
        "Unknown modifier: $foo. Expected a valid update modifier or pipeline-style update \
         specified as an array"
    );
    assert!(parse_err(doc! {"$set": 1})
        .starts_with("Modifiers operate on fields but we found type int"));
    for unsupported in [doc! {"$set": {"a.$": 1}}, doc! {"$set": {"a.$[].b": 1}}] {
        assert!(matches!(
            Update::parse(&unsupported),
            Err(QueryError::UnsupportedOperator { .. })
        ));
    }
    assert_eq!(
        parse_err(doc! {"$set": {"a..b": 1}}),
        "The update path 'a..b' contains an empty field name, which is not allowed."
    );
}

#[test]
fn conflicting_paths_are_rejected() {
    assert_eq!(
        parse_err(doc! {"$set": {"a": 1, "a.b": 2}}),
        "Updating the path 'a.b' would create a conflict at 'a'"
    );
    assert_eq!(
        parse_err(doc! {"$set": {"a.b.c": 1}, "$unset": {"a.b": 1}}),
        "Updating the path 'a.b.c' would create a conflict at 'a.b'"
    );
    assert_eq!(
        parse_err(doc! {"$set": {"a": 1}, "$inc": {"a": 1}}),
        "Updating the path 'a' would create a conflict at 'a'"
    );
    // Siblings and shared prefixes of names are fine.
    assert!(Update::parse(&doc! {"$set": {"a.b": 1, "a.c": 1, "ab": 1}}).is_ok());
}

#[test]
fn id_is_immutable() {
    let err = apply_err(doc! {"$set": {"_id": 2}}, doc! {"_id": 1});
    assert_eq!(err.code(), 66);
    assert_eq!(
        err.to_string(),
        "Performing an update on the path '_id' would modify the immutable field '_id'"
    );
    assert_eq!(
        apply_err(doc! {"$unset": {"_id": 1}}, doc! {"_id": 1}).code(),
        66
    );
    assert_eq!(
        apply_err(doc! {"$set": {"_id.x": 1}}, doc! {"_id": {"y": 1}}).code(),
        66
    );
    // Setting the same value is allowed.
    assert_eq!(
        applied(doc! {"$set": {"_id": 1}}, doc! {"_id": 1}),
        doc! {"_id": 1}
    );
    let err = apply_err(doc! {"_id": 2, "a": 1}, doc! {"_id": 1});
    assert_eq!(err.code(), 66);
}

#[test]
fn replacement_keeps_id_first() {
    let u = Update::parse(&doc! {"b": 2, "a": 1}).unwrap();
    assert!(u.is_replacement());
    let mut d = doc! {"x": 0, "_id": 7};
    assert!(u.apply(&mut d).unwrap());
    assert_eq!(d, doc! {"_id": 7, "b": 2, "a": 1});
    assert_eq!(
        applied(doc! {"_id": 7, "c": 1}, doc! {"_id": 7}),
        doc! {"_id": 7, "c": 1}
    );
    // An empty update replaces with an empty document, keeping _id.
    assert_eq!(applied(doc! {}, doc! {"_id": 1, "a": 1}), doc! {"_id": 1});
}

#[test]
fn set_on_insert_only_applies_to_upserts() {
    let u = Update::parse(&doc! {"$set": {"a": 1}, "$setOnInsert": {"created": true}}).unwrap();
    assert_eq!(
        applied(doc! {"$setOnInsert": {"c": 1}}, doc! {"a": 1}),
        doc! {"a": 1}
    );
    assert_eq!(
        u.apply_upsert(&doc! {"_id": 5, "k": "x"}).unwrap(),
        doc! {"_id": 5, "k": "x", "a": 1, "created": true}
    );
}

#[test]
fn upsert_seeds_from_equalities() {
    // MongoDB manual: equality conditions become fields, dotted paths nest.
    assert_eq!(
        upsert_seed(&doc! {"name": "Andy", "rating": {"$gt": 1}, "a.b": 2, "tags": {"$in": ["x"]}})
            .unwrap(),
        doc! {"name": "Andy", "a": {"b": 2}, "tags": "x"}
    );
    assert_eq!(
        upsert_seed(&doc! {"$and": [{"x": 1}, {"$and": [{"y": {"$eq": 2}}]}], "_id": 3}).unwrap(),
        doc! {"_id": 3, "x": 1, "y": 2}
    );
    assert_eq!(
        upsert_seed(&doc! {"$or": [{"x": 1}]}).unwrap(),
        doc! {"x": 1}
    );
    assert_eq!(
        upsert_seed(&doc! {"$or": [{"x": 1}, {"y": 1}]}).unwrap(),
        doc! {}
    );
    assert_eq!(upsert_seed(&doc! {"a.0": 1}).unwrap(), doc! {"a": {"0": 1}});
    assert_eq!(
        upsert_seed(&doc! {"a": Bson::Null, "b": {"$ne": 1}}).unwrap(),
        doc! {"a": Bson::Null}
    );
    assert_eq!(
        upsert_seed(&doc! {"a": 1, "$and": [{"a": 2}]})
            .unwrap_err()
            .to_string(),
        "cannot infer query fields to set, path 'a' is matched twice"
    );
    assert_eq!(
        upsert_seed(&doc! {"a": {"b": 1}, "a.c": 2})
            .unwrap_err()
            .to_string(),
        "cannot infer query fields to set, both paths 'a.c' and 'a' are matched"
    );
}

#[test]
fn upserts_apply_the_update_to_the_seed() {
    let u = Update::parse(&doc! {"$inc": {"n": 1}, "$push": {"log": "x"}}).unwrap();
    assert_eq!(
        u.apply_upsert(&doc! {"k": 1}).unwrap(),
        doc! {"k": 1, "log": ["x"], "n": 1}
    );
    let replacement = Update::parse(&doc! {"v": 2}).unwrap();
    assert_eq!(
        replacement.apply_upsert(&doc! {"_id": 9, "k": 1}).unwrap(),
        doc! {"_id": 9, "v": 2}
    );
    let bad = Update::parse(&doc! {"$set": {"_id": 2}}).unwrap();
    assert_eq!(bad.apply_upsert(&doc! {"_id": 1}).unwrap_err().code(), 66);
}

#[test]
fn results_stay_within_the_depth_limit() {
    let mut deep = bson!(1);
    for _ in 0..150 {
        deep = bson!({"x": deep});
    }
    let u = Update::parse(&doc! {"$set": {"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a1.b1.c1.c2.c3.c4.c5.c6.c7.c8.c9.d1.d2.d3.d4.d5.d6.d7.d8.d9.e1.e2.e3.e4.e5.e6.e7.e8.e9.f1": deep}}).unwrap();
    let mut d = doc! {};
    assert!(u.apply(&mut d).unwrap_err().to_string().contains("depth"));
    assert_eq!(d, doc! {});
}

#[test]
fn rename_moves_values_and_appends_new_fields() {
    assert_eq!(
        applied(
            doc! {"$rename": {"a": "z", "b.c": "d"}},
            doc! {"_id": 1, "a": 1, "b": {"c": 2, "e": 3}, "y": 0}
        ),
        doc! {"_id": 1, "b": {"e": 3}, "y": 0, "d": 2, "z": 1}
    );
    // Onto an existing field: replaced where it is.
    assert_eq!(
        applied(doc! {"$rename": {"a": "b"}}, doc! {"b": 0, "a": [1, 2]}),
        doc! {"b": [1, 2]}
    );
    // A missing source changes nothing.
    let mut d = doc! {"_id": 1, "x": 1};
    assert!(!Update::parse(&doc! {"$rename": {"a": "b"}})
        .unwrap()
        .apply(&mut d)
        .unwrap());
    // Into a new sub-document.
    assert_eq!(
        applied(doc! {"$rename": {"a": "n.m"}}, doc! {"a": 1}),
        doc! {"n": {"m": 1}}
    );
}

#[test]
fn rename_errors_follow_mongodb() {
    assert_eq!(
        parse_err(doc! {"$rename": {"a": 1}}),
        "The 'to' field for $rename must be a string: a: 1"
    );
    assert_eq!(
        parse_err(doc! {"$rename": {"a": "a"}}),
        "The source and target field for $rename must differ: a: \"a\""
    );
    assert_eq!(
        parse_err(doc! {"$rename": {"a": "a.b"}}),
        "The source and target field for $rename must not be on the same path: a: \"a.b\""
    );
    // The source counts for conflicts.
    let err = Update::parse(&doc! {"$rename": {"a": "b"}, "$set": {"a.x": 1}}).unwrap_err();
    assert_eq!(err.code(), 40);
    assert_eq!(
        err.to_string(),
        "Updating the path 'a.x' would create a conflict at 'a'"
    );
    let err = apply_err(
        doc! {"$rename": {"a.b": "c"}},
        doc! {"_id": 1, "a": [{"b": 1}]},
    );
    assert_eq!(
        err.to_string(),
        "The source field cannot be an array element, 'a.b' in doc with _id: 1 has an array \
         field called 'a'"
    );
    let err = apply_err(
        doc! {"$rename": {"a": "c.d"}},
        doc! {"_id": 1, "a": 1, "c": [1]},
    );
    assert_eq!(err.code(), 2);
    assert!(err
        .to_string()
        .starts_with("The destination field cannot be an array element"));
    // Renaming _id is changing it.
    assert_eq!(
        apply_err(doc! {"$rename": {"_id": "x"}}, doc! {"_id": 1}).code(),
        66
    );
}

#[test]
fn current_date_and_bit() {
    let d = applied(
        doc! {"$currentDate": {"a": true, "b": {"$type": "timestamp"}, "c": {"$type": "date"}}},
        doc! {},
    );
    assert!(matches!(d.get("a"), Some(Bson::DateTime(_))));
    assert!(matches!(d.get("b"), Some(Bson::Timestamp(_))));
    assert!(matches!(d.get("c"), Some(Bson::DateTime(_))));
    assert!(parse_err(doc! {"$currentDate": {"a": {"$type": "x"}}})
        .starts_with("The '$type' string field is required to be 'date' or 'timestamp'"));
    assert!(parse_err(doc! {"$currentDate": {"a": 1}}).starts_with("int is not valid type"));

    assert_eq!(
        applied(
            doc! {"$bit": {"a": {"and": 6}, "b": {"or": 1i64}, "c": {"xor": 5, "and": 4}}},
            doc! {"a": 3, "b": 2}
        ),
        doc! {"a": 2, "b": 3i64, "c": 4}
    );
    assert!(parse_err(doc! {"$bit": {"a": {"nand": 1}}})
        .starts_with("The $bit modifier only supports 'and', 'or', and 'xor', not 'nand'"));
    assert!(parse_err(doc! {"$bit": {"a": {"and": 1.0}}})
        .starts_with("The $bit modifier field must be an Integer(32/64 bit)"));
    assert!(parse_err(doc! {"$bit": {"a": {}}})
        .starts_with("You must pass in at least one bitwise operation"));
    assert!(
        apply_err(doc! {"$bit": {"a": {"and": 1}}}, doc! {"_id": 1, "a": 1.5})
            .to_string()
            .starts_with("Cannot apply $bit to a value of non-integral type.")
    );
}
