"""The pool, queue and priority of a for_each item (`task.sh[3]`): its task's.

The claim looks an attempt's routing up by (DAG, task run name) in task_pool, task_queue
and task_priority. Rather than teach every claim statement to strip `[3]` (a string
expression in a join, which no index serves), an item gets rows of its own, copied
from its task's rows in the transaction that queues it: the claim statements stay as
they are, and cost what they cost. Item names repeat from run to run, so these rows
are bounded by the largest fan-out, not by the number of runs.

The syncs (pools.py, queues.py, priorities.py) keep an item's rows equal to its
task's: changed with it, deleted with it (or with the DAG, forget_routing).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Table, bindparam, delete, literal, select

if TYPE_CHECKING:
    from sqlalchemy import Connection

Value = TypeVar("Value")


def item_base(task_name: str) -> str | None:
    """ "task.sh" for "task.sh[3]"; None for a task's own name. (scheduling/fanout.py
    names items; the store may not import it.)"""
    if not task_name.endswith("]"):
        return None
    base, _, index = task_name[:-1].rpartition("[")
    return base if base and index.isdigit() else None


def with_item_rows(
    want: Mapping[tuple[str, str], Value], current: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Value]:
    """`want` ({(DAG, task): value}) plus, for each item row in `current`, its task's
    value, when its task still has one (when not, the item row is stale)."""
    out = dict(want)
    for dag_name, task_name in current:
        base = item_base(task_name)
        if base is not None and (dag_name, base) in want:
            out[(dag_name, task_name)] = want[(dag_name, base)]
    return out


def sync_task_rows(
    connection: Connection,
    insert_into: Any,
    table: Table,
    column: str,
    want: Mapping[tuple[str, str], Any],
    loaded: frozenset[str],
) -> bool:
    """Make `table` (keyed by dag_name, task_name, with one value `column`) say `want`
    for the `loaded` DAGs, item rows following their tasks; writes only what differs.
    True when any row is left, of these DAGs or of DAGs loaded elsewhere."""
    rows = connection.execute(select(table)).all()
    current = {(r.dag_name, r.task_name): getattr(r, column) for r in rows if r.dag_name in loaded}
    want = with_item_rows(want, current)  # a for_each item's rows follow its task's
    stale = [key for key, value in current.items() if want.get(key) != value]
    if stale:
        connection.execute(
            delete(table).where(table.c.dag_name == bindparam("d"), table.c.task_name == bindparam("t")),
            [{"d": d, "t": t} for d, t in stale],
        )
    added = [
        {"dag_name": d, "task_name": t, column: value}
        for (d, t), value in want.items()
        if current.get((d, t)) != value
    ]
    if added:
        # DO NOTHING: schedulers starting together write the same rows.
        connection.execute(insert_into(table).on_conflict_do_nothing(), added)
    return bool(want) or any(r.dag_name not in loaded for r in rows)


def copy_item_routing(
    connection: Connection, insert_into: Any, tables: Iterable[Table], dag_name: str, names: Iterable[str]
) -> None:
    """Give these items of DAG `dag_name` their tasks' rows in `tables` (each keyed by
    dag_name, task_name), one INSERT ... SELECT per table: nothing is written for an
    item whose task has no row."""
    pairs = [{"p_item": name, "p_base": base} for name in names if (base := item_base(name)) is not None]
    if not pairs:
        return
    for table in tables:
        values = [c for c in table.c if c.name not in ("dag_name", "task_name")]
        source = select(
            literal(dag_name).label("dag_name"), bindparam("p_item").label("task_name"), *values
        ).where(table.c.dag_name == dag_name, table.c.task_name == bindparam("p_base"))
        columns = ["dag_name", "task_name", *(c.name for c in values)]
        # DO NOTHING: an item retried or restarted keeps the rows it has (the sync
        # corrects them should its task's routing have changed).
        connection.execute(insert_into(table).from_select(columns, source).on_conflict_do_nothing(), pairs)


__all__ = ["copy_item_routing", "item_base", "with_item_rows"]
