"""A runner of MongoDB's unified test format for the CRUD spec tests that
pymongo ships in its source distribution (`test/crud/unified/*.json`),
executed with pymongo against a real `fluence devnet`.

pymongo's own harness (`test/test_crud_unified.py`) cannot run against one
gateway: its setup sends `getCmdLineOpts`, `serverStatus` and
`getParameter: "*"` before any test and errors every test when they fail. This
runner implements the format's rules itself:

- `runOnRequirements` are checked against what the gateway is (a standalone
  server announcing MongoDB 7.0.0, no authentication, not serverless); a test
  whose requirements no entry satisfies is *skipped* with the unmet
  requirement as the reason.
- entities (client, database, collection), `initialData`, operations with
  `expectResult` / `expectError`, `expectEvents` (command monitoring) and
  `outcome` follow the format's matching rules: extra fields are allowed in
  root documents only, numbers compare by value across int32/int64/double,
  `$$exists`, `$$type`, `$$unsetOrMatches`, `$$lte`, `$$matchAsRoot`,
  `$$matchAsDocument` and `$$matchesEntity` are evaluated.

Every test ends as passed, failed (with the first mismatch as the reason) or
skipped. `unified_baseline.txt` lists the ids of tests that pass; the run
fails if one of them fails, and lists tests that pass but are not in the
baseline yet (`--write-baseline` rewrites it).

    python unified_runner.py --spec-dir PATH/test/crud/unified [--uri URI]
"""

from __future__ import annotations

import argparse
import collections.abc as abc
import dataclasses
import inspect
import json
import pathlib
import re
import sys
import time
import traceback
from typing import Any, Callable

import pymongo
from bson import Decimal128, Int64, MaxKey, MinKey, ObjectId, json_util
from bson.binary import Binary
from bson.code import Code
from bson.regex import Regex
from bson.timestamp import Timestamp
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
from pymongo.errors import BulkWriteError, ClientBulkWriteException, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.read_preferences import ReadPreference
from pymongo.write_concern import WriteConcern

HERE = pathlib.Path(__file__).resolve().parent
BASELINE = HERE / "unified_baseline.txt"
SUPPORTED_SCHEMA_MAJOR = 1

# What the gateway is, for runOnRequirements.
TOPOLOGY = "single"


class Mismatch(AssertionError):
    """An expectation of the test was not met."""


class Skip(Exception):
    """The test cannot run against this server; the message says why."""


# --------------------------------------------------------------------------
# Matching (the format's "Evaluating Matches" rules)
# --------------------------------------------------------------------------

TYPE_ALIASES: dict[str, tuple[type, ...]] = {
    "double": (float,),
    "string": (str,),
    "object": (abc.Mapping,),
    "array": (abc.MutableSequence,),
    "binData": (Binary, bytes),
    "objectId": (ObjectId,),
    "bool": (bool,),
    "date": (__import__("datetime").datetime,),
    "null": (type(None),),
    "regex": (Regex, re.Pattern),
    "javascript": (Code,),
    "javascriptWithScope": (Code,),
    "int": (int,),
    "timestamp": (Timestamp,),
    "long": (Int64,),
    "decimal": (Decimal128,),
    "minKey": (MinKey,),
    "maxKey": (MaxKey,),
}
NUMBER_TYPES = ("int", "long", "double", "decimal")


def is_type(value: Any, alias: str) -> bool:
    if alias == "number":
        return any(is_type(value, a) for a in NUMBER_TYPES)
    if alias not in TYPE_ALIASES:
        raise Mismatch(f"unknown $$type alias {alias!r}")
    if alias == "int":
        # Python decodes int32 as int and int64 as Int64 (an int subclass).
        return type(value) is int
    if isinstance(value, bool) and alias != "bool":
        return False
    return isinstance(value, TYPE_ALIASES[alias])


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Int64)) and not isinstance(value, bool)


