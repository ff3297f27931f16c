"""Child runs: the attempts of `dag` tasks and the runs they create. A mixin of `Store`.

An attempt of a `dag` task is created `running` with no lease owner (the advance step
writes it so): no claim takes it (claims take `queued`/`waiting` ones), no lease
expires on it (it has none) and no manager runs a process for it. The advance step
creates its child run in the transaction that locked the parent run
(`start_child_runs`), and ends the attempt once the child run has finished
(`end_dag_attempts`); a finishing child run flags its parent run for that
(`flag_parents`). Both run inside `Store.transaction()`, between `lock_flagged_runs`
and its commit.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, insert, select, update

from dagctl.states import ACTIVE_RUN_VALUES, RunStatus, TaskStatus, run_sources, task_sources
from dagctl.store.runs import new_dag_row
from dagctl.store.tables import dag_run, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


@dataclass(frozen=True, slots=True)
class DagAttempt:
    """A running attempt of a `dag` task, with its parent run and its child run (if any)."""

    task_run_id: int
    dag_run_id: int
    dag_name: str
    task_name: str
    attempt: int
    logical_date: datetime
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    params: dict[str, Any]
    child_run_id: int | None = None
    child_dag: str | None = None
    child_status: str | None = None
    child_error: str | None = None
    map_items: str | None = None  # a for_each task's items, once rendered (JSON list)


@dataclass(frozen=True, slots=True)
class ChildStart:
    """A child run to create for a `dag` task's attempt."""

    task_run_id: int
    parent_run_id: int
    dag_name: str
    params: dict[str, Any]
    logical_date: datetime
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    fingerprint: str | None


@dataclass(frozen=True, slots=True)
class DagAttemptEnd:
    task_run_id: int
    status: str  # success | failed
    error: str | None = None
    outputs: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ChildFacts:
    """What ending a `dag` task's attempt needs to know of finished child runs."""

    outputs: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)
    # child run id -> (task, its error) of the first task that failed in it
    failures: dict[int, tuple[str, str | None]] = field(default_factory=dict)


