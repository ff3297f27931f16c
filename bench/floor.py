"""The floor a scheduler hop cannot beat: a bare loop on the same database.

It keeps task rows in a table of its own (`bench_floor_task`, on the database the
workload's scheduler uses) and does, per task, what any database-backed scheduler must:
claim the ready rows in one transaction (FOR UPDATE SKIP LOCKED on PostgreSQL, an
immediate transaction on SQLite), spawn `bash -c true`, wait for its exit, then mark it
done and make its successors ready in one transaction and commit. Nothing else: no
leases, logs, outputs, events, retries. dagctl's run wall measured in the same run is
reported as a ratio to this loop's wall for the same shape and concurrency.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

_SHAPE_SQL = (
    "CREATE TABLE IF NOT EXISTS bench_floor_task (run INTEGER NOT NULL, idx INTEGER NOT NULL,"
    " status TEXT NOT NULL, waiting INTEGER NOT NULL, PRIMARY KEY (run, idx))"
)
_CLAIM = {
    "postgres": (
        "UPDATE bench_floor_task SET status = 'running' WHERE (run, idx) IN ("
        " SELECT run, idx FROM bench_floor_task WHERE run = %s AND status = 'ready'"
        " ORDER BY idx LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING idx"
    ),
    "sqlite": (
        "UPDATE bench_floor_task SET status = 'running' WHERE run = ? AND idx IN ("
        " SELECT idx FROM bench_floor_task WHERE run = ? AND status = 'ready' ORDER BY idx LIMIT ?)"
        " RETURNING idx"
    ),
}


class _Conn:
    """One connection, durability as dagctl sets it (WAL + synchronous=NORMAL on
    SQLite; PostgreSQL's is the server's, which the harness starts with fsync off)."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith("postgres")
        if self.postgres:
            import psycopg2

            self.raw: Any = psycopg2.connect(url)
        else:
            self.raw = sqlite3.connect(url.split("///", 1)[1], timeout=30, isolation_level=None)
            self.raw.execute("PRAGMA journal_mode=WAL")
            self.raw.execute("PRAGMA synchronous=NORMAL")
        self.cursor = self.raw.cursor()

    def begin(self) -> None:
        if not self.postgres:
            self.cursor.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.postgres:
            self.raw.commit()
        else:
            self.cursor.execute("COMMIT")

    def sql(self, statement: str) -> str:
        return statement if self.postgres else statement.replace("%s", "?")


def run_floor(url: str, run: int, successors: Sequence[Sequence[int]], concurrency: int) -> float:
    """Run one DAG (task i's successors are successors[i]) through the bare loop;
    return its wall in seconds, from the insert of its rows to the last commit."""
    waiting = [0] * len(successors)
    for nexts in successors:
        for n in nexts:
            waiting[n] += 1
    conn = _Conn(url)
    try:
        conn.begin()
        conn.cursor.execute(_SHAPE_SQL)
        conn.commit()
        started = time.perf_counter()
        conn.begin()
        conn.cursor.executemany(
            conn.sql("INSERT INTO bench_floor_task VALUES (%s, %s, %s, %s)"),
            [(run, i, "ready" if w == 0 else "waiting", w) for i, w in enumerate(waiting)],
        )
        conn.commit()
        _loop(conn, run, successors, concurrency)
        return time.perf_counter() - started
    finally:
        conn.raw.close()


def _loop(conn: _Conn, run: int, successors: Sequence[Sequence[int]], concurrency: int) -> None:
    running: dict[int, int] = {}  # pid -> task index
    done = 0
    finish = conn.sql("UPDATE bench_floor_task SET status = 'success' WHERE run = %s AND idx = %s")
    release = conn.sql(
        "UPDATE bench_floor_task SET waiting = waiting - 1,"
        " status = CASE WHEN waiting = 1 THEN 'ready' ELSE status END WHERE run = %s AND idx = %s"
    )
    while done < len(successors):
        free = concurrency - len(running)
        if free > 0:
            conn.begin()
            if conn.postgres:
                conn.cursor.execute(_CLAIM["postgres"], (run, free))
            else:
                conn.cursor.execute(_CLAIM["sqlite"], (run, run, free))
            claimed = [int(row[0]) for row in conn.cursor.fetchall()]
            conn.commit()
            for idx in claimed:
                running[os.posix_spawnp("bash", ["bash", "-c", "true"], os.environ)] = idx
        if not running:
            raise RuntimeError(f"floor loop stuck: {done} of {len(successors)} tasks done, none ready")
        pid, _status = os.wait()
        idx = running.pop(pid)
        conn.begin()
        conn.cursor.execute(finish, (run, idx))
        for n in successors[idx]:
            conn.cursor.execute(release, (run, n))
        conn.commit()
        done += 1


def chain_shape(length: int) -> list[list[int]]:
    return [[i + 1] for i in range(length - 1)] + [[]]


def fan_shape(width: int) -> list[list[int]]:
    """0 -> 1..width -> width + 1."""
    return [list(range(1, width + 1))] + [[width + 1] for _ in range(width)] + [[]]
