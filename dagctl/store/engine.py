"""Connecting to the state database, and bringing its schema to the current revision.

SQLite: one file, WAL mode, every transaction `BEGIN IMMEDIATE` so that claims are
atomic across processes on one host. PostgreSQL: any number of hosts; migrations are
serialised with an advisory lock and the revision is checked again once it is held.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
)

from dagctl import secrets
from dagctl.errors import DatabaseError
from dagctl.store.revision import HEAD_REVISION

log = logging.getLogger("dagctl.store")

_MIGRATION_LOCK_KEY = 0x6461_6763  # "dagc": one advisory-lock key for every dagctl database
MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# A pooled PostgreSQL connection idle this long is pinged before it is used again.
PING_AFTER_IDLE_S = 2.0
_UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table
# What make_url raises for a URL it cannot parse ("host:notaport" is a ValueError).
_BAD_URL = (ArgumentError, ValueError)


def mask_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except _BAD_URL:
        return "<malformed URL>"


def describe_target(url: str) -> str:
    """host/port/db/user for error messages, never the password."""
    try:
        parsed = make_url(url)
    except _BAD_URL:
        return "a malformed URL"
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {parsed.database or ':memory:'}"
    return f"host={parsed.host} port={parsed.port or 5432} db={parsed.database} user={parsed.username}"


def connection_error(url: str, exc: BaseException) -> DatabaseError:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = detail[0] if detail else type(exc).__name__
    password = None
    with contextlib.suppress(*_BAD_URL):
        password = make_url(url).password
    if password:
        reason = reason.replace(str(password), "***")
    # The server answered but refused what we sent (a value too long, a constraint):
    # DATABASE_URL is fine, and saying otherwise sends people the wrong way.
    refused = isinstance(exc, (DataError, IntegrityError))
    return DatabaseError(
        f"{'the state database refused a write' if refused else 'cannot use the state database'}"
        f" ({describe_target(url)}): {reason}",
        "a bug in dagctl: rerun with -v and report it"
        if refused
        else "check DATABASE_URL / --db and that the server is running",
    )


def create(url: str) -> Engine:
    secrets.register_url(url)  # masked in every log and message of this process
    try:
        parsed = make_url(url)
    except _BAD_URL:
        raise DatabaseError(
            f"malformed database URL {mask_url(url)!r}",
            "use postgresql://user:password@host:5432/db or sqlite:///path/to/file.db",
        ) from None
    backend = parsed.get_backend_name()
    try:
        if backend == "sqlite":
            return _sqlite_engine(url, parsed.database)
        if backend == "postgresql":
            if parsed.drivername == "postgresql":
                # SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql://; dagctl ships psycopg2.
                parsed = parsed.set(drivername="postgresql+psycopg2")
            engine = create_engine(
                parsed,
                pool_size=4,
                max_overflow=4,
                pool_use_lifo=True,  # keep reusing the one warm connection
                connect_args={
                    "connect_timeout": 5,
                    "application_name": "dagctl",
                    "options": f"-c idle_in_transaction_session_timeout={_idle_in_transaction_ms()}",
                },
            )
            _ping_when_idle(engine)
            return engine
    except NoSuchModuleError:
        pass
    raise DatabaseError(
        f"unsupported state database {backend!r} in {mask_url(url)}", "use PostgreSQL or SQLite"
    )


def _idle_in_transaction_ms() -> int:
    """A process stalled inside a transaction (SIGSTOP, a frozen VM) would hold its row
    locks, and SKIP LOCKED reapers would pass its expired attempts over for as long as
    it stalls. PostgreSQL ends such a session after a third of the lease (at most 5 s):
    dagctl never waits between the statements of a transaction for anything else."""
    from dagctl.config import tuning

    return int(1000 * min(5.0, max(0.2, tuning().lease_seconds / 3)))


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it sat idle for a while (the
    server may have restarted meanwhile), instead of a round trip before every
    transaction (pool_pre_ping). A connection that breaks while busy fails its
    transaction: the scheduler abandons that iteration and the pool reconnects."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError(str(exc)) from exc  # the pool connects afresh


def _sqlite_engine(url: str, database: str | None) -> Engine:
    if database and database != ":memory:":
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (pysqlite would defer it past the first read).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two processes can never both read
        # "ready" and then both claim the same task attempt.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# ---------------------------------------------------------------- migrations


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as connection:
            row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
            return str(row[0]) if row else None
    except OperationalError as exc:
        if _is_missing_table(exc):
            return None
        raise connection_error(str(engine.url), exc) from None
    except DBAPIError as exc:
        if _is_missing_table(exc):
            return None
        raise connection_error(str(engine.url), exc) from None


def _is_missing_table(exc: DBAPIError) -> bool:
    """Whether the error says the alembic_version table is missing (an empty database),
    not that the server refused us: a database or role that does not exist also "does
    not exist", and must be reported as what it is."""
    pgcode = getattr(exc.orig, "pgcode", None)
    if pgcode is not None:
        return bool(pgcode == _UNDEFINED_TABLE)
    return "no such table" in str(exc.orig).lower()


def ensure_schema(engine: Engine, *, migrate: bool) -> None:
    """Check the schema revision; when `migrate`, upgrade to head first (once, under a lock)."""
    url = engine.url.render_as_string(hide_password=False)
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    if not migrate:
        raise DatabaseError(
            f"the state database ({describe_target(url)}) is not migrated "
            f"(revision {revision or 'none'}, expected {HEAD_REVISION})",
            "run dagctl db upgrade",
        )
    upgrade(engine)


def upgrade(engine: Engine) -> str:
    """Apply pending migrations; safe when several processes start at once."""
    try:
        return _upgrade_locked(engine)
    except DBAPIError as exc:  # connecting, locking or migrating: one clear line, exit 3
        raise connection_error(engine.url.render_as_string(hide_password=False), exc) from None


def _upgrade_locked(engine: Engine) -> str:
    with _migration_lock(engine) as connection:
        # Another process may have migrated while we waited for the lock.
        revision = _revision_on(connection)
        if revision == HEAD_REVISION:
            return revision
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = connection
        log.info("migrating the state database from %s to %s", revision or "empty", HEAD_REVISION)
        command.upgrade(config, "head")
        return HEAD_REVISION


def _revision_on(connection: Any) -> str | None:
    from sqlalchemy import inspect

    # Look before reading: on PostgreSQL a failed SELECT would abort the transaction.
    if not inspect(connection).has_table("alembic_version"):
        return None
    row = connection.execute(text("SELECT version_num FROM alembic_version")).first()
    return str(row[0]) if row else None


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[Any]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            connection.commit()
            # Migrating may pause between statements (importing alembic): not idle.
            connection.execute(text("SET LOCAL idle_in_transaction_session_timeout = 0"))
            try:
                yield connection
                connection.commit()
            finally:
                connection.rollback()  # a no-op after the commit; clears a failed migration
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    lock_path = Path(database + ".migrate-lock") if database and database != ":memory:" else None
    handle = lock_path.open("a") if lock_path else None
    try:
        if handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
        with engine.connect() as connection:
            yield connection
            connection.commit()
    finally:
        if handle:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
