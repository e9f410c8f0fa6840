"""Entities' command monitoring and the format's operations, run with
pymongo: spec arguments become pymongo calls, pymongo results become the
format's result documents."""

from __future__ import annotations

import inspect
import re
from typing import Any, Callable

import pymongo
from pymongo import (
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    ReturnDocument,
    UpdateMany,
    UpdateOne,
    monitoring,
)
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

from unified.matching import Mismatch


class Skip(Exception):
    """The test cannot run against this server; the message says why."""


# Commands whose events the format says runners must not record.
SENSITIVE_COMMANDS = {
    "authenticate", "saslstart", "saslcontinue", "getnonce", "createuser",
    "updateuser", "copydbgetnonce", "copydbsaslstart", "copydb",
}


class EventLog(monitoring.CommandListener):
    def __init__(self, observe: list[str], ignore: list[str], sensitive: bool) -> None:
        self.observe = set(observe)
        self.ignore = set(ignore) | {"configureFailPoint"}
        self.sensitive = sensitive
        self.events: list[tuple[str, Any]] = []

    def _keep(self, kind: str, event: Any) -> bool:
        if kind not in self.observe or event.command_name in self.ignore:
            return False
        if not self.sensitive and event.command_name.lower() in SENSITIVE_COMMANDS:
            return False
        return True

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self._keep("commandStartedEvent", event):
            self.events.append(("commandStartedEvent", event))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if self._keep("commandSucceededEvent", event):
            self.events.append(("commandSucceededEvent", event))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if self._keep("commandFailedEvent", event):
            self.events.append(("commandFailedEvent", event))


def write_concern(spec: dict | None) -> WriteConcern | None:
    if spec is None:
        return None
    return WriteConcern(
        w=spec.get("w"), wtimeout=spec.get("wtimeoutMS"), j=spec.get("journal")
    )


def collection_options(spec: dict | None) -> dict:
    spec = spec or {}
    options: dict[str, Any] = {}
    if "writeConcern" in spec:
        options["write_concern"] = write_concern(spec["writeConcern"])
    if "readConcern" in spec:
        options["read_concern"] = ReadConcern(spec["readConcern"].get("level"))
    if "readPreference" in spec:
        options["read_preference"] = getattr(
            ReadPreference, re.sub(r"(?<!^)(?=[A-Z])", "_", spec["readPreference"]["mode"]).upper()
        )
    return options


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# find() and find_one() take *args, **kwargs and hand them to Cursor.
FIND_PARAMETERS = pymongo.cursor.Cursor.__init__

# Arguments whose pymongo name is not the snake_case of the spec's.
RENAMED = {"batchSize": "batch_size", "maxTimeMS": "max_time_ms", "arrayFilters": "array_filters"}


def kwargs_of(method: Callable, arguments: dict, skip: tuple[str, ...] = ()) -> dict:
    """The spec's camelCase arguments as keyword arguments of the pymongo
    `method`: its own parameter name where it has one (`batch_size`), else
    the wire name, which pymongo passes on to the command (`allowDiskUse`)."""
    parameters = inspect.signature(method).parameters
    out = {}
    for key, value in arguments.items():
        if key in skip or key == "session":
            continue
        if key == "returnDocument":
            value = ReturnDocument.AFTER if value == "After" else ReturnDocument.BEFORE
        name = RENAMED.get(key, snake(key))
        out[name if name in parameters else key] = value
    return out


def write_model(spec: dict, with_namespace: bool = False) -> Any:
    (kind, args), = spec.items()
    args = dict(args)
    extra: dict[str, Any] = {}
    if with_namespace:
        extra["namespace"] = args.pop("namespace")
    for key in ("collation", "hint", "sort"):
        if key in args:
            extra[key] = args.pop(key)
    if "arrayFilters" in args:
        extra["array_filters"] = args.pop("arrayFilters")
    if "upsert" in args:
        extra["upsert"] = args.pop("upsert")
    if kind == "insertOne":
        return InsertOne(dict(args["document"]), **extra)
    if kind == "updateOne":
        return UpdateOne(args["filter"], args["update"], **extra)
    if kind == "updateMany":
        return UpdateMany(args["filter"], args["update"], **extra)
    if kind == "replaceOne":
        return ReplaceOne(args["filter"], args["replacement"], **extra)
    if kind == "deleteOne":
        return DeleteOne(args["filter"], **extra)
    if kind == "deleteMany":
        return DeleteMany(args["filter"], **extra)
    raise Mismatch(f"runner: unknown write model {kind}")


