"""The advance's reads of runs and attempts, through the DB-API cursor.

The full advance's query returns one row per attempt of every running run of the DAGs
being advanced: in a chain of 1,000 tasks, up to 1,000 rows. SQLAlchemy's row objects
and result processing cost more than the database's work on those rows, so the
prebuilt SQL text goes to the driver's cursor, in the caller's transaction, and only
the two datetime columns of each run (not of each attempt) are converted on SQLite.
The advance after our own ends (below) reads a few rows a hop, the same way."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from dagctl.states import ACTIVE_RUN_VALUES, RunStatus
from dagctl.store.records import AttemptSnapshot, RunSnapshot

_ACTIVE_RUNS = (
    "SELECT r.id, r.dag_name, r.status, r.logical_date, r.backfill_id, b.max_active_runs, b.reverse,"
    " r.started_at, t.task_name, t.attempt, t.status"
    " FROM dag_run r"
    " LEFT OUTER JOIN task_run t ON t.dag_run_id = r.id AND r.status = '{running}'"
    " LEFT OUTER JOIN backfill b ON b.id = r.backfill_id"
    " WHERE r.dag_name IN ({names}) AND r.status IN ({active})"
)
_ACTIVE = ", ".join(f"'{value}'" for value in sorted(ACTIVE_RUN_VALUES))


def _sqlite_time(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def active_runs(
    connection: Connection, is_postgres: bool, dag_names: Sequence[str]
) -> tuple[list[RunSnapshot], dict[int, dict[str, AttemptSnapshot]]]:
    """The active runs of these DAGs and the latest attempt of each task of the
    running ones, in one query (as ReadOperations used to build it with SQLAlchemy)."""
    placeholder = "%s" if is_postgres else "?"
    sql = _ACTIVE_RUNS.format(
        running=RunStatus.RUNNING.value, names=", ".join([placeholder] * len(dag_names)), active=_ACTIVE
    )
    rows = _fetch(connection, sql, tuple(dag_names))
    runs: dict[int, RunSnapshot] = {}
    latest: dict[int, dict[str, AttemptSnapshot]] = {}
    per_run: dict[str, AttemptSnapshot] = {}
    current = None
    for row in rows:
        run_id, task, attempt = row[0], row[8], row[9]
        if run_id != current:
            current = run_id
            if run_id not in runs:
                runs[run_id] = _run_snapshot(row, is_postgres)
            per_run = latest.setdefault(run_id, {})
        if task is not None:
            _keep_latest(per_run, task, attempt, row[10])
    return list(runs.values()), {run_id: tasks for run_id, tasks in latest.items() if tasks}


def _run_snapshot(row: Sequence[Any], is_postgres: bool) -> RunSnapshot:
    run_id, dag_name, status, logical_date, backfill_id, max_active, reverse, started = row[:8]
    if not is_postgres:  # SQLite hands back text for DateTime columns
        logical_date, started = _sqlite_time(logical_date), _sqlite_time(started)
    return RunSnapshot(
        run_id, dag_name, status, logical_date, backfill_id, max_active, bool(reverse), started
    )


# The advance of the runs whose attempts this scheduler just recorded as succeeded
# (runs.lock_runs_of_ends): it locks those runs and reads only the tasks it decides from,
# so a hop costs the same in a chain of 20 or of 1,000.
_RUNS_AND_TASKS = (
    "SELECT r.id, r.dag_name, r.status, r.logical_date, r.started_at, t.task_name, t.attempt, t.status"
    " FROM dag_run r LEFT OUTER JOIN task_run t ON t.dag_run_id = r.id AND ({tasks})"
    " WHERE r.id IN ({ids}) AND r.status = '{running}' ORDER BY r.id"
)
_TASKS_OF_RUNS = "SELECT dag_run_id, task_name, attempt, status FROM task_run WHERE dag_run_id IN ({ids})"


def running_runs_and_tasks(
    connection: Connection, is_postgres: bool, wanted: dict[int, frozenset[str]]
) -> tuple[list[RunSnapshot], dict[int, dict[str, AttemptSnapshot]]]:
    """Those of these runs still running, locked in id order on PostgreSQL (as
    store/runs.py's in_id_order does: transactions that lock runs this way never
    deadlock with each other), with the latest attempt of each task named for each, in
    one statement."""
    placeholder = "%s" if is_postgres else "?"
    tasks, values = [], []
    for run_id, names in sorted(wanted.items()):
        tasks.append(f"(r.id = {placeholder} AND t.task_name IN ({', '.join([placeholder] * len(names))}))")
        values += [run_id, *sorted(names)]
    sql = _RUNS_AND_TASKS.format(
        tasks=" OR ".join(tasks),
        ids=", ".join([placeholder] * len(wanted)),
        running=RunStatus.RUNNING.value,
    )
    if is_postgres:
        sql += " FOR UPDATE OF r"
    runs: list[RunSnapshot] = []
    latest: dict[int, dict[str, AttemptSnapshot]] = {}
    for row in _fetch(connection, sql, (*values, *sorted(wanted))):
        run_id, task, attempt = row[0], row[5], row[6]
        if run_id not in latest:
            latest[run_id] = {}
            logical_date, started_at = row[3], row[4]
            if not is_postgres:  # SQLite hands back text for DateTime columns
                logical_date, started_at = _sqlite_time(row[3]), _sqlite_time(row[4])
            runs.append(RunSnapshot(run_id, row[1], row[2], logical_date, started_at=started_at))
        if task is not None:
            _keep_latest(latest[run_id], task, attempt, row[7])
    return runs, latest


def latest_attempts(
    connection: Connection, is_postgres: bool, run_ids: Sequence[int]
) -> dict[int, dict[str, AttemptSnapshot]]:
    """The latest attempt of every task of each of these runs."""
    placeholder = "%s" if is_postgres else "?"
    sql = _TASKS_OF_RUNS.format(ids=", ".join([placeholder] * len(run_ids)))
    latest: dict[int, dict[str, AttemptSnapshot]] = {run_id: {} for run_id in run_ids}
    for run_id, task, attempt, status in _fetch(connection, sql, tuple(run_ids)):
        _keep_latest(latest[run_id], task, attempt, status)
    return latest


def _keep_latest(per_run: dict[str, AttemptSnapshot], task: str, attempt: int, status: str) -> None:
    seen = per_run.get(task)
    if seen is None or attempt > seen.attempt:
        per_run[task] = AttemptSnapshot(task, attempt, status)


def _fetch(connection: Connection, sql: str, values: tuple[Any, ...]) -> list[Any]:
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, values)
        return list(cursor.fetchall())
    finally:
        cursor.close()
