"""The advance's read of active runs and attempts, through the DB-API cursor.

This query returns one row per attempt of every running run of the DAGs being advanced:
in a chain of 1,000 tasks, up to 1,000 rows at every hop. SQLAlchemy's row objects and
result processing cost more than the database's work on those rows, so the prebuilt
SQL text goes to the driver's cursor, in the caller's transaction, and only the two
datetime columns of each run (not of each attempt) are converted on SQLite."""

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
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, tuple(dag_names))
        rows = cursor.fetchall()
    finally:
        cursor.close()
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
        if task is None:
            continue
        seen = per_run.get(task)
        if seen is None or attempt > seen.attempt:
            per_run[task] = AttemptSnapshot(task, attempt, row[10])
    return list(runs.values()), {run_id: tasks for run_id, tasks in latest.items() if tasks}


def _run_snapshot(row: Sequence[Any], is_postgres: bool) -> RunSnapshot:
    run_id, dag_name, status, logical_date, backfill_id, max_active, reverse, started = row[:8]
    if not is_postgres:  # SQLite hands back text for DateTime columns
        logical_date, started = _sqlite_time(logical_date), _sqlite_time(started)
    return RunSnapshot(
        run_id, dag_name, status, logical_date, backfill_id, max_active, bool(reverse), started
    )
