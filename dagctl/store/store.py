"""The state store: every database operation dagctl performs, each one transaction.

Callers get plain values back; no session or row object leaves this module. Safety
across schedulers lives in the SQL itself: the unique slot key, `FOR UPDATE SKIP
LOCKED` claims, lease owners in every WHERE clause, and transitions checked against
the states table.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from dagctl.cron import utcnow
from dagctl.planner import AdvancePlan, AttemptSnapshot, RunSnapshot
from dagctl.states import (
    ACTIVE_RUN,
    CLAIMABLE_TASK,
    RunStatus,
    TaskStatus,
    run_sources,
    task_sources,
)
from dagctl.store import engine as engines
from dagctl.store.tables import dag, dag_run, scheduler, task_log, task_run

NOTIFY_CHANNEL = "dagctl"


@dataclass(frozen=True, slots=True)
class DagState:
    name: str
    paused: bool
    fingerprint: str | None
    last_slot: datetime | None
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedAttempt:
    task_run_id: int
    dag_run_id: int
    dag_name: str
    task_name: str
    attempt: int
    logical_date: datetime
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FinishedAttempt:
    task_run_id: int
    status: str  # success | failed | cancelled
    exit_code: int | None
    error: str | None
    retry_after: float | None  # seconds until the next attempt; None: no more attempts
    log: str = ""
    log_truncated_bytes: int = 0


@dataclass(frozen=True, slots=True)
class LostAttempt:
    task_run_id: int
    dag_run_id: int
    dag_name: str
    task_name: str
    attempt: int


# A function the reaper asks for the retry delay of a lost attempt (None: no retry).
RetryPolicy = Callable[[str, str, int], "float | None"]


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = engines.create(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"

    # ------------------------------------------------------------ plumbing

    def ensure_schema(self, *, migrate: bool) -> None:
        engines.ensure_schema(self.engine, migrate=migrate)

    def upgrade(self) -> str:
        return engines.upgrade(self.engine)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Connection]:
        # Every database failure leaves as a DatabaseError: the transaction rolled back
        # whole, and callers above the store never need to know SQLAlchemy.
        try:
            with self.engine.begin() as connection:
                yield connection
        except DBAPIError as exc:
            raise engines.connection_error(self.url, exc) from exc

    def listener(self) -> Listener:
        """A connection LISTENing for other processes' news (PostgreSQL only)."""
        return Listener(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    def _notify(self, connection: Connection) -> None:
        if self.is_postgres:
            connection.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.is_postgres else sqlite.insert)(table)

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

    # ------------------------------------------------------------ DAG rows

    def sync_dags(self, fingerprints: Mapping[str, str], now: datetime) -> dict[str, DagState]:
        """Make sure every loaded DAG has a row; flag the active runs of changed DAGs so the
        new definition is looked at. Returns the state of every DAG row."""
        with self._tx() as connection:
            states = self._dag_states(connection)
            missing = [name for name in fingerprints if name not in states]
            if missing:
                connection.execute(
                    self._insert(dag).on_conflict_do_nothing(),
                    [
                        {
                            "name": n,
                            "paused": False,
                            "fingerprint": fingerprints[n],
                            "last_slot": None,
                            "first_seen_at": now,
                            "updated_at": now,
                        }
                        for n in missing
                    ],
                )
            changed = [n for n, fp in fingerprints.items() if n in states and states[n].fingerprint != fp]
            if changed:
                connection.execute(
                    update(dag)
                    .where(dag.c.name == bindparam("n"))
                    .values(fingerprint=bindparam("fp"), updated_at=now),
                    [{"n": n, "fp": fingerprints[n]} for n in changed],
                )
                connection.execute(
                    update(dag_run)
                    .where(
                        dag_run.c.dag_name.in_(changed), dag_run.c.status.in_([s.value for s in ACTIVE_RUN])
                    )
                    .values(dirty=True)
                )
            if missing or changed:
                states = self._dag_states(connection)
            return states

    def dag_states(self) -> dict[str, DagState]:
        with self._tx() as connection:
            return self._dag_states(connection)

    def _dag_states(self, connection: Connection) -> dict[str, DagState]:
        rows = connection.execute(
            select(dag.c.name, dag.c.paused, dag.c.fingerprint, dag.c.last_slot, dag.c.first_seen_at)
        )
        return {r.name: DagState(r.name, r.paused, r.fingerprint, r.last_slot, r.first_seen_at) for r in rows}

    def set_paused(self, dag_name: str, paused: bool, now: datetime) -> None:
        with self._tx() as connection:
            connection.execute(
                self._insert(dag)
                .values(
                    name=dag_name,
                    paused=paused,
                    fingerprint=None,
                    last_slot=None,
                    first_seen_at=now,
                    updated_at=now,
                )
                .on_conflict_do_update(
                    index_elements=[dag.c.name], set_={"paused": paused, "updated_at": now}
                )
            )
            if not paused:
                connection.execute(
                    update(dag_run)
                    .where(dag_run.c.dag_name == dag_name, dag_run.c.status == RunStatus.QUEUED.value)
                    .values(dirty=True)
                )
                self._notify(connection)

    # ------------------------------------------------------------ creating runs

    def create_scheduled_runs(
        self, due: Sequence[tuple[str, Sequence[datetime], datetime, str, str]], now: datetime
    ) -> int:
        """For each (dag, slots, watermark, params JSON, fingerprint): one run per slot,
        whatever other schedulers do at the same time (the unique key decides), and the
        watermark moved forward. Returns how many runs this call created."""
        rows = [
            {
                "dag_name": name,
                "kind": "scheduled",
                "creator": "scheduler",
                "logical_date": slot,
                "scheduled_slot": slot,
                "params": params,
                "status": RunStatus.QUEUED.value,
                "dirty": True,
                "fingerprint": fingerprint,
                "created_at": now,
            }
            for name, slots, _, params, fingerprint in due
            for slot in slots
        ]
        with self._tx() as connection:
            created = 0
            if rows:
                statement = self._insert(dag_run).on_conflict_do_nothing(
                    index_elements=[dag_run.c.dag_name, dag_run.c.scheduled_slot]
                )
                created = connection.execute(statement, rows).rowcount or 0
            connection.execute(
                update(dag)
                .where(
                    dag.c.name == bindparam("n"),
                    or_(dag.c.last_slot.is_(None), dag.c.last_slot < bindparam("slot")),
                )
                .values(last_slot=bindparam("slot")),
                [{"n": name, "slot": watermark} for name, _, watermark, _, _ in due],
            )
            if rows:
                self._notify(connection)
            return max(created, 0)

    def trigger(
        self,
        dag_name: str,
        params: Mapping[str, Any],
        creator: str,
        logical_date: datetime,
        fingerprint: str | None,
        now: datetime,
    ) -> int:
        with self._tx() as connection:
            connection.execute(
                self._insert(dag)
                .values(
                    name=dag_name,
                    paused=False,
                    fingerprint=fingerprint,
                    last_slot=None,
                    first_seen_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing()
            )
            run_id = connection.execute(
                insert(dag_run)
                .values(
                    dag_name=dag_name,
                    kind="manual",
                    creator=creator,
                    logical_date=logical_date,
                    scheduled_slot=None,
                    params=json.dumps(dict(params)),
                    status=RunStatus.QUEUED.value,
                    dirty=True,
                    fingerprint=fingerprint,
                    created_at=now,
                )
                .returning(dag_run.c.id)
            ).scalar_one()
            self._notify(connection)
            return int(run_id)

    # ------------------------------------------------------------ advancing runs

    def advance(
        self,
        planner: Callable[
            [
                Mapping[str, bool],
                Sequence[RunSnapshot],
                Mapping[int, Mapping[str, AttemptSnapshot]],
                Callable[[str, str, datetime], str | None],
            ],
            AdvancePlan,
        ],
        now: datetime,
    ) -> AdvancePlan:
        """Lock the DAGs that have flagged runs (skipping ones another scheduler holds), let
        `planner` decide from their active runs, and apply the decisions."""
        with self._tx() as connection:
            flagged = select(dag_run.c.dag_name).where(
                dag_run.c.dirty.is_(True), dag_run.c.status.in_([s.value for s in ACTIVE_RUN])
            )
            locked = select(dag.c.name, dag.c.paused).where(dag.c.name.in_(flagged))
            if self.is_postgres:
                locked = locked.with_for_update(skip_locked=True)
            paused = {r.name: bool(r.paused) for r in connection.execute(locked)}
            if not paused:
                return AdvancePlan()
            run_rows = connection.execute(
                select(dag_run.c.id, dag_run.c.dag_name, dag_run.c.status, dag_run.c.logical_date).where(
                    dag_run.c.dag_name.in_(list(paused)), dag_run.c.status.in_([s.value for s in ACTIVE_RUN])
                )
            ).all()
            runs = [RunSnapshot(r.id, r.dag_name, r.status, r.logical_date) for r in run_rows]
            attempts = self._latest_attempts(
                connection, [r.id for r in runs if r.status == RunStatus.RUNNING]
            )

            def external(other_dag: str, other_task: str, logical_date: datetime) -> str | None:
                return self._external_status(connection, other_dag, other_task, logical_date)

            plan = planner(paused, runs, attempts, external)
            self._apply(connection, plan, [r.id for r in runs], now)
            return plan

    def _latest_attempts(
        self, connection: Connection, run_ids: Sequence[int]
    ) -> dict[int, dict[str, AttemptSnapshot]]:
        latest: dict[int, dict[str, AttemptSnapshot]] = {}
        if not run_ids:
            return latest
        rows = connection.execute(
            select(task_run.c.dag_run_id, task_run.c.task_name, task_run.c.attempt, task_run.c.status).where(
                task_run.c.dag_run_id.in_(run_ids)
            )
        )
        for row in rows:
            per_run = latest.setdefault(row.dag_run_id, {})
            seen = per_run.get(row.task_name)
            if seen is None or row.attempt > seen.attempt:
                per_run[row.task_name] = AttemptSnapshot(row.task_name, row.attempt, row.status)
        return latest

    def _external_status(
        self, connection: Connection, other_dag: str, other_task: str, logical_date: datetime
    ) -> str | None:
        """Status of `other_task` in the latest run of `other_dag` at or before `logical_date`."""
        run_id = connection.execute(
            select(dag_run.c.id)
            .where(dag_run.c.dag_name == other_dag, dag_run.c.logical_date <= logical_date)
            .order_by(dag_run.c.logical_date.desc(), dag_run.c.id.desc())
            .limit(1)
        ).scalar()
        if run_id is None:
            return None
        return connection.execute(
            select(task_run.c.status)
            .where(task_run.c.dag_run_id == run_id, task_run.c.task_name == other_task)
            .order_by(task_run.c.attempt.desc())
            .limit(1)
        ).scalar()

    def _apply(
        self, connection: Connection, plan: AdvancePlan, seen_runs: Sequence[int], now: datetime
    ) -> None:
        if plan.start_runs:
            connection.execute(
                update(dag_run)
                .where(
                    dag_run.c.id.in_(plan.start_runs), dag_run.c.status.in_(run_sources(RunStatus.RUNNING))
                )
                .values(status=RunStatus.RUNNING.value, started_at=now)
            )
        if plan.new_task_runs:
            connection.execute(
                self._insert(task_run).on_conflict_do_nothing(),
                [
                    {
                        "dag_run_id": t.dag_run_id,
                        "dag_name": t.dag_name,
                        "task_name": t.task_name,
                        "attempt": 1,
                        "status": t.status,
                        "not_before": now,
                        "queued_at": now,
                        "ended_at": None if t.status == TaskStatus.QUEUED.value else now,
                        "error": None if t.status == TaskStatus.QUEUED.value else "an input failed",
                    }
                    for t in plan.new_task_runs
                ],
            )
        for final in (RunStatus.SUCCESS, RunStatus.FAILED):
            ids = [run_id for run_id, status in plan.finish_runs if status == final.value]
            if ids:
                connection.execute(
                    update(dag_run)
                    .where(dag_run.c.id.in_(ids), dag_run.c.status.in_(run_sources(final)))
                    .values(status=final.value, ended_at=now)
                )
        settled = sorted(set(seen_runs) - set(plan.still_dirty))
        if settled:
            connection.execute(update(dag_run).where(dag_run.c.id.in_(settled)).values(dirty=False))
        if any(t.status == TaskStatus.QUEUED.value for t in plan.new_task_runs):
            self._notify(connection)

    # ------------------------------------------------------------ claims and leases

    def claim(self, owner: str, limit: int, lease_seconds: float, now: datetime) -> list[ClaimedAttempt]:
        """Take up to `limit` ready attempts, oldest first. No two owners ever get the same one."""
        if limit <= 0:
            return []
        host = socket.gethostname()
        with self._tx() as connection:
            lease_until = self._lease_until(lease_seconds)
            ready = (
                select(task_run.c.id)
                .where(task_run.c.status.in_([s.value for s in CLAIMABLE_TASK]), task_run.c.not_before <= now)
                .order_by(task_run.c.queued_at, task_run.c.id)
                .limit(limit)
            )
            if self.is_postgres:
                ready = ready.with_for_update(skip_locked=True)
            claimed = connection.execute(
                update(task_run)
                .where(
                    task_run.c.id.in_(ready.scalar_subquery()),
                    task_run.c.status.in_(task_sources(TaskStatus.RUNNING)),
                )
                .values(
                    status=TaskStatus.RUNNING.value,
                    lease_owner=owner,
                    lease_expires_at=lease_until,
                    started_at=now,
                    host=host,
                )
                .returning(
                    task_run.c.id,
                    task_run.c.dag_run_id,
                    task_run.c.dag_name,
                    task_run.c.task_name,
                    task_run.c.attempt,
                )
            ).all()
            if not claimed:
                return []
            run_rows = connection.execute(
                select(dag_run.c.id, dag_run.c.logical_date, dag_run.c.params).where(
                    dag_run.c.id.in_({c.dag_run_id for c in claimed})
                )
            )
            runs = {r.id: r for r in run_rows}
        result = [
            ClaimedAttempt(
                c.id,
                c.dag_run_id,
                c.dag_name,
                c.task_name,
                c.attempt,
                runs[c.dag_run_id].logical_date,
                json.loads(runs[c.dag_run_id].params),
            )
            for c in claimed
        ]
        result.sort(key=lambda c: c.task_run_id)
        return result

    def record_pids(self, pids: Mapping[int, int]) -> None:
        if not pids:
            return
        with self._tx() as connection:
            connection.execute(
                update(task_run).where(task_run.c.id == bindparam("i")).values(pid=bindparam("p")),
                [{"i": i, "p": p} for i, p in pids.items()],
            )

    def finish(self, owner: str, finished: Sequence[FinishedAttempt], now: datetime) -> int:
        """Record ended attempts (only those this owner still holds), queue their retries,
        store their remaining logs and flag their runs. Returns how many were recorded."""
        if not finished:
            return 0
        recorded = 0
        with self._tx() as connection:
            flagged: set[int] = set()
            for item in finished:
                row = connection.execute(
                    update(task_run)
                    .where(
                        task_run.c.id == item.task_run_id,
                        task_run.c.lease_owner == owner,
                        task_run.c.status.in_(task_sources(TaskStatus(item.status))),
                    )
                    .values(
                        status=item.status,
                        exit_code=item.exit_code,
                        error=_clip(item.error),
                        ended_at=now,
                        lease_owner=None,
                        lease_expires_at=None,
                    )
                    .returning(
                        task_run.c.dag_run_id, task_run.c.dag_name, task_run.c.task_name, task_run.c.attempt
                    )
                ).first()
                if item.log or item.log_truncated_bytes:
                    self._append_log(connection, item.task_run_id, item.log, item.log_truncated_bytes, now)
                if row is None:
                    continue  # reaped or cancelled meanwhile: its fate is already recorded
                recorded += 1
                flagged.add(row.dag_run_id)
                if item.status == TaskStatus.FAILED.value and item.retry_after is not None:
                    self._queue_retry(connection, row, item.retry_after, now)
            if flagged:
                connection.execute(update(dag_run).where(dag_run.c.id.in_(flagged)).values(dirty=True))
                self._notify(connection)
        return recorded

    def _queue_retry(self, connection: Connection, row: Any, delay: float, now: datetime) -> None:
        status = TaskStatus.WAITING if delay > 0 else TaskStatus.QUEUED
        connection.execute(
            self._insert(task_run).on_conflict_do_nothing(),
            {
                "dag_run_id": row.dag_run_id,
                "dag_name": row.dag_name,
                "task_name": row.task_name,
                "attempt": row.attempt + 1,
                "status": status.value,
                "not_before": now + timedelta(seconds=delay),
                "queued_at": now,
            },
        )

    def renew_leases(self, owner: str, lease_seconds: float) -> int:
        with self._tx() as connection:
            until = self._lease_until(lease_seconds)
            renewed = connection.execute(
                update(task_run)
                .where(task_run.c.lease_owner == owner, task_run.c.status == TaskStatus.RUNNING.value)
                .values(lease_expires_at=until)
            ).rowcount
            connection.execute(
                update(scheduler).where(scheduler.c.id == owner).values(heartbeat_at=self._db_now())
            )
            return int(renewed or 0)

    def reap_expired(self, retry_policy: RetryPolicy, now: datetime) -> list[LostAttempt]:
        """Fail every running attempt whose lease expired (its owner is gone) and queue
        its retry: at-least-once, never twice at the same time."""
        with self._tx() as connection:
            db_now = self._db_now()
            expired = select(task_run.c.id).where(
                task_run.c.status == TaskStatus.RUNNING.value, task_run.c.lease_expires_at < db_now
            )
            if self.is_postgres:
                expired = expired.with_for_update(skip_locked=True)
            rows = connection.execute(
                update(task_run)
                .where(
                    task_run.c.id.in_(expired.scalar_subquery()),
                    task_run.c.status == TaskStatus.RUNNING.value,
                )
                .values(
                    status=TaskStatus.FAILED.value,
                    ended_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    error="lost: its scheduler stopped renewing the lease",
                )
                .returning(
                    task_run.c.id,
                    task_run.c.dag_run_id,
                    task_run.c.dag_name,
                    task_run.c.task_name,
                    task_run.c.attempt,
                )
            ).all()
            for row in rows:
                delay = retry_policy(row.dag_name, row.task_name, row.attempt)
                if delay is not None:
                    self._queue_retry(connection, row, delay, now)
            if rows:
                connection.execute(
                    update(dag_run).where(dag_run.c.id.in_({r.dag_run_id for r in rows})).values(dirty=True)
                )
                self._notify(connection)
        return [LostAttempt(r.id, r.dag_run_id, r.dag_name, r.task_name, r.attempt) for r in rows]

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

    # ------------------------------------------------------------ logs

    def append_logs(self, chunks: Sequence[tuple[int, str]], now: datetime) -> None:
        if not chunks:
            return
        with self._tx() as connection:
            for task_run_id, chunk in chunks:
                self._append_log(connection, task_run_id, chunk, 0, now)

    def _append_log(
        self, connection: Connection, task_run_id: int, chunk: str, truncated: int, now: datetime
    ) -> None:
        next_seq = (
            select(func.coalesce(func.max(task_log.c.seq), 0) + 1)
            .where(task_log.c.task_run_id == task_run_id)
            .scalar_subquery()
        )
        connection.execute(
            insert(task_log).values(
                task_run_id=task_run_id,
                seq=next_seq,
                text=chunk.replace("\x00", ""),
                truncated_bytes=truncated,
                created_at=now,
            )
        )

    def read_log(self, task_run_id: int, after_seq: int = 0) -> list[tuple[int, str, int]]:
        with self._tx() as connection:
            rows = connection.execute(
                select(task_log.c.seq, task_log.c.text, task_log.c.truncated_bytes)
                .where(task_log.c.task_run_id == task_run_id, task_log.c.seq > after_seq)
                .order_by(task_log.c.seq)
            )
            return [(r.seq, r.text, r.truncated_bytes) for r in rows]

    # ------------------------------------------------------------ reading state

    def active_run_count(self) -> int:
        with self._tx() as connection:
            return int(
                connection.execute(
                    select(func.count())
                    .select_from(dag_run)
                    .where(dag_run.c.status.in_([s.value for s in ACTIVE_RUN]))
                ).scalar_one()
            )

    def runs(
        self, dag_name: str | None = None, run_id: int | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        query = select(dag_run).order_by(dag_run.c.id.desc()).limit(limit)
        if dag_name:
            query = query.where(dag_run.c.dag_name == dag_name)
        if run_id is not None:
            query = query.where(dag_run.c.id == run_id)
        with self._tx() as connection:
            return [dict(r._mapping) for r in connection.execute(query)]

    def task_runs(self, run_ids: Sequence[int]) -> list[dict[str, Any]]:
        if not run_ids:
            return []
        with self._tx() as connection:
            rows = connection.execute(
                select(task_run)
                .where(task_run.c.dag_run_id.in_(run_ids))
                .order_by(task_run.c.dag_run_id, task_run.c.queued_at, task_run.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def run_status(self, run_id: int) -> str | None:
        with self._tx() as connection:
            return connection.execute(select(dag_run.c.status).where(dag_run.c.id == run_id)).scalar()


def _clip(message: str | None, limit: int = 4000) -> str | None:
    if message is None or len(message) <= limit:
        return message
    return message[: limit - 1] + "…"


class Listener:
    """A dedicated connection, outside the pool, that wakes the loop on NOTIFY."""

    def __init__(self, engine: Engine) -> None:
        raw = engine.raw_connection()
        raw.detach()  # never handed back to the pool: it stays in LISTEN mode
        self._raw = raw
        self._connection = cast(Any, raw.driver_connection)
        self._connection.autocommit = True
        with self._connection.cursor() as cursor:
            cursor.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def fileno(self) -> int:
        return int(self._connection.fileno())

    def drain(self) -> None:
        self._connection.poll()
        self._connection.notifies.clear()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()


__all__ = ["ClaimedAttempt", "DagState", "FinishedAttempt", "LostAttempt", "Store"]
