"""Wake-ups between processes: the NOTIFY the store sends when there is work for others
(on SQLite, a ring of the schedulers' doorbells after the commit, doorbell.py), and what
a scheduler waits on for the others' news (a LISTEN connection on PostgreSQL; on SQLite
its doorbell, and the file's data version now and then). A mixin of `Store` (see store.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import text

from dagctl.store import doorbell
from dagctl.store.driver import NOTIFY_CHANNEL, RUN_ENDED_CHANNEL, sqlite_file

log = logging.getLogger("dagctl.store.wakeup")

# Marks a connection whose transaction queued work for others: SQLite rings the
# schedulers' doorbells once it has committed (store.py's _tx).
RING_AFTER_COMMIT = "dagctl_ring_after_commit"
# How often a scheduler on SQLite reads the data version: every 50 ms without a
# doorbell; with one, only for the writers that do not ring (see doorbell.py).
LOOK_EVERY_S = 0.05
LOOK_EVERY_S_WITH_BELL = 0.25

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine


class WakeupOperations:
    if TYPE_CHECKING:
        engine: Engine
        url: str
        is_postgres: bool
        notify_tag: str
        _joined: Connection | None
        _notify_due: bool
        _notify_urgent: bool
        _watches: list[DataVersionWatch]

    def listener(self) -> Listener | DataVersionWatch:
        """What wakes the loop for other processes' news: a connection LISTENing on
        PostgreSQL, a watch of the file's data version on SQLite."""
        if self.is_postgres:
            return Listener(self.engine, ignore=self.notify_tag)
        watch = DataVersionWatch(self.engine, sqlite_file(self.url))
        self._watches = [watch]  # a scheduler has one; a new one replaces a dropped one
        return watch

    def _committed(self, *, ring: bool) -> None:
        """After each commit of ours: our own change is no news to our watch, and on
        SQLite, when it was news for others (`_notify`), their doorbells ring now that
        it is visible to them."""
        for watch in self._watches:
            watch.settle()
        if ring and (file := sqlite_file(self.url)) is not None:
            doorbell.ring(file, except_bell=self._watches[0].bell if self._watches else None)

    def keep_news(self) -> None:
        """Inside transaction(): send no NOTIFY for the work it queued (the caller took
        all of it, so no other scheduler needs waking); one `_notify(urgent=True)`
        asked for is still sent."""
        self._notify_due = self._notify_due and self._notify_urgent

    def _notify(self, connection: Connection, *, urgent: bool = False) -> None:
        if self._joined is not None:
            self._notify_due = True  # once, when the whole transaction() ends
            self._notify_urgent = self._notify_urgent or urgent
        elif self.is_postgres:
            self._send_notify(connection)
        else:
            # On the connection, not the store: threads share a store (`dagctl serve`).
            connection.info[RING_AFTER_COMMIT] = True

    def _notify_runs_ended(self, connection: Connection, run_ids: Collection[int]) -> None:
        """Sent at commit with the transaction that ended the runs (PostgreSQL)."""
        if self.is_postgres and run_ids:
            connection.execute(
                text("SELECT pg_notify(:channel, :ids)"),
                {"channel": RUN_ENDED_CHANNEL, "ids": " ".join(str(i) for i in sorted(run_ids))},
            )

    def _send_notify(self, connection: Connection) -> None:
        connection.execute(
            text("SELECT pg_notify(:channel, :tag)"), {"channel": NOTIFY_CHANNEL, "tag": self.notify_tag}
        )


class Listener:
    """A dedicated connection, outside the pool, that wakes the loop on NOTIFY."""

    def __init__(self, engine: Engine, ignore: str = "") -> None:
        self._ignore = ignore  # the payload of our own NOTIFYs
        raw = engine.raw_connection()
        # Read before detach(): afterwards the pool's wrapper answers None.
        self._connection = cast(Any, raw.driver_connection)
        raw.detach()  # never handed back to the pool: it stays in LISTEN mode
        self._raw = raw
        try:
            self._connection.autocommit = True
            with self._connection.cursor() as cursor:
                cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except BaseException:
            self.close()  # detached: nobody else would ever close it
            raise

    check_every: float | None = None  # its descriptor says when there is news

    def fileno(self) -> int | None:
        return int(self._connection.fileno())

    def drain(self) -> bool:
        """Read what arrived; True when some of it came from another process (our own
        NOTIFYs, sent for the others, need not wake us)."""
        self._connection.poll()
        foreign = any(n.payload != self._ignore for n in self._connection.notifies)
        self._connection.notifies.clear()
        return foreign

    def close(self) -> None:
        # The DBAPI connection itself: the detached pool wrapper would first roll back,
        # and log that failure with a traceback when the server has gone away.
        with contextlib.suppress(Exception):
            self._connection.close()


class DataVersionWatch:
    """SQLite's stand-in for LISTEN: the scheduler's doorbell (doorbell.py), which the
    processes that queue work ring, and a connection of its own reading
    `PRAGMA data_version`, which changes when another connection commits a change (a
    `trigger`, a `cancel`, another scheduler). The version has no descriptor to wait on,
    so the loop asks every `check_every` seconds; reading it costs microseconds and no
    lock. The store moves its mark past each of its own commits, so only other
    processes' changes count."""

    def __init__(self, engine: Engine, database_file: Path | None) -> None:
        raw = engine.raw_connection()
        self._connection = cast(Any, raw.driver_connection)
        raw.detach()
        self._seen = self._version()
        self._bell: doorbell.Doorbell | None = None
        if database_file is not None:
            try:
                self._bell = doorbell.Doorbell(database_file)
            except OSError as exc:  # a folder we may not write to: the data version alone
                log.debug("no doorbell beside %s: %s", database_file, exc)
        self.check_every: float | None = LOOK_EVERY_S if self._bell is None else LOOK_EVERY_S_WITH_BELL

    @property
    def bell(self) -> Path | None:
        return None if self._bell is None else self._bell.path

    def _version(self) -> int:
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def fileno(self) -> int | None:
        return None if self._bell is None else self._bell.fileno()

    def settle(self) -> None:
        """After a commit of our own: what has changed so far is known."""
        with contextlib.suppress(Exception):
            self._seen = self._version()

    def drain(self) -> bool:
        """True when another process rang or committed a change since we last looked.
        A ring counts even when our own commit has moved the mark past its change."""
        rang = self._bell is not None and self._bell.drain()
        version = self._version()
        changed, self._seen = version != self._seen, version
        return changed or rang

    def close(self) -> None:
        if self._bell is not None:
            self._bell.close()
        with contextlib.suppress(Exception):
            self._connection.close()


__all__ = [
    "NOTIFY_CHANNEL",
    "RING_AFTER_COMMIT",
    "RUN_ENDED_CHANNEL",
    "DataVersionWatch",
    "Listener",
    "WakeupOperations",
]
