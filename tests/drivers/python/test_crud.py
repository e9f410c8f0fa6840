"""Insert, find, replace, update and delete through pymongo's CRUD API."""

from __future__ import annotations

import datetime

import pytest
from bson import Decimal128, Int64, ObjectId
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne


def test_insert_one_assigns_an_object_id(coll):
    result = coll.insert_one({"name": "ada"})
    assert result.acknowledged
    assert isinstance(result.inserted_id, ObjectId)
    assert coll.find_one({"_id": result.inserted_id}) == {"_id": result.inserted_id, "name": "ada"}


def test_insert_many_then_find_all(coll):
    result = coll.insert_many([{"_id": i, "n": i} for i in range(10)])
    assert result.inserted_ids == list(range(10))
    assert sorted(d["_id"] for d in coll.find()) == list(range(10))


def test_bson_types_round_trip(coll):
    when = datetime.datetime(2024, 5, 17, 12, 30, 15, 123000)
    document = {
        "_id": "types",
        "int": 7,
        "long": Int64(1 << 40),
        "double": 2.5,
        "decimal": Decimal128("1.10"),
        "string": "héllo",
        "bool": True,
        "null": None,
        "date": when,
        "oid": ObjectId("64b7f0c2a1b2c3d4e5f60718"),
        "bytes": b"\x00\x01\xff",
        "array": [1, "two", {"three": 3}],
        "nested": {"a": {"b": {"c": 1}}},
    }
    coll.insert_one(document)
    found = coll.find_one({"_id": "types"})
    assert found == document
    assert list(found) == list(document), "field order is kept"
    assert isinstance(found["long"], Int64)


def test_find_by_equality_range_and_logical_operators(coll):
    coll.insert_many([{"_id": i, "n": i, "even": i % 2 == 0} for i in range(20)])
    assert {d["_id"] for d in coll.find({"n": {"$gte": 15}})} == {15, 16, 17, 18, 19}
    assert {d["_id"] for d in coll.find({"n": {"$in": [1, 3, 99]}})} == {1, 3}
    assert {d["_id"] for d in coll.find({"$or": [{"n": 0}, {"n": {"$gt": 18}}]})} == {0, 19}
    assert {d["_id"] for d in coll.find({"n": {"$lt": 6}, "even": True})} == {0, 2, 4}
    assert {d["_id"] for d in coll.find({"n": {"$not": {"$lt": 18}}})} == {18, 19}
    assert coll.find_one({"n": 100}) is None


def test_find_on_nested_paths_and_arrays(coll):
    coll.insert_many(
        [
            {"_id": 1, "address": {"city": "London"}, "tags": ["a", "b"]},
            {"_id": 2, "address": {"city": "Paris"}, "tags": ["b", "c"]},
            {"_id": 3, "tags": []},
        ]
    )
    assert [d["_id"] for d in coll.find({"address.city": "Paris"})] == [2]
    assert sorted(d["_id"] for d in coll.find({"tags": "b"})) == [1, 2]
    assert [d["_id"] for d in coll.find({"address": {"$exists": False}})] == [3]


def test_find_on_a_missing_collection_finds_nothing(db):
    assert list(db["never_created"].find({})) == []


def test_replace_one_keeps_the_id(coll):
    coll.insert_one({"_id": 1, "a": 1, "b": 2})
    result = coll.replace_one({"_id": 1}, {"c": 3})
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert coll.find_one({"_id": 1}) == {"_id": 1, "c": 3}


def test_update_one_and_update_many(coll):
    coll.insert_many([{"_id": i, "group": i % 2, "n": 0} for i in range(6)])
    one = coll.update_one({"group": 0}, {"$set": {"n": 1}})
    assert (one.matched_count, one.modified_count) == (1, 1)
    many = coll.update_many({"group": 1}, {"$inc": {"n": 5}})
    assert (many.matched_count, many.modified_count) == (3, 3)
    assert sorted(d["n"] for d in coll.find()) == [0, 0, 1, 5, 5, 5]


def test_update_matching_nothing_changes_nothing(coll):
    coll.insert_one({"_id": 1})
    result = coll.update_many({"_id": 2}, {"$set": {"x": 1}})
    assert (result.matched_count, result.modified_count, result.upserted_id) == (0, 0, None)


def test_upsert_inserts_with_the_filter_fields(coll):
    result = coll.update_one({"email": "ada@example.org"}, {"$set": {"age": 36}}, upsert=True)
    assert result.matched_count == 0
    assert isinstance(result.upserted_id, ObjectId)
    assert coll.find_one({"_id": result.upserted_id}, {"_id": 0}) == {
        "email": "ada@example.org",
        "age": 36,
    }
    again = coll.update_one({"email": "ada@example.org"}, {"$set": {"age": 37}}, upsert=True)
    assert (again.matched_count, again.upserted_id) == (1, None)
    assert list(coll.find({}, {"_id": 0})) == [{"email": "ada@example.org", "age": 37}]


