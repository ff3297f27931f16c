"""Read-only store operations for the web dashboard, its JSON API and /metrics.

A mixin of `Store` (see store.py): each method is one transaction, bounded by a limit
or an aggregate (never "every row"), and hands back plain values. Nothing here writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, literal, select

from dagctl.dags.cron import utcnow
from dagctl.states import TaskStatus
from dagctl.store.tables import dag, dag_run, scheduler, task_run

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Connection


class DashboardOperations:
    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _db_now(self) -> Any: ...

    def ping(self) -> None:
        """One round trip; raises DatabaseError when the state database is unreachable."""
        with self._tx() as connection:
            connection.execute(select(literal(1))).scalar_one()

    def dag_summaries_of(self, dag_names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """`dag_summaries` for the named DAGs only (one page of the dashboard)."""
        if not dag_names:
            return {}
        names = list(dag_names)
        with self._tx() as connection:
            summaries: dict[str, dict[str, Any]] = {
                r.name: {"paused": bool(r.paused), "last_run": None}
                for r in connection.execute(select(dag.c.name, dag.c.paused).where(dag.c.name.in_(names)))
            }
            newest = (
                select(func.max(dag_run.c.id))
                .where(dag_run.c.dag_name.in_(names))
                .group_by(dag_run.c.dag_name)
                .scalar_subquery()
            )
            for run in connection.execute(select(dag_run).where(dag_run.c.id.in_(newest))):
                summary = summaries.setdefault(run.dag_name, {"paused": False, "last_run": None})
                summary["last_run"] = {
                    "id": run.id,
                    "status": run.status,
                    "logical_date": run.logical_date,
                    "created_at": run.created_at,
                    "ended_at": run.ended_at,
                }
        return summaries

    def recent_run_marks(self, dag_names: Sequence[str], per_dag: int) -> dict[str, list[dict[str, Any]]]:
        """The newest `per_dag` runs (id, status, logical date) of each named DAG, newest
        first: one statement using the (dag_name, id) index."""
        if not dag_names:
            return {}
        ranked = (
            select(
                dag_run.c.id,
                dag_run.c.dag_name,
                dag_run.c.status,
                dag_run.c.logical_date,
                func.row_number()
                .over(partition_by=dag_run.c.dag_name, order_by=dag_run.c.id.desc())
                .label("rank"),
            )
            .where(dag_run.c.dag_name.in_(list(dag_names)))
            .subquery()
        )
        query = (
            select(ranked.c.id, ranked.c.dag_name, ranked.c.status, ranked.c.logical_date)
            .where(ranked.c.rank <= per_dag)
            .order_by(ranked.c.dag_name, ranked.c.id.desc())
        )
        marks: dict[str, list[dict[str, Any]]] = {name: [] for name in dag_names}
        with self._tx() as connection:
            for row in connection.execute(query):
                marks[row.dag_name].append(
                    {"id": row.id, "status": row.status, "logical_date": row.logical_date}
                )
        return marks

    def run_history(
        self,
        dag_name: str,
        *,
        status: str | None = None,
        kind: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """One page of a DAG's runs, newest first; `before_id` is the cursor of the next
        page (the smallest id shown). Dates filter on the logical date, naive UTC."""
        query = select(dag_run).where(dag_run.c.dag_name == dag_name)
        if status:
            query = query.where(dag_run.c.status == status)
        if kind:
            query = query.where(dag_run.c.kind == kind)
        if since is not None:
            query = query.where(dag_run.c.logical_date >= since)
        if until is not None:
            query = query.where(dag_run.c.logical_date < until)
        if before_id is not None:
            query = query.where(dag_run.c.id < before_id)
        query = query.order_by(dag_run.c.id.desc()).limit(limit)
        with self._tx() as connection:
            return [dict(r._mapping) for r in connection.execute(query)]

    def schedulers_overview(self, stale_after_s: float, limit: int = 100) -> dict[str, Any]:
        """The newest `limit` scheduler rows with their heartbeat age (by the database's
        clock on PostgreSQL) and the attempts each holds a lease on now."""
        with self._tx() as connection:
            db_now = connection.execute(select(self._db_now())).scalar_one() if self.is_postgres else utcnow()
            rows = [
                dict(r._mapping)
                for r in connection.execute(
                    select(scheduler).order_by(scheduler.c.heartbeat_at.desc()).limit(limit)
                )
            ]
            owners = [r["id"] for r in rows]
            running: dict[str, list[dict[str, Any]]] = {owner: [] for owner in owners}
            if owners:
                held = connection.execute(
                    select(
                        task_run.c.id,
                        task_run.c.dag_run_id,
                        task_run.c.dag_name,
                        task_run.c.task_name,
                        task_run.c.attempt,
                        task_run.c.lease_owner,
                    )
                    .where(
                        task_run.c.lease_owner.in_(owners),
                        task_run.c.status == TaskStatus.RUNNING.value,
                    )
                    .order_by(task_run.c.id)
                    .limit(1000)
                )
                for lease in held:
                    running[lease.lease_owner].append(
                        {
                            "run_id": lease.dag_run_id,
                            "dag": lease.dag_name,
                            "task": lease.task_name,
                            "attempt": lease.attempt,
                        }
                    )
        stale = timedelta(seconds=stale_after_s)
        for row in rows:
            row["heartbeat_age_s"] = round((db_now - row["heartbeat_at"]).total_seconds(), 3)
            row["alive"] = row["stopped_at"] is None and db_now - row["heartbeat_at"] <= stale
            row["running"] = running.get(row["id"], [])
        return {"db_now": db_now, "schedulers": rows}

    def metrics_snapshot(self, stale_after_s: float) -> dict[str, Any]:
        """What /metrics exposes, in one transaction of aggregates: runs and attempts by
        DAG and status, the summed durations of ended ones, the queue (claimable or
        waiting for a retry delay) and its oldest entry's age, live schedulers'
        heartbeat ages."""
        with self._tx() as connection:
            db_now = connection.execute(select(self._db_now())).scalar_one() if self.is_postgres else utcnow()
            run_seconds = self._seconds_between(dag_run.c.started_at, dag_run.c.ended_at)
            runs = [
                (r.dag_name, r.status, int(r.n), float(r.total or 0.0), int(r.timed))
                for r in connection.execute(
                    select(
                        dag_run.c.dag_name,
                        dag_run.c.status,
                        func.count().label("n"),
                        func.sum(run_seconds).label("total"),
                        func.count(run_seconds).label("timed"),
                    ).group_by(dag_run.c.dag_name, dag_run.c.status)
                )
            ]
            attempt_seconds = self._seconds_between(task_run.c.started_at, task_run.c.ended_at)
            attempts = [
                (r.dag_name, r.status, int(r.n), float(r.total or 0.0), int(r.timed))
                for r in connection.execute(
                    select(
                        task_run.c.dag_name,
                        task_run.c.status,
                        func.count().label("n"),
                        func.sum(attempt_seconds).label("total"),
                        func.count(attempt_seconds).label("timed"),
                    ).group_by(task_run.c.dag_name, task_run.c.status)
                )
            ]
            oldest = connection.execute(
                select(func.min(task_run.c.queued_at)).where(task_run.c.status == TaskStatus.QUEUED.value)
            ).scalar()
            beats = connection.execute(
                select(scheduler.c.id, scheduler.c.host, scheduler.c.heartbeat_at).where(
                    scheduler.c.stopped_at.is_(None),
                    scheduler.c.heartbeat_at >= db_now - timedelta(seconds=stale_after_s * 10),
                )
            ).all()
        return {
            "runs": runs,
            "attempts": attempts,
            "oldest_queued_age_s": (db_now - oldest).total_seconds() if oldest is not None else 0.0,
            "schedulers": [
                (b.id, b.host, max(0.0, (db_now - b.heartbeat_at).total_seconds())) for b in beats
            ],
        }

    def _seconds_between(self, start: Any, end: Any) -> ColumnElement[Any]:
        if self.is_postgres:
            return func.extract("epoch", end - start)
        return (func.julianday(end) - func.julianday(start)) * 86400.0


__all__ = ["DashboardOperations"]
