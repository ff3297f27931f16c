"""The state store: every database operation dagctl performs, each one transaction.

Callers get plain values back; no session or row object leaves this module. Safety
across schedulers lives in the SQL itself: the unique slot key, `FOR UPDATE SKIP
LOCKED` claims, lease owners in every WHERE clause, and transitions checked against
the states table.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import socket
from collections.abc import Callable, Collection, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    Text,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from dagctl.dags.cron import utcnow
from dagctl.scheduling.planner import AdvancePlan, AttemptSnapshot, RunSnapshot
from dagctl.states import (
    ACTIVE_RUN,
    CLAIMABLE_TASK,
    RunStatus,
    TaskStatus,
    run_sources,
    task_sources,
)
from dagctl.store import engine as engines
from dagctl.store.adoption import AdoptionOperations
from dagctl.store.control import ControlOperations
from dagctl.store.reads import ReadOperations
from dagctl.store.tables import dag, dag_run, scheduler, task_log, task_run

NOTIFY_CHANNEL = "dagctl"
LOG_NOT_STORED = "output not stored"


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
    ended_at: datetime | None = None  # when its end was noticed; None: when recorded


@dataclass(frozen=True, slots=True)
class LostAttempt:
    task_run_id: int
    dag_run_id: int
    dag_name: str
    task_name: str
    attempt: int


# A function the reaper asks for the retry delay of a lost attempt (None: no retry).
RetryPolicy = Callable[[str, str, int], "float | None"]


class Store(ReadOperations, ControlOperations, AdoptionOperations):
    """Every operation dagctl performs on its state: the scheduler's here, the read
    operations of the terminal commands in reads.py, pause/cancel/retry in control.py."""

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
        try:
            with self.engine.begin() as connection:
                yield connection
        except DBAPIError as exc:
            raise engines.connection_error(self.url, exc) from exc
        if self._watches:
            self._committed()

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
        try:
            with self.engine.begin() as connection:
                self._joined, self._notify_due, self._notify_urgent = connection, False, False
                try:
                    yield
                    if self._notify_due:
                        self._send_notify(connection)
                finally:
                    self._joined, self._notify_due, self._notify_urgent = None, False, False
        except DBAPIError as exc:
            raise engines.connection_error(self.url, exc) from exc
        if self._watches:
            self._committed()

    def listener(self) -> Listener | DataVersionWatch:
        """What wakes the loop for other processes' news: a connection LISTENing on
        PostgreSQL, a watch of the file's data version on SQLite."""
        if self.is_postgres:
            return Listener(self.engine, ignore=self.notify_tag)
        watch = DataVersionWatch(self.engine)
        self._watches = [watch]  # a scheduler has one; a new one replaces a dropped one
        return watch

    def _committed(self) -> None:
        for watch in self._watches:
            watch.settle()

    def close(self) -> None:
        self.engine.dispose()

    def _statement(self, key: Hashable, build: Callable[[], Any]) -> Any:
        statement = self._built.get(key)
        if statement is None:
            statement = self._built[key] = build()
        return statement

    def keep_news(self) -> None:
        """Inside transaction(): send no NOTIFY for the work it queued (the caller took
        all of it, so no other scheduler needs waking); one `_notify(urgent=True)`
        asked for is still sent."""
        self._notify_due = self._notify_due and self._notify_urgent

    def _notify(self, connection: Connection, *, urgent: bool = False) -> None:
        if not self.is_postgres:
            return
        if self._joined is not None:
            self._notify_due = True  # once, when the whole transaction() ends
            self._notify_urgent = self._notify_urgent or urgent
        else:
            self._send_notify(connection)

    def _send_notify(self, connection: Connection) -> None:
        connection.execute(
            text("SELECT pg_notify(:channel, :tag)"), {"channel": NOTIFY_CHANNEL, "tag": self.notify_tag}
        )

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
        *,
        ended_in: Collection[str] = (),
    ) -> AdvancePlan:
        """Lock the DAGs that have flagged runs (skipping ones another scheduler holds), let
        `planner` decide from their active runs, and apply the decisions.

        `ended_in`: DAGs whose runs the caller flagged without waking the others (see
        `finish`); those it cannot lock here are being advanced by another scheduler,
        which is woken to look again once it is done."""
        with self._tx() as connection:
            paused = self._lock_flagged_dags(connection)
            if any(name not in paused for name in ended_in):
                self._notify(connection, urgent=True)
            if not paused:
                return AdvancePlan()
            runs, attempts = self._active_runs(connection, list(paused))

            def external(other_dag: str, other_task: str, logical_date: datetime) -> str | None:
                return self._external_status(connection, other_dag, other_task, logical_date)

            plan = planner(paused, runs, attempts, external)
            self._apply(connection, plan, now)
            return plan

    def _lock_flagged_dags(self, connection: Connection) -> dict[str, bool]:
        """Lock the DAGs that have flagged runs (skipping those another scheduler holds)
        and clear their runs' flags; returns {name: paused} of the locked DAGs.

        The flags are cleared BEFORE the runs and attempts are read (by a later
        statement): an attempt another scheduler finishes from now on flags its run
        again (its UPDATE waits for this transaction), and one it finished before is in
        what we read next. Clearing after reading would erase such a flag and leave its
        run `running` for ever. On PostgreSQL locking and clearing is one statement."""
        if not self.is_postgres:
            rows = connection.execute(self._statement("flagged dags", self._build_flagged_dags))
            paused = {name: bool(is_paused) for name, is_paused in rows}
            if paused:
                connection.execute(
                    self._statement("clear flags", self._build_clear_flags), {"p_names": list(paused)}
                )
            return paused
        rows = connection.execute(self._statement("lock and clear", self._build_lock_and_clear))
        return {name: bool(is_paused) for name, is_paused in rows}

    def _build_flagged_dags(self) -> Any:
        active = [s.value for s in ACTIVE_RUN]
        flagged = select(dag_run.c.dag_name).where(dag_run.c.dirty.is_(True), dag_run.c.status.in_(active))
        return select(dag.c.name, dag.c.paused).where(dag.c.name.in_(flagged))

    def _build_clear_flags(self) -> Any:
        return (
            update(dag_run)
            .where(
                dag_run.c.dag_name.in_(bindparam("p_names", expanding=True)),
                dag_run.c.status.in_([s.value for s in ACTIVE_RUN]),
                dag_run.c.dirty.is_(True),
            )
            .values(dirty=False)
        )

    def _build_lock_and_clear(self) -> Any:
        held = self._build_flagged_dags().with_for_update(skip_locked=True).cte("locked")
        # Every active run of the locked DAGs is locked here, in id order (all that this
        # advance may update, and in the order `finish` flags runs), so no two
        # transactions can each hold a run the other waits for.
        runs = _in_id_order(
            select(dag_run.c.id).where(
                dag_run.c.dag_name.in_(select(held.c.name)),
                dag_run.c.status.in_([s.value for s in ACTIVE_RUN]),
            ),
            "runs",
        )
        cleared = (
            update(dag_run)
            .where(dag_run.c.id == runs.c.id, dag_run.c.dirty.is_(True))
            .values(dirty=False)
            .returning(dag_run.c.id)
            .cte("cleared")
        )
        return select(held.c.name, held.c.paused).add_cte(cleared)

    def _active_runs(
        self, connection: Connection, dag_names: Sequence[str]
    ) -> tuple[list[RunSnapshot], dict[int, dict[str, AttemptSnapshot]]]:
        """The active runs of these DAGs and the latest attempt of each task of the
        running ones, in one query."""
        rows = connection.execute(
            self._statement("active runs", self._build_active_runs), {"p_names": list(dag_names)}
        )
        runs: dict[int, RunSnapshot] = {}
        latest: dict[int, dict[str, AttemptSnapshot]] = {}
        for run_id, dag_name, status, logical_date, task_name, attempt, task_status in rows:
            if run_id not in runs:
                runs[run_id] = RunSnapshot(run_id, dag_name, status, logical_date)
            if task_name is None:
                continue
            per_run = latest.get(run_id)
            if per_run is None:
                per_run = latest[run_id] = {}
            seen = per_run.get(task_name)
            if seen is None or attempt > seen.attempt:
                per_run[task_name] = AttemptSnapshot(task_name, attempt, task_status)
        return list(runs.values()), latest

    def _build_active_runs(self) -> Any:
        return (
            select(
                dag_run.c.id,
                dag_run.c.dag_name,
                dag_run.c.status,
                dag_run.c.logical_date,
                task_run.c.task_name,
                task_run.c.attempt,
                task_run.c.status,
            )
            .select_from(
                dag_run.outerjoin(
                    task_run,
                    and_(task_run.c.dag_run_id == dag_run.c.id, dag_run.c.status == RunStatus.RUNNING.value),
                )
            )
            .where(
                dag_run.c.dag_name.in_(bindparam("p_names", expanding=True)),
                dag_run.c.status.in_([s.value for s in ACTIVE_RUN]),
            )
        )

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

    def _apply(self, connection: Connection, plan: AdvancePlan, now: datetime) -> None:
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
                self._statement("new task runs", lambda: self._insert(task_run).on_conflict_do_nothing()),
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
        if plan.still_dirty:
            # Not settled yet (waiting for a slot or another DAG): look again next time.
            still = sorted(set(plan.still_dirty))
            connection.execute(update(dag_run).where(dag_run.c.id.in_(still)).values(dirty=True))
        if any(t.status == TaskStatus.QUEUED.value for t in plan.new_task_runs):
            self._notify(connection)

    # ------------------------------------------------------------ claims and leases

    def claim(self, owner: str, limit: int, lease_seconds: float, now: datetime) -> list[ClaimedAttempt]:
        """Take up to `limit` ready attempts, oldest first. No two owners ever get the same one."""
        if limit <= 0:
            return []
        values: dict[str, Any] = {"p_owner": owner, "p_now": now, "p_limit": limit, "p_host": self._host}
        if self.is_postgres:
            values["p_lease_seconds"] = float(lease_seconds)  # counted on the database's clock
        else:
            values["p_lease_until"] = utcnow() + timedelta(seconds=lease_seconds)
        with self._tx() as connection:
            claimed = connection.execute(self._statement("claim", self._build_claim), values).all()
        result = [
            ClaimedAttempt(
                c.id, c.dag_run_id, c.dag_name, c.task_name, c.attempt, c.logical_date, json.loads(c.params)
            )
            for c in claimed
        ]
        result.sort(key=lambda c: c.task_run_id)
        return result

    def _build_claim(self) -> Any:
        ready = (
            select(task_run.c.id)
            .where(
                task_run.c.status.in_([s.value for s in CLAIMABLE_TASK]),
                task_run.c.not_before <= bindparam("p_now", type_=DateTime),
            )
            .order_by(task_run.c.queued_at, task_run.c.id)
            .limit(bindparam("p_limit", type_=Integer))
        )
        if self.is_postgres:
            # Locked once, in a CTE joined to the UPDATE: as `id IN (subquery)` the planner
            # may run the locking subquery again for every row it scans (seen: 40 s for
            # 10,000 queued attempts before their table had statistics).
            held = ready.with_for_update(skip_locked=True).cte("ready")
            chosen: Any = task_run.c.id == held.c.id
            lease_until: Any = func.timezone("utc", func.now()) + func.make_interval(
                0, 0, 0, 0, 0, 0, bindparam("p_lease_seconds", type_=Float)
            )
        else:
            chosen = task_run.c.id.in_(ready.scalar_subquery())
            lease_until = bindparam("p_lease_until", type_=DateTime)
        return (
            update(task_run)
            .where(
                chosen,
                task_run.c.status.in_(task_sources(TaskStatus.RUNNING)),
            )
            .values(
                status=TaskStatus.RUNNING.value,
                lease_owner=bindparam("p_owner", type_=String),
                lease_expires_at=lease_until,
                started_at=bindparam("p_now", type_=DateTime),
                host=bindparam("p_host", type_=String),
            )
            .returning(
                task_run.c.id,
                task_run.c.dag_run_id,
                task_run.c.dag_name,
                task_run.c.task_name,
                task_run.c.attempt,
                # The run's date and params in the same round trip.
                _of_run(dag_run.c.logical_date).label("logical_date"),
                _of_run(dag_run.c.params).label("params"),
            )
        )

    def record_pids(self, pids: Mapping[int, int]) -> None:
        if not pids:
            return
        with self._tx() as connection:
            connection.execute(
                update(task_run).where(task_run.c.id == bindparam("i")).values(pid=bindparam("p")),
                [{"i": i, "p": p} for i, p in pids.items()],
            )

    def finish(
        self, owner: str, finished: Sequence[FinishedAttempt], now: datetime, *, wake_others: bool = True
    ) -> int:
        """Record ended attempts (only those this owner still holds), queue their retries,
        store their remaining logs and flag their runs. Returns how many were recorded.

        `wake_others=False` when the caller advances the flagged runs itself right after
        (`advance(ended_in=...)` wakes the others for those it cannot): the other
        schedulers are then only woken here for queued retries."""
        if not finished:
            return 0
        recorded = 0
        with self._tx() as connection:
            flagged: set[int] = set()
            retried = False
            # Attempts that ended alike (status, exit code, error, time) are recorded by
            # one statement: a batch of no_op attempts costs one round trip, not one each.
            alike: dict[tuple[str, int | None, str | None, datetime], list[FinishedAttempt]] = {}
            for item in finished:
                error = item.error
                if item.log or item.log_truncated_bytes:
                    problem = self._append_log_safely(
                        connection, item.task_run_id, item.log, item.log_truncated_bytes, now
                    )
                    if problem and LOG_NOT_STORED not in (error or ""):
                        error = f"{error}; {problem}" if error else problem
                key = (item.status, item.exit_code, _clip(error), item.ended_at or now)
                alike.setdefault(key, []).append(item)
            for (status, exit_code, error, ended_at), items in alike.items():
                by_id = {item.task_run_id: item for item in items}
                rows = connection.execute(
                    self._statement(("finish", status), functools.partial(self._build_finish, status)),
                    {
                        "p_ids": list(by_id),
                        "p_owner": owner,
                        "p_exit_code": exit_code,
                        "p_error": error,
                        "p_ended_at": ended_at,
                    },
                ).all()
                # Those missing were reaped or cancelled meanwhile: their fate is recorded.
                for row in sorted(rows, key=lambda r: int(r.id)):
                    recorded += 1
                    flagged.add(row.dag_run_id)
                    retry_after = by_id[row.id].retry_after
                    if row.status == TaskStatus.FAILED.value and retry_after is not None:
                        self._queue_retry(connection, row, retry_after, now)
                        retried = True
            if flagged:
                if not self.is_postgres:  # there, the statements above flagged their runs
                    connection.execute(update(dag_run).where(dag_run.c.id.in_(flagged)).values(dirty=True))
                if wake_others or retried:
                    self._notify(connection)
        return recorded

    def _build_finish(self, status: str) -> Any:
        return self._and_flag_runs(
            update(task_run)
            .where(
                task_run.c.id.in_(bindparam("p_ids", expanding=True)),
                task_run.c.lease_owner == bindparam("p_owner", type_=String),
                task_run.c.status.in_(task_sources(TaskStatus(status))),
            )
            .values(
                status=_ended_status(status),
                exit_code=bindparam("p_exit_code", type_=Integer),
                error=bindparam("p_error", type_=Text),
                ended_at=bindparam("p_ended_at", type_=DateTime),
                lease_owner=None,
                lease_expires_at=None,
            )
            .returning(
                task_run.c.id,
                task_run.c.dag_run_id,
                task_run.c.dag_name,
                task_run.c.task_name,
                task_run.c.attempt,
                task_run.c.status,
            )
        )

    def _and_flag_runs(self, ended: Any) -> Any:
        """On PostgreSQL, `ended` (an UPDATE of task_run rows RETURNING their dag_run_id)
        also flags those runs, in the same statement; elsewhere `ended` as it is."""
        if not self.is_postgres:
            return ended
        done = ended.cte("done")
        runs = _in_id_order(select(dag_run.c.id).where(dag_run.c.id.in_(select(done.c.dag_run_id))), "runs")
        flag = (
            update(dag_run)
            .where(dag_run.c.id == runs.c.id)
            .values(dirty=True)
            .returning(dag_run.c.id)
            .cte("flag")
        )
        return select(done).add_cte(flag)

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

    def _expired_leases(self, among: Sequence[int] | None = None) -> Any:
        """Ids of running attempts whose lease has run out on the database clock, locked
        (skipping rows another scheduler holds on PostgreSQL): what reaping and adoption
        may take over."""
        query = select(task_run.c.id).where(
            task_run.c.status == TaskStatus.RUNNING.value, task_run.c.lease_expires_at < self._db_now()
        )
        if among is not None:
            query = query.where(task_run.c.id.in_(among))
        return query.with_for_update(skip_locked=True) if self.is_postgres else query

    def reap_expired(self, retry_policy: RetryPolicy, now: datetime) -> list[LostAttempt]:
        """Fail every running attempt whose lease expired (its owner is gone) and queue
        its retry: at-least-once, never twice at the same time."""
        with self._tx() as connection:
            expired = self._expired_leases()
            rows = connection.execute(
                update(task_run)
                .where(
                    task_run.c.id.in_(expired.scalar_subquery()),
                    task_run.c.status == TaskStatus.RUNNING.value,
                )
                .values(
                    status=_ended_status(TaskStatus.FAILED.value),
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
                    task_run.c.status,
                )
            ).all()
            for row in rows:
                if row.status != TaskStatus.FAILED.value:
                    continue  # its run was cancelled: no retry
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

    def append_logs(self, chunks: Sequence[tuple[int, str]], now: datetime) -> dict[int, str]:
        """Store live log chunks. A chunk that cannot be stored is dropped, never holding
        up the rest: returns {task_run_id: why} for those."""
        failed: dict[int, str] = {}
        if not chunks:
            return failed
        with self._tx() as connection:
            for task_run_id, chunk in chunks:
                problem = self._append_log_safely(connection, task_run_id, chunk, 0, now)
                if problem:
                    failed[task_run_id] = problem
        return failed

    def _append_log_safely(
        self, connection: Connection, task_run_id: int, chunk: str, truncated: int, now: datetime
    ) -> str | None:
        """Log storage failing must not cost an attempt's outcome (F16): write the chunk in
        a savepoint and, if only the write failed, say why instead of raising. A lost
        connection still raises, like any outage."""
        try:
            with connection.begin_nested():
                self._append_log(connection, task_run_id, chunk, truncated, now)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            detail = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
            return f"{LOG_NOT_STORED}: {detail[0] if detail else type(exc).__name__}"
        return None

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