class Matcher:
    """Compares an actual value against an expected one; raises Mismatch."""

    def __init__(self, entities: dict[str, Any]) -> None:
        self.entities = entities

    def match(self, expected: Any, actual: Any, path: str = "", root: bool = True) -> None:
        if isinstance(expected, abc.Mapping):
            if self._special(expected, actual, path):
                return
            self._document(expected, actual, path, root)
        elif isinstance(expected, list):
            if not isinstance(actual, list):
                raise Mismatch(f"{path or 'value'}: expected an array, got {actual!r}")
            if len(actual) != len(expected):
                raise Mismatch(
                    f"{path or 'value'}: expected {len(expected)} elements, got {len(actual)}: "
                    f"{actual!r}"
                )
            for i, (e, a) in enumerate(zip(expected, actual)):
                # The documents of a root array (find's or aggregate's
                # expectResult) are root documents; deeper ones are not.
                self.match(e, a, f"{path}.{i}", root=root)
        elif is_number(expected) and not isinstance(expected, Decimal128):
            if not is_number(actual) or float(actual) != float(expected):
                raise Mismatch(f"{path or 'value'}: expected {expected!r}, got {actual!r}")
        else:
            if type(expected) is not type(actual) and not (
                isinstance(expected, bytes) and isinstance(actual, bytes)
            ):
                raise Mismatch(
                    f"{path or 'value'}: expected {expected!r} ({type(expected).__name__}), "
                    f"got {actual!r} ({type(actual).__name__})"
                )
            if expected != actual:
                raise Mismatch(f"{path or 'value'}: expected {expected!r}, got {actual!r}")

    def _document(self, expected: abc.Mapping, actual: Any, path: str, root: bool) -> None:
        if not isinstance(actual, abc.Mapping):
            raise Mismatch(f"{path or 'value'}: expected a document, got {actual!r}")
        for key, value in expected.items():
            where = f"{path}.{key}" if path else key
            if isinstance(value, abc.Mapping) and len(value) == 1:
                (op, arg), = value.items()
                if op == "$$exists":
                    if bool(arg) != (key in actual):
                        raise Mismatch(f"{where}: expected {'present' if arg else 'absent'}")
                    continue
                if op == "$$unsetOrMatches":
                    if key in actual:
                        self.match(arg, actual[key], where, root=False)
                    continue
            if key not in actual:
                raise Mismatch(f"{where}: missing in {dict(actual)!r}")
            self.match(value, actual[key], where, root=False)
        if not root:
            extra = set(actual) - set(expected)
            if extra:
                raise Mismatch(f"{path or 'document'}: unexpected fields {sorted(extra)} in {dict(actual)!r}")

    def _special(self, expected: abc.Mapping, actual: Any, path: str) -> bool:
        """Evaluates a `{$$operator: arg}` expectation; False if it is none."""
        if len(expected) != 1:
            return False
        (op, arg), = expected.items()
        if not op.startswith("$$"):
            return False
        where = path or "value"
        if op == "$$type":
            aliases = arg if isinstance(arg, list) else [arg]
            if not any(is_type(actual, a) for a in aliases):
                raise Mismatch(f"{where}: expected type {arg}, got {actual!r}")
        elif op == "$$unsetOrMatches":
            if actual is not None:
                self.match(arg, actual, path, root=True)
        elif op == "$$exists":
            if bool(arg) != (actual is not None):
                raise Mismatch(f"{where}: expected {'present' if arg else 'absent'}")
        elif op == "$$lte":
            if not is_number(actual) or actual > arg:
                raise Mismatch(f"{where}: expected <= {arg!r}, got {actual!r}")
        elif op == "$$matchesEntity":
            if self.entities.get(arg) != actual:
                raise Mismatch(f"{where}: expected entity {arg}, got {actual!r}")
        elif op == "$$matchAsRoot":
            self.match(arg, actual, path, root=True)
        elif op == "$$matchAsDocument":
            self.match(arg, json_util.loads(actual), path, root=False)
        else:
            raise Mismatch(f"unsupported special operator {op}")
        return True


# --------------------------------------------------------------------------
# Requirements
# --------------------------------------------------------------------------


def version_tuple(text: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))


def unmet(requirement: dict, server_version: tuple[int, ...]) -> str | None:
    """Why `requirement` is not met by the gateway, or None if it is."""
    if "minServerVersion" in requirement:
        if server_version < version_tuple(requirement["minServerVersion"]):
            return f"needs server >= {requirement['minServerVersion']}"
    if "maxServerVersion" in requirement:
        if server_version > version_tuple(requirement["maxServerVersion"]):
            return f"needs server <= {requirement['maxServerVersion']}"
    topologies = requirement.get("topologies")
    if topologies is not None and TOPOLOGY not in topologies:
        return f"needs topology {'/'.join(topologies)} (the gateway is a standalone server)"
    if requirement.get("serverless") == "require":
        return "needs a serverless deployment"
    if requirement.get("auth") is True:
        return "needs authentication"
    if requirement.get("csfle"):
        return "needs client-side field level encryption"
    if requirement.get("serverParameters"):
        return f"needs server parameters {requirement['serverParameters']}"
    return None


