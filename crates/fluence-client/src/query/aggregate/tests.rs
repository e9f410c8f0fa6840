//! Unit tests of pipelines, stages and expressions.

use bson::{bson, doc, Bson, Document};

use super::*;

fn run(stages: Vec<Bson>, docs: Vec<Document>) -> Vec<Document> {
    Pipeline::parse(&stages).unwrap().run(docs).unwrap()
}

fn run_err(stages: Vec<Bson>, docs: Vec<Document>) -> QueryError {
    match Pipeline::parse(&stages) {
        Err(e) => e,
        Ok(p) => p.run(docs).unwrap_err(),
    }
}

fn eval(expr: Bson, doc: Document) -> Value {
    Expr::parse(&expr).unwrap().eval(&doc).unwrap()
}

fn eval_err(expr: Bson, doc: Document) -> QueryError {
    match Expr::parse(&expr) {
        Err(e) => e,
        Ok(e) => e.eval(&doc).unwrap_err(),
    }
}

fn sample() -> Vec<Document> {
    vec![
        doc! {"_id": 1, "kind": "a", "qty": 5, "tags": ["x", "y"]},
        doc! {"_id": 2, "kind": "b", "qty": 2.5, "tags": []},
        doc! {"_id": 3, "kind": "a", "qty": 1i64},
        doc! {"_id": 4, "kind": "c", "qty": "n/a", "tags": "z"},
    ]
}

#[test]
fn leading_stages_are_a_find() {
    let p = Pipeline::parse(&[
        bson!({"$match": {"a": 1}}),
        bson!({"$sort": {"b": -1}}),
        bson!({"$skip": 2}),
        bson!({"$limit": 3}),
        bson!({"$limit": 1}),
    ])
    .unwrap();
    assert_eq!(
        *p.leading(),
        Leading {
            filter: doc! {"a": 1},
            sort: Some(doc! {"b": -1}),
            skip: 2,
            limit: Some(3),
            stages: 4,
        }
    );
    // Out of find order, only the prefix that is in order counts.
    let p = Pipeline::parse(&[bson!({"$limit": 3}), bson!({"$skip": 1})]).unwrap();
    assert_eq!(p.leading().limit, Some(3));
    assert_eq!(p.leading().stages, 1);
    let p = Pipeline::parse(&[bson!({"$skip": 1}), bson!({"$match": {"a": 1}})]).unwrap();
    assert_eq!((p.leading().skip, p.leading().stages), (1, 1));
    assert_eq!(
        p.run_after_leading(vec![doc! {"a": 1}, doc! {"a": 2}])
            .unwrap(),
        vec![doc! {"a": 1}]
    );
}

#[test]
fn count_documents_shape() {
    // What drivers send for countDocuments.
    let stages = vec![
        bson!({"$match": {"kind": "a"}}),
        bson!({"$skip": 0}),
        bson!({"$group": {"_id": 1, "n": {"$sum": 1}}}),
    ];
    assert_eq!(run(stages.clone(), sample()), vec![doc! {"_id": 1, "n": 2}]);
    assert!(run(stages, Vec::new()).is_empty());
}

#[test]
fn group_accumulators() {
    let out = run(
        vec![bson!({"$group": {
            "_id": "$kind",
            "sum": {"$sum": "$qty"},
            "avg": {"$avg": "$qty"},
            "min": {"$min": "$qty"},
            "max": {"$max": "$qty"},
            "first": {"$first": "$tags"},
            "last": {"$last": "$tags"},
            "push": {"$push": "$qty"},
            "set": {"$addToSet": "$kind"},
            "n": {"$count": {}},
        }})],
        sample(),
    );
    assert_eq!(
        out,
        vec![
            doc! {"_id": "a", "sum": 6i64, "avg": 3.0, "min": 1i64, "max": 5, "first": ["x", "y"],
            "last": null, "push": [5, 1i64], "set": ["a"], "n": 2},
            doc! {"_id": "b", "sum": 2.5, "avg": 2.5, "min": 2.5, "max": 2.5, "first": [],
            "last": [], "push": [2.5], "set": ["b"], "n": 1},
            doc! {"_id": "c", "sum": 0, "avg": null, "min": "n/a", "max": "n/a", "first": "z",
            "last": "z", "push": ["n/a"], "set": ["c"], "n": 1},
        ]
    );
    // 1 and 1.0 are one group; a missing _id expression is null.
    let out = run(
        vec![bson!({"$group": {"_id": "$k", "n": {"$sum": 1}}})],
        vec![doc! {"k": 1}, doc! {"k": 1.0}, doc! {}, doc! {"k": null}],
    );
    assert_eq!(
        out,
        vec![doc! {"_id": 1, "n": 2}, doc! {"_id": null, "n": 2}]
    );
    // Compound keys.
    let out = run(
        vec![bson!({"$group": {"_id": {"k": "$kind", "big": {"$gt": ["$qty", 2]}}}})],
        sample(),
    );
    assert_eq!(out.len(), 4);
    assert_eq!(out[0], doc! {"_id": {"k": "a", "big": true}});
}

