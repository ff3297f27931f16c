"""Per-queue concurrency limits: at most N attempts of work queue Q running at once,
across every scheduler (`queues: {gpu: {limit: 2}}` in dagctl.yaml). A mixin of `Store`
(see store.py).

Enforced like `max_active_tasks` (dag_limits.py): each limited queue has a queue_limit
row, synced from dagctl.yaml at every sync that finds it changed; while there is one,
the ordinary claim leaves those queues' attempts out and limited_claims.py takes them
under the row's lock (FOR UPDATE SKIP LOCKED) with a fresh count of the queue's
attempts running under a live lease. Nothing is counted up or down: an attempt stops
counting when it leaves `running` or its lease runs out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from dagctl.dags.cron import utcnow
from dagctl.states import TaskStatus
from dagctl.store.claim_scope import queue_of_attempt, write_limits
from dagctl.store.tables import queue_limit, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


def running_in_queues(db_now: Any, names: Collection[str]) -> Any:
    """Per queue of `names`, its attempts running under a live lease (queue, n)."""
    queue = queue_of_attempt()
    return (
        select(queue.label("queue"), func.count().label("n"))
        .where(
            task_run.c.status == TaskStatus.RUNNING.value,
            task_run.c.lease_expires_at > db_now,
            queue.in_(sorted(names)),
        )
        .group_by(queue)
    )


class QueueLimitOperations:
    _queue_limits_in_use: bool = False

    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _insert(self, table: Any) -> Any: ...

    def sync_queue_limits(self, limits: Mapping[str, int]) -> None:
        """Make queue_limit say `limits` ({queue: limit}, from dagctl.yaml, which every
        scheduler shares); writes only what differs."""
        # Set first: should this sync fail, claims must still keep to the limits.
        self._queue_limits_in_use = self._queue_limits_in_use or bool(limits)
        with self._tx() as connection:
            key, value = queue_limit.c.queue, queue_limit.c.max_running
            write_limits(connection, self._insert(queue_limit), key, value, limits, lambda _queue: True)
        self._queue_limits_in_use = bool(limits)

    def queue_limits(self) -> dict[str, tuple[int, int]]:
        """{queue: (limit, attempts running under a live lease)} of the limited queues."""
        with self._tx() as connection:
            limits = {r.queue: int(r.max_running) for r in connection.execute(select(queue_limit))}
            if not limits:
                return {}
            db_now: Any = func.timezone("utc", func.now()) if self.is_postgres else utcnow()
            running = {r.queue: int(r.n) for r in connection.execute(running_in_queues(db_now, limits))}
        return {name: (cap, running.get(name, 0)) for name, cap in limits.items()}


__all__ = ["QueueLimitOperations", "running_in_queues"]
