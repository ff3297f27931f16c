"""The `trigger` fast path: queue one run with the driver alone (sqlite3, psycopg2).

Importing SQLAlchemy takes about 0.3 s, most of a `dagctl trigger`. Queuing a run is
two INSERTs, so this module does them with the DB-API driver directly (store/driver.py),
exactly as `Store.trigger` does (same rows, same NOTIFY), in one transaction, and reads
in it what `trigger` says afterwards (paused, live schedulers): one connection, and on
PostgreSQL one round trip. It only does so when it can be sure: a plain URL, a schema
at the current revision. Otherwise, and on any error before the commit, it returns
None having written nothing, and the caller takes the full path (which migrates, and
explains errors the usual way).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from dagctl.store.doorbell import ring
from dagctl.store.driver import (
    NOTIFY_CHANNEL,
    SQLITE_BUSY_TIMEOUT_S,
    at_head,
    connect,
    dialect_of,
    open_at_head,
    sqlite_file,
    sqlite_time,
)
from dagctl.store.liveness import Presence
from dagctl.store.revision import HEAD_REVISION

_INSERT_DAG = (
    "INSERT INTO dag (name, paused, fingerprint, last_slot, first_seen_at, updated_at)"
    " VALUES ({p}, {false}, {p}, NULL, {p}, {p}) ON CONFLICT DO NOTHING"
)
_INSERT_RUN = (
    "INSERT INTO dag_run (dag_name, kind, creator, logical_date, scheduled_slot, params, status, dirty,"
    " fingerprint, created_at, data_interval_start, data_interval_end)"
    " VALUES ({p}, 'manual', {p}, {p}, NULL, {p}, 'queued', {true}, {p}, {p}, {p}, {p})"
    " RETURNING id"
)


def trigger(
    url: str,
    dag_name: str,
    params: Mapping[str, Any],
    creator: str,
    logical_date: datetime | None,
    fingerprint: str | None,
    clock: Callable[[], datetime],
    data_interval: tuple[datetime, datetime] | None = None,
) -> int | None:
    """Queue a manual run and return its id; None when the full path must do it. The
    run is stamped by `clock` once connected (its logical date too, unless given)."""
    run = ManualRun(dag_name, dict(params), creator, logical_date, fingerprint, data_interval)
    queued = queue_run(url, run, clock, None)
    return None if queued is None else queued[0]


class ManualRun(NamedTuple):
    dag_name: str
    params: dict[str, Any]
    creator: str
    logical_date: datetime | None  # None: the time it is queued
    fingerprint: str | None
    data_interval: tuple[datetime, datetime] | None  # None: the logical date's instant


def queue_run(
    url: str, run: ManualRun, clock: Callable[[], datetime], stale_after_s: float | None
) -> tuple[int, Presence | None] | None:
    """Queue `run` and return its id and, with `stale_after_s`, the DAG's presence
    read in the same transaction (as Store.presence, a scheduler being alive while its
    heartbeat is younger than that); None when the full path must do it."""
    dialect = dialect_of(url)
    if dialect == "sqlite":
        return _sqlite(url, run, clock, stale_after_s)
    if dialect == "postgresql":
        return _postgres(url, run, clock, stale_after_s)
    return None


def _values(run: ManualRun, now: datetime, time: Callable[[datetime], Any]) -> tuple[Any, ...]:
    """The parameters of _INSERT_DAG then _INSERT_RUN, as Store.trigger writes them."""
    logical_date = run.logical_date or now
    start, end = run.data_interval or (logical_date, logical_date)
    return (
        *(run.dag_name, run.fingerprint, time(now), time(now)),
        *(run.dag_name, run.creator, time(logical_date), json.dumps(run.params), run.fingerprint),
        *(time(now), time(start), time(end)),
    )


def _sqlite(
    url: str, run: ManualRun, clock: Callable[[], datetime], stale_after_s: float | None
) -> tuple[int, Presence | None] | None:
    import sqlite3

    try:
        connection = connect(url)
    except sqlite3.Error:
        return None
    if connection is None:
        return None  # a new database: the full path creates and migrates it
    try:
        try:
            # As dagctl.store.engine sets up every SQLite connection.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
            connection.execute("BEGIN IMMEDIATE")
            cursor = connection.cursor()
            if not at_head(cursor):
                connection.rollback()
                return None
            now = clock()  # connected: the run is created now
            values = _values(run, now, sqlite_time)
            cursor.execute(_INSERT_DAG.format(p="?", false="0"), values[:4])
            cursor.execute(_INSERT_RUN.format(p="?", true="1"), values[4:])
            run_id = int(cursor.fetchone()[0])
            presence = None
            if stale_after_s is not None:
                presence = quick_presence(connection, "sqlite", run.dag_name, stale_after_s, now)
        except sqlite3.Error:
            connection.rollback()
            return None
        _commit(url, connection)
        file = sqlite_file(url)
        if file is not None:
            ring(file)  # the schedulers' NOTIFY (doorbell.py)
        return run_id, presence
    finally:
        connection.close()


def _postgres(
    url: str, run: ManualRun, clock: Callable[[], datetime], stale_after_s: float | None
) -> tuple[int, Presence | None] | None:
    try:
        import psycopg2
    except ImportError:
        return None
    try:
        connection = connect(url)
    except (psycopg2.Error, ValueError):
        return None
    try:
        # One round trip: the statements of one simple query run as one implicit
        # transaction, committed when the last succeeds and rolled back on any error.
        connection.autocommit = True
        import socket

        tag = f"{socket.gethostname()}:{os.getpid()}:trigger"
        now = clock()  # connected: the run is created now
        args = (HEAD_REVISION, *_values(run, now, _same), NOTIFY_CHANNEL, tag)
        if stale_after_s is not None:
            args += (run.dag_name, stale_after_s, run.dag_name, stale_after_s)
        cursor = connection.cursor()
        try:
            cursor.execute(_PG_QUEUE_PRESENCE if stale_after_s is not None else _PG_QUEUE, args)
            row = cursor.fetchone()
        except psycopg2.Error as exc:
            if connection.closed:  # lost on the way: it may or may not have committed
                raise connection_error(url, exc) from exc
            return None  # the server refused it (another schema): nothing was written
        if row is None:
            return None
        return int(row[0]), None if stale_after_s is None else _presence(row[2:])
    finally:
        connection.close()


def _same(value: datetime) -> datetime:
    return value


def _commit(url: str, connection: Any) -> None:
    """After the INSERTs: a failure here may or may not have committed, so it is an
    error (retrying on the full path could queue the run twice)."""
    try:
        connection.commit()
    except Exception as exc:
        raise connection_error(url, exc) from exc


def connection_error(url: str, exc: BaseException) -> Exception:
    from dagctl.store.engine import connection_error as explained

    return explained(url, exc)


# As PresenceOperations.presence (store/presence.py), in plain SQL.
_PRESENCE_COLUMNS = (
    "(SELECT paused FROM dag WHERE name = {p}),"
    " (SELECT count(*) FROM scheduler s WHERE s.stopped_at IS NULL AND s.heartbeat_at >= {since}),"
    " (SELECT count(*) FROM scheduler_dag d JOIN scheduler s ON s.id = d.scheduler_id"
    "  WHERE d.dag_name = {p} AND s.stopped_at IS NULL AND s.heartbeat_at >= {since})"
)
# On PostgreSQL the database's own clock decides who is alive.
_PG_SINCE = "timezone('utc', now()) - make_interval(secs => %s)"
# A trigger on PostgreSQL in one round trip. The first statement fails (division by
# zero) unless the schema is exactly this code's revision, and then nothing is written.
# Fixed text only is joined here: every value is a bound parameter.
_PG_QUEUE = (
    "SELECT 1 / (SELECT count(*) FILTER (WHERE version_num = %s)"  # noqa: S608
    " * (count(*) = 1)::int FROM alembic_version);\n"
    + _INSERT_DAG.format(p="%s", false="false")
    + ";\nWITH run AS ("
    + _INSERT_RUN.format(p="%s", true="true")
    + ") SELECT run.id, pg_notify(%s, %s) FROM run"
)
_PG_QUEUE_PRESENCE = _PG_QUEUE.replace(
    " FROM run", ", " + _PRESENCE_COLUMNS.format(p="%s", since=_PG_SINCE) + " FROM run"
)


def quick_presence(
    connection: Any, dialect: str, dag_name: str, stale_after_s: float, now: datetime
) -> Presence:
    """`presence` on a DB-API connection (sqlite3 or psycopg2). On SQLite heartbeats
    are this host's clock (`now`); on PostgreSQL the database's own clock decides."""
    cursor = connection.cursor()
    try:
        if dialect == "postgresql":
            cursor.execute(
                "SELECT " + _PRESENCE_COLUMNS.format(p="%s", since=_PG_SINCE),
                (dag_name, stale_after_s, dag_name, stale_after_s),
            )
        else:
            threshold = sqlite_time(now - timedelta(seconds=stale_after_s))
            columns = _PRESENCE_COLUMNS.format(p="?", since="?")
            cursor.execute("SELECT " + columns, (dag_name, threshold, dag_name, threshold))
        return _presence(cursor.fetchone())
    finally:
        cursor.close()


def _presence(row: Any) -> Presence:
    paused, live, knowing = row
    return Presence(paused=bool(paused), live_schedulers=int(live), live_knowing=int(knowing))


def read_presence(url: str, dag_name: str, stale_after_s: float, now: datetime) -> Presence | None:
    """`Store.presence` without SQLAlchemy, on a migrated database; None when the full
    path must answer (another URL form, a database not at this revision)."""
    connection = open_at_head(url)
    if connection is None:
        return None
    try:
        return quick_presence(connection, dialect_of(url) or "", dag_name, stale_after_s, now)
    except Exception:  # a driver error: the full path decides
        return None
    finally:
        connection.close()
