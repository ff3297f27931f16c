"""Read-only store operations for the terminal commands: status, list, logs, why.

A mixin of `Store` (see store.py): each method is one transaction and hands back plain
values. Nothing here writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select

from dagctl import secrets
from dagctl.dags.cron import utcnow
from dagctl.states import ACTIVE_RUN, TaskStatus
from dagctl.store.tables import dag, dag_run, scheduler, task_log, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


class ReadOperations:
    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _db_now(self) -> Any: ...

        def _external_status(
            self,
            connection: Connection,
            other_dag: str,
            other_task: str,
            logical_date: datetime,
            earliest: datetime | None = None,
        ) -> str | None: ...

    # ------------------------------------------------------------ runs and attempts

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

    def run_with_attempts(self, run_id: int) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """One run and all its task attempts, read in one transaction (a consistent view)."""
        with self._tx() as connection:
            row = connection.execute(select(dag_run).where(dag_run.c.id == run_id)).first()
            if row is None:
                return None, []
            attempts = connection.execute(
                select(task_run)
                .where(task_run.c.dag_run_id == run_id)
                .order_by(task_run.c.queued_at, task_run.c.id)
            )
            return dict(row._mapping), [dict(a._mapping) for a in attempts]

    def run_status(self, run_id: int) -> str | None:
        with self._tx() as connection:
            return connection.execute(select(dag_run.c.status).where(dag_run.c.id == run_id)).scalar()

    # ------------------------------------------------------------ logs

    def read_log(self, task_run_id: int, after_seq: int = 0) -> list[tuple[int, str, int]]:
        with self._tx() as connection:
            rows = connection.execute(
                select(task_log.c.seq, task_log.c.text, task_log.c.truncated_bytes)
                .where(task_log.c.task_run_id == task_run_id, task_log.c.seq > after_seq)
                .order_by(task_log.c.seq)
            )
            return [(r.seq, r.text, r.truncated_bytes) for r in rows]

    def read_logs(self, cursors: Mapping[int, int]) -> list[tuple[int, int, str, int]]:
        """New log chunks of several attempts at once: for each task_run_id, the chunks
        after its cursor (a seq). Returns (task_run_id, seq, text, truncated_bytes), in
        order per attempt. One statement, whatever the number of attempts."""
        if not cursors:
            return []
        condition = or_(
            *(and_(task_log.c.task_run_id == i, task_log.c.seq > after) for i, after in cursors.items())
        )
        with self._tx() as connection:
            rows = connection.execute(
                select(task_log.c.task_run_id, task_log.c.seq, task_log.c.text, task_log.c.truncated_bytes)
                .where(condition)
                .order_by(task_log.c.task_run_id, task_log.c.seq)
            )
            # Masked again on the way out: logs stored by an older dagctl were not.
            return [(r.task_run_id, r.seq, secrets.mask(r.text), r.truncated_bytes) for r in rows]

    # ------------------------------------------------------------ DAG overview

    def dag_summaries(self) -> dict[str, dict[str, Any]]:
        """Every DAG row with its paused flag and its newest run (id, status, logical
        date, created, ended), in two statements whatever the number of DAGs."""
        with self._tx() as connection:
            summaries: dict[str, dict[str, Any]] = {
                r.name: {"paused": bool(r.paused), "last_run": None}
                for r in connection.execute(select(dag.c.name, dag.c.paused))
            }
            newest = select(func.max(dag_run.c.id)).group_by(dag_run.c.dag_name).scalar_subquery()
            rows = connection.execute(
                select(
                    dag_run.c.id,
                    dag_run.c.dag_name,
                    dag_run.c.status,
                    dag_run.c.logical_date,
                    dag_run.c.created_at,
                    dag_run.c.ended_at,
                ).where(dag_run.c.id.in_(newest))
            )
            for row in rows:
                entry = summaries.setdefault(row.dag_name, {"paused": False, "last_run": None})
                entry["last_run"] = {
                    "id": row.id,
                    "status": row.status,
                    "logical_date": row.logical_date,
                    "created_at": row.created_at,
                    "ended_at": row.ended_at,
                }
            return summaries

    # ------------------------------------------------------------ why nothing runs

    def why_snapshot(self, dag_name: str, stale_after_s: float) -> dict[str, Any]:
        """What `dagctl why` reasons from, read in one transaction: the DAG's paused
        flag, its active runs with all their attempts, the status of the cross-DAG
        inputs those runs may wait on is looked up separately (`external_status`), the
        queue across all DAGs, and whether any scheduler is alive (a heartbeat within
        `stale_after_s` seconds, not stopped)."""
        with self._tx() as connection:
            row = connection.execute(
                select(dag.c.paused, dag.c.missing_since).where(dag.c.name == dag_name)
            ).first()
            paused = row.paused if row is not None else None
            runs = [
                dict(r._mapping)
                for r in connection.execute(
                    select(dag_run)
                    .where(
                        dag_run.c.dag_name == dag_name,
                        dag_run.c.status.in_([s.value for s in ACTIVE_RUN]),
                    )
                    .order_by(dag_run.c.logical_date, dag_run.c.id)
                )
            ]
            attempts: list[dict[str, Any]] = []
            if runs:
                attempts = [
                    dict(r._mapping)
                    for r in connection.execute(
                        select(task_run)
                        .where(task_run.c.dag_run_id.in_([r["id"] for r in runs]))
                        .order_by(task_run.c.dag_run_id, task_run.c.id)
                    )
                ]
            counts = {
                row.status: int(row.n)
                for row in connection.execute(
                    select(task_run.c.status, func.count().label("n"))
                    .where(task_run.c.status.in_([TaskStatus.QUEUED.value, TaskStatus.RUNNING.value]))
                    .group_by(task_run.c.status)
                )
            }
            db_now, live = self._live_schedulers(connection, stale_after_s)
            last = connection.execute(
                select(scheduler.c.heartbeat_at, scheduler.c.stopped_at)
                .order_by(scheduler.c.heartbeat_at.desc())
                .limit(1)
            ).first()
            # Without an error of its own, a failed run says why by its first failed task.
            first_failure = (
                select(task_run.c.task_name + ": " + task_run.c.error)
                .where(task_run.c.dag_run_id == dag_run.c.id, task_run.c.status == TaskStatus.FAILED.value)
                .order_by(task_run.c.ended_at, task_run.c.id)
                .limit(1)
                .scalar_subquery()
            )
            newest = connection.execute(
                select(
                    dag_run.c.id,
                    dag_run.c.status,
                    func.coalesce(dag_run.c.error, first_failure).label("error"),
                )
                .where(dag_run.c.dag_name == dag_name)
                .order_by(dag_run.c.id.desc())
                .limit(1)
            ).first()
            return {
                "known": paused is not None,
                "paused": bool(paused),
                "missing_since": row.missing_since if row is not None else None,
                "runs": runs,
                "attempts": attempts,
                "queued_attempts": counts.get(TaskStatus.QUEUED.value, 0),
                "running_attempts": counts.get(TaskStatus.RUNNING.value, 0),
                "live_schedulers": live,
                "last_heartbeat": last.heartbeat_at if last else None,
                "last_stopped": last.stopped_at if last else None,
                "newest_run": (
                    {"id": newest.id, "status": newest.status, "error": newest.error} if newest else None
                ),
                "db_now": db_now,
            }

    def live_schedulers(self, stale_after_s: float) -> int:
        """How many schedulers are running: not stopped, heartbeat within `stale_after_s`."""
        with self._tx() as connection:
            return self._live_schedulers(connection, stale_after_s)[1]

    def _live_schedulers(self, connection: Connection, stale_after_s: float) -> tuple[datetime, int]:
        # Heartbeats are written with the database's clock on PostgreSQL: compare with it.
        db_now = connection.execute(select(self._db_now())).scalar_one() if self.is_postgres else utcnow()
        live = connection.execute(
            select(func.count())
            .select_from(scheduler)
            .where(
                scheduler.c.stopped_at.is_(None),
                scheduler.c.heartbeat_at >= db_now - timedelta(seconds=stale_after_s),
            )
        ).scalar_one()
        return db_now, int(live)

    def external_status(
        self, other_dag: str, other_task: str, logical_date: datetime, earliest: datetime | None = None
    ) -> str | None:
        """Status of `other_task` in the latest run of `other_dag` at or before
        `logical_date` (and at or after `earliest`), what a cross-DAG input waits for,
        or None when there is none (scheduling/crossdag.py)."""
        with self._tx() as connection:
            return self._external_status(connection, other_dag, other_task, logical_date, earliest)


__all__ = ["ReadOperations"]
