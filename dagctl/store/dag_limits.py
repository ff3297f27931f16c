"""`max_active_tasks`: at most N attempts of a DAG running at once, across every
scheduler. A mixin of `Store` (see store.py).

The DAGs that set it have a row in dag_limit, synced from the definitions. While there
is one, the claim statements leave those DAGs' attempts out (scope "others"), and
claim() takes them here, DAG by DAG, inside its transaction:

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
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import String, bindparam, delete, func, select, update

from dagctl.dags.cron import utcnow
from dagctl.states import TaskStatus
from dagctl.store.tables import dag_limit, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

# None: every DAG; "others": the DAGs without max_active_tasks; "one": DAG `p_dag`.
Scope = Literal["others", "one"] | None


def dag_scope(scope: Scope) -> Any | None:
    """The WHERE clause narrowing a claim statement's task_run rows to `scope`."""
    if scope == "others":
        return task_run.c.dag_name.not_in(select(dag_limit.c.dag_name))
    if scope == "one":
        return task_run.c.dag_name == bindparam("p_dag", type_=String)
    return None


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
            rows = connection.execute(select(dag_limit)).all()
            current = {r.dag_name: int(r.max_active_tasks) for r in rows}
            stale = [name for name in current if name in loaded and name not in limits]
            if stale:
                connection.execute(delete(dag_limit).where(dag_limit.c.dag_name.in_(stale)))
            for name, cap in limits.items():
                if name not in current:
                    # DO NOTHING: schedulers starting together write the same rows.
                    insert = self._insert(dag_limit).on_conflict_do_nothing()
                    connection.execute(insert, {"dag_name": name, "max_active_tasks": cap})
                elif current[name] != cap:
                    connection.execute(
                        update(dag_limit).where(dag_limit.c.dag_name == name).values(max_active_tasks=cap)
                    )
            others = any(name not in loaded for name in current)
        self._dag_limits_in_use = bool(limits) or others

    def _claim_limited(
        self,
        connection: Connection,
        values: dict[str, Any],
        claim_in: Callable[[Connection, dict[str, Any], Scope], list[Any]],
    ) -> list[Any]:
        """Inside claim()'s transaction: up to `p_limit` attempts of the DAGs with
        max_active_tasks, each within its limit (steps 1-3 of the module docstring)."""
        lock = select(dag_limit.c.dag_name, dag_limit.c.max_active_tasks).order_by(dag_limit.c.dag_name)
        if self.is_postgres:
            lock = lock.with_for_update(skip_locked=True)
        locked = connection.execute(lock).all()
        if not locked:
            return []
        db_now: Any = func.timezone("utc", func.now()) if self.is_postgres else utcnow()
        names = [r.dag_name for r in locked]
        running = {
            r.dag_name: int(r.n)
            for r in connection.execute(running_in_dags(db_now).where(task_run.c.dag_name.in_(names)))
        }
        claimed: list[Any] = []
        limit = int(values["p_limit"])
        for row in locked:
            room = min(int(row.max_active_tasks) - running.get(row.dag_name, 0), limit - len(claimed))
            if room > 0:
                claimed += claim_in(connection, {**values, "p_dag": row.dag_name, "p_limit": room}, "one")
            if len(claimed) >= limit:
                break
        return claimed

    def dag_running_attempts(self, dag_name: str) -> int:
        """The DAG's attempts running under a live lease (what max_active_tasks counts)."""
        with self._tx() as connection:
            db_now: Any = func.timezone("utc", func.now()) if self.is_postgres else utcnow()
            row = connection.execute(running_in_dags(db_now).where(task_run.c.dag_name == dag_name)).first()
        return int(row.n) if row is not None else 0


__all__ = ["DagLimitOperations", "Scope", "dag_scope", "running_in_dags"]