def requirements_unmet(requirements: list | None, server_version: tuple[int, ...]) -> str | None:
    """None if any entry is met (or there are none), else the first reason."""
    if not requirements:
        return None
    reasons = [unmet(r, server_version) for r in requirements]
    if any(reason is None for reason in reasons):
        return None
    return reasons[0]


# --------------------------------------------------------------------------
# Entities and operations
# --------------------------------------------------------------------------

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


# --------------------------------------------------------------------------
# Running a test
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    test_id: str
    status: str  # "passed" | "failed" | "skipped"
    reason: str = ""


def check_error(expect: dict, error: BaseException, matcher: Matcher) -> None:
    server_error = isinstance(error, (OperationFailure, BulkWriteError, ClientBulkWriteException))
    if expect.get("isClientError") and server_error:
        raise Mismatch(f"expected a client-side error, got a server error: {error}")
    if expect.get("isClientError") is False and not server_error:
        raise Mismatch(f"expected a server error, got {type(error).__name__}: {error}")
    details = getattr(error, "details", None) or {}
    write_errors = details.get("writeErrors") or []
    if "errorContains" in expect:
        if expect["errorContains"].lower() not in str(error).lower():
            raise Mismatch(f"error {error!s:.300} does not contain {expect['errorContains']!r}")
    if "errorCode" in expect:
        codes = {getattr(error, "code", None)} | {e.get("code") for e in write_errors}
        if expect["errorCode"] not in codes:
            raise Mismatch(f"expected error code {expect['errorCode']}, got {sorted(c for c in codes if c is not None)}: {error!s:.300}")
    if "errorCodeName" in expect:
        names = {details.get("codeName")} | {e.get("codeName") for e in write_errors}
        if expect["errorCodeName"] not in names:
            raise Mismatch(f"expected error {expect['errorCodeName']}, got {names}: {error!s:.300}")
    labels = set(getattr(error, "_error_labels", ()) or details.get("errorLabels", []))
    for label in expect.get("errorLabelsContain", []):
        if label not in labels:
            raise Mismatch(f"error lacks label {label}")
    for label in expect.get("errorLabelsOmit", []):
        if label in labels:
            raise Mismatch(f"error has label {label}")
    if "errorResponse" in expect:
        matcher.match(expect["errorResponse"], details)
    if "expectResult" in expect:
        if isinstance(error, BulkWriteError):
            matcher.match(expect["expectResult"], bulk_error_result(details))
        else:
            raise Mismatch(f"runner: expectResult on a {type(error).__name__}")


def event_fields(kind: str, event: Any) -> dict:
    fields: dict[str, Any] = {"commandName": event.command_name, "databaseName": event.database_name}
    if kind == "commandStartedEvent":
        fields["command"] = event.command
    if kind == "commandSucceededEvent":
        fields["reply"] = event.reply
    return fields


def check_events(spec: list, logs: dict[str, EventLog], matcher: Matcher) -> None:
    for expectation in spec:
        if expectation.get("eventType", "command") != "command":
            raise Mismatch(f"runner: unsupported event type {expectation['eventType']}")
        actual = logs[expectation["client"]].events
        expected = expectation["events"]
        if expectation.get("ignoreExtraEvents"):
            actual = actual[: len(expected)]
        if len(actual) != len(expected):
            names = [f"{k}:{e.command_name}" for k, e in actual]
            want = [f"{next(iter(e))}:{next(iter(e.values())).get('commandName', '?')}" for e in expected]
            raise Mismatch(f"expected {len(expected)} events {want}, got {len(actual)} {names}")
        for i, (want, (kind, event)) in enumerate(zip(expected, actual)):
            (want_kind, want_fields), = want.items()
            if want_kind != kind:
                raise Mismatch(f"event {i}: expected {want_kind}, got {kind} {event.command_name}")
            fields = event_fields(kind, event)
            for key, value in want_fields.items():
                if key in ("hasServiceId", "hasServerConnectionId"):
                    continue
                if key not in fields:
                    raise Mismatch(f"runner: unsupported event field {key}")
                # Command and reply documents are root documents.
                matcher.match(value, fields[key], f"event {i} ({kind} {event.command_name}).{key}")


