"""Changing what runs: pause, unpause, cancel, retry."""

from __future__ import annotations

from typing import Any

from dagctl.actions.common import load_any, load_dag, no_run, now, store_session
from dagctl.config import Settings
from dagctl.errors import UsageError
from dagctl.scheduling.planner import plan_retry


def set_paused(settings: Settings, dag_name: str, paused: bool) -> dict[str, Any]:
    load_any(settings, dag_name)  # a broken DAG may be paused too; a missing one not
    with store_session(settings) as store:
        store.set_paused(dag_name, paused, now())
    return {"dag": dag_name, "paused": paused}


def cancel(settings: Settings, run_id: int) -> dict[str, Any]:
    with store_session(settings) as store:
        result = store.cancel_run(run_id, now())
    if result is None:
        raise no_run(run_id)
    if not result.cancelled:
        raise UsageError(f"run {run_id} has already finished ({result.previous_status}): nothing to cancel")
    return {
        "run_id": run_id,
        "status": "cancelled",
        "cancelled_tasks": list(result.cancelled_tasks),
        "stopping_tasks": list(result.running_tasks),
    }


def retry(settings: Settings, run_id: int, task: str | None) -> dict[str, Any]:
    with store_session(settings) as store:
        run, attempts = store.run_with_attempts(run_id)
        if run is None:
            raise no_run(run_id)
        dag = load_dag(settings.dags, run["dag_name"])
        plan = plan_retry(dag, run, attempts, task)
        mapped = [name for name, _ in plan.requeue if dag.tasks[name].for_each]
        if mapped:
            # Its item attempts keep their numbers: a second round would collide with them.
            raise UsageError(
                f"retrying a for_each task ({mapped[0]}) is not supported yet",
                f"trigger a new run of {dag.name}",
            )
        unheld = [name for name, task in dag.tasks.items() if task.unheld]
        result = store.retry_run(run_id, plan.requeue, plan.reset, now(), unheld=unheld)
    if not result.reopened:
        raise UsageError(
            f"run {run_id} changed meanwhile (it is {result.status})", f"check dagctl status --run {run_id}"
        )
    return {
        "run_id": run_id,
        "dag": run["dag_name"],
        "requeued": [{"task": name, "attempt": number} for name, number in plan.requeue],
        "reset": list(plan.reset),
    }
