"""Task outputs: the small values a task publishes for the tasks downstream of it.

A task writes `key=value` lines, or one JSON object, to the file named by
`$DAGCTL_OUTPUT` (a Python task may also return a dict from `run(context)`). Once
its process has exited with success, `collect` reads that file back into a dict;
the scheduler stores it with the attempt's end, in the same transaction, so an
output exists exactly when its successful attempt is recorded (a scheduler killed
before that runs the task again, as for any attempt it had not recorded).

The tasks downstream see the outputs of the tasks upstream of them: in templates as
`outputs["task.sh"].key`, in the environment as `DAGCTL_OUTPUTS` (one JSON object,
task name -> its outputs), in Python as `context["outputs"]`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from typing import Any

OUTPUT_VARIABLE = "DAGCTL_OUTPUT"
UPSTREAM_OUTPUTS_VARIABLE = "DAGCTL_OUTPUTS"


class OutputError(ValueError):
    """The output file cannot be stored: too big, not UTF-8, or neither a JSON object
    nor `key=value` lines. The message is the attempt's error."""


def max_output_bytes() -> int:
    """`DAGCTL_OUTPUT_MAX_BYTES` (see dagctl.config)."""
    from dagctl.config import tuning

    return tuning().output_max_bytes


def new_output_file() -> str:
    """An empty file, readable and writable by this user only, for one attempt."""
    fd, path = tempfile.mkstemp(prefix="dagctl-output-", suffix=".txt")
    os.close(fd)
    return path


def discard(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)


def collect(path: str, limit: int | None = None) -> dict[str, Any] | None:
    """The outputs the task wrote to `path`; None when it wrote nothing. Raises
    OutputError for what cannot be stored. Never reads more than `limit` + 1 bytes,
    whatever the task wrote."""
    limit = max_output_bytes() if limit is None else limit
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return None  # the task removed it: it published nothing
    except OSError as exc:
        raise OutputError(f"cannot read $DAGCTL_OUTPUT: {exc.strerror}") from None
    if len(data) > limit:
        raise OutputError(
            f"outputs are over the {limit:,}-byte limit (DAGCTL_OUTPUT_MAX_BYTES):"
            " publish a path or a URL to big data instead"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise OutputError("outputs are not UTF-8 text") from None
    return parse(text)


def parse(text: str) -> dict[str, Any] | None:
    """One JSON object, or `key=value` lines (blank lines and `#` comments skipped;
    the value is everything after the first `=`, kept as a string; a key given twice
    keeps its last value)."""
    stripped = text.strip()
    if not stripped:
        return None
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except ValueError as exc:
            raise OutputError(f"outputs look like JSON but are not valid: {exc}") from None
        if not isinstance(value, dict):
            raise OutputError("JSON outputs must be one object")
        return value
    values: dict[str, Any] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OutputError(
                f"outputs line {number} is not key=value: {line[:60]!r}"
                " (write key=value lines or one JSON object)"
            )
        values[key] = value
    return values or None


def as_json(outputs: Mapping[str, Any] | None) -> str | None:
    return None if outputs is None else json.dumps(outputs, ensure_ascii=False, separators=(",", ":"))


def from_json(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
