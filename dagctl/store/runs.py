"""Runs: DAG rows, creating runs (on schedule or triggered) and advancing them. A mixin
of `Store` (see store.py).

Advancing is two operations of one transaction, with the planner between them:
`lock_flagged_runs` locks what needs deciding and reads it, the caller plans (pure,
scheduling/planner.py), `apply_advance` writes the plan while the locks still hold.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, bindparam, func, insert, or_, select, update

from dagctl.states import ACTIVE_RUN, RunStatus, TaskStatus, run_sources, task_sources
from dagctl.store.hot_reads import active_runs, latest_attempts, running_runs_and_tasks
from dagctl.store.records import (
    AdvancePlan,
    AdvanceSnapshot,
    AttemptSnapshot,
    DagState,
    NewRun,
    RunSnapshot,
)
from dagctl.store.tables import dag, dag_run, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


def new_dag_row(
    insert_into: Callable[[Any], Any], dag_name: str, fingerprint: str | None, now: datetime
) -> Any:
    """The `dag` row a run needs, for a DAG no scheduler has synced yet (a trigger
    before any scheduler ran): inserted only when missing, so it never resets one."""
    return (
        insert_into(dag)
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


class RunOperations:
    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _joined_tx(self, operation: str) -> Connection: ...

        def _statement(self, key: Hashable, build: Callable[[], Any]) -> Any: ...

        def _insert(self, table: Any) -> Any: ...

        def _insert_missing(self, table: Any) -> Any: ...

        def _notify(self, connection: Connection, *, urgent: bool = False) -> None: ...

        def _notify_runs_ended(self, connection: Connection, run_ids: Collection[int]) -> None: ...

        def flag_parents(self, connection: Connection, finished_run_ids: Collection[int]) -> None: ...

        def cancel_children(
            self, connection: Connection, run_id: int, now: datetime, reason: str
        ) -> list[int]: ...

        def _enqueue_run_events(
            self,
            connection: Connection,
            finished: Sequence[tuple[int, str, str]],
            rules: Mapping[str, Mapping[str, Collection[str]]],
            now: datetime,
        ) -> None: ...

    # ------------------------------------------------------------ DAG rows

    def sync_dags(self, fingerprints: Mapping[str, str], now: datetime) -> dict[str, DagState]:
        """Make sure every loaded DAG has a row; flag the active runs of changed DAGs so the
        new definition is looked at. Returns the state of every DAG row."""
        with self._tx() as connection:
            states = self._dag_states(connection)
            missing = [name for name in fingerprints if name not in states]
            if missing:
                connection.execute(
                    self._insert_missing(dag),
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
            select(
                dag.c.name,
                dag.c.paused,
                dag.c.fingerprint,
                dag.c.last_slot,
                dag.c.first_seen_at,
                dag.c.missing_since,
            )
        )
        return {
            r.name: DagState(r.name, r.paused, r.fingerprint, r.last_slot, r.first_seen_at, r.missing_since)
            for r in rows
        }

    # ------------------------------------------------------------ DAGs gone or broken

    def mark_missing_dags(self, missing: Mapping[str, str], present: Collection[str], now: datetime) -> None:
        """Record that these DAGs are deleted, renamed away or broken ({name: reason}),
        since `now` unless already recorded, and that those `present` load fine again."""
        with self._tx() as connection:
            if missing:
                connection.execute(
                    update(dag)
                    .where(dag.c.name == bindparam("n"))
                    .values(
                        missing_since=func.coalesce(dag.c.missing_since, bindparam("t", type_=DateTime)),
                        missing_reason=bindparam("r"),
                    ),
                    [{"n": name, "r": reason, "t": now} for name, reason in missing.items()],
                )
            if present:
                connection.execute(
                    update(dag)
                    .where(dag.c.name.in_(list(present)), dag.c.missing_since.is_not(None))
                    .values(missing_since=None, missing_reason=None)
                )

    def fail_orphaned_runs(
        self,
        grace_seconds: float,
        now: datetime,
        alert_rules: Mapping[str, Mapping[str, Collection[str]]] | None = None,
    ) -> list[tuple[int, str, str]]:
        """End `failed` the active runs of DAGs missing for longer than the grace period,
        with the reason, once none of their attempts is running (a running one ends
        first, fenced by its lease as always); their attempts not started are cancelled.
        Their `failure` alerts, by `alert_rules`, join the outbox in the same transaction.
        Returns (run id, DAG, reason) of the runs ended."""
        since = now - timedelta(seconds=grace_seconds)
        with self._tx() as connection:
            gone = dict(
                connection.execute(
                    select(dag.c.name, dag.c.missing_reason).where(
                        dag.c.missing_since <= since,
                        dag.c.name.in_(
                            select(dag_run.c.dag_name).where(
                                dag_run.c.status.in_([s.value for s in ACTIVE_RUN])
                            )
                        ),
                    )
                ).all()
            )
            if not gone:
                return []
            # Held attempts only: a `dag` or `for_each` task's own attempt holds no
            # process, and ends with its run below (children.py).
            busy = select(task_run.c.dag_run_id).where(
                task_run.c.status == TaskStatus.RUNNING.value, task_run.c.lease_owner.is_not(None)
            )
            not_started = [s for s in task_sources(TaskStatus.CANCELLED) if s != TaskStatus.RUNNING.value]
            ended: list[tuple[int, str, str]] = []
            for name, missing_reason in sorted(gone.items()):
                reason = missing_reason or f"DAG {name} is missing"
                run_ids = (
                    connection.execute(
                        update(dag_run)
                        .where(
                            dag_run.c.dag_name == name,
                            dag_run.c.status.in_(run_sources(RunStatus.FAILED)),
                            dag_run.c.id.not_in(busy),
                        )
                        .values(status=RunStatus.FAILED.value, ended_at=now, dirty=False, error=reason)
                        .returning(dag_run.c.id)
                    )
                    .scalars()
                    .all()
                )
                if run_ids:
                    connection.execute(
                        update(task_run)
                        .where(task_run.c.dag_run_id.in_(run_ids), task_run.c.status.in_(not_started))
                        .values(status=TaskStatus.CANCELLED.value, ended_at=now, error=reason)
                    )
                    for run_id in run_ids:
                        self.cancel_children(connection, int(run_id), now, reason)
                ended.extend((int(run_id), name, reason) for run_id in sorted(run_ids))
            if ended:
                if alert_rules:
                    failed = [(run_id, name, RunStatus.FAILED.value) for run_id, name, _ in ended]
                    self._enqueue_run_events(connection, failed, alert_rules, now)
                self._notify(connection)
        return ended

    # ------------------------------------------------------------ creating runs

    def create_scheduled_runs(
        self, due: Sequence[tuple[str, Sequence[NewRun], datetime, str]], now: datetime
    ) -> int:
        """For each (dag, runs, watermark, fingerprint): one run per slot, whatever other
        schedulers do at the same time (the unique key decides), and the watermark moved
        forward. Returns how many runs this call created."""
        rows = [
            {
                "dag_name": name,
                "kind": "scheduled",
                "creator": "scheduler",
                "logical_date": run.slot,
                "scheduled_slot": run.slot,
                "data_interval_start": run.data_interval_start,
                "data_interval_end": run.slot,
                "params": run.params,
                "status": RunStatus.QUEUED.value if run.error is None else RunStatus.FAILED.value,
                "dirty": run.error is None,
                "fingerprint": fingerprint,
                "error": run.error,
                "created_at": now,
                "ended_at": None if run.error is None else now,
            }
            for name, runs, _, fingerprint in due
            for run in runs
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
                [{"n": name, "slot": watermark} for name, _, watermark, _ in due],
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
        data_interval: tuple[datetime, datetime] | None = None,
    ) -> int:
        """Queue a manual run; its data interval is the logical date itself unless given."""
        start, end = data_interval or (logical_date, logical_date)
        with self._tx() as connection:
            connection.execute(new_dag_row(self._insert, dag_name, fingerprint, now))
            run_id = connection.execute(
                insert(dag_run)
                .values(
                    dag_name=dag_name,
                    kind="manual",
                    creator=creator,
                    logical_date=logical_date,
                    scheduled_slot=None,
                    data_interval_start=start,
                    data_interval_end=end,
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

    def lock_flagged_runs(self, *, ended_in: Collection[str] = ()) -> AdvanceSnapshot:
        """The first half of an advance, inside `transaction()`: lock the DAGs that have
        flagged runs (skipping ones another scheduler holds), clear the flags, and read
        what the planner decides from. The locks last until that transaction ends: the
        caller plans, then applies the plan with `apply_advance` before it does.

        `ended_in`: DAGs whose runs the caller flagged without waking the others (see
        `finish`); those it cannot lock here are being advanced by another scheduler,
        which is woken to look again once it is done."""
        connection = self._joined_tx("lock_flagged_runs")
        paused = self._lock_flagged_dags(connection)
        if any(name not in paused for name in ended_in):
            self._notify(connection, urgent=True)
        if not paused:
            return AdvanceSnapshot()
        runs, attempts = self._active_runs(connection, list(paused))
        return AdvanceSnapshot(paused, runs, attempts)

    def lock_runs_of_ends(self, wanted: Mapping[int, frozenset[str]]) -> AdvanceSnapshot:
        """The first half of an advance of only the runs whose attempts the caller has just
        recorded as ended (`finish`, in this same `transaction()`, which locked these runs
        already): those runs that are still running, and the latest attempt of the tasks
        `wanted` of each, not of every task. Their flags are left set: something else
        may have flagged them too, and the next full advance (`lock_flagged_runs`) looks."""
        connection = self._joined_tx("lock_runs_of_ends")
        runs, attempts = running_runs_and_tasks(connection, self.is_postgres, dict(wanted))
        return AdvanceSnapshot({}, runs, attempts)

    def attempts_of(self, run_ids: Sequence[int]) -> dict[int, dict[str, AttemptSnapshot]]:
        """Inside `transaction()`, with these runs locked: the latest attempt of every
        task of each run."""
        return latest_attempts(self._joined_tx("attempts_of"), self.is_postgres, run_ids)

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
        runs = in_id_order(
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
        running ones, in one query (store/hot_reads.py)."""
        return active_runs(connection, self.is_postgres, dag_names)

    def _external_status(
        self,
        connection: Connection,
        other_dag: str,
        other_task: str,
        logical_date: datetime,
        earliest: datetime | None = None,
    ) -> str | None:
        """Status of `other_task` in the latest run of `other_dag` at or before
        `logical_date` (and at or after `earliest`, if given: scheduling/crossdag.py)."""
        query = select(dag_run.c.id).where(
            dag_run.c.dag_name == other_dag, dag_run.c.logical_date <= logical_date
        )
        if earliest is not None:
            query = query.where(dag_run.c.logical_date >= earliest)
        run_id = connection.execute(
            query.order_by(dag_run.c.logical_date.desc(), dag_run.c.id.desc()).limit(1)
        ).scalar()
        if run_id is None:
            return None
        return connection.execute(
            select(task_run.c.status)
            .where(task_run.c.dag_run_id == run_id, task_run.c.task_name == other_task)
            .order_by(task_run.c.attempt.desc())
            .limit(1)
        ).scalar()

    def apply_advance(self, plan: AdvancePlan, now: datetime) -> None:
        """The second half, in the transaction of `lock_flagged_runs`: start runs, create
        task runs and finish runs as `plan` says (each change still checked against the
        states table), and flag again the runs that are not settled."""
        connection = self._joined_tx("apply_advance")
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
                self._statement(
                    "new task runs",
                    lambda: self._insert_missing(task_run),
                ),
                [
                    {
                        "dag_run_id": t.dag_run_id,
                        "dag_name": t.dag_name,
                        "task_name": t.task_name,
                        "attempt": 1,
                        "status": t.status,
                        "not_before": now,
                        "queued_at": now,
                        # A `dag` task's attempt starts running unheld (store/children.py).
                        "started_at": now if t.status == TaskStatus.RUNNING.value else None,
                        "ended_at": None if t.status in _NOT_ENDED else now,
                        "error": None if t.status in _NOT_ENDED else (t.error or "an input failed"),
                    }
                    for t in plan.new_task_runs
                ],
            )
        finished: list[tuple[int, str, str]] = []
        for final in (RunStatus.SUCCESS, RunStatus.FAILED):
            ids = [run_id for run_id, status in plan.finish_runs if status == final.value]
            if ids:
                moved = connection.execute(
                    update(dag_run)
                    .where(dag_run.c.id.in_(ids), dag_run.c.status.in_(run_sources(final)))
                    .values(status=final.value, ended_at=now)
                    .returning(dag_run.c.id, dag_run.c.dag_name)
                )
                finished += [(row.id, row.dag_name, final.value) for row in moved]
        if finished:
            self.flag_parents(connection, [run_id for run_id, _, _ in finished])
            self._notify_runs_ended(connection, [run_id for run_id, _, _ in finished])
        if finished and plan.alert_rules:
            # Only the runs this UPDATE really moved: each finish writes its events once.
            self._enqueue_run_events(connection, finished, plan.alert_rules, now)
        if plan.still_dirty:
            # Not settled yet (waiting for a slot or another DAG): look again next time.
            still = sorted(set(plan.still_dirty))
            connection.execute(update(dag_run).where(dag_run.c.id.in_(still)).values(dirty=True))
        if any(t.status == TaskStatus.QUEUED.value for t in plan.new_task_runs):
            self._notify(connection)


_NOT_ENDED = (TaskStatus.QUEUED.value, TaskStatus.RUNNING.value)


def in_id_order(runs: Any, name: str) -> Any:
    """A CTE of the dag_run ids `runs` selects, locked in ascending order (PostgreSQL):
    updates of several runs that lock them this way never deadlock with each other. A
    CTE runs once; as `IN (subquery)` the locking subquery could run once per row."""
    return runs.order_by(dag_run.c.id).with_for_update().cte(name)


__all__ = ["RunOperations", "in_id_order"]
