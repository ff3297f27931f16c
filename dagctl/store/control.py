"""Run control: pause, cancel and retry, as store operations (a mixin of `Store`).

Each method is one transaction. Every status change is guarded in SQL by the states
table (`WHERE status IN (allowed sources)`), so two people cancelling and retrying the
same run at once cannot leave it half-done: one of them changes nothing and is told so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, exists, select, update

from dagctl.states import (
    ACTIVE_RUN_VALUES,
    FINISHED_RUN_VALUES,
    RunStatus,
    TaskStatus,
    run_sources,
    task_sources,
)
from dagctl.store.records import CancelResult, RetryResult
from dagctl.store.tables import dag, dag_run, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

CANCEL_REASON = "cancelled by dagctl cancel"


class ControlOperations:
    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _insert(self, table: Any) -> Any: ...

        def _insert_missing(self, table: Any) -> Any: ...

        def _notify(self, connection: Connection, *, urgent: bool = False) -> None: ...

        def cancel_children(
            self, connection: Connection, run_id: int, now: datetime, reason: str
        ) -> list[int]: ...

        def flag_parents(self, connection: Connection, finished_run_ids: Collection[int]) -> None: ...

    # ------------------------------------------------------------ pause

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

    # ------------------------------------------------------------ cancel

    def cancel_run(self, run_id: int, now: datetime, reason: str = CANCEL_REASON) -> CancelResult | None:
        """Mark the run cancelled and its queued or waiting attempts cancelled. Running
        attempts stay `running` until the scheduler that holds them stops them (see
        `cancelled_attempts`); their end is then recorded as cancelled, never retried.
        None when there is no such run."""
        with self._tx() as connection:
            dag_name = connection.execute(select(dag_run.c.dag_name).where(dag_run.c.id == run_id)).scalar()
            if dag_name is None:
                return None
            if self.is_postgres:
                # The advance step holds this lock while it creates task runs: taking it
                # here means no task run is created for the run after it is cancelled.
                connection.execute(select(dag.c.name).where(dag.c.name == dag_name).with_for_update())
                self._lock_child_dags(connection, run_id)
            previous = connection.execute(select(dag_run.c.status).where(dag_run.c.id == run_id)).scalar_one()
            changed = connection.execute(
                update(dag_run)
                .where(dag_run.c.id == run_id, dag_run.c.status.in_(run_sources(RunStatus.CANCELLED)))
                .values(status=RunStatus.CANCELLED.value, ended_at=now, error=reason)
                .returning(dag_run.c.id)
            ).first()
            if changed is None:
                return CancelResult(str(previous), cancelled=False)
            not_started = [s for s in task_sources(TaskStatus.CANCELLED) if s != TaskStatus.RUNNING.value]
            cancelled = connection.execute(
                update(task_run)
                .where(task_run.c.dag_run_id == run_id, task_run.c.status.in_(not_started))
                .values(status=TaskStatus.CANCELLED.value, ended_at=now, error=reason)
                .returning(task_run.c.task_name)
            ).all()
            # Its `dag` tasks and their child runs (store/children.py) end with it.
            self.cancel_children(connection, run_id, now, reason)
            self.flag_parents(connection, [run_id])
            running = connection.execute(
                select(task_run.c.task_name)
                .where(task_run.c.dag_run_id == run_id, task_run.c.status == TaskStatus.RUNNING.value)
                .order_by(task_run.c.task_name)
            ).all()
            self._notify(connection)
            return CancelResult(
                str(previous),
                cancelled=True,
                cancelled_tasks=tuple(sorted(r.task_name for r in cancelled)),
                running_tasks=tuple(r.task_name for r in running),
            )

    def _lock_child_dags(self, connection: Connection, run_id: int) -> None:
        """Lock the DAG rows of the run's active child runs (and theirs) before any run
        row changes: an advance of a child DAG holds its DAG row, then flags the parent
        run, so taking them in the other order could deadlock with it."""
        names: set[str] = set()
        todo = [run_id]
        while todo:
            rows = connection.execute(
                select(dag_run.c.id, dag_run.c.dag_name).where(
                    dag_run.c.parent_run_id.in_(todo), dag_run.c.status.in_(sorted(ACTIVE_RUN_VALUES))
                )
            ).all()
            names.update(r.dag_name for r in rows)
            todo = [int(r.id) for r in rows]
        if names:
            connection.execute(
                select(dag.c.name).where(dag.c.name.in_(sorted(names))).order_by(dag.c.name).with_for_update()
            )

    def cancelled_attempts(self, owner: str) -> list[int]:
        """This owner's running attempts whose run has been cancelled: the scheduler stops
        them. One statement; the scheduler only asks while it has attempts in flight."""
        with self._tx() as connection:
            rows = connection.execute(
                select(task_run.c.id)
                .join(dag_run, dag_run.c.id == task_run.c.dag_run_id)
                .where(
                    task_run.c.lease_owner == owner,
                    task_run.c.status == TaskStatus.RUNNING.value,
                    dag_run.c.status == RunStatus.CANCELLED.value,
                )
                .order_by(task_run.c.id)
            )
            return [int(r.id) for r in rows]

    # ------------------------------------------------------------ retry

    def retry_run(
        self,
        run_id: int,
        requeue: Sequence[tuple[str, int]],
        reset: Sequence[str],
        now: datetime,
        unheld: Collection[str] = (),
    ) -> RetryResult:
        """Reopen a finished run: queue a new attempt of each (task, attempt) in
        `requeue`, and remove the never-started attempts of the tasks in `reset` so the
        scheduler creates them again once their inputs succeed. Nothing changes unless
        the run is still finished and has no running attempt (checked in the update)."""
        with self._tx() as connection:
            still_running = exists().where(
                task_run.c.dag_run_id == run_id, task_run.c.status == TaskStatus.RUNNING.value
            )
            finished = [s for s in run_sources(RunStatus.RUNNING) if s in FINISHED_RUN_VALUES]
            reopened = connection.execute(
                update(dag_run)
                .where(dag_run.c.id == run_id, dag_run.c.status.in_(finished), ~still_running)
                .values(status=RunStatus.RUNNING.value, ended_at=None, error=None, dirty=True)
                .returning(dag_run.c.id)
            ).first()
            if reopened is None:
                status = connection.execute(select(dag_run.c.status).where(dag_run.c.id == run_id)).scalar()
                return RetryResult(False, status=status)
            if reset:
                connection.execute(
                    delete(task_run).where(
                        task_run.c.dag_run_id == run_id,
                        task_run.c.task_name.in_(list(reset)),
                        task_run.c.started_at.is_(None),
                    )
                )
            if requeue:
                dag_name = connection.execute(
                    select(dag_run.c.dag_name).where(dag_run.c.id == run_id)
                ).scalar_one()
                connection.execute(
                    self._insert_missing(task_run),
                    [
                        {
                            "dag_run_id": run_id,
                            "dag_name": dag_name,
                            "task_name": task,
                            "attempt": attempt,
                            # `unheld`: dag tasks, whose new attempt (and child run)
                            # the advance step starts (store/children.py).
                            "status": TaskStatus.RUNNING.value if task in unheld else TaskStatus.QUEUED.value,
                            "started_at": now if task in unheld else None,
                            "not_before": now,
                            "queued_at": now,
                        }
                        for task, attempt in requeue
                    ],
                )
            self._notify(connection)
            return RetryResult(True, requeued=tuple(requeue), reset=tuple(reset))


__all__ = ["CANCEL_REASON", "CancelResult", "ControlOperations", "RetryResult"]
