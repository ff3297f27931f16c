"""Priorities: `priority:` on a DAG or task (the task's wins; default 0) orders the claim:
the highest priority first, then the oldest. A mixin of `Store` (see store.py).

Only tasks whose priority is not 0 have a row in task_priority, synced from the
definitions like task_queue; while there is none, the claim statements are the ones
without priorities (ordered by age alone, read straight from an index).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from dagctl.store.item_routing import sync_task_rows
from dagctl.store.tables import task_priority, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


class PriorityOperations:
    _priorities_in_use: bool = False

    if TYPE_CHECKING:

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _insert(self, table: Any) -> Any: ...

    def sync_task_priorities(
        self, assignments: Mapping[str, Mapping[str, int]], loaded: frozenset[str]
    ) -> None:
        """Make task_priority say `assignments` ({DAG: {task: priority}}, priority 0
        left out) for the `loaded` DAGs; writes only what differs."""
        want = {(d, t): p for d, tasks in assignments.items() for t, p in tasks.items()}
        self._priorities_in_use = self._priorities_in_use or bool(want)
        with self._tx() as connection:
            in_use = sync_task_rows(connection, self._insert, task_priority, "priority", want, loaded)
        self._priorities_in_use = in_use  # once committed


def priority_of_task() -> Any:
    """The priority of a task_run row's task (0 without a row), as a scalar expression."""
    return func.coalesce(
        select(task_priority.c.priority)
        .where(
            task_priority.c.dag_name == task_run.c.dag_name, task_priority.c.task_name == task_run.c.task_name
        )
        .scalar_subquery(),
        0,
    )


def claim_order(by_priority: bool) -> tuple[Any, ...]:
    """ORDER BY of a claim: the highest priority first (when any task has one), then the
    oldest."""
    by_age = (task_run.c.queued_at, task_run.c.id)
    return (priority_of_task().desc(), *by_age) if by_priority else by_age


__all__ = ["PriorityOperations", "claim_order", "priority_of_task"]
