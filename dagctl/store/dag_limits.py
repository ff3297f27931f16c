"""`max_active_tasks`: at most N attempts of a DAG running at once, across every
scheduler. A mixin of `Store` (see store.py).

The DAGs that set it have a row in dag_limit, synced from the definitions. While there
is one, the claim statements leave those DAGs' attempts out (scope "others"), and
claim() takes them DAG by DAG inside its transaction (limited_claims.py, which does the
same for queue limits):

1. lock the dag_limit rows (FOR UPDATE SKIP LOCKED: a DAG another scheduler is
   claiming from is passed over for this claim, never waited for);
2. count, in a NEW statement, each locked DAG's attempts running under a live lease:
   under READ COMMITTED that statement's snapshot holds every claim committed before
   we took the lock, and no other claim of the DAG can commit while we hold it;
3. claim up to the rest with the ordinary statements narrowed to that DAG (scope
   "one"), so its pools, queues and priorities apply as to any attempt: an attempt
   counts against its pool and its DAG at once.

As with pools, nothing is counted up or down: an attempt stops counting when it leaves
`running` or its lease runs out. SQLite serialises every transaction (`BEGIN
IMMEDIATE`); the same steps hold there without the locks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from dagctl.dags.cron import utcnow
from dagctl.states import TaskStatus
from dagctl.store.claim_scope import Scope, scope_clause, write_limits
from dagctl.store.tables import dag_limit, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

# The scope types and clause live in claim_scope.py (queue limits narrow claims too);
# pools.py and attempts.py take them from here.
dag_scope = scope_clause


def running_in_dags(db_now: Any) -> Any:
    """Per DAG, its attempts running under a live lease (a SELECT of dag_name, n)."""
    return (
        select(task_run.c.dag_name, func.count().label("n"))
        .where(task_run.c.status == TaskStatus.RUNNING.value, task_run.c.lease_expires_at > db_now)
        .group_by(task_run.c.dag_name)
    )


class DagLimitOperations:
    _dag_limits_in_use: bool = False

    if TYPE_CHECKING:
        is_postgres: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _insert(self, table: Any) -> Any: ...

    def sync_dag_limits(self, limits: Mapping[str, int], loaded: frozenset[str]) -> None:
        """Make dag_limit say `limits` ({DAG: max_active_tasks}) for the `loaded` DAGs;
        writes only what differs."""
        # Set first: should this sync fail, claims must still keep to the limits.
        self._dag_limits_in_use = self._dag_limits_in_use or bool(limits)
        with self._tx() as connection:
            insert = self._insert(dag_limit)
            key, value = dag_limit.c.dag_name, dag_limit.c.max_active_tasks
            current = write_limits(connection, insert, key, value, limits, loaded.__contains__)
            others = any(name not in loaded for name in current)
        self._dag_limits_in_use = bool(limits) or others

    def dag_running_attempts(self, dag_name: str) -> int:
        """The DAG's attempts running under a live lease (what max_active_tasks counts)."""
        with self._tx() as connection:
            db_now: Any = func.timezone("utc", func.now()) if self.is_postgres else utcnow()
            row = connection.execute(running_in_dags(db_now).where(task_run.c.dag_name == dag_name)).first()
        return int(row.n) if row is not None else 0


__all__ = ["DagLimitOperations", "Scope", "dag_scope", "running_in_dags"]