class Runner:
    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.internal = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10_000)
        self.server_version = version_tuple(self.internal.admin.command("buildInfo")["version"])

    def close(self) -> None:
        self.internal.close()

    def run_file(self, path: pathlib.Path) -> list[Outcome]:
        spec = json_util.loads(path.read_text(), json_options=json_util.JSONOptions(tz_aware=False))
        major = int(str(spec["schemaVersion"]).split(".")[0])
        outcomes = []
        for test in spec["tests"]:
            test_id = f"{path.stem}::{test['description']}"
            if major != SUPPORTED_SCHEMA_MAJOR:
                outcomes.append(Outcome(test_id, "skipped", f"schema {spec['schemaVersion']}"))
                continue
            why = requirements_unmet(spec.get("runOnRequirements"), self.server_version) or \
                requirements_unmet(test.get("runOnRequirements"), self.server_version)
            if why:
                outcomes.append(Outcome(test_id, "skipped", why))
                continue
            if "skipReason" in test:
                outcomes.append(Outcome(test_id, "skipped", "spec: " + test["skipReason"]))
                continue
            outcomes.append(self.run_test(test_id, spec, test))
        return outcomes

    def run_test(self, test_id: str, spec: dict, test: dict) -> Outcome:
        entities: dict[str, Any] = {}
        logs: dict[str, EventLog] = {}
        clients: list[pymongo.MongoClient] = []
        try:
            self.load_initial_data(spec.get("initialData", []))
            self.create_entities(spec.get("createEntities", []), entities, logs, clients)
            matcher = Matcher(entities)
            operations = Operations(entities, self.internal)
            for op in test["operations"]:
                self.run_operation(op, operations, matcher, entities)
            check_events(test.get("expectEvents", []), logs, matcher)
            self.check_outcome(test.get("outcome", []))
            return Outcome(test_id, "passed")
        except Skip as skip:
            return Outcome(test_id, "skipped", str(skip))
        except Mismatch as mismatch:
            return Outcome(test_id, "failed", str(mismatch))
        except Exception as error:  # an unexpected error is a failure with its message
            return Outcome(test_id, "failed", f"{type(error).__name__}: {error}")
        finally:
            for client in clients:
                client.close()

    def load_initial_data(self, data: list) -> None:
        for entry in data:
            db = self.internal[entry["databaseName"]]
            db.drop_collection(entry["collectionName"])
            options = entry.get("createOptions")
            if options or not entry["documents"]:
                db.create_collection(entry["collectionName"], **(options or {}))
            if entry["documents"]:
                db[entry["collectionName"]].insert_many([dict(d) for d in entry["documents"]])

    def create_entities(self, specs: list, entities: dict, logs: dict, clients: list) -> None:
        for spec in specs:
            (kind, args), = spec.items()
            if kind == "client":
                log = EventLog(
                    args.get("observeEvents", []),
                    args.get("ignoreCommandMonitoringEvents", []),
                    args.get("observeSensitiveCommands", False),
                )
                options = dict(args.get("uriOptions", {}))
                client = pymongo.MongoClient(
                    self.uri,
                    event_listeners=[log],
                    serverSelectionTimeoutMS=10_000,
                    socketTimeoutMS=60_000,
                    **options,
                )
                clients.append(client)
                entities[args["id"]] = client
                logs[args["id"]] = log
            elif kind == "database":
                client = entities[args["client"]]
                entities[args["id"]] = client.get_database(
                    args["databaseName"], **collection_options(args.get("databaseOptions"))
                )
            elif kind == "collection":
                db = entities[args["database"]]
                entities[args["id"]] = db.get_collection(
                    args["collectionName"], **collection_options(args.get("collectionOptions"))
                )
            else:
                raise Skip(f"entity {kind} is outside the CRUD runner")

    def run_operation(self, op: dict, operations: Operations, matcher: Matcher, entities: dict) -> None:
        expect_error = op.get("expectError")
        try:
            result = operations.run(op)
        except (Skip, Mismatch):
            raise
        except (PyMongoError, TypeError, ValueError) as error:
            if op.get("ignoreResultAndError"):
                return
            if expect_error is None:
                raise Mismatch(f"{op['name']} failed: {type(error).__name__}: {error!s:.500}") from error
            check_error(expect_error, error, matcher)
            return
        if expect_error is not None:
            raise Mismatch(f"{op['name']} succeeded, expected an error {expect_error}: result {result!r:.300}")
        if "expectResult" in op:
            matcher.match(op["expectResult"], result)
        if "saveResultAsEntity" in op:
            entities[op["saveResultAsEntity"]] = result

    def check_outcome(self, outcome: list) -> None:
        matcher = Matcher({})
        for entry in outcome:
            coll = self.internal[entry["databaseName"]][entry["collectionName"]]
            actual = list(coll.find({}, sort=[("_id", 1)]))
            expected = sorted(entry["documents"], key=lambda d: d["_id"])
            # Outcome documents match exactly: no extra fields anywhere.
            try:
                matcher.match(expected, actual, "outcome", root=False)
            except Mismatch as mismatch:
                raise Mismatch(f"collection {coll.full_name}: {mismatch}") from None


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


