"""The `trigger` fast path: queue one run with the driver alone (sqlite3, psycopg2).

Importing SQLAlchemy takes about 0.3 s, most of a `dagctl trigger`. Queuing a run is
two INSERTs, so this module does them with the DB-API driver directly, exactly as
`Store.trigger` does (same rows, same NOTIFY), in one transaction. It only does so
when it can be sure: a plain URL, a schema at the current revision. Otherwise, and on
any error before the commit, it returns None having written nothing, and the caller
takes the full path (which migrates, and explains errors the usual way).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dagctl.store.records import Presence
from dagctl.store.revision import HEAD_REVISION

NOTIFY_CHANNEL = "dagctl"  # as dagctl.store.wakeup.NOTIFY_CHANNEL

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
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        return None  # options only SQLAlchemy knows how to pass on
    scheme = parts.scheme
    if scheme in ("sqlite", "sqlite+pysqlite"):
        return _sqlite(url, dag_name, params, creator, logical_date, fingerprint, clock, data_interval)
    if scheme in ("postgresql", "postgresql+psycopg2"):
        return _postgres(url, dag_name, params, creator, logical_date, fingerprint, clock, data_interval)
    return None


def _sqlite(
    url: str,
    dag_name: str,
    params: Mapping[str, Any],
    creator: str,
    logical_date: datetime | None,
    fingerprint: str | None,
    clock: Callable[[], datetime],
    data_interval: tuple[datetime, datetime] | None = None,
) -> int | None:
    import sqlite3

    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:" or not Path(path).expanduser().is_file():
        return None  # a new database: the full path creates and migrates it
    try:
        connection = sqlite3.connect(str(Path(path).expanduser()), timeout=30, isolation_level=None)
    except sqlite3.Error:
        return None
    try:
        try:
            # As dagctl.store.engine sets up every SQLite connection.
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA busy_timeout=30000")
            connection.execute("BEGIN IMMEDIATE")
            run_id = _insert(
                connection.cursor(),
                "?",
                "0",
                "1",
                _sqlite_time,
                dag_name,
                params,
                creator,
                logical_date,
                fingerprint,
                clock,
                data_interval,
            )
        except sqlite3.Error:
            connection.rollback()
            return None
        if run_id is None:
            connection.rollback()
            return None
        _commit(url, connection)
        return run_id
    finally:
        connection.close()


def _postgres(
    url: str,
    dag_name: str,
    params: Mapping[str, Any],
    creator: str,
    logical_date: datetime | None,
    fingerprint: str | None,
    clock: Callable[[], datetime],
    data_interval: tuple[datetime, datetime] | None = None,
) -> int | None:
    try:
        import psycopg2
    except ImportError:
        return None
    dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
    try:
        # The same options as dagctl.store.engine.create.
        connection = psycopg2.connect(dsn, connect_timeout=5, application_name="dagctl")
    except (psycopg2.Error, ValueError):
        return None
    try:
        try:
            with connection.cursor() as cursor:
                run_id = _insert(
                    cursor,
                    "%s",
                    "false",
                    "true",
                    _same,
                    dag_name,
                    params,
                    creator,
                    logical_date,
                    fingerprint,
                    clock,
                    data_interval,
                )
                if run_id is not None:
                    tag = f"{socket.gethostname()}:{os.getpid()}:trigger"
                    cursor.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, tag))
        except psycopg2.Error:
            connection.rollback()
            return None
        if run_id is None:
            connection.rollback()
            return None
        _commit(url, connection)
        return run_id
    finally:
        connection.close()


def _insert(
    cursor: Any,
    p: str,
    false: str,
    true: str,
    time: Any,
    dag_name: str,
    params: Mapping[str, Any],
    creator: str,
    logical_date: datetime | None,
    fingerprint: str | None,
    clock: Callable[[], datetime],
    data_interval: tuple[datetime, datetime] | None = None,
) -> int | None:
    """The two INSERTs of Store.trigger, after checking the schema revision; None
    (nothing written) when the schema is not the one this code writes for."""
    cursor.execute("SELECT version_num FROM alembic_version")
    if [tuple(r) for r in cursor.fetchall()] != [(HEAD_REVISION,)]:
        return None
    now = clock()  # connected: the run is created now
    logical_date = logical_date or now
    start, end = data_interval or (logical_date, logical_date)
    cursor.execute(_INSERT_DAG.format(p=p, false=false), (dag_name, fingerprint, time(now), time(now)))
    cursor.execute(
        _INSERT_RUN.format(p=p, true=true),
        (
            dag_name,
            creator,
            time(logical_date),
            json.dumps(dict(params)),
            fingerprint,
            time(now),
            time(start),
            time(end),
        ),
    )
    return int(cursor.fetchone()[0])


def _sqlite_time(value: datetime) -> str:
    """How SQLAlchemy stores a DateTime in SQLite."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _same(value: datetime) -> datetime:
    return value


