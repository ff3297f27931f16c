"""The JSON Schemas of the DAG format, and turning their violations into plain problems.

The .json files next to this module are the format's single definition: `validate`,
editors (yaml-language-server) and `dagctl schema` all read these same bytes.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

NAMES = ("workflow", "task", "config")
FILES = {"workflow": "workflow.schema.json", "task": "task.schema.json", "config": "config.schema.json"}


def text(name: str) -> str:
    beside = Path(__file__).with_name(FILES[name])
    if beside.is_file():  # any install on disk; importlib.resources (with zipfile) costs a start ~7 ms
        return beside.read_text(encoding="utf-8")
    from importlib import resources

    return resources.files(__package__).joinpath(FILES[name]).read_text(encoding="utf-8")


@cache
def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text(name))
    return loaded


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema(name))


def _pointer(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def problems(name: str, instance: Any) -> Iterator[tuple[str, str, str | None]]:
    """(JSON pointer, message, hint) for each violation, in document order."""
    if is_valid(name, instance):
        return
    validator = _validator(name)
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        yield from _describe(error)


# ---------------------------------------------------------------- the fast path
# jsonschema costs ~0.1 s to import and ~0.1 ms a document. Almost every document is
# valid, so each schema is compiled once into plain Python checks for the keywords our
# schemas use, which answer "valid" first; jsonschema runs only to describe the errors
# of a document that is not. Whatever the checks are not sure about (a keyword they do
# not know, a float where an integer is expected, NaN, ...) counts as "not known valid"
# and goes the slow, exact way.

_Check = Callable[[Any], bool]
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples", "format"}
)
_PLAIN_TYPES: dict[str, type] = {
    "string": str,
    "object": dict,
    "array": list,
    "boolean": bool,
    "null": type(None),
}


class _Unsure(Exception):
    pass


def is_valid(name: str, instance: Any) -> bool:
    """True only when `instance` certainly satisfies schema `name`."""
    try:
        return _compiled(name)(instance)
    except (_Unsure, RecursionError):
        return False


@cache
def _compiled(name: str) -> _Check:
    root = schema(name)
    return _Compiler(root).compile(root)


def _unsure(value: Any) -> bool:
    raise _Unsure


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root
        self.defs: dict[str, _Check] = {}

    def compile(self, node: Any) -> _Check:
        if node is True:
            return lambda value: True
        if not isinstance(node, dict):
            return _unsure
        checks: list[_Check] = []
        for key, want in node.items():
            if key in _ANNOTATIONS or key in ("properties", "propertyNames"):
                continue  # properties and propertyNames are checked with additionalProperties
            maker = getattr(self, "_" + key.lstrip("$"), None)
            checks.append(maker(want, node) if maker else _unsure)
        if any(key in node for key in ("properties", "additionalProperties", "propertyNames")):
            checks.append(self._object(node))

        if not checks:
            return lambda value: True
        if len(checks) == 1:
            return checks[0]

        def check(value: Any) -> bool:
            for one in checks:  # noqa: SIM110 - a loop is much faster than all() over a generator
                if not one(value):
                    return False
            return True

        return check

    def _ref(self, want: Any, node: Any) -> _Check:
        prefix = "#/$defs/"
        if not isinstance(want, str) or not want.startswith(prefix):
            return _unsure
        name = want[len(prefix) :]
        if name not in self.defs:
            self.defs[name] = _unsure  # until compiled; guards against recursive $refs
            self.defs[name] = self.compile(self.root.get("$defs", {}).get(name))
        defs = self.defs
        return lambda value: defs[name](value)  # noqa: PLW0108 - looked up late, for recursive $refs

    def _type(self, want: Any, node: Any) -> _Check:
        kinds = want if isinstance(want, list) else [want]
        plain = tuple(_PLAIN_TYPES[k] for k in kinds if k in _PLAIN_TYPES)
        number = "number" in kinds
        integer = "integer" in kinds
        other = any(k not in _PLAIN_TYPES and k not in ("number", "integer") for k in kinds)

        def check(value: Any) -> bool:
            if isinstance(value, plain):
                return True
            if other:
                raise _Unsure
            if isinstance(value, bool):
                return False  # a boolean is neither an integer nor a number
            if number and isinstance(value, numbers.Number):
                return True
            if integer and isinstance(value, int):
                return True
            if integer and isinstance(value, float):
                raise _Unsure  # 1.0 is an integer to JSON Schema
            return False

        return check

    def _enum(self, want: Any, node: Any) -> _Check:
        if not isinstance(want, list) or not all(isinstance(c, str) for c in want):
            return _unsure
        choices = frozenset(want)
        return lambda value: isinstance(value, str) and value in choices

    def _required(self, want: Any, node: Any) -> _Check:
        keys = tuple(want)
        return lambda value: not isinstance(value, dict) or all(k in value for k in keys)

    def _object(self, node: Mapping[str, Any]) -> _Check:
        if "patternProperties" in node:
            return _unsure
        props = {k: self.compile(v) for k, v in node.get("properties", {}).items()}
        extra = node.get("additionalProperties", True)
        extra_check = self.compile(extra) if isinstance(extra, dict) else None
        if not isinstance(extra, (bool, dict)):
            return _unsure
        names = self.compile(node["propertyNames"]) if "propertyNames" in node else None

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for key, item in value.items():
                sub = props.get(key)
                if sub is not None:
                    if not sub(item):
                        return False
                elif extra is False or (extra_check is not None and not extra_check(item)):
                    return False
                if names is not None and not names(key):
                    return False
            return True

        return check

    def _additionalProperties(self, want: Any, node: Any) -> _Check:
        return lambda value: True  # see _object

    def _minimum(self, want: Any, node: Any) -> _Check:
        return self._bound(want, lambda value: value < want)

    def _maximum(self, want: Any, node: Any) -> _Check:
        return self._bound(want, lambda value: value > want)

    def _bound(self, want: Any, outside: Callable[[Any], bool]) -> _Check:
        if not _is_number(want):
            return _unsure

        def check(value: Any) -> bool:
            if not _is_number(value):
                return True
            if isinstance(value, float) and math.isnan(value):
                raise _Unsure
            return not outside(value)

        return check

    def _minLength(self, want: Any, node: Any) -> _Check:
        return lambda value: not isinstance(value, str) or len(value) >= want

    def _maxLength(self, want: Any, node: Any) -> _Check:
        return lambda value: not isinstance(value, str) or len(value) <= want

    def _pattern(self, want: Any, node: Any) -> _Check:
        # The schema's own fixed patterns, compiled once with `re`, as jsonschema itself
        # matches them on the slow path: each is unambiguous (no two ways to match the
        # same text), so `re` runs in linear time on any value. RE2 is for the patterns
        # users write (dagctl/dags/patterns.py); through its wrapper it cost ~20 us a
        # call, an eighth of loading a small DAG.
        if not isinstance(want, str):
            return _unsure
        search = re.compile(want).search
        return lambda value: not isinstance(value, str) or search(value) is not None

    def _items(self, want: Any, node: Any) -> _Check:
        if "prefixItems" in node or not isinstance(want, (dict, bool)):
            return _unsure
        item_check = self.compile(want)

        def check(value: Any) -> bool:
            if isinstance(value, list):
                for item in value:
                    if not item_check(item):
                        return False
            return True

        return check

    def _minItems(self, want: Any, node: Any) -> _Check:
        return lambda value: not isinstance(value, list) or len(value) >= want

    def _uniqueItems(self, want: Any, node: Any) -> _Check:
        if want is not True:
            return lambda value: True

        def check(value: Any) -> bool:
            if not isinstance(value, list):
                return True
            if not all(isinstance(item, str) for item in value):
                raise _Unsure  # JSON equality of mixed values (1 vs true vs 1.0) is subtle
            return len(set(value)) == len(value)

        return check

    def _oneOf(self, want: Any, node: Any) -> _Check:
        subs = [self.compile(sub) for sub in want]

        def check(value: Any) -> bool:
            matched = 0
            for sub in subs:
                if sub(value):
                    matched += 1
            return matched == 1

        return check


def _describe(error: Any) -> Iterator[tuple[str, str, str | None]]:
    from dagctl.dags.hints import did_you_mean

    path = list(error.absolute_path)
    pointer = _pointer(path)
    where = f"{'.'.join(str(p) for p in path)}: " if path else ""
    kind = error.validator
    if len(path) == 3 and path[0] == "queues" and path[2] == "limit" and kind in ("type", "minimum"):
        pause = f"dagctl queue pause {path[1]} stops a queue"
        fix = f"write a whole number of at least 1, or leave limit out; {pause}"
        yield pointer, f"{where}{error.instance!r} is not a number of attempts", fix
        return
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        for key in error.instance:
            if key not in allowed:
                hint = (
                    did_you_mean(str(key), sorted(allowed)) or f"allowed keys: {', '.join(sorted(allowed))}"
                )
                yield _pointer([*path, key]), f"{where}unknown key {key!r}", hint
        return
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        yield pointer, f"{where}missing required key {missing!r}", f"add {missing}: ..."
        return
    if kind == "enum":
        choices = error.validator_value
        listed = ", ".join(str(c) for c in choices)
        yield (
            pointer,
            f"{where}{error.instance!r} is not one of: {listed}",
            did_you_mean(str(error.instance), [str(c) for c in choices]),
        )
        return
    if kind == "type":
        expected = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else expected
        actual = _json_type(error.instance)
        quote = None
        if isinstance(error.instance, (date, datetime)):
            # YAML reads an unquoted 2024-06-01 as a date, which JSON has no type for.
            quote = f'quote it: "{error.instance.isoformat()}"'
        yield pointer, f"{where}expected {expected_text}, got {actual}", quote
        return
    if kind == "oneOf" and "duration" in str(error.schema.get("description", "")).lower() + str(
        error.schema.get("$ref", "")
    ):
        yield pointer, f"{where}{error.instance!r} is not a duration", "use seconds, or 30s, 5m, 1h30m"
        return
    if kind == "oneOf" and any("pattern" in str(s) and "ms|s|m|h|d" in str(s) for s in error.validator_value):
        yield pointer, f"{where}{error.instance!r} is not a duration", "use seconds, or 30s, 5m, 1h30m"
        return
    if kind == "pattern" and len(path) >= 2 and path[-2] == "inputs":
        yield pointer, f"{where}{error.instance!r} is not a task name", "use task.sh or other_dag:task.sh"
        return
    if kind == "propertyNames":
        yield pointer, f"{where}bad name {error.instance!r}", "use letters, digits and _; start with a letter"
        return
    if kind == "uniqueItems":
        yield pointer, f"{where}has duplicate entries", "list each entry once"
        return
    yield pointer, f"{where}{error.message}", None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return f"string {value!r}" if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
