"""History retention: deleting old finished runs with their attempts and logs, and the
once-per-period chores several schedulers share. A mixin of `Store`.

Pruning goes in batches of runs, each batch its own short transaction, so no lock is
held for long and a scheduler sharing the database keeps going. Only runs that are
finished (success, failed, cancelled) are candidates, and the DELETE checks it again
under the row lock: a run that `dagctl retry` reopened meanwhile is left alone. The age
is measured on the database's clock on PostgreSQL.

Alert events (the `notification` outbox) go too once delivered or given up and older
than the same age; an event still pending is never deleted, however old.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, select, update

from dagctl.dags.cron import utcnow
from dagctl.states import FINISHED_RUN_VALUES
from dagctl.store.notifications import DELIVERED
from dagctl.store.notifications import FAILED as GIVEN_UP
from dagctl.store.tables import dag_run, maintenance, notification, task_log, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

DEFAULT_PRUNE_BATCH = 500
_EPOCH = datetime(1970, 1, 1)


@dataclass
class PruneCounts:
    runs: int = 0
    attempts: int = 0
    log_chunks: int = 0
    bytes: int = 0  # the stored text removed: logs, params and error messages (UTF-8 chars)
    alerts: int = 0  # alert events delivered or given up

    def add(self, other: PruneCounts) -> None:
        self.runs += other.runs
        self.attempts += other.attempts
        self.log_chunks += other.log_chunks
        self.bytes += other.bytes
        self.alerts += other.alerts


class PruneOperations:
    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _insert(self, table: Any) -> Any: ...

        def _db_now(self) -> Any: ...

    def prune(
        self,
        older_than_s: float,
        keep_last: int = 0,
        *,
        dry_run: bool = False,
        batch: int = DEFAULT_PRUNE_BATCH,
        on_batch: Callable[[PruneCounts], None] | None = None,
        max_batches: int | None = None,
    ) -> PruneCounts:
        """Delete (or, with dry_run, count) the finished runs that ended more than
        `older_than_s` seconds ago, except the `keep_last` newest finished runs of each
        DAG, with their attempts and logs, then the alert events delivered or given up
        that long ago; at most `max_batches` batches of each when given. Returns what it
        removed."""
        total = PruneCounts()
        cursor = 0
        rounds = max_batches if max_batches is not None else 2**62
        for _ in range(rounds):
            with self._tx() as connection:
                ids = self._prune_candidates(connection, older_than_s, keep_last, cursor, batch)
                if not ids:
                    break
                cursor = ids[-1]
                targets = ids if dry_run else self._still_finished(connection, ids)
                counts = self._measure(connection, targets) if targets else PruneCounts()
                if not dry_run and targets:
                    self._delete_runs(connection, targets)
            total.add(counts)
            if on_batch is not None:
                on_batch(total)
        cursor = 0
        for _ in range(rounds):
            with self._tx() as connection:
                ids = self._old_alerts(connection, older_than_s, cursor, batch)
                if not ids:
                    break
                cursor = ids[-1]
                if not dry_run:
                    # Settled is final; said again in the DELETE itself: nothing pending goes.
                    connection.execute(delete(notification).where(notification.c.id.in_(ids), _settled()))
            total.add(PruneCounts(alerts=len(ids)))
            if on_batch is not None:
                on_batch(total)
        return total

    def _old_alerts(
        self, connection: Connection, older_than_s: float, after_id: int, limit: int
    ) -> list[int]:
        query = (
            select(notification.c.id)
            .where(
                _settled(),
                notification.c.created_at < self._cutoff(older_than_s),
                notification.c.id > after_id,
            )
            .order_by(notification.c.id)
            .limit(limit)
        )
        return [row.id for row in connection.execute(query)]

    def _cutoff(self, older_than_s: float) -> Any:
        if self.is_postgres:
            return func.timezone("utc", func.now()) - func.make_interval(0, 0, 0, 0, 0, 0, older_than_s)
        return utcnow() - timedelta(seconds=older_than_s)

    def _prune_candidates(
        self, connection: Connection, older_than_s: float, keep_last: int, after_id: int, limit: int
    ) -> list[int]:
        cutoff = self._cutoff(older_than_s)
        finished = dag_run.c.status.in_(sorted(FINISHED_RUN_VALUES))
        query = select(dag_run.c.id).where(finished, dag_run.c.ended_at < cutoff, dag_run.c.id > after_id)
        if keep_last > 0:
            ranked = (
                select(
                    dag_run.c.id,
                    func.row_number()
                    .over(partition_by=dag_run.c.dag_name, order_by=dag_run.c.id.desc())
                    .label("newest"),
                )
                .where(finished)
                .subquery()
            )
            kept = select(ranked.c.id).where(ranked.c.newest <= keep_last)
            query = query.where(dag_run.c.id.not_in(kept))
        query = query.order_by(dag_run.c.id).limit(limit)
        if self.is_postgres:
            # A run another transaction holds (being retried, advanced) is skipped, not waited for.
            query = query.with_for_update(of=dag_run, skip_locked=True)
        return [row.id for row in connection.execute(query)]

    def _measure(self, connection: Connection, run_ids: list[int]) -> PruneCounts:
        attempts = select(task_run.c.id).where(task_run.c.dag_run_id.in_(run_ids))
        row = connection.execute(
            select(func.count(), func.coalesce(func.sum(func.length(task_log.c.text)), 0)).where(
                task_log.c.task_run_id.in_(attempts)
            )
        ).one()
        text_size = func.length(dag_run.c.params) + func.coalesce(func.length(dag_run.c.error), 0)
        run_text = connection.execute(
            select(func.coalesce(func.sum(text_size), 0)).where(dag_run.c.id.in_(run_ids))
        ).scalar_one()
        attempt_count = connection.execute(
            select(func.count()).select_from(task_run).where(task_run.c.dag_run_id.in_(run_ids))
        ).scalar_one()
        return PruneCounts(len(run_ids), int(attempt_count), int(row[0]), int(row[1]) + int(run_text))

    def _still_finished(self, connection: Connection, run_ids: list[int]) -> list[int]:
        """The runs among `run_ids` still finished, locked until the batch commits: only
        those lose their attempts (SQLite's write transaction excludes everyone else)."""
        query = select(dag_run.c.id).where(
            and_(dag_run.c.id.in_(run_ids), dag_run.c.status.in_(sorted(FINISHED_RUN_VALUES)))
        )
        if self.is_postgres:
            query = query.with_for_update()
        return [r.id for r in connection.execute(query)]

    def _delete_runs(self, connection: Connection, doomed: list[int]) -> None:
        attempts = select(task_run.c.id).where(task_run.c.dag_run_id.in_(doomed))
        connection.execute(delete(task_log).where(task_log.c.task_run_id.in_(attempts)))
        connection.execute(delete(task_run).where(task_run.c.dag_run_id.in_(doomed)))
        connection.execute(delete(dag_run).where(dag_run.c.id.in_(doomed)))

    # ------------------------------------------------------------ shared chores

    def claim_chore(self, name: str, period_s: float, owner: str) -> bool:
        """True for exactly one caller per `period_s`, whatever the number of schedulers
        and their hosts' clocks: the UPDATE compares the chore's due time with the
        database's clock and moves it forward in the same statement."""
        with self._tx() as connection:
            connection.execute(
                self._insert(maintenance)
                .values(name=name, next_due_at=_EPOCH, owner=None)
                .on_conflict_do_nothing()
            )
            if self.is_postgres:
                db_now: Any = func.timezone("utc", func.now())
                due_next: Any = db_now + func.make_interval(0, 0, 0, 0, 0, 0, period_s)
            else:
                db_now = utcnow()
                due_next = db_now + timedelta(seconds=period_s)
            taken = connection.execute(
                update(maintenance)
                .where(maintenance.c.name == name, maintenance.c.next_due_at <= db_now)
                .values(next_due_at=due_next, owner=owner)
                .returning(maintenance.c.name)
            ).first()
            return taken is not None


def _settled() -> Any:
    """An alert event that is done with: delivered, or given up."""
    return notification.c.status.in_([DELIVERED, GIVEN_UP])


__all__ = ["DEFAULT_PRUNE_BATCH", "PruneCounts", "PruneOperations"]
