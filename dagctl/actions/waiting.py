"""Waiting for a run from Python: `trigger_dag(..., wait=True)` and what it returns.

The wait is the caller's own (a client following one run, like `trigger --wait`), so
its deadline is this process's monotonic clock; nothing shared is decided by it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from dagctl.actions.common import store_session
from dagctl.actions.views import stored_outputs
from dagctl.config import Settings
from dagctl.errors import DagctlError, UsageError
from dagctl.states import FINISHED_RUN_VALUES

POLL_INTERVAL_S = 0.2


class WaitTimeout(DagctlError):
    """The run did not finish within the timeout; it goes on (cancel it with
    `dagctl cancel RUN`)."""

    def __init__(self, run_id: int, timeout: float, status: str) -> None:
        super().__init__(
            f"run {run_id} did not finish within {timeout:g}s (still {status})",
            f"it goes on: follow it with dagctl status --run {run_id}, or dagctl cancel {run_id}",
        )
        self.run_id = run_id
        self.status = status


@dataclass(frozen=True, slots=True)
class RunResult:
    """How a run ended: `status` is `success`, `failed` or `cancelled`; `error` the
    run's reason when it did not succeed; `failed_tasks` the tasks whose latest attempt
    failed; `outputs` what each task's successful attempt published (task -> dict)."""

    run_id: int
    dag: str
    status: str
    error: str | None = None
    failed_tasks: tuple[str, ...] = ()
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "success"


def wait_for_run(
    settings: Settings, run_id: int, timeout: float | None, interval: float = POLL_INTERVAL_S
) -> RunResult:
    """Poll the state database until run `run_id` has finished; WaitTimeout past `timeout`
    seconds (None: no limit)."""
    if timeout is not None and timeout < 0:
        raise UsageError(f"timeout must be at least 0 seconds, not {timeout:g}")
    deadline = None if timeout is None else time.monotonic() + timeout
    with store_session(settings) as store:
        while True:
            run, attempts = store.run_with_attempts(run_id)
            if run is None:
                raise UsageError(f"no run {run_id}")
            if run["status"] in FINISHED_RUN_VALUES:
                return _result(run, attempts)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(run_id, timeout or 0.0, str(run["status"]))
            pause = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
            time.sleep(pause)


def _result(run: dict[str, Any], attempts: list[dict[str, Any]]) -> RunResult:
    latest: dict[str, dict[str, Any]] = {}
    for attempt in attempts:  # in queue order: a later attempt replaces an earlier one
        if attempt["task_name"] not in latest or attempt["attempt"] > latest[attempt["task_name"]]["attempt"]:
            latest[attempt["task_name"]] = attempt
    outputs: dict[str, dict[str, Any]] = {}
    for attempt in attempts:
        values = stored_outputs(attempt.get("outputs")) if attempt["status"] == "success" else None
        if values is not None:
            outputs[attempt["task_name"]] = values
    return RunResult(
        run_id=int(run["id"]),
        dag=str(run["dag_name"]),
        status=str(run["status"]),
        error=run.get("error"),
        failed_tasks=tuple(name for name, a in latest.items() if a["status"] == "failed"),
        outputs=outputs,
    )