def _commit(url: str, connection: Any) -> None:
    """After the INSERTs: a failure here may or may not have committed, so it is an
    error (retrying on the full path could queue the run twice)."""
    try:
        connection.commit()
    except Exception as exc:
        from dagctl.store.engine import connection_error

        raise connection_error(url, exc) from exc


# As PresenceOperations.presence (store/presence.py), in plain SQL.
_PRESENCE = (
    "SELECT (SELECT paused FROM dag WHERE name = {p}),"
    " (SELECT count(*) FROM scheduler s WHERE s.stopped_at IS NULL AND s.heartbeat_at >= {since}),"
    " (SELECT count(*) FROM scheduler_dag d JOIN scheduler s ON s.id = d.scheduler_id"
    "  WHERE d.dag_name = {p} AND s.stopped_at IS NULL AND s.heartbeat_at >= {since})"
)


def quick_presence(
    connection: Any, dialect: str, dag_name: str, stale_after_s: float, now: datetime
) -> Presence:
    """`presence` on a DB-API connection (sqlite3 or psycopg2), for the trigger fast
    path. On SQLite heartbeats are this host's clock (`now`); on PostgreSQL the
    database's own clock decides."""
    cursor = connection.cursor()
    try:
        if dialect == "postgresql":
            since = "timezone('utc', now()) - make_interval(secs => %s)"
            cursor.execute(
                _PRESENCE.format(p="%s", since=since), (dag_name, stale_after_s, dag_name, stale_after_s)
            )
        else:
            threshold = (now - timedelta(seconds=stale_after_s)).strftime("%Y-%m-%d %H:%M:%S.%f")
            cursor.execute(_PRESENCE.format(p="?", since="?"), (dag_name, threshold, dag_name, threshold))
        paused, live, knowing = cursor.fetchone()
    finally:
        cursor.close()
    return Presence(paused=bool(paused), live_schedulers=int(live), live_knowing=int(knowing))


def read_presence(url: str, dag_name: str, stale_after_s: float, now: datetime) -> Presence | None:
    """`Store.presence` without SQLAlchemy, on a migrated database; None when the full
    path must answer (another URL form, a database not at this revision)."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        return None
    try:
        if parts.scheme in ("sqlite", "sqlite+pysqlite"):
            import sqlite3

            path = url.split(":///", 1)[1] if ":///" in url else ""
            if not path or path == ":memory:" or not Path(path).expanduser().is_file():
                return None
            connection: Any = sqlite3.connect(str(Path(path).expanduser()), timeout=30)
            dialect, errors = "sqlite", (sqlite3.Error,)
        elif parts.scheme in ("postgresql", "postgresql+psycopg2"):
            import psycopg2

            dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
            connection = psycopg2.connect(dsn, connect_timeout=5, application_name="dagctl")
            dialect, errors = "postgresql", (psycopg2.Error,)
        else:
            return None
    except Exception:  # cannot connect here: the full path reports it properly
        return None
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT version_num FROM alembic_version")
        if [tuple(r) for r in cursor.fetchall()] != [(HEAD_REVISION,)]:
            return None
        return quick_presence(connection, dialect, dag_name, stale_after_s, now)
    except errors:
        return None
    finally:
        connection.close()
