"""Work queues: a DAG or task with `queue: NAME` is claimed only by schedulers started
with `--queue NAME` (no `--queue`: `default`, the queue of every other task). A mixin of
`Store` (see store.py).

Which task goes to which queue is synced from the definitions into task_queue (only
tasks of a queue other than `default` have a row); the claim statements filter on it
(`served_by`), so a scheduler never takes an attempt of a queue it does not serve.

`dagctl queue pause NAME` writes a queue_pause row; the same filter leaves out the
attempts of paused queues, in SQL, so a pause holds for every scheduler from the first
claim after the scheduler has seen that any queue is paused (it looks once per poll
interval: refresh_queue_pauses) — at once when it already filters on queues.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from dagctl.dags.cron import utcnow
from dagctl.dags.model import DEFAULT_QUEUE
from dagctl.states import CLAIMABLE_TASK, TaskStatus
from dagctl.store.item_routing import sync_task_rows
from dagctl.store.records import QueueUsage
from dagctl.store.tables import queue_limit, queue_pause, scheduler, scheduler_queue, task_queue, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


class QueueOperations:
    _served_queues: frozenset[str] = frozenset({DEFAULT_QUEUE})
    _queues_routed: bool = False  # any task synced to a queue other than default
    _queues_paused: bool = False  # any queue paused, as refresh_queue_pauses last saw

    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _insert(self, table: Any) -> Any: ...

        def _db_now(self) -> Any: ...

    def serve_queues(self, names: Collection[str]) -> None:
        """The queues this process claims from (a scheduler's `--queue`s)."""
        self._served_queues = frozenset(names) or frozenset({DEFAULT_QUEUE})

    def _queue_filter(self) -> frozenset[str] | None:
        """The queues to filter claims on, or None when there is nothing to filter: every
        task is in `default` and that is what we serve (the claim is then unchanged)."""
        if not self._queues_routed and not self._queues_paused and self._served_queues == {DEFAULT_QUEUE}:
            return None
        return self._served_queues

    def refresh_queue_pauses(self) -> frozenset[str]:
        """Read which queues are paused; from then on, while any is, claims filter them
        out in SQL (so a pause made after this read still holds for those claims)."""
        with self._tx() as connection:
            paused = frozenset(connection.execute(select(queue_pause.c.queue)).scalars())
        self._queues_paused = bool(paused)
        return paused

    def set_queue_paused(self, name: str, paused: bool, now: datetime) -> bool:
        """Pause or unpause queue `name`; True when that changed anything."""
        with self._tx() as connection:
            if paused:
                insert = self._insert(queue_pause).on_conflict_do_nothing()
                changed = connection.execute(insert, {"queue": name, "paused_at": now}).rowcount
            else:
                changed = connection.execute(delete(queue_pause).where(queue_pause.c.queue == name)).rowcount
        return bool(changed)

    def sync_task_queues(self, assignments: Mapping[str, Mapping[str, str]], loaded: frozenset[str]) -> None:
        """Make task_queue say `assignments` ({DAG: {task: queue}}, tasks of `default`
        left out) for the `loaded` DAGs; writes only what differs."""
        want = {(d, t): q for d, tasks in assignments.items() for t, q in tasks.items()}
        # Set first: should this sync fail, claims must still filter on queues.
        self._queues_routed = self._queues_routed or bool(want)
        with self._tx() as connection:
            routed = sync_task_rows(connection, self._insert, task_queue, "queue", want, loaded)
        self._queues_routed = routed  # once committed

    def record_served_queues(self, owner: str) -> None:
        """Scheduler `owner` serves the queues of serve_queues() (written once, at start;
        read while its heartbeat is fresh)."""
        with self._tx() as connection:
            connection.execute(delete(scheduler_queue).where(scheduler_queue.c.scheduler_id == owner))
            connection.execute(
                self._insert(scheduler_queue),
                [{"scheduler_id": owner, "queue": name} for name in sorted(self._served_queues)],
            )

    def unserved_queues(self, stale_after_s: float) -> dict[str, int]:
        """{queue: queued attempts} of the queues no live scheduler serves, while any
        scheduler is alive (else nothing: no queue is served, and `why` says so)."""
        usage = self.queue_usage(stale_after_s)
        if not any(q.served_by for q in usage):
            return {}
        return {q.name: q.waiting for q in usage if q.waiting and not q.served_by}

    def queue_usage(self, stale_after_s: float) -> list[QueueUsage]:
        """Every queue that has tasks routed to it, waiting or running attempts, or a live
        scheduler serving it (and `default`): its attempts and who serves it."""
        queue_of = func.coalesce(
            select(task_queue.c.queue)
            .where(
                task_queue.c.dag_name == task_run.c.dag_name, task_queue.c.task_name == task_run.c.task_name
            )
            .scalar_subquery(),
            DEFAULT_QUEUE,
        )
        claimable = [s.value for s in CLAIMABLE_TASK]
        with self._tx() as connection:
            db_now: datetime = (
                connection.execute(select(self._db_now())).scalar_one() if self.is_postgres else utcnow()
            )
            counts: dict[str, tuple[int, datetime | None, int]] = {}
            for r in connection.execute(
                select(
                    queue_of.label("queue"),
                    func.count().filter(task_run.c.status.in_(claimable)).label("waiting"),
                    func.min(task_run.c.queued_at).filter(task_run.c.status.in_(claimable)).label("oldest"),
                    # Not the attempts of `dag` and for_each tasks, which hold no worker
                    # slot (no lease owner): their child runs' and items' attempts count.
                    func.count()
                    .filter(
                        task_run.c.status == TaskStatus.RUNNING.value, task_run.c.lease_owner.is_not(None)
                    )
                    .label("running"),
                )
                .where(task_run.c.status.in_([*claimable, TaskStatus.RUNNING.value]))
                .group_by(queue_of)
            ):
                counts[r.queue] = (int(r.waiting), r.oldest, int(r.running))
            serving: dict[str, list[str]] = {}
            for r in connection.execute(
                select(scheduler_queue.c.queue, scheduler.c.host, scheduler.c.pid)
                .join(scheduler, scheduler.c.id == scheduler_queue.c.scheduler_id)
                .where(
                    scheduler.c.stopped_at.is_(None),
                    scheduler.c.heartbeat_at >= db_now - timedelta(seconds=stale_after_s),
                )
                .order_by(scheduler.c.host, scheduler.c.pid)
            ):
                serving.setdefault(r.queue, []).append(f"{r.host}:{r.pid}")
            routed = set(connection.execute(select(task_queue.c.queue).distinct()).scalars())
            paused = set(connection.execute(select(queue_pause.c.queue)).scalars())
            limits = {r.queue: int(r.max_running) for r in connection.execute(select(queue_limit))}
        names = sorted({DEFAULT_QUEUE, *routed, *counts, *serving, *paused, *limits})
        return [
            QueueUsage(
                name,
                counts.get(name, (0, None, 0))[0],
                counts.get(name, (0, None, 0))[1],
                counts.get(name, (0, None, 0))[2],
                tuple(serving.get(name, ())),
                paused=name in paused,
                limit=limits.get(name),
            )
            for name in names
        ]


def served_by(queues: frozenset[str]) -> Any:
    """The task of a task_run row is in one of `queues`, and its queue is not paused (a
    WHERE clause)."""
    routed = select(task_queue.c.queue).where(
        task_queue.c.dag_name == task_run.c.dag_name, task_queue.c.task_name == task_run.c.task_name
    )
    # Each subquery names task_run itself (one level deep), so it correlates with the
    # claim's task_run; nested deeper it would not, and would scan every row.
    routed_paused = (
        select(task_queue.c.queue)
        .join(queue_pause, queue_pause.c.queue == task_queue.c.queue)
        .where(task_queue.c.dag_name == task_run.c.dag_name, task_queue.c.task_name == task_run.c.task_name)
        .exists()
    )
    default_paused = select(queue_pause.c.queue).where(queue_pause.c.queue == DEFAULT_QUEUE).exists()
    not_paused = ~routed_paused & ~(default_paused & ~routed.exists())
    if DEFAULT_QUEUE in queues:
        # Unrouted tasks are in default: exclude only those routed elsewhere.
        return (
            not_paused & ~routed.where(task_queue.c.queue.not_in(sorted(queues - {DEFAULT_QUEUE}))).exists()
        )
    return not_paused & routed.where(task_queue.c.queue.in_(sorted(queues))).exists()


__all__ = ["QueueOperations", "served_by"]
