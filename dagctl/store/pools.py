"""Pools: named sets of slots (`pools:` of dagctl.yaml) shared by every DAG and every
scheduler. A mixin of `Store` (see store.py).

An attempt holds `pool_slots` of its pool exactly while it is `running` under a live
lease: usage is counted from task_run (status, lease expiry by the database's clock on
PostgreSQL), never kept as a counter, so nothing has to give slots back: an attempt that
ends, is cancelled or times out stops counting when its row leaves `running`, and a
killed scheduler's attempts stop counting when their leases run out, before they are
even reaped.

On PostgreSQL a claim takes slot rows (`pool_slot`) with SKIP LOCKED, so schedulers
claiming from one pool never wait for each other (pool_slots.py). On SQLite every
transaction is `BEGIN IMMEDIATE`, which serialises claims already: there the pooled
claim counts the slots held and takes what fits in ONE statement.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    DateTime,
    Integer,
    and_,
    bindparam,
    delete,
    func,
    select,
    update,
)

from dagctl.dags.cron import utcnow
from dagctl.states import CLAIMABLE_TASK, TaskStatus, task_sources
from dagctl.store.claiming import claimed_columns, running_values
from dagctl.store.dag_limits import Scope, dag_scope
from dagctl.store.item_routing import with_item_rows
from dagctl.store.pool_slots import build_candidates, build_take, claim_with_slots, sync_slot_rows
from dagctl.store.priorities import claim_order, priority_of_task
from dagctl.store.queues import served_by
from dagctl.store.records import PoolHolder, PoolUsage
from dagctl.store.tables import (
    dag,
    pool,
    scheduler,
    scheduler_dag,
    task_pool,
    task_priority,
    task_queue,
    task_run,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

# {DAG: {task: (pool, slots)}} of the tasks that take a pool.
PoolAssignments = Mapping[str, Mapping[str, tuple[str, int]]]


class PoolOperations:
    # Set by sync_pools: while no pool is defined, claims skip the pooled path entirely
    # (the claim statement is the one without pools, so no pool costs nothing).
    _pools_in_use: bool = False
    _unpooled_tasks: bool = True  # False when every task the scheduler loaded takes a pool
    _priorities_in_use: bool = False

    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _statement(self, key: Any, build: Any) -> Any: ...

        def _insert(self, table: Any) -> Any: ...

        def _queue_filter(self) -> frozenset[str] | None: ...

    # ------------------------------------------------------------ sync

    def sync_pools(
        self,
        pools: Mapping[str, tuple[int, str]],
        assignments: PoolAssignments,
        loaded: frozenset[str],
        *,
        unpooled_tasks: bool = True,
    ) -> None:
        """Make the pool table say `pools` ({name: (slots, description)}) and task_pool
        say `assignments` for the `loaded` DAGs (rows of DAGs this scheduler did not
        load are left to those that did). Writes only what differs."""
        # Set first: should this sync fail (the iteration is abandoned, the next sync may be
        # a reload interval away), claims must still keep pooled tasks to the pooled path.
        self._pools_in_use = self._pools_in_use or bool(pools)
        self._unpooled_tasks = self._unpooled_tasks or unpooled_tasks
        with self._tx() as connection:
            have = {r.name: (r.slots, r.description) for r in connection.execute(select(pool))}
            gone = [name for name in have if name not in pools]
            if gone:
                connection.execute(delete(pool).where(pool.c.name.in_(gone)))
            new = [{"name": n, "slots": s, "description": d} for n, (s, d) in pools.items() if n not in have]
            if new:
                # DO NOTHING: schedulers starting together write the same rows.
                connection.execute(self._insert(pool).on_conflict_do_nothing(), new)
            changed = [
                {"n": n, "s": s, "d": d} for n, (s, d) in pools.items() if n in have and have[n] != (s, d)
            ]
            if changed:
                connection.execute(
                    update(pool)
                    .where(pool.c.name == bindparam("n"))
                    .values(slots=bindparam("s"), description=bindparam("d")),
                    changed,
                )
            want = {
                (dag_name, task): value
                for dag_name, tasks in assignments.items()
                for task, value in tasks.items()
            }
            rows = connection.execute(select(task_pool)).all()
            current = {(r.dag_name, r.task_name): (r.pool, r.slots) for r in rows if r.dag_name in loaded}
            want = with_item_rows(want, current)  # a for_each item's rows follow its task's
            stale = [key for key, value in current.items() if want.get(key) != value]
            if stale:
                connection.execute(
                    delete(task_pool).where(
                        task_pool.c.dag_name == bindparam("d"), task_pool.c.task_name == bindparam("t")
                    ),
                    [{"d": d, "t": t} for d, t in stale],
                )
            added = [
                {"dag_name": d, "task_name": t, "pool": p, "slots": s}
                for (d, t), (p, s) in want.items()
                if current.get((d, t)) != (p, s)
            ]
            if added:
                connection.execute(self._insert(task_pool).on_conflict_do_nothing(), added)
            sync_slot_rows(connection, self._insert, {name: slots for name, (slots, _) in pools.items()})
        self._pools_in_use = bool(pools)
        self._unpooled_tasks = unpooled_tasks

    def forget_routing(self, owner: str, names: Collection[str]) -> int:
        """Delete the task_pool, task_queue and task_priority rows of these DAGs (deleted from the DAGs
        folder and marked missing), unless a live scheduler other than `owner` has them
        loaded (its folder may differ). Returns how many rows went."""
        if not names:
            return 0
        loaded_elsewhere = (
            select(scheduler_dag.c.dag_name)
            .join(scheduler, scheduler.c.id == scheduler_dag.c.scheduler_id)
            .where(scheduler.c.stopped_at.is_(None), scheduler.c.id != owner)
        )
        gone = 0
        with self._tx() as connection:
            for table in (task_pool, task_queue, task_priority):
                gone += (
                    connection.execute(
                        delete(table).where(
                            table.c.dag_name.in_(sorted(names)), table.c.dag_name.not_in(loaded_elsewhere)
                        )
                    ).rowcount
                    or 0
                )
        return gone

    # ------------------------------------------------------------ claims

    def _claim_pooled(self, connection: Connection, values: dict[str, Any], scope: Scope = None) -> list[Any]:
        """Inside claim()'s transaction: take up to `p_limit` ready pooled attempts of the
        DAGs of `scope` whose slots fit in their pools' free slots, oldest first within
        each pool."""
        queues = self._queue_filter()
        if self.is_postgres:
            candidates = self._statement(
                ("claim slots: candidates", queues, self._priorities_in_use, scope),
                lambda: build_candidates(
                    free_slots(func.timezone("utc", func.now())).cte("free"),
                    None if queues is None else served_by(queues),
                    self._priorities_in_use,
                    dag_scope(scope),
                ),
            )
            take = self._statement("claim slots: take", lambda: build_take(claimed_columns()))
            return claim_with_slots(connection, candidates, take, values)
        values = {**values, "p_wall": utcnow()}  # SQLite leases are on this host's clock
        build = functools.partial(
            self._build_pooled_claim, queues=queues, by_priority=self._priorities_in_use, scope=scope
        )
        key = ("claim pooled", queues, self._priorities_in_use, scope)
        return list(connection.execute(self._statement(key, build), values))

    def _build_pooled_claim(
        self, queues: frozenset[str] | None = None, by_priority: bool = False, scope: Scope = None
    ) -> Any:
        db_now: Any = (
            func.timezone("utc", func.now()) if self.is_postgres else bindparam("p_wall", type_=DateTime)
        )
        free = free_slots(db_now).cte("free")
        candidate = (
            select(task_run.c.id, task_run.c.queued_at, task_pool.c.pool, task_pool.c.slots, free.c.free)
            .add_columns(priority_of_task().label("priority"))
            .join_from(
                task_run,
                task_pool,
                and_(
                    task_pool.c.dag_name == task_run.c.dag_name, task_pool.c.task_name == task_run.c.task_name
                ),
            )
            # Only pools with a free slot: a full pool's queue cannot crowd out the others.
            .join(free, and_(free.c.name == task_pool.c.pool, free.c.free > 0))
            .where(
                task_run.c.status.in_([s.value for s in CLAIMABLE_TASK]),
                task_run.c.not_before <= bindparam("p_now", type_=DateTime),
                task_run.c.dag_name.not_in(select(dag.c.name).where(dag.c.missing_since.is_not(None))),
            )
            .order_by(*claim_order(by_priority))
            .limit(bindparam("p_limit", type_=Integer))
        )
        if queues is not None:
            candidate = candidate.where(served_by(queues))
        if (narrowed := dag_scope(scope)) is not None:
            candidate = candidate.where(narrowed)
        if self.is_postgres:
            candidate = candidate.with_for_update(skip_locked=True, of=task_run)
        held = candidate.cte("candidate")
        # In claim order within each pool, as long as the running total fits.
        order = (held.c.queued_at, held.c.id)
        upto = func.sum(held.c.slots).over(
            partition_by=held.c.pool, order_by=(held.c.priority.desc(), *order) if by_priority else order
        )
        ranked = select(held.c.id, held.c.pool, held.c.slots, held.c.free, upto.label("upto")).cte("ranked")
        fit = (
            select(ranked.c.id, ranked.c.pool, ranked.c.slots)
            .where(ranked.c.upto <= ranked.c.free)
            .cte("fit")
        )
        return (
            update(task_run)
            .where(task_run.c.id == fit.c.id, task_run.c.status.in_(task_sources(TaskStatus.RUNNING)))
            .values({**running_values(self.is_postgres), "pool": fit.c.pool, "pool_slots": fit.c.slots})
            .returning(*claimed_columns())
        )

    # ------------------------------------------------------------ reads

    def pool_usage(self, now: datetime | None = None) -> list[PoolUsage]:
        """Every pool: slots, the attempts holding them, the attempts waiting for them.
        Read by `dagctl pools`, `why` and (later) the web dashboard's /metrics."""
        with self._tx() as connection:
            db_now: Any = func.timezone("utc", func.now()) if self.is_postgres else (now or utcnow())
            pools = connection.execute(select(pool).order_by(pool.c.name)).all()
            holders: dict[str, list[PoolHolder]] = {}
            for r in connection.execute(
                select(task_run.c.pool, task_run.c.pool_slots, task_run.c.dag_name, task_run.c.task_name)
                .add_columns(task_run.c.dag_run_id, task_run.c.id)
                .where(*holding(db_now))
                .order_by(task_run.c.started_at, task_run.c.id)
            ):
                holders.setdefault(r.pool, []).append(
                    PoolHolder(r.dag_name, r.task_name, r.dag_run_id, r.id, r.pool_slots)
                )
            waiting = {
                r.pool: (int(r.n), r.oldest)
                for r in connection.execute(
                    select(
                        task_pool.c.pool,
                        func.count().label("n"),
                        func.min(task_run.c.queued_at).label("oldest"),
                    )
                    .join_from(
                        task_run,
                        task_pool,
                        and_(
                            task_pool.c.dag_name == task_run.c.dag_name,
                            task_pool.c.task_name == task_run.c.task_name,
                        ),
                    )
                    .where(task_run.c.status.in_([s.value for s in CLAIMABLE_TASK]))
                    .group_by(task_pool.c.pool)
                )
            }
        return [
            PoolUsage(
                name=p.name,
                slots=p.slots,
                description=p.description,
                used=sum(h.slots for h in holders.get(p.name, ())),
                holders=tuple(holders.get(p.name, ())),
                waiting=waiting.get(p.name, (0, None))[0],
                oldest_waiting_since=waiting.get(p.name, (0, None))[1],
            )
            for p in pools
        ]


def holding(db_now: Any) -> tuple[Any, ...]:
    """The task_run rows that hold slots of their pool: running under a live lease."""
    return (
        task_run.c.pool.is_not(None),
        task_run.c.status == TaskStatus.RUNNING.value,
        task_run.c.lease_expires_at > db_now,
    )


def free_slots(db_now: Any) -> Any:
    """Each pool's name and free slots (its size less the slots held now)."""
    used = (
        select(task_run.c.pool, func.sum(task_run.c.pool_slots).label("used"))
        .where(*holding(db_now))
        .group_by(task_run.c.pool)
        .subquery("used")
    )
    return select(pool.c.name, (pool.c.slots - func.coalesce(used.c.used, 0)).label("free")).select_from(
        pool.outerjoin(used, used.c.pool == pool.c.name)
    )


__all__ = ["PoolAssignments", "PoolOperations", "free_slots", "holding"]
