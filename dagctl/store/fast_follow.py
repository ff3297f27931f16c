"""Following one run without SQLAlchemy: `trigger --wait`, `status --watch`-style views.

Importing SQLAlchemy and polling every half second made a `trigger --wait` of a
one-task DAG take 0.6-0.8 s beyond the task's own run. This reads the run and its
attempts with the DB-API driver (store/driver.py) and, between reads, waits for a
change instead of sleeping: on PostgreSQL a LISTEN on the channel the store notifies
when a run ends (with a short poll as the fallback for ends that send nothing, such
as a cancel); on SQLite `PRAGMA data_version`, which moves when another connection
commits. Like fast_reads it answers only when sure (a plain URL, a database at this
revision); otherwise None, and the caller follows through the store.
"""

from __future__ import annotations

import contextlib
import select
import time
from typing import Any

from dagctl.store.driver import RUN_ENDED_CHANNEL, is_postgres, open_at_head, placeholder, typed_rows

# What a PostgreSQL follower waits at most between reads, for changes that send no
# NOTIFY (a task starting, a run cancelled or failed by a reaper).
PG_POLL_S = 0.25
# SQLite: how often data_version is read; it costs microseconds and takes no lock.
SQLITE_CHECK_S = 0.01
# At most this often a read of the run and all its attempts: a busy scheduler commits
# (and moves data_version) many times a second, and a run may have thousands of tasks.
MIN_READ_SPACING_S = 0.05


class RunFollower:
    """One connection reading one run; `wait` returns once something may have changed."""

    def __init__(self, connection: Any, postgres: bool) -> None:
        self._connection = connection
        self._postgres = postgres
        self._p = placeholder(connection)
        self._seen: int | None = None
        self._last_read = 0.0

    @classmethod
    def open(cls, url: str) -> RunFollower | None:
        connection = open_at_head(url)
        if connection is None:
            return None
        postgres = is_postgres(connection)
        if postgres:
            try:
                # Out of the revision check's transaction: LISTEN takes effect at once,
                # and each read sees every commit.
                connection.rollback()
                connection.autocommit = True
                connection.cursor().execute(f"LISTEN {RUN_ENDED_CHANNEL}")
            except Exception:
                connection.close()
                return None
        return cls(connection, postgres)

    def read(self, run_id: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]] | None:
        """The run and its attempts in queue order (as Store.run_with_attempts); None
        on a driver error (the caller then follows through the store)."""
        self._last_read = time.monotonic()
        try:
            cursor = self._connection.cursor()
            if not self._postgres:
                self._seen = int(cursor.execute("PRAGMA data_version").fetchone()[0])
            cursor.execute(f"SELECT * FROM dag_run WHERE id = {self._p}", (run_id,))  # noqa: S608
            runs = typed_rows(cursor, "dag_run")
            if not runs:
                return None, []
            cursor.execute(
                f"SELECT * FROM task_run WHERE dag_run_id = {self._p} ORDER BY queued_at, id",  # noqa: S608
                (run_id,),
            )
            return runs[0], typed_rows(cursor, "task_run")
        except Exception:
            return None

    def wait(self, at_most: float) -> None:
        """Until another process may have changed the run, or `at_most` seconds."""
        deadline = time.monotonic() + at_most
        spacing = self._last_read + MIN_READ_SPACING_S - time.monotonic()
        if spacing > 0:
            time.sleep(min(spacing, at_most))
        if self._postgres:
            with contextlib.suppress(Exception):
                timeout = max(0.0, min(PG_POLL_S, deadline - time.monotonic()))
                select.select([self._connection], [], [], timeout)
                self._connection.poll()
                self._connection.notifies.clear()
            return
        while time.monotonic() < deadline:
            time.sleep(SQLITE_CHECK_S)
            try:
                version = int(self._connection.execute("PRAGMA data_version").fetchone()[0])
            except Exception:
                return
            if version != self._seen:
                return

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()


__all__ = ["PG_POLL_S", "RUN_ENDED_CHANNEL", "RunFollower"]