# Why a test fails, from its failure message or id, for docs/compatibility.md.
FAILURE_CAUSES = [
    ("pipeline-style update", "update with an aggregation pipeline (`u: [...]`) is not supported"),
    ("collation other than simple", "collations other than simple are not supported"),
    ("arrayFilters", "`arrayFilters` (`$[<id>]`) are not supported"),
    ("$expr is not supported", "`$expr` (with `let` variables) is not supported"),
    ("'let' variables", "aggregate `let` variables are not supported"),
    ("configureFailPoint", "needs fail points (`configureFailPoint`), a mongod test facility"),
    ("$type is not supported", "the `$type` query operator is not supported"),
    ("stage $merge", "`$merge` is not supported"),
    ("stage $out", "`$out` is not supported"),
    ("whole database", "database-level aggregate (`aggregate: 1`, `$listLocalSessions`) is not supported"),
    ("viewOn", "views are not supported"),
    ("'createIndexes'", "waits for createIndexes"),
    ("'collMod'", "`collMod` (document validation) is not supported"),
    ("sort option unsupported", "the gateway accepts `sort` in update/replace, which a 7.0 server refuses"),
    ("dollar-prefixed key in _id", "the gateway accepts `$`-prefixed keys inside `_id`; MongoDB refuses them"),
    ("multiple batches works", "expects natural (insertion) order from an unsorted find/aggregate; "
     "the gateway returns encrypted-id order"),
    ("comment sets comment on getMore", "expects natural (insertion) order from an unsorted find/aggregate; "
     "the gateway returns encrypted-id order"),
]


def failure_cause(outcome: Outcome) -> str:
    text = f"{outcome.test_id} {outcome.reason}"
    for needle, cause in FAILURE_CAUSES:
        if needle in text:
            return cause
    return "unclassified: " + outcome.reason.split(", full error")[0][:160]


def markdown(outcomes: list[Outcome]) -> str:
    """Failed tests grouped by cause, then skip reasons, as Markdown."""
    lines = ["| failed test | cause |", "|---|---|"]
    for o in sorted((o for o in outcomes if o.status == "failed"), key=lambda o: o.test_id):
        lines.append(f"| `{o.test_id}` | {failure_cause(o)} |")
    skipped: dict[str, int] = {}
    for o in outcomes:
        if o.status == "skipped":
            skipped[o.reason] = skipped.get(o.reason, 0) + 1
    lines += ["", "| skipped because | tests |", "|---|---|"]
    lines += [f"| {reason} | {n} |" for reason, n in sorted(skipped.items(), key=lambda x: -x[1])]
    return "\n".join(lines) + "\n"


def load_baseline(path: pathlib.Path) -> set[str]:
    if not path.exists():
        return set()
    return {
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }


def write_baseline(path: pathlib.Path, passed: list[str], sdist: str) -> None:
    header = (
        "# Unified CRUD spec tests (from the pymongo sdist named below) that pass against\n"
        "# the gateway; tests/drivers/python/unified_runner.py fails if one of them fails.\n"
        f"# source: {sdist}\n"
    )
    path.write_text(header + "".join(f"{t}\n" for t in sorted(passed)))


