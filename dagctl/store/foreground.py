"""Recording a run that `dagctl run DAG --record` has already run in the foreground.

The whole run is written in one transaction once it has ended: its `dag_run` row
(kind manual, finished, not flagged for the scheduler), one attempt per task that ran
(with its exit code, error and stored log) and `upstream_failed` for the tasks after a
failure. No scheduler ever sees it unfinished, so none can claim, reap or advance it;
`dagctl retry` hands it to the schedulers like any finished run.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from dagctl.states import RunStatus, TaskStatus
from dagctl.store.runs import new_dag_row
from dagctl.store.tables import dag_run, task_log, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


@dataclass(frozen=True, slots=True)
class ForegroundAttempt:
    """One task of a foreground run, as it ended."""

    task: str
    status: str  # success, failed or upstream_failed (never started)
    started_at: datetime | None
    ended_at: datetime
    exit_code: int | None = None
    error: str | None = None
    log: str = ""
    log_truncated_bytes: int = 0
    outputs: dict[str, Any] | None = None  # a success's, as the scheduler would store them


class ForegroundOperations:
    if TYPE_CHECKING:

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _insert(self, table: Any) -> Any: ...

    def record_foreground_run(
        self,
        dag_name: str,
        params: Mapping[str, Any],
        creator: str,
        logical_date: datetime,
        fingerprint: str | None,
        started_at: datetime,
        attempts: Sequence[ForegroundAttempt],
    ) -> int:
        """Write a finished foreground run and its attempts; return its run id."""
        failed = any(a.status != TaskStatus.SUCCESS.value for a in attempts)
        ended_at = max((a.ended_at for a in attempts), default=started_at)
        host = socket.gethostname()
        with self._tx() as connection:
            connection.execute(new_dag_row(self._insert, dag_name, fingerprint, started_at))
            run_id = int(
                connection.execute(
                    insert(dag_run)
                    .values(
                        dag_name=dag_name,
                        kind="manual",
                        creator=creator,
                        logical_date=logical_date,
                        scheduled_slot=None,
                        params=json.dumps(dict(params), default=str),
                        status=(RunStatus.FAILED if failed else RunStatus.SUCCESS).value,
                        dirty=False,
                        fingerprint=fingerprint,
                        created_at=started_at,
                        started_at=started_at,
                        ended_at=ended_at,
                    )
                    .returning(dag_run.c.id)
                ).scalar_one()
            )
            for attempt in attempts:
                task_run_id = connection.execute(
                    insert(task_run)
                    .values(
                        dag_run_id=run_id,
                        dag_name=dag_name,
                        task_name=attempt.task,
                        attempt=1,
                        status=attempt.status,
                        not_before=started_at,
                        queued_at=attempt.started_at or attempt.ended_at,
                        started_at=attempt.started_at,
                        ended_at=attempt.ended_at,
                        host=host if attempt.started_at else None,
                        exit_code=attempt.exit_code,
                        error=attempt.error,
                        outputs=(
                            json.dumps(attempt.outputs, ensure_ascii=False, separators=(",", ":"))
                            if attempt.outputs and attempt.status == TaskStatus.SUCCESS.value
                            else None
                        ),
                    )
                    .returning(task_run.c.id)
                ).scalar_one()
                if attempt.log or attempt.log_truncated_bytes:
                    connection.execute(
                        insert(task_log).values(
                            task_run_id=task_run_id,
                            seq=1,
                            text=attempt.log,
                            truncated_bytes=attempt.log_truncated_bytes,
                            created_at=attempt.ended_at,
                        )
                    )
        return run_id


__all__ = ["ForegroundAttempt", "ForegroundOperations"]
