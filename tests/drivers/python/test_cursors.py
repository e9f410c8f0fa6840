"""Cursors: batches and getMore, killCursors, sort, skip, limit, projection."""

from __future__ import annotations

import pytest
from pymongo import ASCENDING, DESCENDING
from pymongo.errors import OperationFailure

DOCS = 1000


@pytest.fixture
def filled(coll):
    coll.insert_many([{"_id": i, "n": i, "mod": i % 10, "pad": "p" * 50} for i in range(DOCS)])
    return coll


def test_default_batches_page_through_everything(filled, commands):
    commands.clear()
    ids = [d["_id"] for d in filled.find({}, sort=[("_id", ASCENDING)])]
    assert ids == list(range(DOCS))
    # 101 documents in the first batch, the rest through getMore.
    assert commands.names().count("find") == 1
    assert commands.names().count("getMore") >= 1


def test_small_batch_size_takes_many_get_mores(filled, commands):
    commands.clear()
    seen = [d["_id"] for d in filled.find({"mod": 3}).sort("_id", 1).batch_size(7)]
    assert seen == list(range(3, DOCS, 10))
    # 100 documents in batches of 7: one find and 14 getMores.
    assert commands.names().count("getMore") == 14
    for event in commands.events:
        if event.command_name == "getMore":
            assert event.command["batchSize"] == 7


def test_sort_skip_limit_compose_like_mongodb(filled):
    page = list(filled.find({}, {"_id": 1}).sort("n", DESCENDING).skip(10).limit(5))
    assert page == [{"_id": i} for i in (989, 988, 987, 986, 985)]
    two_keys = list(
        filled.find({"n": {"$lt": 30}}, {"_id": 1}).sort([("mod", ASCENDING), ("n", DESCENDING)]).limit(4)
    )
    assert two_keys == [{"_id": 20}, {"_id": 10}, {"_id": 0}, {"_id": 21}]


def test_limit_larger_than_a_batch_stops_exactly(filled, commands):
    commands.clear()
    docs = list(filled.find().sort("_id", 1).limit(250).batch_size(100))
    assert [d["_id"] for d in docs] == list(range(250))
    assert commands.names().count("killCursors") == 0, "the server closes an exhausted cursor"


def test_negative_limit_is_a_single_batch(filled, commands):
    commands.clear()
    docs = list(filled.find().sort("_id", 1).limit(-3))
    assert [d["_id"] for d in docs] == [0, 1, 2]
    assert "getMore" not in commands.names()


def test_projection_includes_excludes_and_nested(coll):
    coll.insert_one({"_id": 1, "a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]})
    assert coll.find_one({}, {"a": 1}) == {"_id": 1, "a": 1}
    assert coll.find_one({}, {"a": 1, "_id": 0}) == {"a": 1}
    assert coll.find_one({}, {"b": 0, "e": 0}) == {"_id": 1, "a": 1}
    assert coll.find_one({}, {"b.c": 1, "_id": 0}) == {"b": {"c": 2}}


def test_close_kills_the_server_cursor(filled, commands):
    cursor = filled.find().batch_size(10)
    first = next(cursor)
    assert first is not None
    cursor_id = cursor.cursor_id
    assert cursor_id, "the server kept a cursor open"
    commands.clear()
    cursor.close()
    assert commands.names() == ["killCursors"]
    with pytest.raises(OperationFailure) as error:
        filled.database.command("getMore", cursor_id, collection=filled.name)
    assert error.value.code == 43


def test_kill_cursors_reports_killed_and_unknown(filled):
    reply = filled.database.command("find", filled.name, batchSize=2)
    cursor_id = reply["cursor"]["id"]
    assert cursor_id != 0
    killed = filled.database.command("killCursors", filled.name, cursors=[cursor_id, 123456789])
    assert killed["cursorsKilled"] == [cursor_id]
    assert killed["cursorsNotFound"] == [123456789]


def test_get_more_on_an_unknown_cursor_is_cursor_not_found(coll):
    coll.insert_one({"x": 1})
    with pytest.raises(OperationFailure) as error:
        coll.database.command("getMore", 987654321, collection=coll.name)
    assert error.value.code == 43
    assert error.value.details["codeName"] == "CursorNotFound"


def test_raw_batches_and_a_cursor_exhausted_twice(filled):
    cursor = filled.find({"mod": 0}).sort("_id", 1)
    assert len(list(cursor)) == DOCS // 10
    assert list(cursor) == [], "an exhausted cursor stays exhausted"
    batches = list(filled.find_raw_batches({"mod": 1}).batch_size(40))
    assert len(batches) == 3


def test_cursors_of_two_collections_interleave(db, coll):
    other = db[coll.name + "_other"]
    try:
        coll.insert_many([{"_id": i} for i in range(30)])
        other.insert_many([{"_id": 100 + i} for i in range(30)])
        a = coll.find().sort("_id", 1).batch_size(4)
        b = other.find().sort("_id", 1).batch_size(4)
        merged = [(x["_id"], y["_id"]) for x, y in zip(a, b)]
        assert merged == [(i, 100 + i) for i in range(30)]
    finally:
        other.drop()


def test_get_more_with_the_wrong_collection_is_refused(filled):
    reply = filled.database.command("find", filled.name, batchSize=2)
    cursor_id = reply["cursor"]["id"]
    with pytest.raises(OperationFailure) as error:
        filled.database.command("getMore", cursor_id, collection="some_other")
    # MongoDB answers Unauthorized: a cursor belongs to its namespace.
    assert error.value.code == 13
    assert "different namespace" in str(error.value)
    filled.database.command("killCursors", filled.name, cursors=[cursor_id])