def bulk_result(result: Any) -> dict | None:
    if not result.acknowledged:
        return None  # unacknowledged: the result is "unset"
    return {
        "deletedCount": result.deleted_count,
        "insertedCount": result.inserted_count,
        "matchedCount": result.matched_count,
        "modifiedCount": result.modified_count,
        "upsertedCount": result.upserted_count,
        "upsertedIds": {str(k): v for k, v in result.upserted_ids.items()},
    }


def bulk_error_result(details: dict) -> dict:
    return {
        "deletedCount": details.get("nRemoved", 0),
        "insertedCount": details.get("nInserted", 0),
        "matchedCount": details.get("nMatched", 0),
        "modifiedCount": details.get("nModified", 0),
        "upsertedCount": details.get("nUpserted", 0),
        "upsertedIds": {str(u["index"]): u["_id"] for u in details.get("upserted", [])},
    }


def update_result(result: Any) -> dict | None:
    if not result.acknowledged:
        return None
    out = {
        "matchedCount": result.matched_count,
        "modifiedCount": result.modified_count,
        "upsertedCount": 0 if result.upserted_id is None else 1,
    }
    if result.upserted_id is not None:
        out["upsertedId"] = result.upserted_id
    return out


class Operations:
    """Runs one operation of the format on a pymongo object."""

    def __init__(self, entities: dict[str, Any], internal: pymongo.MongoClient) -> None:
        self.entities = entities
        self.internal = internal

    def run(self, op: dict) -> Any:
        target_name = op["object"]
        name = op["name"]
        args = dict(op.get("arguments") or {})
        if target_name == "testRunner":
            return self.test_runner(name, args)
        target = self.entities[target_name]
        if isinstance(target, pymongo.collection.Collection):
            method = getattr(self, "collection_" + name, None)
        elif isinstance(target, pymongo.database.Database):
            method = getattr(self, "database_" + name, None)
        elif isinstance(target, pymongo.MongoClient):
            method = getattr(self, "client_" + name, None)
        else:
            method = None
        if method is None:
            raise Mismatch(f"runner: unsupported operation {name} on {target_name}")
        return method(target, args)

    # testRunner -----------------------------------------------------------
    def test_runner(self, name: str, args: dict) -> Any:
        if name == "failPoint":
            client = self.entities[args["client"]]
            client.admin.command(args["failPoint"])
            return None
        raise Mismatch(f"runner: unsupported testRunner operation {name}")

    # collection -----------------------------------------------------------
    def collection_insertOne(self, coll, args):
        result = coll.insert_one(dict(args["document"]), **kwargs_of(coll.insert_one, args, ("document",)))
        return {"insertedId": result.inserted_id}

    def collection_insertMany(self, coll, args):
        docs = [dict(d) for d in args["documents"]]
        result = coll.insert_many(docs, **kwargs_of(coll.insert_many, args, ("documents",)))
        return {"insertedIds": {str(i): v for i, v in enumerate(result.inserted_ids)}}

    def collection_deleteOne(self, coll, args):
        result = coll.delete_one(args["filter"], **kwargs_of(coll.delete_one, args, ("filter",)))
        return {"deletedCount": result.deleted_count} if result.acknowledged else None

    def collection_deleteMany(self, coll, args):
        result = coll.delete_many(args["filter"], **kwargs_of(coll.delete_many, args, ("filter",)))
        return {"deletedCount": result.deleted_count} if result.acknowledged else None

    def collection_updateOne(self, coll, args):
        return update_result(
            coll.update_one(args["filter"], args["update"], **kwargs_of(coll.update_one, args, ("filter", "update")))
        )

    def collection_updateMany(self, coll, args):
        return update_result(
            coll.update_many(args["filter"], args["update"], **kwargs_of(coll.update_many, args, ("filter", "update")))
        )

    def collection_replaceOne(self, coll, args):
        return update_result(
            coll.replace_one(
                args["filter"],
                args["replacement"],
                **kwargs_of(coll.replace_one, args, ("filter", "replacement")),
            )
        )

    def collection_find(self, coll, args):
        return list(coll.find(args.get("filter", {}), **kwargs_of(FIND_PARAMETERS, args, ("filter",))))

    def collection_findOne(self, coll, args):
        return coll.find_one(args.get("filter", {}), **kwargs_of(FIND_PARAMETERS, args, ("filter",)))

    def collection_aggregate(self, coll, args):
        return list(coll.aggregate(args["pipeline"], **self._command_kwargs(args, ("pipeline",))))

    def collection_countDocuments(self, coll, args):
        return coll.count_documents(args["filter"], **self._command_kwargs(args, ("filter",)))

    def collection_estimatedDocumentCount(self, coll, args):
        return coll.estimated_document_count(**self._command_kwargs(args, ()))

    def collection_count(self, coll, args):
        # pymongo 4 dropped the deprecated Collection.count helper; the
        # format's `count` is that helper, so send its command directly.
        command = {"count": coll.name, "query": args.get("filter", {})}
        command.update(self._command_kwargs(args, ("filter",)))
        return coll.database.command(command, read_preference=coll.read_preference)["n"]

    def collection_distinct(self, coll, args):
        return coll.distinct(
            args["fieldName"],
            args.get("filter"),
            **kwargs_of(coll.distinct, args, ("fieldName", "filter")),
        )

    def collection_findOneAndUpdate(self, coll, args):
        return coll.find_one_and_update(
            args["filter"],
            args["update"],
            **kwargs_of(coll.find_one_and_update, args, ("filter", "update")),
        )

    def collection_findOneAndReplace(self, coll, args):
        return coll.find_one_and_replace(
            args["filter"],
            args["replacement"],
            **kwargs_of(coll.find_one_and_replace, args, ("filter", "replacement")),
        )

    def collection_findOneAndDelete(self, coll, args):
        return coll.find_one_and_delete(args["filter"], **kwargs_of(coll.find_one_and_delete, args, ("filter",)))

    def collection_bulkWrite(self, coll, args):
        models = [write_model(r) for r in args["requests"]]
        return bulk_result(coll.bulk_write(models, **kwargs_of(coll.bulk_write, args, ("requests",))))

    def collection_createIndex(self, coll, args):
        keys = list(args["keys"].items())
        return coll.create_index(keys, **kwargs_of(coll.create_index, args, ("keys",)))

    def collection_dropIndex(self, coll, args):
        return coll.drop_index(args["name"])

    def collection_listIndexes(self, coll, args):
        return list(coll.list_indexes())

    @staticmethod
    def _command_kwargs(args: dict, skip: tuple[str, ...]) -> dict:
        """aggregate/count helpers take command options by their wire names."""
        out = {}
        for key, value in args.items():
            if key in skip or key == "session":
                continue
            out[key] = value
        return out

    # database -------------------------------------------------------------
    def database_aggregate(self, db, args):
        return list(db.aggregate(args["pipeline"], **self._command_kwargs(args, ("pipeline",))))

    def database_runCommand(self, db, args):
        return db.command(args["command"])

    def database_createCollection(self, db, args):
        db.create_collection(args["collection"], **self._command_kwargs(args, ("collection",)))
        return None

    def database_dropCollection(self, db, args):
        db.drop_collection(args["collection"])
        return None

    def database_modifyCollection(self, db, args):
        command = {"collMod": args["collection"]}
        command.update({k: v for k, v in args.items() if k != "collection"})
        return db.command(command)

    # client ---------------------------------------------------------------
    def client_clientBulkWrite(self, client, args):
        models = [write_model(m, with_namespace=True) for m in args["models"]]
        options = kwargs_of(client.bulk_write, args, ("models",))
        if "write_concern" in options:
            options["write_concern"] = write_concern(options["write_concern"])
        result = client.bulk_write(models, **options)
        return {
            "insertedCount": result.inserted_count,
            "upsertedCount": result.upserted_count,
            "matchedCount": result.matched_count,
            "modifiedCount": result.modified_count,
            "deletedCount": result.deleted_count,
        }