#[test]
fn sum_widens_like_mongodb() {
    let out = run(
        vec![bson!({"$group": {"_id": null, "s": {"$sum": "$v"}}})],
        vec![doc! {"v": i32::MAX}, doc! {"v": 1}],
    );
    assert_eq!(out[0].get("s"), Some(&Bson::Int64(i64::from(i32::MAX) + 1)));
    let out = run(
        vec![bson!({"$group": {"_id": null, "s": {"$sum": "$v"}}})],
        vec![doc! {"v": i64::MAX}, doc! {"v": 1}],
    );
    assert_eq!(out[0].get("s"), Some(&Bson::Double(i64::MAX as f64 + 1.0)));
}

#[test]
fn group_errors() {
    assert_eq!(
        run_err(vec![bson!({"$group": {"n": {"$sum": 1}}})], vec![]).to_string(),
        "a group specification must include an _id"
    );
    assert_eq!(
        run_err(
            vec![bson!({"$group": {"_id": 1, "n": {"$foo": 1}}})],
            vec![]
        )
        .to_string(),
        "unknown group operator '$foo'"
    );
    assert_eq!(
        run_err(vec![bson!({"$group": {"_id": 1, "n": 1}})], vec![]).code(),
        40234
    );
    assert_eq!(
        run_err(
            vec![bson!({"$group": {"_id": 1, "a.b": {"$sum": 1}}})],
            vec![]
        )
        .code(),
        16414
    );
    assert_eq!(
        run_err(
            vec![bson!({"$group": {"_id": 1, "n": {"$topN": 1}}})],
            vec![]
        )
        .code(),
        238
    );
}

#[test]
fn unwind_forms() {
    let docs = vec![
        doc! {"_id": 1, "a": [1, 2]},
        doc! {"_id": 2, "a": []},
        doc! {"_id": 3, "a": null},
        doc! {"_id": 4},
        doc! {"_id": 5, "a": 7},
    ];
    assert_eq!(
        run(vec![bson!({"$unwind": "$a"})], docs.clone()),
        vec![
            doc! {"_id": 1, "a": 1},
            doc! {"_id": 1, "a": 2},
            doc! {"_id": 5, "a": 7}
        ]
    );
    assert_eq!(
        run(
            vec![bson!({"$unwind": {"path": "$a", "includeArrayIndex": "i",
                                    "preserveNullAndEmptyArrays": true}})],
            docs
        ),
        vec![
            doc! {"_id": 1, "a": 1, "i": 0i64},
            doc! {"_id": 1, "a": 2, "i": 1i64},
            doc! {"_id": 2, "i": null},
            doc! {"_id": 3, "a": null, "i": null},
            doc! {"_id": 4, "i": null},
            doc! {"_id": 5, "a": 7, "i": null},
        ]
    );
    // Nested paths go through sub-documents.
    assert_eq!(
        run(
            vec![bson!({"$unwind": "$s.t"})],
            vec![doc! {"s": {"t": [1, 2], "u": 0}}]
        ),
        vec![doc! {"s": {"t": 1, "u": 0}}, doc! {"s": {"t": 2, "u": 0}}]
    );
    assert_eq!(run_err(vec![bson!({"$unwind": "a"})], vec![]).code(), 28818);
    assert_eq!(
        run_err(vec![bson!({"$unwind": {"x": 1}})], vec![]).code(),
        28811
    );
    assert_eq!(
        run_err(vec![bson!({"$unwind": {"includeArrayIndex": "i"}})], vec![]).code(),
        28812
    );
}

#[test]
fn unwind_output_is_bounded() {
    let big = "x".repeat(1024 * 1024);
    let items: Vec<i32> = (0..600).collect();
    let err = run_err(
        vec![bson!({"$unwind": "$a"})],
        vec![doc! {"pad": big, "a": items}],
    );
    assert_eq!(err.code(), 292);
}

