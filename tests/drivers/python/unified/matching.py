"""The unified test format's matching rules ("Evaluating Matches"): extra
fields only in root documents, numbers equal by value across int32, int64
and double, and the `$$` operators the CRUD tests use."""

from __future__ import annotations

import collections.abc as abc
import datetime
import re
from typing import Any

from bson import Decimal128, Int64, MaxKey, MinKey, ObjectId, json_util
from bson.binary import Binary
from bson.code import Code
from bson.regex import Regex
from bson.timestamp import Timestamp


class Mismatch(AssertionError):
    """An expectation of the test was not met."""


TYPE_ALIASES: dict[str, tuple[type, ...]] = {
    "double": (float,),
    "string": (str,),
    "object": (abc.Mapping,),
    "array": (abc.MutableSequence,),
    "binData": (Binary, bytes),
    "objectId": (ObjectId,),
    "bool": (bool,),
    "date": (datetime.datetime,),
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
