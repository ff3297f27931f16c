"""The JSON Schemas of the DAG format, and turning their violations into plain problems.

The .json files next to this module are the format's single definition: `validate`,
editors (yaml-language-server) and `dagctl schema` all read these same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

NAMES = ("workflow", "task", "config")
FILES = {"workflow": "workflow.schema.json", "task": "task.schema.json", "config": "config.schema.json"}


def text(name: str) -> str:
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
    validator = _validator(name)
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    for error in errors:
        yield from _describe(error)


def _describe(error: Any) -> Iterator[tuple[str, str, str | None]]:
    from dagctl.hints import did_you_mean

    path = list(error.absolute_path)
    pointer = _pointer(path)
    where = f"{'.'.join(str(p) for p in path)}: " if path else ""
    kind = error.validator
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
        hint = did_you_mean(str(error.instance), [str(c) for c in choices])
        listed = ", ".join(str(c) for c in choices)
        yield pointer, f"{where}{error.instance!r} is not one of: {listed}", hint
        return
    if kind == "type":
        expected = error.validator_value
        expected_text = " or ".join(expected) if isinstance(expected, list) else expected
        actual = _json_type(error.instance)
        yield pointer, f"{where}expected {expected_text}, got {actual}", None
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
