"""What each command does, as plain functions: the CLI parses and renders, these act.

Also the Python API (`dagctl.trigger_dag`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagctl.config import Settings
from dagctl.cron import utcnow
from dagctl.errors import DagctlError, DagNotFound, UsageError
from dagctl.model import Dag
from dagctl.params import resolve

if TYPE_CHECKING:
    from dagctl.managers.base import Outcome
    from dagctl.store import Store


def load_dag(dags_root: Path, name: str) -> Dag:
    from dagctl.loader import load_one

    if not dags_root.is_dir():
        raise UsageError(
            f"DAGs folder {str(dags_root)!r} does not exist", "pass --dags PATH or set DAGCTL_DAGS"
        )
    dag, _ = load_one(dags_root, name)
    if dag is None:
        from dagctl.hints import did_you_mean

        names = [p.name for p in dags_root.iterdir() if p.is_dir() and not p.name.startswith(".")]
        raise DagNotFound(f"no DAG {name!r} in {dags_root}", did_you_mean(name, names) or "run dagctl list")
    if not isinstance(dag, Dag):
        raise DagctlError(f"DAG {name!r} is broken: {dag.reason}", f"run dagctl validate {dags_root / name}")
    return dag


def open_store(settings: Settings, *, migrate: bool) -> Store:
    from dagctl.store import open_store as _open

    return _open(settings.db_url, migrate=migrate)


def trigger_run(
    settings: Settings,
    dag_name: str,
    given: Mapping[str, Any],
    creator: str,
    logical_date: datetime | None = None,
) -> int:
    """Check params against the DAG first (nothing is written if they are wrong), then queue a run."""
    dag = load_dag(settings.dags, dag_name)
    params = resolve(dag.name, dag.params, given)
    from dagctl.store import quick

    # Without SQLAlchemy when it can (a migrated database): most of a trigger's time
    # would be importing it.
    run_id = quick.trigger(settings.db_url, dag.name, params, creator, logical_date, dag.fingerprint, utcnow)
    if run_id is not None:
        return run_id
    store = open_store(settings, migrate=True)
    try:
        now = utcnow()
        return store.trigger(dag.name, params, creator, logical_date or now, dag.fingerprint, now)
    finally:
        store.close()


def trigger(
    dag: str, *, creator: str, params: dict[str, Any], dags: str | None = None, db: str | None = None
) -> int:
    return trigger_run(Settings.resolve(dags=dags, db=db), dag, params, creator)


def wait_for_run(settings: Settings, run_id: int, interval: float = 0.2) -> str:
    store = open_store(settings, migrate=False)
    try:
        while True:
            status = store.run_status(run_id)
            if status is None:
                raise UsageError(f"no run {run_id}", "run dagctl status to see recent runs")
            if status in ("success", "failed", "cancelled"):
                return status
            time.sleep(interval)
    finally:
        store.close()


def run_task(
    settings: Settings,
    dag_name: str,
    task_name: str,
    given: Mapping[str, Any],
    run_id: int | None,
    *,
    attempt: int = 1,
) -> Outcome:
    """Execute one task in the foreground, outside the scheduler. With `run_id`, the run's
    params and logical date come from the environment when it carries them for this
    very run (`run_from_env`: a kubernetes pod, which has no state database), else from
    the state database."""
    from dagctl.hints import did_you_mean
    from dagctl.managers.base import TaskContext
    from dagctl.runner import run_foreground

    dag = load_dag(settings.dags, dag_name)
    task = dag.tasks.get(task_name)
    if task is None:
        raise UsageError(
            f"DAG {dag.name!r} has no task {task_name!r}",
            did_you_mean(task_name, dag.tasks) or f"tasks: {', '.join(dag.tasks)}",
        )
    logical_date = utcnow()
    params_given = dict(given)
    from_env = run_from_env(dag.name, run_id) if run_id is not None else None
    if from_env is not None:
        logical_date, run_params = from_env
        params_given = {**run_params, **params_given}
    elif run_id is not None:
        store = open_store(settings, migrate=False)
        try:
            rows = store.runs(run_id=run_id, limit=1)
        finally:
            store.close()
        if not rows or rows[0]["dag_name"] != dag.name:
            raise UsageError(f"no run {run_id} of DAG {dag.name!r}")
        logical_date = rows[0]["logical_date"]
        params_given = {**json.loads(rows[0]["params"]), **params_given}
    params = resolve(dag.name, dag.params, params_given)
    context = TaskContext(
        dag=dag.name,
        task=task.name,
        run_id=run_id,
        attempt=attempt,
        logical_date=logical_date,
        params=params,
        secret_params=dag.secret_params,
    )
    return run_foreground(dag, task, context)


def run_from_env(dag_name: str, run_id: int) -> tuple[datetime, dict[str, Any]] | None:
    """The logical date (naive UTC, as stored) and params of run `run_id` from
    DAGCTL_LOGICAL_DATE and DAGCTL_PARAMS, when DAGCTL_RUN_ID and DAGCTL_DAG say they
    describe this run of this DAG (so a task calling `dagctl run` for another run never
    picks up its own); None otherwise."""
    import os
    from datetime import timezone

    env = os.environ
    if env.get("DAGCTL_RUN_ID") != str(run_id) or env.get("DAGCTL_DAG") != dag_name:
        return None
    raw_params, raw_date = env.get("DAGCTL_PARAMS"), env.get("DAGCTL_LOGICAL_DATE")
    if raw_params is None or not raw_date:
        return None
    try:
        params = json.loads(raw_params)
        logical_date = datetime.fromisoformat(raw_date)
    except ValueError as exc:
        raise UsageError(f"cannot read run {run_id} from DAGCTL_PARAMS/DAGCTL_LOGICAL_DATE: {exc}") from None
    if not isinstance(params, dict):
        raise UsageError("DAGCTL_PARAMS must hold a JSON object")
    if logical_date.tzinfo is not None:
        logical_date = logical_date.astimezone(timezone.utc).replace(tzinfo=None)
    return logical_date, params


def schedule(settings: Settings, manager_name: str, **options: Any) -> int:
    from dagctl.cron import clock_from_env
    from dagctl.managers import get_manager
    from dagctl.scheduler import Scheduler, SchedulerOptions

    if not settings.dags.is_dir():
        raise UsageError(
            f"DAGs folder {str(settings.dags)!r} does not exist", "pass --dags PATH or set DAGCTL_DAGS"
        )
    scheduler_options = SchedulerOptions.from_env(**options)
    manager = get_manager(manager_name, scheduler_options.concurrency)
    store = open_store(settings, migrate=True)
    try:
        return Scheduler(store, settings.dags, manager, scheduler_options, clock=clock_from_env()).run()
    finally:
        store.close()


def upgrade_db(settings: Settings) -> str:
    from dagctl.store import Store

    store = Store(settings.db_url)
    try:
        return store.upgrade()
    finally:
        store.close()


def status(settings: Settings, dag_name: str | None, run_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Recent runs, newest first, each with its task attempts (JSON-ready)."""
    store = open_store(settings, migrate=False)
    try:
        runs = store.runs(dag_name=dag_name, run_id=run_id, limit=limit)
        attempts = store.task_runs([r["id"] for r in runs])
    finally:
        store.close()
    if run_id is not None and not runs:
        raise UsageError(f"no run {run_id}", "run dagctl status to see recent runs")
    by_run: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_run.setdefault(attempt["dag_run_id"], []).append(attempt)
    return [_run_json(run, by_run.get(run["id"], [])) for run in runs]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return round(((end or utcnow()) - start).total_seconds(), 3)


def _run_json(run: Mapping[str, Any], attempts: list[dict[str, Any]]) -> dict[str, Any]:
    latest: dict[str, dict[str, Any]] = {}
    for attempt in attempts:
        if attempt["task_name"] not in latest or attempt["attempt"] > latest[attempt["task_name"]]["attempt"]:
            latest[attempt["task_name"]] = attempt
    return {
        "id": run["id"],
        "dag": run["dag_name"],
        "kind": run["kind"],
        "creator": run["creator"],
        "status": run["status"],
        "error": run["error"],
        "logical_date": _iso(run["logical_date"]),
        "created_at": _iso(run["created_at"]),
        "started_at": _iso(run["started_at"]),
        "ended_at": _iso(run["ended_at"]),
        "duration_s": _seconds(run["started_at"], run["ended_at"]),
        "tasks": [
            {
                "task": a["task_name"],
                "status": a["status"],
                "attempt": a["attempt"],
                "exit_code": a["exit_code"],
                "error": a["error"],
                "host": a["host"],
                "started_at": _iso(a["started_at"]),
                "ended_at": _iso(a["ended_at"]),
                "duration_s": _seconds(a["started_at"], a["ended_at"]) if a["started_at"] else None,
            }
            for a in latest.values()
        ],
    }