#[test]
fn project_inclusion_exclusion_and_computed() {
    let d = doc! {"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [{"c": 1, "x": 0}, 5]};
    assert_eq!(
        run(
            vec![bson!({"$project": {"b.c": 1, "a": 1}})],
            vec![d.clone()]
        ),
        vec![doc! {"_id": 1, "a": 1, "b": {"c": 2}}]
    );
    assert_eq!(
        run(
            vec![bson!({"$project": {"_id": 0, "e.c": 1}})],
            vec![d.clone()]
        ),
        vec![doc! {"e": [{"c": 1}]}]
    );
    assert_eq!(
        run(vec![bson!({"$project": {"b": 0, "e": 0}})], vec![d.clone()]),
        vec![doc! {"_id": 1, "a": 1}]
    );
    assert_eq!(
        run(
            vec![
                bson!({"$project": {"_id": 0, "sum": {"$add": ["$a", "$b.c"]}, "a": 1,
                                     "lit": {"$literal": 1}, "s": "hello", "gone": "$$REMOVE"}})
            ],
            vec![d.clone()]
        ),
        vec![doc! {"a": 1, "sum": 3, "lit": 1, "s": "hello"}]
    );
    // Nested computed fields, through an array.
    assert_eq!(
        run(
            vec![bson!({"$project": {"_id": 0, "e": {"y": "$a"}}})],
            vec![d.clone()]
        ),
        vec![doc! {"e": [{"y": 1}, {"y": 1}]}]
    );
    let err = run_err(vec![bson!({"$project": {"a": 0, "b": 1}})], vec![]);
    assert_eq!(err.code(), 31254);
    assert_eq!(
        run_err(vec![bson!({"$project": {"a": 0, "b": "$x"}})], vec![]).code(),
        31252
    );
    assert_eq!(run_err(vec![bson!({"$project": {}})], vec![]).code(), 51272);
    assert_eq!(
        run_err(vec![bson!({"$project": {"a": 1, "a.b": 1}})], vec![]).code(),
        31250
    );
}

#[test]
fn add_fields_set_unset_replace_root() {
    let d = doc! {"_id": 1, "a": 1, "b": {"c": 2}, "arr": [{"k": 1}, {"k": 2}]};
    assert_eq!(
        run(
            vec![
                bson!({"$addFields": {"a": 10, "z": {"$multiply": ["$a", 2]}, "b.d": "$a",
                                       "arr.j": true}})
            ],
            vec![d.clone()]
        ),
        vec![doc! {"_id": 1, "a": 10, "b": {"c": 2, "d": 1},
        "arr": [{"k": 1, "j": true}, {"k": 2, "j": true}], "z": 2}]
    );
    assert_eq!(
        run(vec![bson!({"$set": {"a": "$$REMOVE"}})], vec![d.clone()]),
        vec![doc! {"_id": 1, "b": {"c": 2}, "arr": [{"k": 1}, {"k": 2}]}]
    );
    assert_eq!(
        run(vec![bson!({"$unset": ["a", "arr.k"]})], vec![d.clone()]),
        vec![doc! {"_id": 1, "b": {"c": 2}, "arr": [{}, {}]}]
    );
    assert_eq!(
        run(
            vec![bson!({"$replaceRoot": {"newRoot": "$b"}})],
            vec![d.clone()]
        ),
        vec![doc! {"c": 2}]
    );
    assert_eq!(
        run(
            vec![bson!({"$replaceWith": {"$mergeObjects": ["$b", {"x": 1}]}})],
            vec![d.clone()]
        ),
        vec![doc! {"c": 2, "x": 1}]
    );
    assert_eq!(
        run_err(vec![bson!({"$replaceWith": "$a"})], vec![d]).code(),
        40228
    );
    assert_eq!(run_err(vec![bson!({"$unset": 1})], vec![]).code(), 31002);
}

#[test]
fn count_sort_skip_limit_match() {
    let out = run(
        vec![
            bson!({"$match": {"kind": {"$in": ["a", "b"]}}}),
            bson!({"$sort": {"_id": -1}}),
            bson!({"$skip": 1}),
            bson!({"$limit": 1}),
            bson!({"$count": "total"}),
        ],
        sample(),
    );
    assert_eq!(out, vec![doc! {"total": 1}]);
    assert!(run(vec![bson!({"$count": "n"})], Vec::new()).is_empty());
    for (stage, code) in [
        (bson!({"$count": ""}), 40157),
        (bson!({"$count": "$a"}), 40158),
        (bson!({"$count": "a.b"}), 40160),
        (bson!({"$limit": 0}), 15958),
        (bson!({"$limit": "x"}), 15957),
        (bson!({"$skip": -1}), 5107200),
        (bson!({"$sort": {}}), 15976),
        (bson!({"$match": 1}), 15959),
        (bson!({"$foo": 1}), 40324),
        (bson!({"$lookup": {}}), 238),
        (bson!({"$match": {}, "$sort": {"a": 1}}), 40323),
    ] {
        assert_eq!(run_err(vec![stage.clone()], vec![]).code(), code, "{stage}");
    }
    // $text only in the first stage.
    assert_eq!(
        run_err(
            vec![
                bson!({"$skip": 1}),
                bson!({"$match": {"$text": {"$search": "x"}}})
            ],
            vec![]
        )
        .code(),
        17313
    );
}

#[test]
fn field_paths_through_arrays() {
    let d = doc! {"a": [{"b": 1}, {"c": 2}, 3, [{"b": 4}]], "s": {"t": 5}};
    assert_eq!(eval(bson!("$a.b"), d.clone()), Some(bson!([1, [4]])));
    assert_eq!(eval(bson!("$s.t"), d.clone()), Some(bson!(5)));
    assert_eq!(eval(bson!("$nope"), d.clone()), None);
    assert_eq!(eval(bson!("$$ROOT.s"), d.clone()), Some(bson!({"t": 5})));
    assert_eq!(
        eval(bson!("$$CURRENT"), d.clone()),
        Some(Bson::Document(d.clone()))
    );
    assert_eq!(
        eval(bson!(["$s.t", "$nope"]), d.clone()),
        Some(bson!([5, null]))
    );
    assert_eq!(
        eval(bson!({"x": "$s.t", "y": "$nope"}), d),
        Some(bson!({"x": 5}))
    );
    assert_eq!(eval_err(bson!("$$foo"), doc! {}).code(), 17276);
    assert_eq!(eval_err(bson!("$"), doc! {}).code(), 16872);
    assert_eq!(eval_err(bson!({"$foo": 1}), doc! {}).code(), 168);
    assert_eq!(eval_err(bson!({"$map": {}}), doc! {}).code(), 238);
    assert_eq!(
        eval_err(bson!({"$add": 1, "$sub": 2}), doc! {}).code(),
        15983
    );
}

#[test]
fn arithmetic() {
    let d = doc! {"i": 7, "l": 3i64, "f": 0.5, "s": "x", "n": null,
    "t": bson::DateTime::from_millis(1000)};
    assert_eq!(
        eval(bson!({"$add": ["$i", "$l"]}), d.clone()),
        Some(bson!(10i64))
    );
    assert_eq!(eval(bson!({"$add": ["$i", 1]}), d.clone()), Some(bson!(8)));
    assert_eq!(
        eval(bson!({"$add": [i32::MAX, 1]}), d.clone()),
        Some(bson!(2147483648i64))
    );
    assert_eq!(
        eval(bson!({"$add": ["$i", "$f"]}), d.clone()),
        Some(bson!(7.5))
    );
    assert_eq!(
        eval(bson!({"$add": ["$i", "$n"]}), d.clone()),
        Some(Bson::Null)
    );
    assert_eq!(
        eval(bson!({"$add": ["$i", "$missing"]}), d.clone()),
        Some(Bson::Null)
    );
    assert_eq!(
        eval(bson!({"$add": ["$t", 500]}), d.clone()),
        Some(Bson::DateTime(bson::DateTime::from_millis(1500)))
    );
    assert_eq!(
        eval(bson!({"$subtract": ["$t", "$t"]}), d.clone()),
        Some(bson!(0i64))
    );
    assert_eq!(
        eval(bson!({"$subtract": ["$i", "$l"]}), d.clone()),
        Some(bson!(4i64))
    );
    assert_eq!(
        eval(bson!({"$multiply": ["$i", "$f"]}), d.clone()),
        Some(bson!(3.5))
    );
    assert_eq!(
        eval(bson!({"$divide": ["$i", 2]}), d.clone()),
        Some(bson!(3.5))
    );
    assert_eq!(eval(bson!({"$mod": ["$i", 4]}), d.clone()), Some(bson!(3)));
    assert_eq!(
        eval(bson!({"$mod": [i32::MIN, -1]}), d.clone()),
        Some(bson!(0))
    );
    assert_eq!(eval(bson!({"$abs": -2}), d.clone()), Some(bson!(2)));
    assert_eq!(eval(bson!({"$ceil": 1.2}), d.clone()), Some(bson!(2.0)));
    assert_eq!(eval(bson!({"$floor": 1.8}), d.clone()), Some(bson!(1.0)));
    assert_eq!(eval(bson!({"$round": [2.5]}), d.clone()), Some(bson!(2.0)));
    assert_eq!(
        eval(bson!({"$round": [1.2345, 2]}), d.clone()),
        Some(bson!(1.23))
    );
    assert_eq!(
        eval(bson!({"$round": [1250, -2]}), d.clone()),
        Some(bson!(1200))
    );
    assert_eq!(
        eval(bson!({"$trunc": [-1.7]}), d.clone()),
        Some(bson!(-1.0))
    );
    assert_eq!(eval_err(bson!({"$add": ["$s", 1]}), d.clone()).code(), 14);
    assert_eq!(
        eval_err(bson!({"$add": ["$s", 1]}), d.clone()).to_string(),
        "$add only supports numeric or date types, not string"
    );
    assert_eq!(
        eval_err(bson!({"$divide": [1, 0]}), d.clone()).to_string(),
        "can't $divide by zero"
    );
    assert_eq!(eval_err(bson!({"$mod": [1, 0]}), d.clone()).code(), 16610);
    assert_eq!(eval_err(bson!({"$subtract": [1]}), d).code(), 16020);
}

#[test]
fn comparison_logic_and_conditionals() {
    let d = doc! {"a": 1, "b": 2.0, "n": null};
    assert_eq!(
        eval(bson!({"$eq": ["$a", 1.0]}), d.clone()),
        Some(bson!(true))
    );
    assert_eq!(
        eval(bson!({"$lt": ["$a", "$b"]}), d.clone()),
        Some(bson!(true))
    );
    assert_eq!(
        eval(bson!({"$cmp": ["$b", "$a"]}), d.clone()),
        Some(bson!(1))
    );
    // Missing is below null.
    assert_eq!(
        eval(bson!({"$eq": ["$zz", null]}), d.clone()),
        Some(bson!(false))
    );
    assert_eq!(
        eval(bson!({"$lt": ["$zz", null]}), d.clone()),
        Some(bson!(true))
    );
    assert_eq!(
        eval(bson!({"$and": ["$a", {"$gt": ["$b", 1]}]}), d.clone()),
        Some(bson!(true))
    );
    assert_eq!(
        eval(bson!({"$or": ["$n", 0]}), d.clone()),
        Some(bson!(false))
    );
    assert_eq!(eval(bson!({"$not": ["$n"]}), d.clone()), Some(bson!(true)));
    assert_eq!(
        eval(
            bson!({"$cond": [{"$gt": ["$a", 0]}, "pos", "neg"]}),
            d.clone()
        ),
        Some(bson!("pos"))
    );
    assert_eq!(
        eval(
            bson!({"$cond": {"if": "$n", "then": 1, "else": 2}}),
            d.clone()
        ),
        Some(bson!(2))
    );
    assert_eq!(
        eval(bson!({"$ifNull": ["$n", "$zz", "dflt"]}), d.clone()),
        Some(bson!("dflt"))
    );
    assert_eq!(
        eval(bson!({"$ifNull": ["$a", "dflt"]}), d.clone()),
        Some(bson!(1))
    );
    assert_eq!(
        eval(
            bson!({"$switch": {"branches": [{"case": {"$eq": ["$a", 2]}, "then": "two"},
                                            {"case": {"$eq": ["$a", 1]}, "then": "one"}],
                               "default": "many"}}),
            d.clone()
        ),
        Some(bson!("one"))
    );
    assert_eq!(
        eval_err(
            bson!({"$switch": {"branches": [{"case": false, "then": 1}]}}),
            d.clone()
        )
        .code(),
        40066
    );
    assert_eq!(
        eval_err(bson!({"$cond": {"if": 1, "then": 2}}), d).code(),
        17082
    );
}

#[test]
fn strings_arrays_and_types() {
    let d = doc! {"s": "Ab", "arr": [1, 2, 3], "n": null, "i": 42, "f": 1.5,
    "oid": bson::oid::ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap(),
    "t": bson::DateTime::from_millis(1_700_000_000_123)};
    assert_eq!(
        eval(bson!({"$concat": ["$s", "-", "x"]}), d.clone()),
        Some(bson!("Ab-x"))
    );
    assert_eq!(
        eval(bson!({"$concat": ["$s", "$n"]}), d.clone()),
        Some(Bson::Null)
    );
    assert_eq!(
        eval_err(bson!({"$concat": ["$s", 1]}), d.clone()).code(),
        16702
    );
    assert_eq!(
        eval(bson!({"$toUpper": "$s"}), d.clone()),
        Some(bson!("AB"))
    );
    assert_eq!(eval(bson!({"$toLower": "$n"}), d.clone()), Some(bson!("")));
    assert_eq!(
        eval(bson!({"$strLenCP": "héllo"}), d.clone()),
        Some(bson!(5))
    );
    assert_eq!(
        eval(bson!({"$split": ["a,b", ","]}), d.clone()),
        Some(bson!(["a", "b"]))
    );
    assert_eq!(eval(bson!({"$size": "$arr"}), d.clone()), Some(bson!(3)));
    assert_eq!(
        eval_err(bson!({"$size": "$zz"}), d.clone()).to_string(),
        "The argument to $size must be an array. Type of the argument was: missing"
    );
    assert_eq!(
        eval(bson!({"$arrayElemAt": ["$arr", -1]}), d.clone()),
        Some(bson!(3))
    );
    assert_eq!(eval(bson!({"$arrayElemAt": ["$arr", 5]}), d.clone()), None);
    assert_eq!(
        eval(bson!({"$in": [2.0, "$arr"]}), d.clone()),
        Some(bson!(true))
    );
    assert_eq!(eval_err(bson!({"$in": [2, "$s"]}), d.clone()).code(), 40081);
    assert_eq!(
        eval(bson!({"$isArray": "$s"}), d.clone()),
        Some(bson!(false))
    );
    assert_eq!(eval(bson!({"$first": "$arr"}), d.clone()), Some(bson!(1)));
    assert_eq!(eval(bson!({"$last": ["$arr"]}), d.clone()), Some(bson!(3)));
    assert_eq!(
        eval(bson!({"$concatArrays": ["$arr", [4]]}), d.clone()),
        Some(bson!([1, 2, 3, 4]))
    );
    assert_eq!(
        eval(bson!({"$type": "$zz"}), d.clone()),
        Some(bson!("missing"))
    );
    assert_eq!(eval(bson!({"$type": "$i"}), d.clone()), Some(bson!("int")));
    assert_eq!(
        eval(bson!({"$toString": "$i"}), d.clone()),
        Some(bson!("42"))
    );
    assert_eq!(
        eval(bson!({"$toString": "$f"}), d.clone()),
        Some(bson!("1.5"))
    );
    assert_eq!(eval(bson!({"$toString": 2.0}), d.clone()), Some(bson!("2")));
    assert_eq!(
        eval(bson!({"$toString": "$oid"}), d.clone()),
        Some(bson!("65a1b2c3d4e5f60718293a4b"))
    );
    assert_eq!(
        eval(bson!({"$toString": "$t"}), d.clone()),
        Some(bson!("2023-11-14T22:13:20.123Z"))
    );
    assert_eq!(
        eval(bson!({"$toString": "$n"}), d.clone()),
        Some(Bson::Null)
    );
    assert_eq!(eval(bson!({"$toInt": "12"}), d.clone()), Some(bson!(12)));
    assert_eq!(eval(bson!({"$toInt": 2.9}), d.clone()), Some(bson!(2)));
    assert_eq!(eval(bson!({"$toLong": true}), d.clone()), Some(bson!(1i64)));
    assert_eq!(
        eval(bson!({"$toDouble": "2.5"}), d.clone()),
        Some(bson!(2.5))
    );
    assert_eq!(eval(bson!({"$toBool": 0}), d.clone()), Some(bson!(false)));
    assert_eq!(eval_err(bson!({"$toInt": "x"}), d.clone()).code(), 241);
    assert_eq!(eval_err(bson!({"$toInt": 1e12}), d).code(), 241);
}

#[test]
fn deep_expressions_are_refused_not_overflowed() {
    let mut e = bson!("$a");
    for _ in 0..180 {
        e = bson!({"$abs": [e]});
    }
    assert!(Expr::parse(&e).is_err());
}
