"""Which attempts a claim statement may take, as to the limits that need a lock:
`max_active_tasks` (dag_limits.py) and queue limits (queue_limits.py).

An attempt of a limited DAG or of a limited queue is claimed only under that limit's
row lock (limited_claims.py); the ordinary claim leaves them out ("others"). Each part
of a scope is None (no narrowing), "others" (only what no such limit covers) or "one"
(only DAG `p_dag`, only queue `p_queue`). Scopes are statement cache keys: hashable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, String, and_, bindparam, delete, func, select, update

from dagctl.dags.model import DEFAULT_QUEUE
from dagctl.store.tables import dag_limit, queue_limit, task_queue, task_run

Part = Literal["others", "one"] | None


@dataclass(frozen=True, slots=True)
class ClaimScope:
    dags: Part = None
    queues: Part = None


Scope = ClaimScope | None


def queue_of_attempt() -> Any:
    """The work queue of a task_run row's task: its task_queue row's, else `default`.
    The subquery names task_run itself, so it correlates with the statement's task_run."""
    routed = select(task_queue.c.queue).where(
        task_queue.c.dag_name == task_run.c.dag_name, task_queue.c.task_name == task_run.c.task_name
    )
    return func.coalesce(routed.scalar_subquery(), DEFAULT_QUEUE)


def scope_clause(scope: Scope) -> Any | None:
    """The WHERE clause narrowing a claim statement's task_run rows to `scope`."""
    if scope is None:
        return None
    parts: list[Any] = []
    if scope.dags == "others":
        parts.append(task_run.c.dag_name.not_in(select(dag_limit.c.dag_name)))
    elif scope.dags == "one":
        parts.append(task_run.c.dag_name == bindparam("p_dag", type_=String))
    if scope.queues == "others":
        parts.append(queue_of_attempt().not_in(select(queue_limit.c.queue)))
    elif scope.queues == "one":
        parts.append(queue_of_attempt() == bindparam("p_queue", type_=String))
    return and_(*parts) if parts else None


def write_limits(
    connection: Connection,
    insert: Any,
    key: Any,
    value: Any,
    limits: Mapping[str, int],
    may_drop: Callable[[str], bool],
) -> dict[str, int]:
    """Make a limit table (`key` -> `value` columns) say `limits`, writing only what
    differs; rows missing from `limits` go when `may_drop(name)`. Returns what the
    table held before."""
    table = key.table
    current = {row[0]: int(row[1]) for row in connection.execute(select(key, value))}
    stale = [name for name in current if name not in limits and may_drop(name)]
    if stale:
        connection.execute(delete(table).where(key.in_(stale)))
    for name, cap in limits.items():
        if name not in current:
            # DO NOTHING: schedulers starting together write the same rows.
            connection.execute(insert.on_conflict_do_nothing(), {key.name: name, value.name: cap})
        elif current[name] != cap:
            connection.execute(update(table).where(key == name).values({value.name: cap}))
    return current


__all__ = ["ClaimScope", "Part", "Scope", "queue_of_attempt", "scope_clause", "write_limits"]