def run_all(files: list[pathlib.Path], uri: str | None, pattern: str | None, verbose: bool) -> list[Outcome]:
    """Every test of `files` against `uri`, or against a devnet started for the run."""
    devnet = None
    if uri is None:
        from devnet import Devnet

        devnet = Devnet()
        uri = devnet.uri
    outcomes: list[Outcome] = []
    try:
        runner = Runner(uri)
        try:
            for path in files:
                for outcome in runner.run_file(path):
                    if pattern and pattern not in outcome.test_id:
                        continue
                    outcomes.append(outcome)
                    if verbose:
                        print(f"{outcome.status.upper():8} {outcome.test_id}"
                              + (f"\n         {outcome.reason[:300]}" if outcome.reason else ""))
        finally:
            runner.close()
    finally:
        if devnet is not None:
            devnet.stop()
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec-dir", required=True, type=pathlib.Path,
                        help="test/crud/unified of the pymongo sdist")
    parser.add_argument("--uri", help="an already running gateway (default: start a devnet)")
    parser.add_argument("--baseline", type=pathlib.Path, default=BASELINE)
    parser.add_argument("--write-baseline", action="store_true",
                        help="record the tests that pass now as the baseline")
    parser.add_argument("--report", type=pathlib.Path, help="write every outcome as JSON here")
    parser.add_argument("--markdown", type=pathlib.Path,
                        help="write failed tests with their causes and skip reasons as Markdown")
    parser.add_argument("-k", dest="pattern", help="only tests whose id contains this")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run everything N times, each on a new devnet; a test passes if it always passed")
    parser.add_argument("-v", dest="verbose", action="store_true", help="print every test")
    args = parser.parse_args(argv)

    files = sorted(args.spec_dir.glob("*.json"))
    if not files:
        print(f"no unified spec files in {args.spec_dir}", file=sys.stderr)
        return 2

    started = time.monotonic()
    runs = [run_all(files, args.uri, args.pattern, args.verbose) for _ in range(args.repeat)]
    # A test passes only if it passed in every run: the gateway's natural
    # order differs from devnet to devnet (it follows encrypted ids), so a
    # test that depends on it passes only by chance.
    outcomes = []
    for first in runs[0]:
        same = [run_outcome for run in runs for run_outcome in run if run_outcome.test_id == first.test_id]
        failed = next((o for o in same if o.status == "failed"), None)
        outcomes.append(failed or first)
    elapsed = time.monotonic() - started

    counts = {s: sum(1 for o in outcomes if o.status == s) for s in ("passed", "failed", "skipped")}
    passed = [o.test_id for o in outcomes if o.status == "passed"]
    baseline = load_baseline(args.baseline)
    ran = {o.test_id: o for o in outcomes}
    regressions = sorted(t for t in baseline if t in ran and ran[t].status != "passed")
    missing = sorted(t for t in baseline if t not in ran) if not args.pattern else []
    new = sorted(t for t in passed if t not in baseline)

    if args.report:
        args.report.write_text(json.dumps(
            {"counts": counts, "outcomes": [dataclasses.asdict(o) for o in outcomes]}, indent=1))
    if args.markdown:
        args.markdown.write_text(markdown(outcomes))
    if args.write_baseline:
        source = next((p.name for p in args.spec_dir.resolve().parents if p.name.startswith("pymongo-")),
                      str(args.spec_dir))
        write_baseline(args.baseline, passed, f"{source} sdist, test/crud/unified, {args.repeat} runs")
        print(f"wrote {len(passed)} passing tests to {args.baseline}")
    else:
        for test_id in new:
            print(f"newly passing (add to {args.baseline.name}): {test_id}")
    for test_id in regressions:
        print(f"REGRESSION: {test_id}\n    {ran[test_id].reason[:500]}")
    for test_id in missing:
        print(f"MISSING: baseline test {test_id} was not found in {args.spec_dir}")
    print(f"unified CRUD spec tests in {elapsed:.1f}s; failures outside the baseline are "
          "expected (docs/compatibility.md)")
    # Worded so that it does not read as a test runner's pass/fail line: the
    # failures here are expected ones, the verdict is the baseline check.
    print(f"unified CRUD: {counts['passed']} pass, {counts['failed']} fail "
          f"(expected: outside the baseline), {counts['skipped']} skipped")
    if (regressions or missing) and not args.write_baseline:
        print(f"{len(regressions) + len(missing)} baseline tests no longer pass", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.exit(130)