def _ended_status(status: str) -> Any:
    """A failed attempt of a cancelled run (`dagctl cancel` stopped it, or it failed on
    its own meanwhile) ends `cancelled` and is never retried; the others end as reported."""
    if status != TaskStatus.FAILED.value:
        return status
    run_status = select(dag_run.c.status).where(dag_run.c.id == task_run.c.dag_run_id).scalar_subquery()
    return case((run_status == RunStatus.CANCELLED.value, TaskStatus.CANCELLED.value), else_=status)


def _in_id_order(runs: Any, name: str) -> Any:
    """A CTE of the dag_run ids `runs` selects, locked in ascending order (PostgreSQL):
    updates of several runs that lock them this way never deadlock with each other. A
    CTE runs once; as `IN (subquery)` the locking subquery could run once per row."""
    return runs.order_by(dag_run.c.id).with_for_update().cte(name)


def _of_run(column: Any) -> Any:
    """A column of the run a task_run row belongs to, as a scalar subquery."""
    return select(column).where(dag_run.c.id == task_run.c.dag_run_id).scalar_subquery()


def _clip(message: str | None, limit: int = 4000) -> str | None:
    if message is None or len(message) <= limit:
        return message
    return message[: limit - 1] + "…"


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
    """SQLite's stand-in for LISTEN: a connection of its own reads `PRAGMA data_version`,
    which changes when another connection commits a change (a `trigger`, a `cancel`,
    another scheduler). It has no descriptor to wait on, so the loop asks every
    `check_every` seconds; reading it costs microseconds and no lock. The store moves
    its mark past each of its own commits, so only other processes' changes count."""

    check_every: float | None = 0.05

    def __init__(self, engine: Engine) -> None:
        raw = engine.raw_connection()
        self._connection = cast(Any, raw.driver_connection)
        raw.detach()
        self._seen = self._version()

    def _version(self) -> int:
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def fileno(self) -> int | None:
        return None

    def settle(self) -> None:
        """After a commit of our own: what has changed so far is known."""
        with contextlib.suppress(Exception):
            self._seen = self._version()

    def drain(self) -> bool:
        """True when another process committed a change since we last looked."""
        version = self._version()
        changed, self._seen = version != self._seen, version
        return changed

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connection.close()


__all__ = ["ClaimedAttempt", "DagState", "FinishedAttempt", "LostAttempt", "Store"]
