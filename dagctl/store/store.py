"""The state store: every database operation dagctl performs, each one transaction.

Callers get plain values back (records.py); no session or row object leaves the
package. Safety across schedulers lives in the SQL itself: the unique slot key,
`FOR UPDATE SKIP LOCKED` claims, lease owners in every WHERE clause, and transitions
checked against the states table.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Hashable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from dagctl.dags.cron import utcnow
from dagctl.store import engine as engines
from dagctl.store.adoption import AdoptionOperations
from dagctl.store.attempts import AttemptOperations
from dagctl.store.backfills import BackfillOperations
from dagctl.store.children import ChildOperations
from dagctl.store.control import ControlOperations
from dagctl.store.dag_limits import DagLimitOperations
from dagctl.store.dashboard import DashboardOperations
from dagctl.store.fanout import FanoutOperations
from dagctl.store.foreground import ForegroundOperations
from dagctl.store.installation import InstallationOperations
from dagctl.store.limited_claims import LimitedClaimOperations
from dagctl.store.notifications import NotificationOperations
from dagctl.store.outputs import OutputOperations
from dagctl.store.pools import PoolOperations
from dagctl.store.presence import PresenceOperations
from dagctl.store.priorities import PriorityOperations
from dagctl.store.prune import PruneOperations
from dagctl.store.queue_limits import QueueLimitOperations
from dagctl.store.queues import QueueOperations
from dagctl.store.reads import ReadOperations
from dagctl.store.runs import RunOperations
from dagctl.store.summaries import SummaryOperations
from dagctl.store.tables import scheduler, scheduler_dag
from dagctl.store.wakeup import RING_AFTER_COMMIT, DataVersionWatch, WakeupOperations


class Store(
    WakeupOperations,
    RunOperations,
    AttemptOperations,
    ReadOperations,
    ControlOperations,
    AdoptionOperations,
    BackfillOperations,
    PruneOperations,
    PresenceOperations,
    ForegroundOperations,
    DashboardOperations,
    NotificationOperations,
    PoolOperations,
    QueueOperations,
    PriorityOperations,
    OutputOperations,
    InstallationOperations,
    ChildOperations,
    FanoutOperations,
    DagLimitOperations,
    QueueLimitOperations,
    LimitedClaimOperations,
    SummaryOperations,
):
    """Every operation dagctl performs on its state, one mixin per concern: runs.py
    (DAG rows, creating and advancing runs), attempts.py (claims, ends, leases, logs),
    reads.py (the terminal commands' reads), control.py (pause, cancel, retry),
    adoption.py, wakeup.py (NOTIFY). This class holds the engine, the transactions and
    the scheduler's own row."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = engines.create(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        # The NOTIFY payload: a listener in this process ignores its own news.
        self.notify_tag = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._joined: Connection | None = None  # the open transaction(), if any
        self._notify_due = False
        self._notify_urgent = False
        self._host = socket.gethostname()
        # The scheduler's hot statements, built once: building one (and its cache key)
        # costs SQLAlchemy more than the database takes to run it.
        self._built: dict[Hashable, Any] = {}
        self._watches: list[DataVersionWatch] = []

    # ------------------------------------------------------------ plumbing

    def ensure_schema(self, *, migrate: bool) -> None:
        engines.ensure_schema(self.engine, migrate=migrate)

    def upgrade(self) -> str:
        return engines.upgrade(self.engine)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        # Every database failure leaves as a DatabaseError: the transaction rolled back
        # whole, and callers above the store never need to know SQLAlchemy.
        if self._joined is not None:
            yield self._joined  # inside transaction(): its commit is the caller's
            return
        news = False
        try:
            with self.engine.begin() as connection:
                try:
                    yield connection
                finally:
                    # The mark must not outlive this use of the pooled connection. A
                    # broken one refuses even this; its marks went with it (invalidated).
                    with contextlib.suppress(Exception):
                        news = bool(connection.info.pop(RING_AFTER_COMMIT, False))
        except DBAPIError as exc:
            raise engines.connection_error(self.url, exc) from exc
        self._committed(ring=news)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Run several named operations as ONE transaction: all of them commit, or none
        does (a DatabaseError leaves). The scheduler advances runs and claims the task
        runs that creates this way, so a new task run costs no commit of its own; it
        starts what it claimed only once this has committed. The operations' NOTIFYs are
        sent once, at the end, unless `keep_news()` said nobody else needs them."""
        if self._joined is not None:
            yield
            return
        news = False
        try:
            with self.engine.begin() as connection:
                self._joined, self._notify_due, self._notify_urgent = connection, False, False
                try:
                    yield
                    news = self._notify_due
                    if news and self.is_postgres:
                        self._send_notify(connection)
                finally:
                    self._joined, self._notify_due, self._notify_urgent = None, False, False
        except DBAPIError as exc:
            raise engines.connection_error(self.url, exc) from exc
        self._committed(ring=news and not self.is_postgres)  # SQLite rings once committed

    def _joined_tx(self, operation: str) -> Connection:
        """The open transaction(), for the operations whose locks must outlast them (the
        two halves of an advance): alone, each would commit and release its locks."""
        if self._joined is None:
            raise RuntimeError(f"Store.{operation} must be called inside Store.transaction()")
        return self._joined

    def close(self) -> None:
        self.engine.dispose()

    def _statement(self, key: Hashable, build: Callable[[], Any]) -> Any:
        statement = self._built.get(key)
        if statement is None:
            statement = self._built[key] = build()
        return statement

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

    def _insert_missing(self, table: Any) -> Any:
        """An INSERT of many rows that skips those already there (ON CONFLICT DO
        NOTHING), sent 1,000 rows a statement on PostgreSQL: without RETURNING (its
        primary key here), SQLAlchemy 2.1 sends it one row a round trip (10,000 DAG
        rows: 0.9 s, with it 0.4 s). Not for every such INSERT: what it returns leaves
        the process larger (the `list` summaries' upsert through it kept a scheduler of
        10,000 DAGs ~3 MB larger). SQLite's executemany is one call."""
        statement = self._insert(table).on_conflict_do_nothing()
        return statement.returning(*table.primary_key.columns) if self.is_postgres else statement

    def _db_now(self) -> Any:
        """The database's clock on PostgreSQL, so leases never depend on a host's clock
        (F23); on single-host SQLite, this host's."""
        if self.is_postgres:
            return func.timezone("utc", func.now())
        return utcnow()

    def _lease_until(self, lease_seconds: float) -> Any:
        if self.is_postgres:
            return func.timezone("utc", func.now()) + func.make_interval(0, 0, 0, 0, 0, 0, lease_seconds)
        return utcnow() + timedelta(seconds=lease_seconds)

    def database_now(self) -> datetime:
        """The database's clock (naive UTC): what schedulers sharing it decide by. On
        SQLite, whose schedulers share one host, this host's."""
        if not self.is_postgres:
            return utcnow()
        with self._tx() as connection:
            now = select(func.timezone("utc", func.clock_timestamp()))
            value: datetime = connection.execute(now).scalar_one()
        return value

    # ------------------------------------------------------------ scheduler instances

    def register_scheduler(self, owner: str, manager: str, now: datetime) -> None:
        with self._tx() as connection:
            connection.execute(
                insert(scheduler).values(
                    id=owner,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    manager=manager,
                    started_at=now,
                    heartbeat_at=self._db_now(),
                )
            )

    def unregister_scheduler(self, owner: str, now: datetime) -> None:
        with self._tx() as connection:
            connection.execute(update(scheduler).where(scheduler.c.id == owner).values(stopped_at=now))
            connection.execute(delete(scheduler_dag).where(scheduler_dag.c.scheduler_id == owner))


__all__ = ["Store"]
