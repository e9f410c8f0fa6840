"""Runs one unified test file: requirements, initial data, entities,
operations, expected events and the collections' outcome."""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import pymongo
from bson import json_util
from pymongo.errors import BulkWriteError, ClientBulkWriteException, OperationFailure, PyMongoError

from unified.matching import Matcher, Mismatch
from unified.operations import EventLog, Operations, Skip, bulk_error_result, collection_options
from unified.requirements import requirements_unmet, version_tuple

SUPPORTED_SCHEMA_MAJOR = 1


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
