"""Attempts: claim ready task runs, record their pids and their ends (with retries and
the rest of their output), keep their leases alive and reap those whose lease ran out.
A mixin of `Store` (see store.py); each operation is one transaction.

Every statement that takes or ends an attempt names its lease owner or locks with
`SKIP LOCKED`, so two schedulers never hold the same attempt, and flags its run
(`dirty`) for the next advance.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DateTime,
    Integer,
    String,
    Text,
    bindparam,
    case,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from dagctl import secrets
from dagctl.dags.cron import utcnow
from dagctl.states import (
    CLAIMABLE_TASK,
    RERUN_TASK_VALUES,
    RunStatus,
    TaskStatus,
    task_sources,
)
from dagctl.store.claim_scope import ClaimScope
from dagctl.store.claiming import claimed_columns, running_values
from dagctl.store.dag_limits import Scope, dag_scope
from dagctl.store.notifications import LOST as LOST_EVENT
from dagctl.store.notifications import RETRY, AlertRules
from dagctl.store.priorities import claim_order
from dagctl.store.queues import served_by
from dagctl.store.records import ClaimedAttempt, FinishedAttempt, LostAttempt
from dagctl.store.runs import in_id_order
from dagctl.store.tables import dag, dag_run, scheduler, task_log, task_pool, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

LOG_NOT_STORED = "output not stored"
LOST = "interrupted: its scheduler stopped renewing the lease (stalled, killed or cut off)"


class AttemptOperations:
    if TYPE_CHECKING:
        is_postgres: bool
        _host: str

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _statement(self, key: Hashable, build: Callable[[], Any]) -> Any: ...

        def _insert_missing(self, table: Any) -> Any: ...

        def _db_now(self) -> Any: ...

        def _lease_until(self, lease_seconds: float) -> Any: ...

        def _notify(self, connection: Connection, *, urgent: bool = False) -> None: ...

        _pools_in_use: bool
        _unpooled_tasks: bool
        _priorities_in_use: bool

        def _limits_in_use(self) -> bool: ...

        def _unlimited_scope(self) -> ClaimScope: ...

        def _queue_filter(self) -> frozenset[str] | None: ...

        def _claim_pooled(
            self, connection: Connection, values: dict[str, Any], scope: Scope = None
        ) -> list[Any]: ...

        def _claim_limited(
            self,
            connection: Connection,
            values: dict[str, Any],
            claim_in: Callable[[Connection, dict[str, Any], Scope], list[Any]],
        ) -> list[Any]: ...

        def _store_outputs(self, connection: Connection, recorded: Any) -> None: ...

        def _enqueue_attempt_events(
            self,
            connection: Connection,
            event: str,
            attempts: Sequence[Any],
            rules: AlertRules,
            now: datetime,
        ) -> None: ...

    # ------------------------------------------------------------ claims

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
            if not self._limits_in_use():
                claimed = self._claim_in(connection, values, None)
            else:
                # The DAGs with max_active_tasks and the limited queues are claimed
                # apart, each under its limit row's lock (limited_claims.py).
                claimed = self._claim_in(connection, values, self._unlimited_scope())
                if len(claimed) < limit:
                    rest = {**values, "p_limit": limit - len(claimed)}
                    claimed += self._claim_limited(connection, rest, self._claim_in)
        result = [
            ClaimedAttempt(
                c.id,
                c.dag_run_id,
                c.dag_name,
                c.task_name,
                c.attempt,
                c.logical_date,
                json.loads(c.params),
                tries=c.attempt - c.uncounted,
                data_interval_start=c.data_interval_start,
                data_interval_end=c.data_interval_end,
                run_has_outputs=bool(c.run_has_outputs),
            )
            for c in claimed
        ]
        result.sort(key=lambda c: c.task_run_id)
        return result

    def _claim_in(self, connection: Connection, values: dict[str, Any], scope: Scope) -> list[Any]:
        """Up to `p_limit` ready attempts of the DAGs of `scope` (dag_limits.py)."""
        queues = self._queue_filter()
        by_priority = self._priorities_in_use
        if not self._pools_in_use and queues is None and not by_priority and scope is None:
            return list(connection.execute(self._statement("claim", self._build_claim), values))
        # Pooled tasks are left to their own claim, which takes their pools' slots
        # (pools.py); with work queues, only the attempts of the queues we serve (queues.py).
        build = functools.partial(
            self._build_claim,
            skip_pooled=self._pools_in_use,
            queues=queues,
            by_priority=by_priority,
            scope=scope,
        )
        key = ("claim", self._pools_in_use, queues, by_priority, scope)
        claimed = []
        if self._unpooled_tasks:  # else that statement could only scan in vain
            claimed = list(connection.execute(self._statement(key, build), values))
        limit = int(values["p_limit"])
        if self._pools_in_use and len(claimed) < limit:
            claimed += self._claim_pooled(connection, {**values, "p_limit": limit - len(claimed)}, scope)
        return claimed

    def _build_claim(
        self,
        *,
        skip_pooled: bool = False,
        queues: frozenset[str] | None = None,
        by_priority: bool = False,
        scope: Scope = None,
    ) -> Any:
        ready = (
            select(task_run.c.id)
            .where(
                task_run.c.status.in_([s.value for s in CLAIMABLE_TASK]),
                task_run.c.not_before <= bindparam("p_now", type_=DateTime),
                # Not while its DAG is deleted, renamed away or broken: it waits for the
                # DAG to come back, or for its run to fail after the grace period.
                task_run.c.dag_name.not_in(select(dag.c.name).where(dag.c.missing_since.is_not(None))),
            )
            .order_by(*claim_order(by_priority))
            .limit(bindparam("p_limit", type_=Integer))
        )
        if skip_pooled:
            ready = ready.where(~is_pooled())
        if queues is not None:
            ready = ready.where(served_by(queues))
        if (narrowed := dag_scope(scope)) is not None:
            ready = ready.where(narrowed)
        if self.is_postgres:
            # Locked once, in a CTE joined to the UPDATE: as `id IN (subquery)` the planner
            # may run the locking subquery again for every row it scans (seen: 40 s for
            # 10,000 queued attempts before their table had statistics).
            held = ready.with_for_update(skip_locked=True).cte("ready")
            chosen: Any = task_run.c.id == held.c.id
        else:
            chosen = task_run.c.id.in_(ready.scalar_subquery())
        return (
            update(task_run)
            .where(
                chosen,
                task_run.c.status.in_(task_sources(TaskStatus.RUNNING)),
            )
            .values(running_values(self.is_postgres))
            .returning(*claimed_columns())
        )

    def record_pids(self, pids: Mapping[int, int]) -> None:
        if not pids:
            return
        with self._tx() as connection:
            connection.execute(
                update(task_run).where(task_run.c.id == bindparam("i")).values(pid=bindparam("p")),
                [{"i": i, "p": p} for i, p in pids.items()],
            )

    # ------------------------------------------------------------ ends

    def finish(
        self,
        owner: str,
        finished: Sequence[FinishedAttempt],
        now: datetime,
        *,
        wake_others: bool = True,
        alert_rules: AlertRules | None = None,
    ) -> int:
        """Record ended attempts (only those this owner still holds), queue their retries
        (with a `retry` alert where `alert_rules` ask for one), store their remaining
        logs and flag their runs. Returns how many were recorded.

        `wake_others=False` when the caller advances the flagged runs itself right after
        (`advance(ended_in=...)` wakes the others for those it cannot): the other
        schedulers are then only woken here for queued retries."""
        if not finished:
            return 0
        recorded = 0
        with self._tx() as connection:
            flagged: set[int] = set()
            failed_and_retried: list[Any] = []
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
            if self.is_postgres and len(alike) > 1:
                # Each statement below locks its own runs in id order; all of them first,
                # in one id-ordered statement, or two such transactions could deadlock.
                connection.execute(
                    self._statement("lock runs of ends", self._build_lock_runs_of),
                    {"p_ids": [item.task_run_id for item in finished]},
                )
            retries: list[tuple[Any, float]] = []
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
                # Outputs only with a success this owner recorded (see store/outputs.py).
                succeeded = (r.id for r in rows if r.status == TaskStatus.SUCCESS.value)
                self._store_outputs(connection, [(i, by_id[i].outputs) for i in succeeded])
                for row in sorted(rows, key=lambda r: int(r.id)):
                    recorded += 1
                    flagged.add(row.dag_run_id)
                    retry_after = by_id[row.id].retry_after
                    if row.status in RERUN_TASK_VALUES and retry_after is not None:
                        retries.append((row, retry_after))
                        if row.status == TaskStatus.FAILED.value:  # not a shutdown's interruption
                            failed_and_retried.append(row)
            self._queue_retries(connection, retries, now)
            retried = bool(retries)
            if failed_and_retried and alert_rules:
                self._enqueue_attempt_events(connection, RETRY, failed_and_retried, alert_rules, now)
            if flagged:
                if not self.is_postgres:  # there, the statements above flagged their runs
                    connection.execute(
                        self._statement("flag runs", _build_flag_runs), {"p_ids": sorted(flagged)}
                    )
                if wake_others or retried:
                    # A queued retry is news for the others, even inside a transaction()
                    # whose claim takes everything it queued (keep_news()).
                    self._notify(connection, urgent=retried)
        return recorded

    def _build_lock_runs_of(self) -> Any:
        attempts = select(task_run.c.dag_run_id).where(task_run.c.id.in_(bindparam("p_ids", expanding=True)))
        return select(in_id_order(select(dag_run.c.id).where(dag_run.c.id.in_(attempts)), "runs").c.id)

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
        runs = in_id_order(select(dag_run.c.id).where(dag_run.c.id.in_(select(done.c.dag_run_id))), "runs")
        flag = (
            update(dag_run)
            .where(dag_run.c.id == runs.c.id)
            .values(dirty=True)
            .returning(dag_run.c.id)
            .cte("flag")
        )
        return select(done).add_cte(flag)

    def _queue_retries(
        self, connection: Connection, retries: Sequence[tuple[Any, float]], now: datetime
    ) -> None:
        """The next attempt of each ended attempt `row`, `delay` seconds from now, all in
        one statement (a fan-out of 100 failing: one round trip, not 100)."""
        if not retries:
            return
        connection.execute(
            self._insert_missing(task_run),
            [
                {
                    "dag_run_id": row.dag_run_id,
                    "dag_name": row.dag_name,
                    "task_name": row.task_name,
                    "attempt": row.attempt + 1,
                    "status": (TaskStatus.WAITING if delay > 0 else TaskStatus.QUEUED).value,
                    "not_before": now + timedelta(seconds=delay),
                    "queued_at": now,
                }
                for row, delay in retries
            ],
        )

    # ------------------------------------------------------------ leases

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

    def reap_expired(self, now: datetime, *, alert_rules: AlertRules | None = None) -> list[LostAttempt]:
        """End every running attempt whose lease expired as `interrupted` (its owner
        stopped renewing it: dead, stalled or cut off, its guardian has killed its
        processes by then) and queue the next attempt at once, not counted against
        `retries`: at-least-once, never twice at the same time. A `lost` alert for each,
        in the same transaction, where `alert_rules` ask for one."""
        with self._tx() as connection:
            expired = self._expired_leases()
            rows = connection.execute(
                update(task_run)
                .where(
                    task_run.c.id.in_(expired.scalar_subquery()),
                    task_run.c.status == TaskStatus.RUNNING.value,
                )
                .values(
                    status=_ended_status(TaskStatus.INTERRUPTED.value),
                    ended_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                    error=LOST,
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
            # The others ended cancelled (their runs were): no retry for them.
            lost = [row for row in rows if row.status == TaskStatus.INTERRUPTED.value]
            self._queue_retries(connection, [(row, 0.0) for row in lost], now)
            if lost and alert_rules:
                self._enqueue_attempt_events(connection, LOST_EVENT, lost, alert_rules, now)
            if rows:
                connection.execute(
                    update(dag_run).where(dag_run.c.id.in_({r.dag_run_id for r in rows})).values(dirty=True)
                )
                self._notify(connection)
        return [LostAttempt(r.id, r.dag_run_id, r.dag_name, r.task_name, r.attempt) for r in rows]

    def next_expiry_in(self, owner: str) -> float | None:
        """Seconds (on the database's clock) until the earliest lease held by another
        owner runs out (0 when one already has), or None when there is none: the
        reaper's next appointment."""
        with self._tx() as connection:
            earliest = connection.execute(
                select(func.min(task_run.c.lease_expires_at)).where(
                    task_run.c.status == TaskStatus.RUNNING.value,
                    task_run.c.lease_owner != owner,
                )
            ).scalar()
            if earliest is None:
                return None
            now = connection.execute(select(self._db_now())).scalar() if self.is_postgres else utcnow()
        return max(0.0, float((earliest - now).total_seconds()))

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
    """A failed or interrupted attempt of a cancelled run (`dagctl cancel` stopped it, or
    it failed on its own meanwhile) ends `cancelled` and is never retried; the others end
    as reported."""
    if status not in RERUN_TASK_VALUES:
        return status
    run_status = select(dag_run.c.status).where(dag_run.c.id == task_run.c.dag_run_id).scalar_subquery()
    return case((run_status == RunStatus.CANCELLED.value, TaskStatus.CANCELLED.value), else_=status)


def is_pooled() -> Any:
    """The task of a task_run row takes a pool (a row in task_pool, synced by pools.py)."""
    return (
        select(task_pool.c.pool)
        .where(task_pool.c.dag_name == task_run.c.dag_name, task_pool.c.task_name == task_run.c.task_name)
        .exists()
    )


def _build_flag_runs() -> Any:
    # Built once: a statement built at each call costs SQLAlchemy its cache key (about
    # 60 us, a tenth of an SQLite hop's statements).
    return update(dag_run).where(dag_run.c.id.in_(bindparam("p_ids", expanding=True))).values(dirty=True)


def _clip(message: str | None, limit: int = 4000) -> str | None:
    if message is not None:
        message = secrets.mask(message)  # an error may quote a URL or a driver's message
    if message is None or len(message) <= limit:
        return message
    return message[: limit - 1] + "…"


__all__ = ["LOG_NOT_STORED", "LOST", "AttemptOperations"]
