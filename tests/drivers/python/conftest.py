"""pymongo against a real `fluence devnet`: one devnet process for the
session, a fresh collection for every test.

Expected failures: `expected_failures.txt` lists tests that wait for a
gateway feature or fix, one `test id | reason` a line. They run as strict
xfails, so a listed test that starts passing fails the run until its line is
removed, and a line naming no test is an error: the list stays honest.
"""

from __future__ import annotations

import pathlib
import re

import pymongo
import pytest
from pymongo import monitoring

from devnet import Devnet

HERE = pathlib.Path(__file__).resolve().parent
EXPECTED_FAILURES = HERE / "expected_failures.txt"
DATABASE = "drivers"


def load_expected_failures(path: pathlib.Path = EXPECTED_FAILURES) -> dict[str, str]:
    """Test id -> reason, from `id | reason` lines (`#` starts a comment)."""
    expected: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        test_id, sep, reason = (part.strip() for part in line.partition("|"))
        if not sep or not test_id or not reason:
            raise pytest.UsageError(f"{path.name}:{number}: expected `test id | reason`")
        if test_id in expected:
            raise pytest.UsageError(f"{path.name}:{number}: {test_id} listed twice")
        expected[test_id] = reason
    return expected


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expected = load_expected_failures()
    seen = set()
    for item in items:
        test_id = item.nodeid.split("/")[-1]
        reason = expected.get(test_id)
        if reason is not None:
            seen.add(test_id)
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
    # Only a full run can tell that a line names no test.
    if not config.args or all(pathlib.Path(a).resolve() == HERE for a in config.args):
        unknown = sorted(set(expected) - seen)
        if unknown:
            raise pytest.UsageError(
                f"{EXPECTED_FAILURES.name} names tests that do not exist: {unknown}"
            )


@pytest.fixture(scope="session")
def devnet():
    with Devnet() as running:
        yield running


class CommandLog(monitoring.CommandListener):
    """Every command the driver sends, by name, for tests that check what
    went over the wire (getMore rounds, killCursors)."""

    def __init__(self) -> None:
        self.events: list[monitoring.CommandStartedEvent] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.events.append(event)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def names(self) -> list[str]:
        return [e.command_name for e in self.events]

    def clear(self) -> None:
        self.events.clear()


@pytest.fixture(scope="session")
def commands() -> CommandLog:
    return CommandLog()


@pytest.fixture(scope="session")
def client(devnet: Devnet, commands: CommandLog):
    mongo = pymongo.MongoClient(
        devnet.uri,
        serverSelectionTimeoutMS=10_000,
        event_listeners=[commands],
        appname="fluence-driver-tests",
    )
    yield mongo
    mongo.close()


@pytest.fixture
def db(client: pymongo.MongoClient):
    return client[DATABASE]


@pytest.fixture
def coll(db, request: pytest.FixtureRequest, commands: CommandLog):
    """A collection of its own for each test, dropped before and after."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", request.node.name)[:60]
    collection = db[name]
    collection.drop()
    commands.clear()
    yield collection
    collection.drop()
