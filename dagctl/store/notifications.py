"""The alert outbox (tables.notification): events written with the state change that
causes them, taken by one scheduler at a time, delivered outside any other transaction.

A row is due when `status` is pending and `next_attempt_at` has passed on the database's
clock. Taking it moves `next_attempt_at` one claim period ahead and names the owner, in
one statement over rows locked with SKIP LOCKED (PostgreSQL) or inside SQLite's write
lock: two schedulers never take the same row at once, and a row whose owner died is due
again when that period ends. Finishing checks the owner (a slow owner whose claim
expired and was taken over cannot overwrite the new owner's outcome).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, or_, select, update

from dagctl.dags.cron import utcnow
from dagctl.states import ACTIVE_RUN, RunStatus
from dagctl.store.records import Notification
from dagctl.store.tables import dag_run, notification

if TYPE_CHECKING:
    from sqlalchemy import Connection

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DEADLINE_MISSED = "deadline_missed"
# Events about one attempt rather than a whole run (notification.task_run_id).
RETRY, LOST = "retry", "lost"
# dag -> event -> channels: the `notify:` rules the store writes events by.
AlertRules = Mapping[str, Mapping[str, Collection[str]]]


class NotificationOperations:
    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _db_now(self) -> Any: ...

        def _lease_until(self, lease_seconds: float) -> Any: ...

        def _insert(self, table: Any) -> Any: ...

    def _enqueue_run_events(
        self,
        connection: Connection,
        finished: Sequence[tuple[int, str, str]],
        rules: AlertRules,
        now: datetime,
    ) -> None:
        """In the transaction that finished these runs ((id, dag, status), each one
        really moved by it): the events their DAGs' rules ask for. `recovery` when the
        DAG's previous finished run had failed."""
        rows = []
        for run_id, dag_name, status in finished:
            wanted = rules.get(dag_name) or {}
            events: list[str] = []
            if status == RunStatus.FAILED.value:
                events.append("failure")
            elif status == RunStatus.SUCCESS.value:
                events.append("success")
                if "recovery" in wanted and self._previous_run_failed(connection, dag_name, run_id):
                    events.append("recovery")
            for event in events:
                channels = sorted(wanted.get(event) or ())
                if channels:
                    rows.append(_new_row(dag_name, run_id, event, channels, now))
        if rows:
            connection.execute(insert(notification), rows)

    @staticmethod
    def _enqueue_attempt_events(
        connection: Connection, event: str, attempts: Sequence[Any], rules: AlertRules, now: datetime
    ) -> None:
        """In the transaction that ended these attempts (rows with id, dag_run_id and
        dag_name, each one really moved by it): `event` (retry, lost) for each attempt
        whose DAG's rules ask for it."""
        rows = []
        for attempt in attempts:
            channels = sorted((rules.get(attempt.dag_name) or {}).get(event) or ())
            if channels:
                row = _new_row(attempt.dag_name, attempt.dag_run_id, event, channels, now)
                rows.append(row | {"task_run_id": attempt.id})
        if rows:
            connection.execute(insert(notification), rows)

    @staticmethod
    def _previous_run_failed(connection: Connection, dag_name: str, run_id: int) -> bool:
        finished = (RunStatus.SUCCESS.value, RunStatus.FAILED.value)
        previous = connection.execute(
            select(dag_run.c.status)
            .where(dag_run.c.dag_name == dag_name, dag_run.c.id != run_id, dag_run.c.status.in_(finished))
            .order_by(dag_run.c.ended_at.desc(), dag_run.c.id.desc())
            .limit(1)
        ).scalar()
        return previous == RunStatus.FAILED.value

    def enqueue_missed_deadlines(
        self,
        deadline_of: Callable[[str, datetime], datetime | None],
        channels: Mapping[str, Sequence[str]],
    ) -> list[int]:
        """A `deadline_missed` event for each queued or running run of the DAGs in
        `channels` whose deadline (`deadline_of(dag, logical_date)`) has passed on the
        database's clock, once per run whatever the number of schedulers deciding it
        (a unique key); the ids of the runs that got one now."""
        if not channels:
            return []
        active = [s.value for s in ACTIVE_RUN]
        already = select(notification.c.id).where(
            notification.c.dag_run_id == dag_run.c.id, notification.c.event == DEADLINE_MISSED
        )
        with self._tx() as connection:
            now = self._database_instant(connection)
            runs = connection.execute(
                select(dag_run.c.id, dag_run.c.dag_name, dag_run.c.logical_date).where(
                    dag_run.c.dag_name.in_(list(channels)), dag_run.c.status.in_(active), ~already.exists()
                )
            ).all()
            rows = []
            for run in runs:
                due = deadline_of(run.dag_name, run.logical_date)
                if due is not None and due <= now:
                    row = _new_row(run.dag_name, run.id, DEADLINE_MISSED, sorted(channels[run.dag_name]), now)
                    rows.append(row | {"dedup_key": f"{DEADLINE_MISSED}:{run.id}"})
            fired = []
            for row in rows:
                result = connection.execute(
                    self._insert(notification)
                    .values(**row)
                    .on_conflict_do_nothing(index_elements=["dedup_key"])
                )
                if result.rowcount:
                    fired.append(int(row["dag_run_id"]))
            return fired

    def _database_instant(self, connection: Connection) -> datetime:
        if not self.is_postgres:
            return utcnow()
        value: datetime = connection.execute(
            select(func.timezone("utc", func.clock_timestamp()))
        ).scalar_one()
        return value

    def enqueue_notification(
        self, dag_name: str, run_id: int | None, event: str, channels: Sequence[str], now: datetime
    ) -> int:
        """One event on its own (`dagctl notify test`); its id."""
        with self._tx() as connection:
            result = connection.execute(
                insert(notification).values(**_new_row(dag_name, run_id, event, sorted(channels), now))
            )
            key = result.inserted_primary_key
            return int(key[0]) if key else 0

    def claim_notifications(self, owner: str, limit: int, hold_seconds: float) -> list[Notification]:
        """Take up to `limit` due events for `hold_seconds` (see the module docstring)."""
        due = (
            select(notification.c.id)
            .where(notification.c.status == PENDING, notification.c.next_attempt_at <= self._db_now())
            .order_by(notification.c.next_attempt_at, notification.c.id)
            .limit(limit)
        )
        if self.is_postgres:
            due = due.with_for_update(skip_locked=True)
        with self._tx() as connection:
            ids = list(connection.execute(due).scalars())
            if not ids:
                return []
            rows = connection.execute(
                update(notification)
                .where(notification.c.id.in_(ids))
                .values(
                    owner=owner,
                    attempts=notification.c.attempts + 1,
                    next_attempt_at=self._lease_until(hold_seconds),
                )
                .returning(*notification.c)
            )
            return sorted((_record(dict(r._mapping)) for r in rows), key=lambda n: n.id)

    def finish_notification(
        self,
        notification_id: int,
        owner: str,
        sent_to: Collection[str],
        error: str | None,
        retry_in_seconds: float | None,
    ) -> bool:
        """Record one delivery pass: delivered (no error), due again in `retry_in_seconds`,
        or given up (None). False when `owner` no longer held it."""
        values: dict[str, Any] = {"sent_to": json.dumps(sorted(sent_to)), "last_error": error, "owner": None}
        if error is None:
            values |= {"status": DELIVERED, "delivered_at": self._db_now()}
        elif retry_in_seconds is None:
            values |= {"status": FAILED}
        else:
            values |= {"next_attempt_at": self._lease_until(retry_in_seconds)}
        with self._tx() as connection:
            result = connection.execute(
                update(notification)
                .where(
                    notification.c.id == notification_id,
                    notification.c.owner == owner,
                    notification.c.status == PENDING,
                )
                .values(**values)
            )
            return bool(result.rowcount)

    def notifications(self, dag_name: str | None = None, limit: int = 50) -> list[Notification]:
        """The newest events, newest first (`dagctl notifications`, the web dashboard)."""
        query = select(notification).order_by(notification.c.id.desc()).limit(limit)
        if dag_name:
            query = query.where(notification.c.dag_name == dag_name)
        with self._tx() as connection:
            return [_record(dict(r._mapping)) for r in connection.execute(query)]

    def failing_notifications(self, dag_name: str | None = None, limit: int = 20) -> list[Notification]:
        """Events whose last delivery pass failed (still retried, or given up), newest first."""
        query = (
            select(notification)
            .where(
                notification.c.last_error.is_not(None),
                or_(notification.c.status == FAILED, notification.c.status == PENDING),
            )
            .order_by(notification.c.id.desc())
            .limit(limit)
        )
        if dag_name:
            query = query.where(and_(notification.c.dag_name == dag_name))
        with self._tx() as connection:
            return [_record(dict(r._mapping)) for r in connection.execute(query)]

    def pending_notification_count(self) -> int:
        with self._tx() as connection:
            return int(
                connection.execute(
                    select(func.count()).select_from(notification).where(notification.c.status == PENDING)
                ).scalar_one()
            )

    def notification_counts(self) -> dict[str, int]:
        """Events by status, each of pending/delivered/failed present (/metrics)."""
        query = select(notification.c.status, func.count()).group_by(notification.c.status)
        with self._tx() as connection:
            counts = {str(status): int(n) for status, n in connection.execute(query)}
        return {PENDING: 0, DELIVERED: 0, FAILED: 0} | counts


def _new_row(
    dag_name: str, run_id: int | None, event: str, channels: Sequence[str], now: datetime
) -> dict[str, Any]:
    return {
        "dag_name": dag_name,
        "dag_run_id": run_id,
        "event": event,
        "channels": json.dumps(list(channels)),
        "sent_to": "[]",
        "status": PENDING,
        "attempts": 0,
        "created_at": now,
        # Due at once, whatever the clocks: a little in the past on every host's reckoning.
        "next_attempt_at": now - timedelta(minutes=5),
        "task_run_id": None,
    }


def _record(row: Mapping[str, Any]) -> Notification:
    return Notification(
        id=row["id"],
        dag_name=row["dag_name"],
        dag_run_id=row["dag_run_id"],
        event=row["event"],
        channels=tuple(json.loads(row["channels"])),
        sent_to=tuple(json.loads(row["sent_to"] or "[]")),
        status=row["status"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        delivered_at=row["delivered_at"],
        last_error=row["last_error"],
        task_run_id=row.get("task_run_id"),
    )


__all__ = ["DELIVERED", "FAILED", "LOST", "PENDING", "RETRY", "AlertRules", "NotificationOperations"]
