"""`list` and `status` without SQLAlchemy: the stored DAG summaries, paused flags and
newest runs; the recent runs with their attempts; read with the DB-API driver
(sqlite3, psycopg2) in plain SELECTs.

Importing SQLAlchemy costs a `dagctl` start 0.3-0.7 s, more than `list` may take in
all. Like fast_trigger, this answers only when sure (a plain URL, a database at this
revision); otherwise None, and the caller takes the full path, which also explains
any error the usual way.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dagctl.store.revision import HEAD_REVISION

# As ReadOperations.dag_summaries (store/reads.py), in plain SQL.
_PAUSED = "SELECT name, paused FROM dag"
_NEWEST_RUNS = (
    "SELECT id, dag_name, status, logical_date, created_at, ended_at FROM dag_run"
    " WHERE id IN (SELECT max(id) FROM dag_run GROUP BY dag_name)"
)
_SUMMARIES = "SELECT name, stamp, summary FROM dag_summary"
# As QueueOperations.unserved_queues (store/queues.py): the work queues with queued
# attempts that no live scheduler serves; {live} is the heartbeat threshold.
_UNSERVED = (
    "SELECT q.queue, count(*) FROM (SELECT COALESCE((SELECT tq.queue FROM task_queue tq"
    " WHERE tq.dag_name = t.dag_name AND tq.task_name = t.task_name), 'default') AS queue"
    " FROM task_run t WHERE t.status IN ('queued', 'waiting'))"  # CLAIMABLE_TASK
    " AS q WHERE q.queue NOT IN ({served}) AND EXISTS ({served}) GROUP BY q.queue ORDER BY q.queue"
)
_SERVED = "SELECT sq.queue FROM scheduler_queue sq JOIN scheduler s ON s.id = sq.scheduler_id WHERE {live}"
_LIVE_SQLITE = "s.stopped_at IS NULL AND s.heartbeat_at >= ?"
_LIVE_POSTGRES = (
    "s.stopped_at IS NULL AND s.heartbeat_at >= timezone('utc', now()) - make_interval(secs => %s)"
)

# The columns SQLAlchemy turns into datetime / bool on the way out of SQLite (which
# stores text and integers); tests/unit/test_fast_reads.py holds them to tables.py.
DATETIME_COLUMNS = {
    "dag_run": frozenset(
        {"logical_date", "scheduled_slot", "created_at", "started_at", "ended_at"}
        | {"data_interval_start", "data_interval_end"}
    ),
    "task_run": frozenset({"not_before", "queued_at", "started_at", "ended_at", "lease_expires_at"}),
}
BOOLEAN_COLUMNS = {"dag_run": frozenset({"dirty"}), "task_run": frozenset[str]()}


class Listing:
    """What `list` reads from the database: {name: (stamp, summary)} as the schedulers
    stored them, {name: {"paused", "last_run"}} as Store.dag_summaries gives it, and
    {queue: queued attempts} of the queues no live scheduler serves."""

    def __init__(
        self,
        summaries: dict[str, tuple[str, dict[str, Any]]],
        states: dict[str, dict[str, Any]],
        unserved: dict[str, int] | None = None,
    ):
        self.summaries = summaries
        self.states = states
        self.unserved = unserved or {}


def connect_plain(url: str) -> Any:
    """A DB-API connection for a plain URL (no options), None for any other."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        return None
    if parts.scheme in ("sqlite", "sqlite+pysqlite"):
        import sqlite3

        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path == ":memory:" or not Path(path).expanduser().is_file():
            return None
        return sqlite3.connect(str(Path(path).expanduser()), timeout=30)
    if parts.scheme in ("postgresql", "postgresql+psycopg2"):
        import psycopg2

        dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
        return psycopg2.connect(dsn, connect_timeout=5, application_name="dagctl")
    return None


