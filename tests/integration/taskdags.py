"""Small real DAG folders for the runner and worker-manager tests.

The model is built directly (no loader), so each test states exactly the task it
runs; the files are real, and so are the processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dagctl.dags.model import Connection, Dag, ParamSpec, Task
from dagctl.execution.attempt import Attempt, TaskContext

LOGICAL_DATE = datetime(2024, 6, 1, 2, 15, tzinfo=timezone.utc)
_TYPES = {".sh": "shell", ".py": "python", ".sql": "sql"}


def make_dag(
    folder: Path,
    files: Mapping[str, str],
    *,
    params: Mapping[str, Any] | None = None,
    secrets: frozenset[str] = frozenset(),
    connections: Mapping[str, str] | None = None,
    worker_env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    name: str = "demo",
    **task_fields: Any,
) -> Dag:
    """A DAG folder holding `files`; every task gets `task_fields` (e.g. parameters=...).

    A `.yaml` file's content is ignored: its task is a command (argv in task_fields
    `command`) or, when named `*noop*.yaml`, a no_op."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "workflow.yaml").write_text("description: test\n")
    tasks = {}
    for file_name, content in files.items():
        path = folder / file_name
        path.write_text(content)
        suffix = path.suffix
        kind = _TYPES.get(suffix) or ("no_op" if "noop" in file_name else "command")
        fields = dict(task_fields)
        if kind != "command":
            fields.pop("command", None)
        tasks[file_name] = Task(name=file_name, folder=str(folder), type=kind, **fields)
    specs = {
        pname: ParamSpec(pname, {"type": "string"}, True, value, secret=pname in secrets)
        for pname, value in (params or {}).items()
    }
    return Dag(
        name=name,
        folder=str(folder),
        description="test",
        tasks=MappingProxyType(tasks),
        fingerprint="test",
        params=MappingProxyType(specs),
        timeout=timeout,
        worker_config=MappingProxyType({"env": dict(worker_env)} if worker_env else {}),
        connections=MappingProxyType({k: Connection(k, v) for k, v in (connections or {}).items()}),
    )


def context(dag: Dag, task: str, params: Mapping[str, Any] | None = None, attempt: int = 1) -> TaskContext:
    values = {name: spec.default for name, spec in dag.params.items()}
    values.update(params or {})
    return TaskContext(
        dag=dag.name,
        task=task,
        run_id=42,
        attempt=attempt,
        logical_date=LOGICAL_DATE,
        params=values,
        secret_params=dag.secret_params,
    )


def attempt(
    dag: Dag, task: str, task_run_id: int, params: Mapping[str, Any] | None = None, number: int = 1
) -> Attempt:
    return Attempt(task_run_id, dag, dag.tasks[task], context(dag, task, params, number))


def _stat(pid: str) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def group_alive(pgid: int) -> bool:
    """True while a live (non-zombie) process is in group `pgid`.

    `os.killpg(pgid, 0)` alone is not enough here: a killed child re-parented to PID 1
    stays a zombie until PID 1 gets round to reaping it, and zombies still answer."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(entry)
            if fields is not None and fields[2] == str(pgid) and fields[0] != "Z":
                return True
    return False


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    fields = _stat(str(pid))
    return fields is not None and fields[0] != "Z"


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


def kill_group_quietly(pgid: int) -> None:
    """Test clean-up, in case an assertion failed before the code under test did it."""
    with contextlib.suppress(OSError):
        os.killpg(pgid, signal.SIGKILL)