class ChildOperations:
    if TYPE_CHECKING:

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _joined_tx(self, operation: str) -> Connection: ...

        def _notify(self, connection: Connection, *, urgent: bool = False) -> None: ...

        def _insert(self, table: Any) -> Any: ...

        def run_outputs(self, run_ids: Collection[int]) -> dict[int, dict[str, dict[str, Any]]]: ...

    def dag_attempts(self, run_ids: Collection[int]) -> list[DagAttempt]:
        """The running attempts of these runs that no scheduler holds (`dag` and
        `for_each` tasks'), with their child runs' state and their items."""
        if not run_ids:
            return []
        connection = self._joined_tx("dag_attempts")
        child = dag_run.alias("child")
        rows = connection.execute(
            select(
                task_run.c.id,
                task_run.c.dag_run_id,
                task_run.c.dag_name,
                task_run.c.task_name,
                task_run.c.attempt,
                dag_run.c.logical_date,
                dag_run.c.data_interval_start,
                dag_run.c.data_interval_end,
                dag_run.c.params,
                task_run.c.child_run_id,
                child.c.dag_name.label("child_dag"),
                child.c.status.label("child_status"),
                child.c.error.label("child_error"),
                task_run.c.map_items,
            )
            .select_from(
                task_run.join(dag_run, dag_run.c.id == task_run.c.dag_run_id).outerjoin(
                    child, child.c.id == task_run.c.child_run_id
                )
            )
            .where(
                task_run.c.dag_run_id.in_(sorted(run_ids)),
                task_run.c.status == TaskStatus.RUNNING.value,
                task_run.c.lease_owner.is_(None),
            )
            .order_by(task_run.c.id)
        ).all()
        return [
            DagAttempt(
                r.id,
                r.dag_run_id,
                r.dag_name,
                r.task_name,
                r.attempt,
                r.logical_date,
                r.data_interval_start,
                r.data_interval_end,
                json.loads(r.params or "{}"),
                r.child_run_id,
                r.child_dag,
                r.child_status,
                r.child_error,
                r.map_items,
            )
            for r in rows
        ]

    def child_facts(self, child_run_ids: Collection[int]) -> ChildFacts:
        """The outputs of finished child runs and the first failed task of each."""
        if not child_run_ids:
            return ChildFacts()
        connection = self._joined_tx("child_facts")
        rows = connection.execute(
            select(task_run.c.dag_run_id, task_run.c.task_name, task_run.c.error)
            .where(
                task_run.c.dag_run_id.in_(sorted(child_run_ids)),
                task_run.c.status.in_([TaskStatus.FAILED.value, TaskStatus.CANCELLED.value]),
            )
            .order_by(task_run.c.ended_at, task_run.c.id)
        ).all()
        failures: dict[int, tuple[str, str | None]] = {}
        for row in rows:
            failures.setdefault(int(row.dag_run_id), (row.task_name, row.error))
        return ChildFacts(self.run_outputs(child_run_ids), failures)

    def start_child_runs(self, starts: Sequence[ChildStart], now: datetime) -> dict[int, int]:
        """Create the child runs (queued, flagged) and link each to its attempt; returns
        {task_run_id: child run id}. An attempt linked meanwhile keeps its child."""
        connection = self._joined_tx("start_child_runs")
        created: dict[int, int] = {}
        for start in starts:
            linked = connection.execute(
                update(task_run)
                .where(
                    task_run.c.id == start.task_run_id,
                    task_run.c.status == TaskStatus.RUNNING.value,
                    task_run.c.child_run_id.is_(None),
                )
                .values(child_run_id=-1)  # claimed for this transaction; the id follows
                .returning(task_run.c.id)
            ).first()
            if linked is None:
                continue
            connection.execute(new_dag_row(self._insert, start.dag_name, start.fingerprint, now))
            run_id = connection.execute(
                insert(dag_run)
                .values(
                    dag_name=start.dag_name,
                    kind="child",
                    creator=f"run {start.parent_run_id}",
                    logical_date=start.logical_date,
                    scheduled_slot=None,
                    data_interval_start=start.data_interval_start,
                    data_interval_end=start.data_interval_end,
                    params=json.dumps(start.params),
                    status=RunStatus.QUEUED.value,
                    dirty=True,
                    fingerprint=start.fingerprint,
                    created_at=now,
                    parent_run_id=start.parent_run_id,
                    parent_task_run_id=start.task_run_id,
                )
                .returning(dag_run.c.id)
            ).scalar_one()
            connection.execute(
                update(task_run).where(task_run.c.id == start.task_run_id).values(child_run_id=run_id)
            )
            created[start.task_run_id] = int(run_id)
        if created:
            self._notify(connection)
        return created

    def end_dag_attempts(self, ends: Sequence[DagAttemptEnd], now: datetime) -> int:
        """End `dag` tasks' attempts (only those still running unheld) and flag their runs."""
        if not ends:
            return 0
        connection = self._joined_tx("end_dag_attempts")
        ended = 0
        for end in ends:
            row = connection.execute(
                update(task_run)
                .where(
                    task_run.c.id == end.task_run_id,
                    task_run.c.status.in_(task_sources(TaskStatus(end.status))),
                    task_run.c.status == TaskStatus.RUNNING.value,
                    task_run.c.lease_owner.is_(None),
                )
                .values(
                    status=end.status,
                    error=end.error,
                    ended_at=now,
                    outputs=json.dumps(end.outputs, ensure_ascii=False, separators=(",", ":"))
                    if end.outputs
                    else None,
                )
                .returning(task_run.c.dag_run_id)
            ).first()
            if row is not None:
                ended += 1
                connection.execute(update(dag_run).where(dag_run.c.id == row.dag_run_id).values(dirty=True))
        return ended

    def flag_parents(self, connection: Connection, finished_run_ids: Collection[int]) -> None:
        """Flag the parent runs of these finished child runs: their `dag` tasks end now."""
        if not finished_run_ids:
            return
        parents = select(dag_run.c.parent_run_id).where(
            dag_run.c.id.in_(sorted(finished_run_ids)), dag_run.c.parent_run_id.is_not(None)
        )
        connection.execute(
            update(dag_run)
            .where(
                dag_run.c.id.in_(parents.scalar_subquery()), dag_run.c.status.in_(sorted(ACTIVE_RUN_VALUES))
            )
            .values(dirty=True)
        )

    def cancel_children(self, connection: Connection, run_id: int, now: datetime, reason: str) -> list[int]:
        """Inside `cancel_run`: end the run's unheld `dag` attempts cancelled and cancel
        their active child runs, and theirs, down the tree. Returns the child runs
        cancelled."""
        cancelled: list[int] = []
        todo = [run_id]
        while todo:
            current = todo.pop()
            connection.execute(
                update(task_run)
                .where(
                    task_run.c.dag_run_id == current,
                    task_run.c.status == TaskStatus.RUNNING.value,
                    task_run.c.lease_owner.is_(None),
                )
                .values(status=TaskStatus.CANCELLED.value, ended_at=now, error=reason)
            )
            children = (
                connection.execute(
                    update(dag_run)
                    .where(
                        dag_run.c.parent_run_id == current,
                        dag_run.c.status.in_(run_sources(RunStatus.CANCELLED)),
                    )
                    .values(
                        status=RunStatus.CANCELLED.value,
                        ended_at=now,
                        error=f"{reason} (parent run {run_id})",
                    )
                    .returning(dag_run.c.id)
                )
                .scalars()
                .all()
            )
            if children:
                not_started = [s for s in task_sources(TaskStatus.CANCELLED) if s != TaskStatus.RUNNING.value]
                connection.execute(
                    update(task_run)
                    .where(task_run.c.dag_run_id.in_(children), task_run.c.status.in_(not_started))
                    .values(status=TaskStatus.CANCELLED.value, ended_at=now, error=reason)
                )
            cancelled.extend(int(c) for c in children)
            todo.extend(int(c) for c in children)
        return cancelled

    def child_runs_of(self, run_ids: Collection[int]) -> dict[int, list[dict[str, Any]]]:
        """The child runs of these runs, by parent run id (what `status` shows as a tree)."""
        if not run_ids:
            return {}
        with self._tx() as connection:
            rows = connection.execute(
                select(
                    dag_run.c.id,
                    dag_run.c.dag_name,
                    dag_run.c.status,
                    dag_run.c.parent_run_id,
                    task_run.c.task_name,
                    task_run.c.attempt,
                )
                .select_from(dag_run.outerjoin(task_run, and_(task_run.c.id == dag_run.c.parent_task_run_id)))
                .where(dag_run.c.parent_run_id.in_(sorted(run_ids)))
                .order_by(dag_run.c.id)
            ).all()
        found: dict[int, list[dict[str, Any]]] = {}
        for row in rows:
            found.setdefault(int(row.parent_run_id), []).append(
                {
                    "run_id": int(row.id),
                    "dag": row.dag_name,
                    "status": row.status,
                    "task": row.task_name,
                    "attempt": row.attempt,
                }
            )
        return found


__all__ = ["ChildFacts", "ChildOperations", "ChildStart", "DagAttempt", "DagAttemptEnd"]
