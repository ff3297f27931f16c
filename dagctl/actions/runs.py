"""Starting work: trigger a run, run one task in the foreground, run the scheduler,
upgrade the state database. Also the Python API (`dagctl.trigger_dag`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dagctl.actions.common import load_dag, open_store
from dagctl.config import Settings
from dagctl.dags.cron import utcnow
from dagctl.dags.model import Dag
from dagctl.dags.templating import RunDates
from dagctl.errors import UsageError

if TYPE_CHECKING:
    from dagctl.execution.attempt import Outcome
    from dagctl.store.liveness import Presence


def trigger_run(
    settings: Settings,
    dag_name: str,
    given: Mapping[str, Any],
    creator: str,
    logical_date: datetime | None = None,
) -> int:
    """Check params against the DAG first (nothing is written if they are wrong), then queue
    a run for `logical_date` (default: now), its data interval from the DAG's schedule and
    its templated param defaults rendered for it."""
    return _queue(settings, load_dag(settings.dags, dag_name), given, creator, logical_date, None)[0]


def trigger_with_notices(
    settings: Settings,
    dag_name: str,
    given: Mapping[str, Any],
    creator: str,
    logical_date_text: str | None = None,
) -> tuple[int, list[str], Dag]:
    """`dagctl trigger`: queue a run, then say what would keep it from running (paused,
    no live scheduler that has loaded the DAG, parameters nothing provides). Also the
    DAG as loaded, which `--wait` shows the run's tasks by."""
    from dagctl.actions.common import stale_after_s
    from dagctl.dags.templating import parse_logical_date

    dag = load_dag(settings.dags, dag_name)
    when = parse_logical_date(logical_date_text, dag) if logical_date_text else None
    # The presence is read in the trigger's own transaction when the driver path can.
    run_id, presence = _queue(settings, dag, given, creator, when, stale_after_s())
    return run_id, run_notices(settings, dag, presence), dag


def run_notices(settings: Settings, dag: Dag, presence: Presence | None = None) -> list[str]:
    """What would keep a run of `dag` from starting; `presence`: as read already."""
    import os

    from dagctl.actions.common import presence_notice, stale_after_s, store_session
    from dagctl.dags.checks import missing_parameters
    from dagctl.store.fast_trigger import read_presence

    notices = [
        f"{task.name} needs parameter {name!r}, which is no param of {dag.name} and is not set in"
        " worker_config.env nor here: the scheduler's environment must set it, or the task fails"
        for task, name in missing_parameters(dag, os.environ)
    ]
    if presence is None:
        presence = read_presence(settings.db_url, dag.name, stale_after_s(), utcnow())
    if presence is None:
        with store_session(settings) as store:
            presence = store.presence(dag.name, stale_after_s())
    if presence.paused:
        notices.append(
            f"{dag.name} is paused: the run starts once it is unpaused (dagctl unpause {dag.name})"
        )
    else:
        waiting = presence_notice(dag.name, presence)
        if waiting:
            notices.append(waiting)
    return notices


def _queue(
    settings: Settings,
    dag: Dag,
    given: Mapping[str, Any],
    creator: str,
    logical_date: datetime | None,
    stale_after_s: float | None,
) -> tuple[int, Presence | None]:
    """Queue the run; with `stale_after_s`, also the DAG's presence when the driver
    path could read it in the same transaction (else None: the caller asks)."""
    from dagctl.dags.templating import dates_for_manual, resolve_run_params

    dates = dates_for_manual(dag, logical_date or utcnow())
    params = resolve_run_params(dag, dates, given)
    check_runnable(dag)
    interval = (dates.data_interval_start, dates.data_interval_end)
    from dagctl.store import fast_trigger as quick

    # Without SQLAlchemy when it can (a migrated database): most of a trigger's time
    # would be importing it.
    run = quick.ManualRun(dag.name, dict(params), creator, dates.logical_date, dag.fingerprint, interval)
    queued = quick.queue_run(settings.db_url, run, utcnow, stale_after_s)
    if queued is not None:
        return queued
    store = open_store(settings, migrate=True)
    try:
        now = utcnow()
        run_id = store.trigger(
            dag.name, params, creator, dates.logical_date, dag.fingerprint, now, data_interval=interval
        )
        return run_id, None
    finally:
        store.close()


def check_runnable(dag: Dag) -> None:
    """Refuse a run that would certainly fail for want of configuration: a `.sql` task
    without a connection when DATABASE_URL is not set either."""
    import os

    from dagctl.dags.checks import NO_SQL_DATABASE_HINT, sql_database_url

    for task in dag.tasks.values():
        if task.type == "sql" and not task.connection and sql_database_url(dag, task, os.environ) is None:
            raise UsageError(
                f"{dag.name}/{task.name} has no connection and DATABASE_URL is not set: it would fail",
                NO_SQL_DATABASE_HINT,
            )