def test_delete_one_and_delete_many(coll):
    coll.insert_many([{"_id": i, "n": i % 3} for i in range(9)])
    assert coll.delete_one({"n": 0}).deleted_count == 1
    # Which of the three matches goes is unspecified, as in MongoDB.
    assert len([d for d in coll.find({"n": 0})]) == 2
    assert coll.delete_many({"n": 1}).deleted_count == 3
    assert coll.delete_many({"n": 7}).deleted_count == 0
    assert sorted(d["_id"] for d in coll.find({"n": {"$ne": 0}})) == [2, 5, 8]


def test_bulk_write_mixed_operations(coll):
    result = coll.bulk_write(
        [
            InsertOne({"_id": 1, "n": 1}),
            InsertOne({"_id": 2, "n": 2}),
            UpdateOne({"_id": 1}, {"$inc": {"n": 10}}),
            ReplaceOne({"_id": 2}, {"n": 20}),
            UpdateOne({"_id": 3}, {"$set": {"n": 3}}, upsert=True),
            DeleteOne({"_id": 2}),
        ]
    )
    assert result.inserted_count == 2
    assert result.matched_count == 2
    assert result.modified_count == 2
    assert result.upserted_ids == {4: 3}
    assert result.deleted_count == 1
    assert list(coll.find().sort("_id", 1)) == [{"_id": 1, "n": 11}, {"_id": 3, "n": 3}]


def test_count_command_and_estimated_document_count(coll):
    coll.insert_many([{"_id": i, "n": i} for i in range(25)])
    assert coll.estimated_document_count() == 25
    assert coll.database.command("count", coll.name, query={"n": {"$lt": 5}})["n"] == 5


def test_count_documents_with_filter_skip_and_limit(coll):
    coll.insert_many([{"_id": i, "n": i % 5} for i in range(50)])
    assert coll.count_documents({}) == 50
    assert coll.count_documents({"n": 2}) == 10
    assert coll.count_documents({"n": {"$gte": 3}}, skip=5, limit=10) == 10
    assert coll.count_documents({"n": 9}) == 0


def test_distinct_values_including_array_elements(coll):
    coll.insert_many(
        [
            {"_id": 1, "city": "London", "tags": ["a", "b"]},
            {"_id": 2, "city": "Paris", "tags": ["b"]},
            {"_id": 3, "city": "London"},
        ]
    )
    assert sorted(coll.distinct("city")) == ["London", "Paris"]
    assert sorted(coll.distinct("tags")) == ["a", "b"]
    assert sorted(coll.distinct("city", {"_id": {"$gt": 1}})) == ["London", "Paris"]
    assert coll.distinct("city", {"_id": 2}) == ["Paris"]


def test_find_one_and_update_returns_before_or_after(coll):
    from pymongo import ReturnDocument

    coll.insert_one({"_id": 1, "n": 1})
    before = coll.find_one_and_update({"_id": 1}, {"$inc": {"n": 1}})
    assert before == {"_id": 1, "n": 1}
    after = coll.find_one_and_update(
        {"_id": 1}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER
    )
    assert after == {"_id": 1, "n": 3}


def test_find_one_and_update_upsert_with_sort_and_projection(coll):
    from pymongo import ReturnDocument

    coll.insert_many([{"_id": i, "k": "x", "n": i} for i in range(3)])
    top = coll.find_one_and_update(
        {"k": "x"},
        {"$set": {"picked": True}},
        sort=[("n", -1)],
        projection={"_id": 1, "picked": 1},
        return_document=ReturnDocument.AFTER,
    )
    assert top == {"_id": 2, "picked": True}
    created = coll.find_one_and_update(
        {"_id": 10}, {"$set": {"n": 10}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert created == {"_id": 10, "n": 10}


def test_find_one_and_replace_and_delete(coll):
    coll.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 2}])
    old = coll.find_one_and_replace({"_id": 1}, {"n": 100})
    assert old == {"_id": 1, "n": 1}
    assert coll.find_one({"_id": 1}) == {"_id": 1, "n": 100}
    deleted = coll.find_one_and_delete({}, sort=[("n", 1)])
    assert deleted == {"_id": 2, "n": 2}
    assert coll.find_one_and_delete({"_id": 99}) is None
    assert list(coll.find()) == [{"_id": 1, "n": 100}]


def test_collections_and_databases_are_listed_and_dropped(client, db):
    db["listed_a"].insert_one({"x": 1})
    db.create_collection("listed_b")
    names = db.list_collection_names()
    assert {"listed_a", "listed_b"} <= set(names)
    assert "drivers" in client.list_database_names()
    db.drop_collection("listed_a")
    db.drop_collection("listed_b")
    assert not {"listed_a", "listed_b"} & set(db.list_collection_names())


def test_drop_database_removes_its_collections(client):
    scratch = client["drivers_scratch"]
    scratch["one"].insert_one({"x": 1})
    scratch["two"].insert_one({"x": 2})
    client.drop_database("drivers_scratch")
    assert scratch.list_collection_names() == []
    assert "drivers_scratch" not in client.list_database_names()


@pytest.mark.parametrize("size_kib", [1, 256, 4096])
def test_large_documents_round_trip(coll, size_kib):
    payload = "x" * (size_kib * 1024)
    coll.insert_one({"_id": size_kib, "payload": payload})
    assert coll.find_one({"_id": size_kib})["payload"] == payload