def _time(value: Any) -> datetime | None:
    """A DateTime column as SQLAlchemy hands it back (SQLite stores text)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _unserved(cursor: Any, stale_after_s: float) -> dict[str, int]:
    if type(cursor).__module__.startswith("sqlite3"):
        # SQLite heartbeats are on this host's clock, stored as SQLAlchemy writes them.
        since = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=stale_after_s)
        cursor.execute(
            _UNSERVED.format(served=_SERVED.format(live=_LIVE_SQLITE)),
            (since.strftime("%Y-%m-%d %H:%M:%S.%f"),) * 2,
        )
    else:
        cursor.execute(_UNSERVED.format(served=_SERVED.format(live=_LIVE_POSTGRES)), (stale_after_s,) * 2)
    return {queue: int(n) for queue, n in cursor.fetchall()}


def read_listing(url: str, stale_after_s: float | None = None) -> Listing | None:
    """`stale_after_s`: also read the unserved queues, a scheduler being alive while
    its heartbeat is younger than that."""
    try:
        connection = connect_plain(url)
    except Exception:  # cannot connect here: the full path reports it properly
        return None
    if connection is None:
        return None
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT version_num FROM alembic_version")
        if [tuple(r) for r in cursor.fetchall()] != [(HEAD_REVISION,)]:
            return None
        cursor.execute(_SUMMARIES)
        summaries = {name: (stamp, json.loads(summary)) for name, stamp, summary in cursor.fetchall()}
        cursor.execute(_PAUSED)
        states: dict[str, dict[str, Any]] = {
            name: {"paused": bool(paused), "last_run": None} for name, paused in cursor.fetchall()
        }
        cursor.execute(_NEWEST_RUNS)
        for run_id, dag_name, status, logical_date, created_at, ended_at in cursor.fetchall():
            entry = states.setdefault(dag_name, {"paused": False, "last_run": None})
            entry["last_run"] = {
                "id": run_id,
                "status": status,
                "logical_date": _time(logical_date),
                "created_at": _time(created_at),
                "ended_at": _time(ended_at),
            }
        unserved = None if stale_after_s is None else _unserved(cursor, stale_after_s)
        return Listing(summaries, states, unserved)
    except Exception:  # a driver error, a malformed row: the full path decides
        return None
    finally:
        connection.close()


def typed_rows(cursor: Any, table: str) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    times, flags = DATETIME_COLUMNS[table], BOOLEAN_COLUMNS[table]
    rows = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for name in times.intersection(row):
            row[name] = _time(row[name])
        for name in flags.intersection(row):
            row[name] = None if row[name] is None else bool(row[name])
        rows.append(row)
    return rows


def read_runs(
    url: str, dag_name: str | None, run_id: int | None, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """As Store.runs and Store.task_runs of those runs (store/reads.py), or None."""
    try:
        connection = connect_plain(url)
    except Exception:  # cannot connect here: the full path reports it properly
        return None
    if connection is None:
        return None
    p = "?" if "sqlite" in type(connection).__module__ else "%s"
    where: list[str] = []
    args: list[Any] = []
    if dag_name:
        where.append(f"dag_name = {p}")
        args.append(dag_name)
    if run_id is not None:
        where.append(f"id = {p}")
        args.append(run_id)
    # Only placeholders are joined into the text; every value is a bound parameter.
    query = "SELECT * FROM dag_run" + (" WHERE " + " AND ".join(where) if where else "")  # noqa: S608
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT version_num FROM alembic_version")
        if [tuple(r) for r in cursor.fetchall()] != [(HEAD_REVISION,)]:
            return None
        cursor.execute(f"{query} ORDER BY id DESC LIMIT {int(limit)}", args)
        runs = typed_rows(cursor, "dag_run")
        if not runs:
            return runs, []
        ids = [int(run["id"]) for run in runs]
        cursor.execute(
            f"SELECT * FROM task_run WHERE dag_run_id IN ({', '.join([p] * len(ids))})"  # noqa: S608
            " ORDER BY dag_run_id, queued_at, id",
            ids,
        )
        return runs, typed_rows(cursor, "task_run")
    except Exception:  # a driver error, a malformed row: the full path decides
        return None
    finally:
        connection.close()
