"""createIndexes / listIndexes / dropIndexes and unique indexes."""

from __future__ import annotations

import pytest
from pymongo import ASCENDING, DESCENDING, HASHED, TEXT
from pymongo.errors import DuplicateKeyError, OperationFailure


def index_names(coll) -> set[str]:
    return {index["name"] for index in coll.list_indexes()}


def test_a_new_collection_lists_the_id_index(coll):
    coll.insert_one({"x": 1})
    indexes = list(coll.list_indexes())
    assert [i["name"] for i in indexes] == ["_id_"]
    assert indexes[0]["key"] == {"_id": 1}


def test_create_list_and_drop_indexes(coll):
    coll.insert_many([{"_id": i, "age": i, "email": f"u{i}@x", "bio": "word"} for i in range(5)])
    assert coll.create_index([("age", ASCENDING)]) == "age_1"
    assert coll.create_index([("email", HASHED)]) == "email_hashed"
    assert coll.create_index([("bio", TEXT)]) == "bio_text"
    assert coll.create_index([("age", DESCENDING)], name="age_down") == "age_down"
    assert index_names(coll) == {"_id_", "age_1", "email_hashed", "bio_text", "age_down"}
    coll.drop_index("age_1")
    assert "age_1" not in index_names(coll)
    coll.drop_indexes()
    assert index_names(coll) == {"_id_"}


def test_queries_use_created_indexes_and_stay_correct(coll):
    coll.insert_many([{"_id": i, "age": i % 50, "email": f"u{i % 7}@x"} for i in range(300)])
    coll.create_index("age")
    coll.create_index([("email", HASHED)])
    assert coll.count_documents({"age": {"$gte": 45}}) == 30
    assert coll.count_documents({"email": "u3@x"}) == len([i for i in range(300) if i % 7 == 3])
    assert [d["age"] for d in coll.find({"age": {"$lt": 2}}).sort("age", -1).limit(3)] == [1, 1, 1]


def test_unique_index_refuses_a_duplicate(coll):
    coll.create_index("email", unique=True)
    coll.insert_one({"email": "a@x"})
    with pytest.raises(DuplicateKeyError) as error:
        coll.insert_one({"email": "a@x"})
    assert error.value.code == 11000
    coll.insert_one({"email": "b@x"})
    with pytest.raises(DuplicateKeyError):
        coll.update_one({"email": "b@x"}, {"$set": {"email": "a@x"}})
    assert coll.count_documents({}) == 2


def test_unique_index_on_duplicate_data_is_refused(coll):
    coll.insert_many([{"k": 1}, {"k": 1}])
    with pytest.raises(OperationFailure) as error:
        coll.create_index("k", unique=True)
    assert error.value.code == 11000


def test_dropping_an_unknown_index_is_index_not_found(coll):
    coll.insert_one({"x": 1})
    with pytest.raises(OperationFailure) as error:
        coll.drop_index("nope_1")
    assert error.value.code == 27


def test_the_id_index_cannot_be_dropped(coll):
    coll.insert_one({"x": 1})
    with pytest.raises(OperationFailure) as error:
        coll.drop_index("_id_")
    assert error.value.code == 72
