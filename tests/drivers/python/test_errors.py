"""Errors carry MongoDB's codes, so pymongo raises the right exceptions."""

from __future__ import annotations

import pytest
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure, WriteError


def test_duplicate_id_on_insert_one(coll):
    coll.insert_one({"_id": "k"})
    with pytest.raises(DuplicateKeyError) as error:
        coll.insert_one({"_id": "k"})
    assert error.value.code == 11000
    assert error.value.details["keyValue"] == {"_id": "k"}


def test_ordered_insert_many_stops_at_the_duplicate(coll):
    coll.insert_one({"_id": 2})
    with pytest.raises(BulkWriteError) as error:
        coll.insert_many([{"_id": 1}, {"_id": 2}, {"_id": 3}])
    details = error.value.details
    assert details["nInserted"] == 1
    assert [(e["index"], e["code"]) for e in details["writeErrors"]] == [(1, 11000)]
    assert sorted(d["_id"] for d in coll.find()) == [1, 2]


def test_unordered_insert_many_goes_past_duplicates(coll):
    coll.insert_many([{"_id": 2}, {"_id": 4}])
    with pytest.raises(BulkWriteError) as error:
        coll.insert_many([{"_id": i} for i in range(1, 6)], ordered=False)
    details = error.value.details
    assert details["nInserted"] == 3
    assert sorted(e["index"] for e in details["writeErrors"]) == [1, 3]
    assert sorted(d["_id"] for d in coll.find()) == [1, 2, 3, 4, 5]


def test_unknown_update_operator_is_failed_to_parse(coll):
    coll.insert_one({"_id": 1})
    with pytest.raises(WriteError) as error:
        coll.update_one({"_id": 1}, {"$frobnicate": {"a": 1}})
    assert error.value.code == 9
    assert "$frobnicate" in str(error.value)


def test_unknown_query_operator_is_bad_value(coll):
    coll.insert_one({"_id": 1})
    with pytest.raises(OperationFailure) as error:
        list(coll.find({"a": {"$frobnicate": 1}}))
    assert error.value.code == 2
    assert "$frobnicate" in str(error.value)


def test_increment_of_a_string_is_type_mismatch(coll):
    coll.insert_one({"_id": 1, "a": "text"})
    with pytest.raises(WriteError) as error:
        coll.update_one({"_id": 1}, {"$inc": {"a": 1}})
    assert error.value.code == 14


def test_changing_the_id_is_immutable_field(coll):
    coll.insert_one({"_id": 1})
    with pytest.raises(WriteError) as error:
        coll.update_one({"_id": 1}, {"$set": {"_id": 2}})
    assert error.value.code == 66


def test_conflicting_update_paths_are_refused(coll):
    coll.insert_one({"_id": 1})
    with pytest.raises(WriteError) as error:
        coll.update_one({"_id": 1}, {"$set": {"a": 1}, "$inc": {"a": 1}})
    assert error.value.code == 40


def test_unknown_command_is_command_not_found(db):
    with pytest.raises(OperationFailure) as error:
        db.command("frobnicateEverything")
    assert error.value.code == 59
    assert error.value.details["codeName"] == "CommandNotFound"
    assert "frobnicateEverything" in str(error.value)


def test_creating_an_existing_collection_is_namespace_exists(db, coll):
    coll.insert_one({"x": 1})
    with pytest.raises(OperationFailure) as error:
        # The raw command: pymongo's create_collection checks the name
        # client-side first.
        db.command("create", coll.name)
    assert error.value.code == 48
    assert error.value.details["codeName"] == "NamespaceExists"


def test_transactions_are_refused_clearly(client, coll):
    coll.insert_one({"_id": 1})
    with client.start_session() as session:
        with pytest.raises(OperationFailure) as error:
            with session.start_transaction():
                coll.insert_one({"_id": 2}, session=session)
    assert error.value.code == 20  # IllegalOperation: a standalone server
    assert "transaction" in str(error.value).lower()
    assert list(coll.find()) == [{"_id": 1}]
