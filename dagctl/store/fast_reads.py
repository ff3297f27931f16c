"""`list` and `status` without SQLAlchemy: the stored DAG summaries, paused flags and
newest runs; the recent runs with their attempts; read with the DB-API driver
(sqlite3, psycopg2) in plain SELECTs.

Like every driver-only path (store/driver.py) this answers only when sure (a plain
URL, a database at this revision); otherwise None, and the caller takes the full
path, which also explains any error the usual way.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from dagctl.store.driver import is_postgres, open_at_head, placeholder, sqlite_time, to_datetime, typed_rows

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


def _unserved(cursor: Any, stale_after_s: float) -> dict[str, int]:
    if not is_postgres(cursor.connection):
        # SQLite heartbeats are on this host's clock, stored as SQLAlchemy writes them.
        since = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=stale_after_s)
        cursor.execute(
            _UNSERVED.format(served=_SERVED.format(live=_LIVE_SQLITE)),
            (sqlite_time(since),) * 2,
        )
    else:
        cursor.execute(_UNSERVED.format(served=_SERVED.format(live=_LIVE_POSTGRES)), (stale_after_s,) * 2)
    return {queue: int(n) for queue, n in cursor.fetchall()}


def read_listing(url: str, stale_after_s: float | None = None) -> Listing | None:
    """`stale_after_s`: also read the unserved queues, a scheduler being alive while
    its heartbeat is younger than that."""
    connection = open_at_head(url)
    if connection is None:
        return None
    try:
        cursor = connection.cursor()
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
                "logical_date": to_datetime(logical_date),
                "created_at": to_datetime(created_at),
                "ended_at": to_datetime(ended_at),
            }
        unserved = None if stale_after_s is None else _unserved(cursor, stale_after_s)
        return Listing(summaries, states, unserved)
    except Exception:  # a driver error, a malformed row: the full path decides
        return None
    finally:
        connection.close()


def read_runs(
    url: str, dag_name: str | None, run_id: int | None, limit: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """As Store.runs and Store.task_runs of those runs (store/reads.py), or None."""
    connection = open_at_head(url)
    if connection is None:
        return None
    p = placeholder(connection)
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
