"""The aggregation pipeline stages and accumulators the gateway supports."""

from __future__ import annotations

import pytest
from pymongo.errors import OperationFailure

SALES = [
    {"_id": 1, "item": "apple", "qty": 5, "price": 2.0, "tags": ["fruit", "red"]},
    {"_id": 2, "item": "pear", "qty": 2, "price": 3.0, "tags": ["fruit"]},
    {"_id": 3, "item": "apple", "qty": 1, "price": 2.5, "tags": ["fruit", "green"]},
    {"_id": 4, "item": "bread", "qty": 7, "price": 1.0, "tags": []},
    {"_id": 5, "item": "pear", "qty": 4, "price": 3.5},
]


@pytest.fixture
def sales(coll):
    coll.insert_many(SALES)
    return coll


def test_match_sort_skip_limit(sales):
    out = list(
        sales.aggregate(
            [
                {"$match": {"qty": {"$gte": 2}}},
                {"$sort": {"qty": -1}},
                {"$skip": 1},
                {"$limit": 2},
                {"$project": {"_id": 1}},
            ]
        )
    )
    assert out == [{"_id": 1}, {"_id": 5}]


def test_project_add_fields_set_and_unset(sales):
    out = list(
        sales.aggregate(
            [
                {"$match": {"_id": 1}},
                {"$project": {"item": 1, "qty": 1, "price": 1}},
                {"$addFields": {"total": {"$multiply": ["$qty", "$price"]}}},
                {"$set": {"label": {"$concat": ["$item", "!"]}}},
                {"$unset": ["price"]},
            ]
        )
    )
    assert out == [{"_id": 1, "item": "apple", "qty": 5, "total": 10.0, "label": "apple!"}]


def test_group_accumulators(sales):
    out = list(
        sales.aggregate(
            [
                {"$sort": {"_id": 1}},
                {
                    "$group": {
                        "_id": "$item",
                        "qty": {"$sum": "$qty"},
                        "n": {"$sum": 1},
                        "avg": {"$avg": "$price"},
                        "lo": {"$min": "$price"},
                        "hi": {"$max": "$price"},
                        "first": {"$first": "$_id"},
                        "last": {"$last": "$_id"},
                        "ids": {"$push": "$_id"},
                        "qtys": {"$addToSet": "$qty"},
                    }
                },
                {"$sort": {"_id": 1}},
            ]
        )
    )
    assert [g["_id"] for g in out] == ["apple", "bread", "pear"]
    apple = out[0]
    assert apple["qty"] == 6 and apple["n"] == 2
    assert apple["avg"] == pytest.approx(2.25)
    assert (apple["lo"], apple["hi"]) == (2.0, 2.5)
    assert (apple["first"], apple["last"], apple["ids"]) == (1, 3, [1, 3])
    assert sorted(apple["qtys"]) == [1, 5]


def test_group_everything_with_null_id(sales):
    out = list(sales.aggregate([{"$group": {"_id": None, "qty": {"$sum": "$qty"}}}]))
    assert out == [{"_id": None, "qty": 19}]


def test_count_stage(sales):
    assert list(sales.aggregate([{"$match": {"item": "pear"}}, {"$count": "pears"}])) == [
        {"pears": 2}
    ]


def test_unwind_arrays(sales):
    out = list(
        sales.aggregate(
            [{"$unwind": "$tags"}, {"$group": {"_id": "$tags", "n": {"$sum": 1}}}, {"$sort": {"_id": 1}}]
        )
    )
    assert out == [{"_id": "fruit", "n": 3}, {"_id": "green", "n": 1}, {"_id": "red", "n": 1}]


def test_unwind_keeps_empty_with_preserve(sales):
    out = list(
        sales.aggregate(
            [
                {"$match": {"_id": {"$in": [4, 5]}}},
                {"$unwind": {"path": "$tags", "preserveNullAndEmptyArrays": True}},
                {"$project": {"_id": 1}},
                {"$sort": {"_id": 1}},
            ]
        )
    )
    assert out == [{"_id": 4}, {"_id": 5}]


def test_aggregate_results_page_with_get_more(coll, commands):
    coll.insert_many([{"_id": i, "g": i % 3} for i in range(500)])
    commands.clear()
    out = list(coll.aggregate([{"$match": {"g": 0}}, {"$sort": {"_id": 1}}], batchSize=20))
    assert [d["_id"] for d in out] == list(range(0, 500, 3))
    assert commands.names().count("getMore") >= 8


def test_unknown_stage_is_refused_by_name(sales):
    with pytest.raises(OperationFailure) as error:
        list(sales.aggregate([{"$frobnicate": {}}]))
    assert error.value.code == 40324
    assert "$frobnicate" in str(error.value)


def test_aggregate_on_a_missing_collection_is_empty(db):
    assert list(db["never_created"].aggregate([{"$match": {}}])) == []
