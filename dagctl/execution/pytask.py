"""`python -m dagctl.execution.pytask PATH`: run a Python task file's `run(context)`.

This is the only Python the worker starts per Python task, so it imports nothing
heavy: no SQLAlchemy, no click, no yaml, nothing else from dagctl.

`context` is a plain dict built from the environment the runner prepared:
`dag`, `task`, `run_id` (a string, "" when there is no run), `attempt` (int),
`logical_date`, `data_interval_start`, `data_interval_end` (ISO 8601 strings, UTC,
`+00:00`), `ds` (the slot's local date, YYYY-MM-DD) and `params` (dict, from the
`DAGCTL_PARAMS` JSON, so typed: ints stay ints) and `outputs` (the outputs of the
upstream tasks, task name -> dict, from `DAGCTL_OUTPUTS`).

When `run` returns a dict, it is written as JSON to `$DAGCTL_OUTPUT`: the task's
outputs (it must be JSON-serialisable, or the attempt fails); any other return value
is ignored.

Exit status: 0 when `run` returns (a task reports failure by raising); 1 when it
raises, with the traceback on stderr; `SystemExit` (`sys.exit(3)`) passes through
unchanged.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping


def build_context(environ: Mapping[str, str]) -> dict[str, Any]:
    params = json.loads(environ.get("DAGCTL_PARAMS") or "{}")
    outputs = json.loads(environ.get("DAGCTL_OUTPUTS") or "{}")
    try:
        attempt = int(environ.get("DAGCTL_ATTEMPT") or "1")
    except ValueError:
        attempt = 1
    mapped: dict[str, Any] = {}
    if "DAGCTL_ITEM_INDEX" in environ:
        item: Any = None
        with contextlib.suppress(ValueError):
            item = json.loads(environ.get("DAGCTL_ITEM_JSON") or "null")
        mapped = {"item": item, "item_index": int(environ["DAGCTL_ITEM_INDEX"] or 0)}
    return {
        **mapped,
        "dag": environ.get("DAGCTL_DAG", ""),
        "task": environ.get("DAGCTL_TASK", ""),
        "run_id": environ.get("DAGCTL_RUN_ID", ""),
        "attempt": attempt,
        "logical_date": environ.get("DAGCTL_LOGICAL_DATE", ""),
        "data_interval_start": environ.get("DAGCTL_DATA_INTERVAL_START", ""),
        "data_interval_end": environ.get("DAGCTL_DATA_INTERVAL_END", ""),
        "ds": environ.get("DAGCTL_DS", ""),
        "params": params if isinstance(params, dict) else {},
        "outputs": outputs if isinstance(outputs, dict) else {},
    }


def environ_output() -> str:
    """The file this attempt's outputs go to ("" when run outside dagctl)."""
    return os.environ.get("DAGCTL_OUTPUT", "")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dagctl.execution.pytask PATH", file=sys.stderr)
        return 2
    path = os.path.abspath(args[0])
    # Prints show up in `dagctl logs -f` as they happen, and in order with tracebacks.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(line_buffering=True)
    # Like `python file.py`: the task's folder first, so sibling modules import.
    sys.path[0] = os.path.dirname(path)
    name = os.path.splitext(os.path.basename(path))[0]
    try:
        context = build_context(os.environ)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            print(f"cannot load {path} as a Python module", file=sys.stderr)
            return 1
        module = importlib.util.module_from_spec(spec)
        # Registered under its own name (pickle and dataclasses look modules up there),
        # unless that would shadow a module already imported, e.g. a task named json.py.
        sys.modules.setdefault(name, module)
        spec.loader.exec_module(module)
        run = getattr(module, "run", None)
        if not callable(run):
            print(f"{path} defines no run(context) function", file=sys.stderr)
            return 1
        returned = run(context)
        if isinstance(returned, dict) and environ_output():
            with open(environ_output(), "w", encoding="utf-8") as handle:
                json.dump(returned, handle, ensure_ascii=False)
    except Exception as exc:
        # Drop this frame: the user's code is what the traceback should show.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        traceback.print_exception(type(exc), exc, tb)
        return 1
    finally:
        # Nobody may be reading any more; the exit status still counts.
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
