"""The state database through its DB-API driver alone (sqlite3, psycopg2), for the
terminal commands' fast paths: `trigger` (fast_trigger.py), `list` and `status`
(fast_reads.py), `trigger --wait` (fast_follow.py).

Importing SQLAlchemy costs a `dagctl` start 0.3-0.7 s, more than these commands may
take in all. These paths answer only when sure: a plain URL (no query options, which
only SQLAlchemy knows how to pass on) naming an existing database at this code's
revision. Otherwise they decline (None) and the caller takes the full path, which
migrates, and explains errors the usual way. This module holds what they share: the
connection, the revision check, and the row decoding SQLAlchemy would have done.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dagctl.store.revision import HEAD_REVISION

SQLITE_SCHEMES = ("sqlite", "sqlite+pysqlite")
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg2")
# How long a statement waits for a lock held by another process, as engine.py sets it.
SQLITE_BUSY_TIMEOUT_S = 30
# The NOTIFY channels, here because the driver-only paths (trigger, trigger --wait)
# use them without importing SQLAlchemy (store/wakeup.py sends on both).
NOTIFY_CHANNEL = "dagctl"  # schedulers listen: work was queued
# Followers of a run (`trigger --wait`, store/fast_follow.py) listen here; schedulers do
# not, so a run's end wakes no loop. The payload is the ended runs' ids.
RUN_ENDED_CHANNEL = "dagctl_run_ended"

# The columns SQLAlchemy turns into datetime / bool on the way out of SQLite (which
# stores text and integers); tests/unit/test_fast_reads_columns.py holds them to tables.py.
DATETIME_COLUMNS = {
    "dag_run": frozenset(
        {"logical_date", "scheduled_slot", "created_at", "started_at", "ended_at"}
        | {"data_interval_start", "data_interval_end"}
    ),
    "task_run": frozenset({"not_before", "queued_at", "started_at", "ended_at", "lease_expires_at"}),
}
BOOLEAN_COLUMNS = {"dag_run": frozenset({"dirty"}), "task_run": frozenset[str]()}


def dialect_of(url: str) -> str | None:
    """ "sqlite" or "postgresql" for a plain URL these paths can serve, else None."""
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        return None
    if parts.scheme in SQLITE_SCHEMES:
        return "sqlite"
    if parts.scheme in POSTGRES_SCHEMES:
        return "postgresql"
    return None


def sqlite_file(url: str) -> Path | None:
    """The existing file an SQLite URL names; None for a new or in-memory database
    (the full path creates and migrates it)."""
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        return None
    file = Path(path).expanduser()
    return file if file.is_file() else None


def connect(url: str) -> Any:
    """A DB-API connection for a plain URL to an existing database, None for any
    other; a driver error when it cannot connect. SQLite connections run in autocommit
    mode (no implicit transaction: each read sees the newest commit; writers say BEGIN)."""
    dialect = dialect_of(url)
    if dialect == "sqlite":
        import sqlite3

        file = sqlite_file(url)
        if file is None:
            return None
        return sqlite3.connect(str(file), timeout=SQLITE_BUSY_TIMEOUT_S, isolation_level=None)
    if dialect == "postgresql":
        import psycopg2

        dsn = url.replace("postgresql+psycopg2://", "postgresql://", 1)
        # The same options as dagctl.store.engine.create.
        return psycopg2.connect(dsn, connect_timeout=5, application_name="dagctl")
    return None


def is_postgres(connection: Any) -> bool:
    return "sqlite" not in type(connection).__module__


def placeholder(connection: Any) -> str:
    """The driver's parameter marker."""
    return "%s" if is_postgres(connection) else "?"


def at_head(cursor: Any) -> bool:
    """Whether the schema is exactly the revision this code reads and writes."""
    cursor.execute("SELECT version_num FROM alembic_version")
    return [tuple(row) for row in cursor.fetchall()] == [(HEAD_REVISION,)]


def open_at_head(url: str) -> Any:
    """`connect`, then the revision check: a connection, or None (nothing to close)
    when these paths must decline, whatever the reason."""
    try:
        connection = connect(url)
    except Exception:  # cannot connect here: the full path reports it properly
        return None
    if connection is None:
        return None
    # No alembic_version table, a driver error: the full path decides.
    with contextlib.suppress(Exception):
        if at_head(connection.cursor()):
            return connection
    connection.close()
    return None


def sqlite_time(value: datetime) -> str:
    """How SQLAlchemy stores a DateTime in SQLite."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def to_datetime(value: Any) -> datetime | None:
    """A DateTime column as SQLAlchemy hands it back (SQLite stores text)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def typed_rows(cursor: Any, table: str) -> list[dict[str, Any]]:
    """The rows of the last SELECT * FROM `table` as SQLAlchemy returns them."""
    names = [column[0] for column in cursor.description]
    times, flags = DATETIME_COLUMNS[table], BOOLEAN_COLUMNS[table]
    rows = []
    for values in cursor.fetchall():
        row = dict(zip(names, values, strict=True))
        for name in times.intersection(row):
            row[name] = to_datetime(row[name])
        for name in flags.intersection(row):
            row[name] = None if row[name] is None else bool(row[name])
        rows.append(row)
    return rows
