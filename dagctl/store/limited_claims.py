"""The claim of the attempts that a limit needing a lock covers: DAGs with
`max_active_tasks` (dag_limits.py) and queues with a limit (queue_limits.py). A mixin
of `Store` (see store.py); claim() in attempts.py calls it inside its transaction after
the ordinary claim, which left these attempts out (claim_scope.py).

1. Lock the limit rows, DAGs first, then the queues this scheduler serves (FOR UPDATE
   SKIP LOCKED: a DAG or queue another scheduler is claiming from is passed over for
   this claim, never waited for, so no two claims can deadlock).
2. Count, in a NEW statement, each locked DAG's and queue's attempts running under a
   live lease: under READ COMMITTED that statement's snapshot holds every claim
   committed before we took the locks, and no other claim of them can commit while we
   hold them.
3. Claim up to the room left with the ordinary statements narrowed to one DAG, one
   queue, or one of each when an attempt falls under both limits, so pools, queues and
   priorities still apply: an attempt counts against its pool, DAG and queue at once.

SQLite serialises every transaction (`BEGIN IMMEDIATE`); the same steps hold there
without the locks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from dagctl.dags.cron import utcnow
from dagctl.dags.model import DEFAULT_QUEUE
from dagctl.store.claim_scope import ClaimScope, Part, Scope
from dagctl.store.dag_limits import running_in_dags
from dagctl.store.queue_limits import running_in_queues
from dagctl.store.tables import dag_limit, queue_limit, task_queue, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

ClaimIn = Callable[["Connection", dict[str, Any], Scope], list[Any]]


class LimitedClaimOperations:
    if TYPE_CHECKING:
        is_postgres: bool
        _dag_limits_in_use: bool
        _queue_limits_in_use: bool
        _served_queues: frozenset[str]

    def _limits_in_use(self) -> bool:
        return self._dag_limits_in_use or self._queue_limits_in_use

    def _unlimited_scope(self) -> ClaimScope:
        """The ordinary claim's scope while a limit is in use: what no limit covers."""
        return ClaimScope(
            dags="others" if self._dag_limits_in_use else None,
            queues="others" if self._queue_limits_in_use else None,
        )

    def _claim_limited(self, connection: Connection, values: dict[str, Any], claim_in: ClaimIn) -> list[Any]:
        """Up to `p_limit` attempts of the limited DAGs and queues, each within its
        limits (steps 1-3 of the module docstring)."""
        db_now: Any = func.timezone("utc", func.now()) if self.is_postgres else utcnow()
        dag_room = self._lock_dags(connection, db_now) if self._dag_limits_in_use else {}
        queue_room = self._lock_queues(connection, db_now) if self._queue_limits_in_use else {}
        other_dags: Part = "others" if self._dag_limits_in_use else None
        other_queues: Part = "others" if self._queue_limits_in_use else None
        limit = int(values["p_limit"])
        claimed: list[Any] = []

        def take(scope: ClaimScope, narrow: dict[str, str], room: int) -> int:
            room = min(room, limit - len(claimed))
            if room <= 0:
                return 0
            got = claim_in(connection, {**values, **narrow, "p_limit": room}, scope)
            claimed.extend(got)
            return len(got)

        for name in dag_room:
            dag_room[name] -= take(ClaimScope("one", other_queues), {"p_dag": name}, dag_room[name])
        for queue in queue_room:
            queue_room[queue] -= take(ClaimScope(other_dags, "one"), {"p_queue": queue}, queue_room[queue])
        for name, queue in self._limited_pairs(connection, dag_room, queue_room):
            got = take(
                ClaimScope("one", "one"),
                {"p_dag": name, "p_queue": queue},
                min(dag_room[name], queue_room[queue]),
            )
            dag_room[name] -= got
            queue_room[queue] -= got
        return claimed

    def _lock_dags(self, connection: Connection, db_now: Any) -> dict[str, int]:
        """Lock the dag_limit rows no other claim holds: {DAG: room left}."""
        lock = select(dag_limit.c.dag_name, dag_limit.c.max_active_tasks).order_by(dag_limit.c.dag_name)
        if self.is_postgres:
            lock = lock.with_for_update(skip_locked=True)
        locked = {r.dag_name: int(r.max_active_tasks) for r in connection.execute(lock)}
        if not locked:
            return {}
        count = running_in_dags(db_now).where(task_run.c.dag_name.in_(sorted(locked)))
        running = {r.dag_name: int(r.n) for r in connection.execute(count)}
        return {name: cap - running.get(name, 0) for name, cap in locked.items()}

    def _lock_queues(self, connection: Connection, db_now: Any) -> dict[str, int]:
        """Lock the queue_limit rows of the queues we serve that no other claim holds:
        {queue: room left}."""
        lock = (
            select(queue_limit.c.queue, queue_limit.c.max_running)
            .where(queue_limit.c.queue.in_(sorted(self._served_queues)))
            .order_by(queue_limit.c.queue)
        )
        if self.is_postgres:
            lock = lock.with_for_update(skip_locked=True)
        locked = {r.queue: int(r.max_running) for r in connection.execute(lock)}
        if not locked:
            return {}
        running = {r.queue: int(r.n) for r in connection.execute(running_in_queues(db_now, locked))}
        return {name: cap - running.get(name, 0) for name, cap in locked.items()}

    def _limited_pairs(
        self, connection: Connection, dag_room: dict[str, int], queue_room: dict[str, int]
    ) -> list[tuple[str, str]]:
        """The (DAG, queue) pairs with room in both whose DAG has tasks in that queue:
        only their attempts fall under both limits."""
        dags = sorted(name for name, room in dag_room.items() if room > 0)
        queues = sorted(name for name, room in queue_room.items() if room > 0)
        if not dags or not queues:
            return []
        routed = select(task_queue.c.dag_name, task_queue.c.queue).distinct()
        routed = routed.where(task_queue.c.dag_name.in_(dags), task_queue.c.queue.in_(queues))
        pairs = {(r.dag_name, r.queue) for r in connection.execute(routed)}
        if DEFAULT_QUEUE in queues:  # every DAG may have tasks in default (they have no row)
            pairs |= {(name, DEFAULT_QUEUE) for name in dags}
        return sorted(pairs)


__all__ = ["LimitedClaimOperations"]
