"""Adoption: a scheduler takes over attempts still alive outside a scheduler that died
(pods of the kubernetes manager), instead of failing them as lost and starting them
again. A mixin of `Store` (see store.py); one transaction.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update

from dagctl.states import NOT_ENDED_TASK_VALUES, TaskStatus
from dagctl.store.claiming import uncounted_before
from dagctl.store.records import AdoptResult, ClaimedAttempt
from dagctl.store.tables import dag_run, task_log, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


class AdoptionOperations:
    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _db_now(self) -> Any: ...

        def _lease_until(self, lease_seconds: float) -> Any: ...

        def _expired_leases(self, among: Sequence[int] | None = None) -> Any: ...

    def adopt(
        self, owner: str, task_run_ids: Sequence[int], lease_seconds: float, now: datetime
    ) -> AdoptResult:
        """Of attempts a manager found alive out there (`task_run_ids`):

        - those still `running` whose lease has expired (their scheduler stopped renewing
          it) become this owner's, with a fresh lease, exactly as a claim would make
          them (`SKIP LOCKED` on PostgreSQL, so a reaper or another adopter racing for
          one of them gets nothing, and vice versa); their stored log is emptied, as
          the adopter reads it again from the start;
        - those that have ended (or are unknown) are returned in `ended`;
        - the rest (a live scheduler's, or not started) are left alone.
        """
        ids = sorted(set(task_run_ids))
        if not ids:
            return AdoptResult()
        with self._tx() as connection:
            expired = self._expired_leases(ids)
            taken = connection.execute(
                update(task_run)
                .where(
                    task_run.c.id.in_(expired.scalar_subquery()),
                    task_run.c.status == TaskStatus.RUNNING.value,
                )
                .values(
                    lease_owner=owner,
                    lease_expires_at=self._lease_until(lease_seconds),
                    host=socket.gethostname(),
                )
                .returning(
                    task_run.c.id,
                    task_run.c.dag_run_id,
                    task_run.c.dag_name,
                    task_run.c.task_name,
                    task_run.c.attempt,
                    uncounted_before().label("uncounted"),
                )
            ).all()
            alive = {
                int(r.id)
                for r in connection.execute(
                    select(task_run.c.id).where(
                        task_run.c.id.in_(ids), task_run.c.status.in_(sorted(NOT_ENDED_TASK_VALUES))
                    )
                )
            }
            runs: dict[int, Any] = {}
            if taken:
                # The adopter reads the pod's log again from its start (the dead scheduler
                # may have stored part of it): the part stored goes, or it would be twice.
                connection.execute(delete(task_log).where(task_log.c.task_run_id.in_([t.id for t in taken])))
                runs = {
                    r.id: r
                    for r in connection.execute(
                        select(
                            dag_run.c.id,
                            dag_run.c.logical_date,
                            dag_run.c.params,
                            dag_run.c.data_interval_start,
                            dag_run.c.data_interval_end,
                        ).where(dag_run.c.id.in_({t.dag_run_id for t in taken}))
                    )
                }
        adopted = [
            ClaimedAttempt(
                t.id,
                t.dag_run_id,
                t.dag_name,
                t.task_name,
                t.attempt,
                runs[t.dag_run_id].logical_date,
                json.loads(runs[t.dag_run_id].params),
                tries=t.attempt - t.uncounted,
                data_interval_start=runs[t.dag_run_id].data_interval_start,
                data_interval_end=runs[t.dag_run_id].data_interval_end,
            )
            for t in sorted(taken, key=lambda t: t.id)
        ]
        return AdoptResult(adopted=adopted, ended=[i for i in ids if i not in alive])
