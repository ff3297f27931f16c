"""Starting work: trigger a run, run one task in the foreground, run the scheduler,
upgrade the state database. Also the Python API (`dagctl.trigger_dag`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dagctl.actions.common import load_dag, open_store
from dagctl.config import Settings
from dagctl.dags.cron import utcnow
from dagctl.dags.params import resolve
from dagctl.errors import UsageError

if TYPE_CHECKING:
    from dagctl.execution.attempt import Outcome


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
    from dagctl.store import fast_trigger as quick

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
    from dagctl.dags.hints import did_you_mean
    from dagctl.execution.attempt import TaskContext
    from dagctl.execution.foreground import run_foreground

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
    from dagctl.config import tuning
    from dagctl.managers import get_manager
    from dagctl.scheduling.clock import DatabaseClock
    from dagctl.scheduling.scheduler import Scheduler, SchedulerOptions

    if not settings.dags.is_dir():
        raise UsageError(
            f"DAGs folder {str(settings.dags)!r} does not exist", "pass --dags PATH or set DAGCTL_DAGS"
        )
    scheduler_options = SchedulerOptions.from_tuning(tuning(), **options)
    manager = get_manager(manager_name, scheduler_options.concurrency)
    store = open_store(settings, migrate=True)
    try:
        # The database's clock, sampled by the loop (DAGCTL_FAKE_NOW: an offset on it).
        clock = DatabaseClock(store.database_now(), tuning().fake_now)
        return Scheduler(store, settings.dags, manager, scheduler_options, clock=clock).run()
    finally:
        store.close()


def upgrade_db(settings: Settings) -> str:
    from dagctl.store import Store

    store = Store(settings.db_url)
    try:
        return store.upgrade()
    finally:
        store.close()
