"""Which DAGs the live schedulers have loaded.

A scheduler records the names of the DAGs it loaded from its DAGs folder whenever that
set changes; its rows count while its heartbeat is fresh, measured by the database's
clock on PostgreSQL (the same rule as "a scheduler is alive"). `why`, `trigger` and
`trigger --wait` use it to say when a run waits for a scheduler that does not exist:
every live scheduler reads another DAGs folder.

`fast_trigger.quick_presence` reads the same without SQLAlchemy, for `trigger`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, insert, select

from dagctl.store.records import Presence
from dagctl.store.tables import dag, scheduler, scheduler_dag

if TYPE_CHECKING:
    from sqlalchemy import Connection


class PresenceOperations:
    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _live_schedulers(self, connection: Connection, stale_after_s: float) -> tuple[datetime, int]: ...

    def record_loaded_dags(self, owner: str, names: Collection[str]) -> None:
        """Scheduler `owner` has loaded exactly these DAGs (one transaction)."""
        with self._tx() as connection:
            stale = delete(scheduler_dag).where(scheduler_dag.c.scheduler_id == owner)
            if names:
                stale = stale.where(scheduler_dag.c.dag_name.not_in(list(names)))
            connection.execute(stale)
            have = set(
                connection.execute(
                    select(scheduler_dag.c.dag_name).where(scheduler_dag.c.scheduler_id == owner)
                ).scalars()
            )
            rows = [{"scheduler_id": owner, "dag_name": n} for n in sorted(set(names) - have)]
            if rows:
                connection.execute(insert(scheduler_dag), rows)

    def forget_loaded_dags(self, owner: str) -> None:
        with self._tx() as connection:
            connection.execute(delete(scheduler_dag).where(scheduler_dag.c.scheduler_id == owner))

    def presence(self, dag_name: str, stale_after_s: float) -> Presence:
        with self._tx() as connection:
            return self._presence(connection, dag_name, stale_after_s)

    def _presence(self, connection: Connection, dag_name: str, stale_after_s: float) -> Presence:
        db_now, live = self._live_schedulers(connection, stale_after_s)
        knowing = connection.execute(
            select(func.count())
            .select_from(scheduler_dag.join(scheduler, scheduler.c.id == scheduler_dag.c.scheduler_id))
            .where(
                scheduler_dag.c.dag_name == dag_name,
                scheduler.c.stopped_at.is_(None),
                scheduler.c.heartbeat_at >= db_now - timedelta(seconds=stale_after_s),
            )
        ).scalar_one()
        paused = connection.execute(select(dag.c.paused).where(dag.c.name == dag_name)).scalar()
        return Presence(paused=bool(paused), live_schedulers=live, live_knowing=int(knowing))


__all__ = ["PresenceOperations"]