def trigger(
    dag: str,
    *,
    creator: str,
    params: dict[str, Any],
    dags: str | None = None,
    db: str | None = None,
    logical_date: datetime | None = None,
) -> int:
    return trigger_run(Settings.resolve(dags=dags, db=db), dag, params, creator, logical_date)


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
    from dagctl.dags.templating import dates_for_manual, resolve_run_params

    dates = dates_for_manual(dag, utcnow())
    params_given = dict(given)
    run_outputs: dict[str, Any] = {}
    from_env = run_from_env(dag.name, run_id) if run_id is not None else None
    if from_env is not None:
        dates, run_params = from_env
        dates = replace(dates, timezone=dag.timezone)
        params_given = {**run_params, **params_given}
        run_outputs = outputs_from_env()
    elif run_id is not None:
        store = open_store(settings, migrate=False)
        try:
            rows = store.runs(run_id=run_id, limit=1)
            run_outputs = store.run_outputs([run_id]).get(run_id, {})
        finally:
            store.close()
        if not rows or rows[0]["dag_name"] != dag.name:
            raise UsageError(f"no run {run_id} of DAG {dag.name!r}")
        row = rows[0]
        start = row.get("data_interval_start") or row["logical_date"]
        end = row.get("data_interval_end") or row["logical_date"]
        dates = RunDates(row["logical_date"], start, end, dag.timezone)
        params_given = {**json.loads(row["params"]), **params_given}
    params = resolve_run_params(dag, dates, params_given)
    context = TaskContext(
        dag=dag.name,
        task=task.name,
        run_id=run_id,
        attempt=attempt,
        logical_date=dates.logical_date,
        params=params,
        secret_params=dag.secret_params,
        data_interval_start=dates.data_interval_start,
        data_interval_end=dates.data_interval_end,
        timezone=dag.timezone,
        # With --run-id: what the run's upstream tasks published, as the scheduler hands over.
        outputs={name: v for name, v in run_outputs.items() if name in dag.upstream_of(task.name)},
    )
    return run_foreground(dag, task, context)


def outputs_from_env() -> dict[str, Any]:
    """The upstream outputs the scheduler put in this process's environment (a pod's
    `dagctl run` has no state database to read them from)."""
    import os

    try:
        value = json.loads(os.environ.get("DAGCTL_OUTPUTS") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def run_from_env(dag_name: str, run_id: int) -> tuple[RunDates, dict[str, Any]] | None:
    """The dates (naive UTC, as stored; time zone UTC) and params of run `run_id` from
    DAGCTL_LOGICAL_DATE, DAGCTL_DATA_INTERVAL_START/END and DAGCTL_PARAMS, when
    DAGCTL_RUN_ID and DAGCTL_DAG say they describe this run of this DAG (so a task
    calling `dagctl run` for another run never picks up its own); None otherwise."""
    import os

    env = os.environ
    if env.get("DAGCTL_RUN_ID") != str(run_id) or env.get("DAGCTL_DAG") != dag_name:
        return None
    raw_params, raw_date = env.get("DAGCTL_PARAMS"), env.get("DAGCTL_LOGICAL_DATE")
    if raw_params is None or not raw_date:
        return None
    try:
        params = json.loads(raw_params)
        logical_date = _utc_naive(raw_date)
        start = _utc_naive(env.get("DAGCTL_DATA_INTERVAL_START") or raw_date)
        end = _utc_naive(env.get("DAGCTL_DATA_INTERVAL_END") or raw_date)
    except ValueError as exc:
        raise UsageError(f"cannot read run {run_id} from DAGCTL_PARAMS/DAGCTL_LOGICAL_DATE: {exc}") from None
    if not isinstance(params, dict):
        raise UsageError("DAGCTL_PARAMS must hold a JSON object")
    return RunDates(logical_date, start, end), params


def _utc_naive(text: str) -> datetime:
    from datetime import timezone

    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def schedule(settings: Settings, manager_name: str, metrics_port: int | None = None, **options: Any) -> int:
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
        scheduler = Scheduler(store, settings.dags, manager, scheduler_options, clock=clock)
        if metrics_port is not None:
            from dagctl.scheduling.metrics import serve_metrics

            serve_metrics(metrics_port, scheduler.owner, scheduler.stats, manager.running)
        return scheduler.run()
    finally:
        store.close()


def upgrade_db(settings: Settings) -> str:
    from dagctl.store import Store

    store = Store(settings.db_url)
    try:
        return store.upgrade()
    finally:
        store.close()
