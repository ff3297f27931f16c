"""One task attempt's execution: what to start, how to watch it, how to stop it.

Shared by `dagctl run` (`run_foreground`) and the worker manager (`prepare` +
`dagctl.taskprocess.TaskProcess`, re-exported here with `Launch`, `Exit`,
`LogBuffer` and `Guardian`). Only `run_foreground` waits: its whole job is to.

Processes start from argv lists, never a shell string; params travel as environment
variables (one per param, plus all of them as JSON in `DAGCTL_PARAMS`). Each task
runs in its own session, so its process group is the unit that timeouts, cancels,
shutdowns and the guardian kill: no child outlives its task.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any, TextIO
from urllib.parse import urlsplit

from dagctl.errors import TaskFailed
from dagctl.guardian import Guardian
from dagctl.logbuffer import LogBuffer, default_log_cap_bytes, masker
from dagctl.managers.base import FAILED, SUCCESS, Outcome, TaskContext
from dagctl.model import Dag, Task
from dagctl.params import as_env_value
from dagctl.taskprocess import DRAIN_TIMEOUT_S, Exit, Launch, TaskProcess, default_kill_grace

__all__ = [
    "DRAIN_TIMEOUT_S",
    "Exit",
    "Guardian",
    "Launch",
    "LogBuffer",
    "PrepareError",
    "TaskProcess",
    "default_kill_grace",
    "default_log_cap_bytes",
    "exit_status",
    "masker",
    "prepare",
    "run_foreground",
]

# Linux refuses a single environment string over 128 KiB (MAX_ARG_STRLEN).
MAX_ENV_STRING_BYTES = 128 * 1024 - 1
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@cache
def _bash() -> str | None:
    return shutil.which("bash")


class PrepareError(TaskFailed):
    """The attempt cannot start (missing parameter, unknown connection...): it fails
    with this message without a process ever existing."""


def format_logical_date(value: datetime) -> str:
    """ISO 8601 in UTC with a `+00:00` offset (what `datetime.isoformat()` writes and
    Python 3.10's `fromisoformat` reads back); a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def prepare(dag: Dag, task: Task, context: TaskContext) -> Launch | None:
    """The argv, environment, cwd and timeout of one attempt; None for `no_op`.

    Raises PrepareError when the attempt must fail before starting. The environment is
    the parent's, then `worker_config.env`, then one variable per param (named after
    it, value from `as_env_value`), then `DAGCTL_DAG`, `DAGCTL_TASK`, `DAGCTL_RUN_ID`
    ("" when there is no run), `DAGCTL_ATTEMPT`, `DAGCTL_LOGICAL_DATE` (see
    `format_logical_date`) and `DAGCTL_PARAMS` (every param as one JSON object).

    Plug-in task types (entry point group `dagctl.task_types`) are loaded by name and
    called as `factory(dag, task, context) -> list[str]`; the list is the argv, run
    with the same environment, cwd, process group and timeout as built-in types.
    """
    if task.type == "no_op":
        return None
    env = dict(os.environ)
    configured = dag.worker_config_for(task).get("env") or {}
    if not isinstance(configured, Mapping):
        raise PrepareError("worker_config.env must be a mapping of NAME: value")
    for key, value in configured.items():
        env[str(key)] = "" if value is None else as_env_value(value)
    params = dict(context.params)
    missing = [p for p in task.parameters if p not in params and p not in env]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise PrepareError(f"task needs parameter{plural} {', '.join(missing)}")
    # Before params join the environment: a param must not be able to redirect the
    # connection (a param named DATABASE_URL, or one named after a ${VAR} in the URL).
    sql_url = _sql_url(dag, task, env) if task.type == "sql" else ""
    for name, value in params.items():
        text = as_env_value(value)
        if "\x00" in text:
            raise PrepareError(f"param {name!r} contains a NUL byte")
        # A name no environment can hold still reaches the task through DAGCTL_PARAMS.
        if name and "=" not in name and "\x00" not in name:
            env[name] = text
    params_json = json.dumps(params, ensure_ascii=False, default=str)
    size = len(params_json.encode("utf-8", "surrogatepass"))
    if size > MAX_ENV_STRING_BYTES - len("DAGCTL_PARAMS="):
        raise PrepareError(
            f"params are {size:,} bytes as JSON, over the 128 KiB a process environment"
            " variable can hold (pass paths or URLs to big data)"
        )
    env.update(
        DAGCTL_DAG=dag.name,
        DAGCTL_TASK=task.name,
        DAGCTL_RUN_ID="" if context.run_id is None else str(context.run_id),
        DAGCTL_ATTEMPT=str(context.attempt),
        DAGCTL_LOGICAL_DATE=format_logical_date(context.logical_date),
        DAGCTL_PARAMS=params_json,
    )
    secrets = _secret_values(dag, context)
    # The loader may hold paths relative to where dagctl started; the task runs elsewhere.
    script = os.path.abspath(task.path)
    cwd = os.path.abspath(dag.path)
    env["PWD"] = cwd  # the inherited value names our directory, not the task's
    argv: Sequence[str]
    if task.type == "shell":
        bash = _bash()
        if bash is None:
            raise PrepareError("bash not found on PATH")
        argv = [bash, script]
    elif task.type == "command":
        if not task.command:
            raise PrepareError("a command task needs command:")
        argv = task.command
    elif task.type == "python":
        argv = [sys.executable, "-m", "dagctl.pytask", script]
    elif task.type == "sql":
        env["DAGCTL_SQL_URL"] = sql_url
        password = urlsplit(sql_url).password
        if password:
            secrets.append(password)
        argv = [sys.executable, "-m", "dagctl.sqltask", script]
    else:
        argv = _plugin_argv(dag, task, context)
    return Launch(
        argv=tuple(argv),
        env=env,
        cwd=Path(cwd),
        timeout=dag.timeout_for(task) or None,
        secrets=tuple(secrets),
    )


def _secret_values(dag: Dag, context: TaskContext) -> list[str]:
    values: list[str] = []
    for name in sorted(context.secret_params | dag.secret_params):
        if context.params.get(name) is None:
            continue
        text = as_env_value(context.params[name])
        values.append(text)
        # As it appears inside DAGCTL_PARAMS, should a task print that.
        for ascii_only in (False, True):
            escaped = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
            if escaped != text:
                values.append(escaped)
    return values


def _sql_url(dag: Dag, task: Task, env: Mapping[str, str]) -> str:
    if task.connection:
        connection = dag.connections.get(task.connection)
        if connection is None:
            known = ", ".join(sorted(dag.connections)) or "none"
            raise PrepareError(f"unknown connection {task.connection!r} (defined: {known})")
        url, where = connection.url, f"connection {task.connection!r}"
    else:
        url, where = env.get("DATABASE_URL", ""), "DATABASE_URL"
        if not url:
            raise PrepareError("SQL task without a connection: set connection: or DATABASE_URL")

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise PrepareError(f"{where}: environment variable {name} is not set")
            return default
        return value

    from dagctl.config import normalise_db_url

    return normalise_db_url(_VAR.sub(expand, url))


def _plugin_argv(dag: Dag, task: Task, context: TaskContext) -> list[str]:
    from dagctl.plugins import load_task_type

    try:
        factory = load_task_type(task.type)
    except KeyError:
        raise PrepareError(f"unknown task type {task.type!r} (is its plug-in installed?)") from None
    except Exception as exc:
        raise PrepareError(f"cannot load task type {task.type!r}: {exc}") from exc
    try:
        argv = factory(dag, task, context)
    except Exception as exc:
        raise PrepareError(f"task type {task.type!r} failed to build the command: {exc}") from exc
    if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, str) for a in argv):
        raise PrepareError(f"task type {task.type!r} must return a non-empty list of strings")
    return list(argv)


