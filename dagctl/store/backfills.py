"""Backfills: one run per schedule slot of a range, created in one transaction, and
what `dagctl backfill --wait` and `--cancel` read and change. A mixin of `Store`.

Creating is safe with any number of processes at once: a slot that has no run gets a
backfill run holding the slot's unique key (dag, scheduled_slot), the key scheduled
runs use, so two backfills (or a backfill and the scheduler) never make two runs for
it; a rerun of a slot that has runs (`--reprocess failed|all`) is keyed by (backfill,
slot) instead. Whoever loses a race inserts nothing and counts nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from dagctl.states import ACTIVE_RUN, RunStatus
from dagctl.store.records import CancelResult, NewRun
from dagctl.store.runs import new_dag_row
from dagctl.store.tables import backfill, dag_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

BACKFILL_RUNNING = "running"
BACKFILL_CANCELLED = "cancelled"
REPROCESS_CHOICES = ("missing", "failed", "all")


class BackfillOperations:
    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _insert(self, table: Any) -> Any: ...

        def _notify(self, connection: Connection, *, urgent: bool = False) -> None: ...

        def cancel_run(self, run_id: int, now: datetime, reason: str = ...) -> CancelResult | None: ...

    def slot_statuses(self, dag_name: str, start: datetime, end: datetime) -> dict[datetime, str]:
        """Status of the newest run of each slot in [start, end] that has one (any kind)."""
        with self._tx() as connection:
            return self._slot_statuses(connection, dag_name, start, end)

    def _slot_statuses(
        self, connection: Connection, dag_name: str, start: datetime, end: datetime
    ) -> dict[datetime, str]:
        rows = connection.execute(
            select(dag_run.c.logical_date, dag_run.c.status)
            .where(
                dag_run.c.dag_name == dag_name,
                dag_run.c.logical_date >= start,
                dag_run.c.logical_date <= end,
            )
            .order_by(dag_run.c.id)
        )
        return {row.logical_date: row.status for row in rows}  # the newest run wins

    def create_backfill(
        self,
        spec: Mapping[str, Any],
        runs: Sequence[NewRun],
        fingerprint: str | None,
        now: datetime,
    ) -> tuple[int, int]:
        """Record the backfill `spec` (dag_name, start_slot, end_slot, reprocess,
        max_active_runs, reverse, schedule, params, creator) and create its runs among
        `runs`, as `reprocess` says. Returns (backfill id, runs created)."""
        dag_name, reprocess = spec["dag_name"], spec["reprocess"]
        with self._tx() as connection:
            connection.execute(new_dag_row(self._insert, dag_name, fingerprint, now))
            backfill_id = int(
                connection.execute(
                    insert(backfill)
                    .values(**spec, status=BACKFILL_RUNNING, created_at=now)
                    .returning(backfill.c.id)
                ).scalar_one()
            )
            existing = self._slot_statuses(connection, dag_name, spec["start_slot"], spec["end_slot"])
            rows = []
            for run in runs:
                status = existing.get(run.slot)
                if status is not None and not (
                    reprocess == "all" or (reprocess == "failed" and status == RunStatus.FAILED.value)
                ):
                    continue
                rows.append(
                    {
                        "dag_name": dag_name,
                        "kind": "backfill",
                        "creator": spec["creator"],
                        "logical_date": run.slot,
                        # A slot without a run takes the slot's key: nobody else can make one.
                        "scheduled_slot": run.slot if status is None else None,
                        "data_interval_start": run.data_interval_start,
                        "data_interval_end": run.slot,
                        "backfill_id": backfill_id,
                        "params": run.params,
                        "status": RunStatus.QUEUED.value,
                        "dirty": True,
                        "fingerprint": fingerprint,
                        "created_at": now,
                    }
                )
            created = 0
            if rows:
                # Any unique key may refuse a row (another process took the slot): skip it.
                # RETURNING: without it SQLAlchemy sends such an INSERT one row a round trip
                # on PostgreSQL (1,000 slots, 1,000 round trips); the refused rows return none.
                created = len(
                    connection.execute(
                        self._insert(dag_run).on_conflict_do_nothing().returning(dag_run.c.id), rows
                    ).all()
                )
                self._notify(connection)
            return backfill_id, created

    def backfill_info(self, backfill_id: int) -> dict[str, Any] | None:
        """The backfill row, its runs (id, logical date, status) oldest slot first, and
        a count per status."""
        with self._tx() as connection:
            row = connection.execute(select(backfill).where(backfill.c.id == backfill_id)).first()
            if row is None:
                return None
            runs = [
                dict(r._mapping)
                for r in connection.execute(
                    select(dag_run.c.id, dag_run.c.logical_date, dag_run.c.status, dag_run.c.error)
                    .where(dag_run.c.backfill_id == backfill_id)
                    .order_by(dag_run.c.logical_date)
                )
            ]
        info = dict(row._mapping)
        info["params"] = json.loads(info["params"] or "{}")
        info["runs"] = runs
        counts: dict[str, int] = {}
        for run in runs:
            counts[run["status"]] = counts.get(run["status"], 0) + 1
        info["counts"] = counts
        return info

    def cancel_backfill(self, backfill_id: int, now: datetime) -> tuple[int, int] | None:
        """Stop a backfill: its queued runs are cancelled at once, its running ones as
        `dagctl cancel` would (their schedulers stop their tasks). Returns (queued runs
        cancelled, running runs cancelled); None when there is no such backfill."""
        reason = f"cancelled with backfill {backfill_id}"
        with self._tx() as connection:
            found = connection.execute(
                update(backfill)
                .where(backfill.c.id == backfill_id)
                .values(status=BACKFILL_CANCELLED)
                .returning(backfill.c.id)
            ).first()
            if found is None:
                return None
            queued = connection.execute(
                update(dag_run)
                .where(dag_run.c.backfill_id == backfill_id, dag_run.c.status == RunStatus.QUEUED.value)
                .values(status=RunStatus.CANCELLED.value, ended_at=now, error=reason)
                .returning(dag_run.c.id)
            ).all()
            running = [
                r.id
                for r in connection.execute(
                    select(dag_run.c.id).where(
                        dag_run.c.backfill_id == backfill_id, dag_run.c.status == RunStatus.RUNNING.value
                    )
                )
            ]
            self._notify(connection)
        stopped = 0
        for run_id in running:
            result = self.cancel_run(run_id, now, reason)
            stopped += bool(result and result.cancelled)
        return len(queued), stopped

    def active_backfill_runs(self, backfill_id: int) -> int:
        with self._tx() as connection:
            return int(
                connection.execute(
                    select(func.count())
                    .select_from(dag_run)
                    .where(
                        dag_run.c.backfill_id == backfill_id,
                        dag_run.c.status.in_([s.value for s in ACTIVE_RUN]),
                    )
                ).scalar_one()
            )


__all__ = ["REPROCESS_CHOICES", "BackfillOperations"]
