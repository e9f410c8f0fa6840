"""Update operators, each against MongoDB's documented result."""

from __future__ import annotations

import pytest


def updated(coll, before: dict, update: dict) -> dict:
    coll.insert_one(dict(before, _id=1))
    coll.update_one({"_id": 1}, update)
    found = coll.find_one({"_id": 1})
    del found["_id"]
    return found


CASES = [
    ("set", {"a": 1}, {"$set": {"a": 2, "b.c": 3}}, {"a": 2, "b": {"c": 3}}),
    ("unset", {"a": 1, "b": 2}, {"$unset": {"a": ""}}, {"b": 2}),
    ("inc", {"a": 1}, {"$inc": {"a": 2, "z": 5}}, {"a": 3, "z": 5}),
    ("push", {"a": [1]}, {"$push": {"a": 2}}, {"a": [1, 2]}),
    ("push_each", {"a": [1]}, {"$push": {"a": {"$each": [2, 3]}}}, {"a": [1, 2, 3]}),
    ("pull", {"a": [1, 2, 1, 3]}, {"$pull": {"a": 1}}, {"a": [2, 3]}),
    ("pull_condition", {"a": [1, 5, 9]}, {"$pull": {"a": {"$gte": 5}}}, {"a": [1]}),
    ("min_lowers", {"a": 5}, {"$min": {"a": 3}}, {"a": 3}),
    ("min_keeps", {"a": 5}, {"$min": {"a": 8}}, {"a": 5}),
    ("max_raises", {"a": 5}, {"$max": {"a": 8}}, {"a": 8}),
    ("max_missing_field", {}, {"$max": {"a": 1}}, {"a": 1}),
    ("mul", {"a": 4, "b": 1.5}, {"$mul": {"a": 3, "b": 2}}, {"a": 12, "b": 3.0}),
    ("mul_missing_field", {}, {"$mul": {"a": 3}}, {"a": 0}),
    ("rename", {"a": 1, "b": 2}, {"$rename": {"a": "c"}}, {"b": 2, "c": 1}),
    ("rename_nested", {"a": {"x": 1}}, {"$rename": {"a.x": "y"}}, {"a": {}, "y": 1}),
    ("add_to_set", {"a": [1, 2]}, {"$addToSet": {"a": 2}}, {"a": [1, 2]}),
    ("add_to_set_each", {"a": [1]}, {"$addToSet": {"a": {"$each": [1, 3, 3]}}}, {"a": [1, 3]}),
    ("pop_last", {"a": [1, 2, 3]}, {"$pop": {"a": 1}}, {"a": [1, 2]}),
    ("pop_first", {"a": [1, 2, 3]}, {"$pop": {"a": -1}}, {"a": [2, 3]}),
]


@pytest.mark.parametrize(
    "before, update, after", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_update_operator(coll, before, update, after):
    assert updated(coll, before, update) == after


def test_set_on_insert_applies_only_when_upserting(coll):
    coll.update_one(
        {"_id": 1}, {"$set": {"seen": 1}, "$setOnInsert": {"created": True}}, upsert=True
    )
    assert coll.find_one({"_id": 1}) == {"_id": 1, "seen": 1, "created": True}
    coll.update_one(
        {"_id": 1}, {"$set": {"seen": 2}, "$setOnInsert": {"created": False}}, upsert=True
    )
    assert coll.find_one({"_id": 1}) == {"_id": 1, "seen": 2, "created": True}


def test_an_update_that_changes_nothing_reports_not_modified(coll):
    coll.insert_one({"_id": 1, "a": 1})
    result = coll.update_one({"_id": 1}, {"$set": {"a": 1}})
    assert (result.matched_count, result.modified_count) == (1, 0)


def test_positional_update_of_a_matched_array_element(coll):
    coll.insert_one({"_id": 1, "grades": [80, 85, 90]})
    coll.update_one({"_id": 1, "grades": 85}, {"$set": {"grades.$": 86}})
    assert coll.find_one({"_id": 1})["grades"] == [80, 86, 90]