def exit_status(outcome: Outcome) -> int:
    """The process exit code `dagctl run` should return for an outcome: the task's own
    code, 128+N for a death by signal N (the shell convention), 1 for other failures."""
    if outcome.status == SUCCESS:
        return 0
    code = outcome.exit_code
    if code is not None and code > 0:
        return code
    if code is not None and code < 0:
        return 128 - code
    return 1


def run_foreground(
    dag: Dag,
    task: Task,
    context: TaskContext,
    out: TextIO | None = None,
    *,
    task_run_id: int = 0,
    kill_grace: float | None = None,
    log_cap_bytes: int | None = None,
    use_guardian: bool = True,
) -> Outcome:
    """Run one attempt here and now: `dagctl run DAG TASK`.

    Output (masked, uncapped) is written to `out` (default sys.stdout) line by line as
    it arrives. SIGINT/SIGTERM received meanwhile are forwarded to the task's group as
    SIGTERM, then SIGKILL after the grace (a second signal kills at once). Returns the
    Outcome: `log` is the whole capped, masked output, as the worker manager would
    store it. A no_op succeeds at once with exit_code None. Never raises for a task
    failure; see `exit_status` for the process exit code.
    """
    stream = out if out is not None else sys.stdout
    try:
        launch = prepare(dag, task, context)
    except PrepareError as exc:
        return Outcome(task_run_id, FAILED, error=exc.message)
    if launch is None:
        return Outcome(task_run_id, SUCCESS)

    broken: list[bool] = []

    def emit(text: str) -> None:
        # A closed terminal or `| head` must not cost the outcome: stop echoing only.
        if broken:
            return
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            broken.append(True)

    guardian = Guardian() if use_guardian else None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)
        with contextlib.suppress(OSError):
            os.write(wake_w, b"\0")

    previous: dict[signal.Signals, Any] = {}
    try:
        try:
            proc = TaskProcess(
                launch, guardian=guardian, kill_grace=kill_grace, log_cap_bytes=log_cap_bytes, on_text=emit
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            return Outcome(task_run_id, FAILED, error=f"cannot start the task: {exc}")
        with contextlib.suppress(ValueError):  # not the main thread: no forwarding
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        result = _wait_foreground(proc, wake_r, signals)
        return Outcome(
            task_run_id,
            result.status,
            exit_code=result.exit_code,
            error=result.error,
            log=proc.buffer.finish(),
            log_truncated_bytes=proc.buffer.truncated_bytes,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)
        if guardian is not None:
            guardian.close()


def _wait_foreground(proc: TaskProcess, wake_r: int, signals: list[int]) -> Exit:
    handled = 0
    with selectors.DefaultSelector() as selector:
        selector.register(wake_r, selectors.EVENT_READ)
        watched: set[int] = set()
        while True:
            while handled < len(signals):
                name = signal.Signals(signals[handled]).name
                if handled == 0:
                    proc.terminate(f"interrupted by {name}")
                else:
                    proc.kill(f"interrupted by {name}")
                handled += 1
            result = proc.poll()
            if result is not None:
                return result
            fds = set(proc.fds())
            for fd in watched - fds:
                selector.unregister(fd)
            for fd in fds - watched:
                selector.register(fd, selectors.EVENT_READ)
            watched = fds
            deadline = proc.next_deadline()
            timeout = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            for key, _ in selector.select(timeout):
                if key.fd == wake_r:
                    with contextlib.suppress(OSError):
                        os.read(wake_r, 512)
