"""dagctl: a workflow scheduler for directories of YAML DAG files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

__version__ = "0.1.0"
__all__ = ["RunResult", "__version__", "trigger_dag"]

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from dagctl.actions.waiting import RunResult


@overload
def trigger_dag(
    dag: str,
    *,
    creator: str = ...,
    params: Mapping[str, Any] | None = ...,
    dags: str | None = ...,
    db: str | None = ...,
    logical_date: datetime | None = ...,
    wait: Literal[False] = ...,
    timeout: None = ...,
) -> int: ...


@overload
def trigger_dag(
    dag: str,
    *,
    creator: str = ...,
    params: Mapping[str, Any] | None = ...,
    dags: str | None = ...,
    db: str | None = ...,
    logical_date: datetime | None = ...,
    wait: Literal[True],
    timeout: float | None = ...,
) -> RunResult: ...


def trigger_dag(
    dag: str,
    *,
    creator: str = "python",
    params: Mapping[str, Any] | None = None,
    dags: str | None = None,
    db: str | None = None,
    logical_date: datetime | None = None,
    wait: bool = False,
    timeout: float | None = None,
) -> int | RunResult:
    """Queue a manual run of `dag` and return its run id; with `wait=True`, wait for it
    to finish and return a `RunResult` (run id, status, error, failed tasks, the tasks'
    outputs) instead.

    Params are validated against the DAG's typed params before anything is written.
    `logical_date` (naive UTC, or aware): the slot the run is for; default now.
    `timeout` (seconds, only with `wait=True`): past it, `dagctl.actions.waiting.WaitTimeout`
    is raised and the run goes on. A scheduler must be running for the run to progress.
    """
    from dagctl.actions.runs import trigger

    if timeout is not None and not wait:
        from dagctl.errors import UsageError

        raise UsageError("timeout only applies with wait=True")
    if logical_date is not None and logical_date.tzinfo is not None:
        from datetime import timezone

        logical_date = logical_date.astimezone(timezone.utc).replace(tzinfo=None)
    run_id = trigger(
        dag, creator=creator, params=dict(params or {}), dags=dags, db=db, logical_date=logical_date
    )
    if not wait:
        return run_id
    from dagctl.actions.waiting import wait_for_run
    from dagctl.config import Settings

    return wait_for_run(Settings.resolve(dags=dags, db=db), run_id, timeout)


def __getattr__(name: str) -> Any:
    # `from dagctl import RunResult` without importing the store at `import dagctl`.
    if name == "RunResult":
        from dagctl.actions.waiting import RunResult

        return RunResult
    raise AttributeError(f"module 'dagctl' has no attribute {name!r}")
