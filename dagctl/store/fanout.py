"""Fan-out (`for_each`): the item attempts of a mapped task. A mixin of `Store`.

The task's own attempt is `running` and unheld (like a `dag` task's, children.py) and
holds the rendered list in `map_items`; each item is a task run of its own, named
`task.sh[3]`, with its item in `map_items`, created `queued` by the advance step a
few at a time (at most `max_parallel` not yet ended), claimed, run and retried like
any attempt. Its retries are inserted by `finish` without the item: the item is read
from the item's first attempt. Items take their task's pool, queue and priority
(item_routing.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, tuple_, update

from dagctl.states import TaskStatus
from dagctl.store.item_routing import copy_item_routing
from dagctl.store.tables import task_pool, task_priority, task_queue, task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


class FanoutOperations:
    if TYPE_CHECKING:
        _pools_in_use: bool
        _queues_routed: bool
        _priorities_in_use: bool

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _joined_tx(self, operation: str) -> Connection: ...

        def _insert(self, table: Any) -> Any: ...

        def _insert_missing(self, table: Any) -> Any: ...

        def _notify(self, connection: Connection, *, urgent: bool = False) -> None: ...

    def set_map_items(self, task_run_id: int, items: Sequence[Any]) -> None:
        """Keep a for_each task attempt's rendered list (inside the advance transaction)."""
        connection = self._joined_tx("set_map_items")
        connection.execute(
            update(task_run)
            .where(task_run.c.id == task_run_id, task_run.c.map_items.is_(None))
            .values(map_items=json.dumps(list(items), ensure_ascii=False, separators=(",", ":")))
        )

    def start_items(
        self, dag_run_id: int, dag_name: str, items: Sequence[tuple[str, Any]], now: datetime
    ) -> None:
        """Queue the first attempts of these items ((task run name, item) each)."""
        if not items:
            return
        connection = self._joined_tx("start_items")
        connection.execute(
            self._insert_missing(task_run),
            [
                {
                    "dag_run_id": dag_run_id,
                    "dag_name": dag_name,
                    "task_name": name,
                    "attempt": 1,
                    "status": TaskStatus.QUEUED.value,
                    "not_before": now,
                    "queued_at": now,
                    "map_items": json.dumps(item, ensure_ascii=False, separators=(",", ":")),
                }
                for name, item in items
            ],
        )
        # The items take their task's pool, queue and priority (item_routing.py); a
        # table is skipped while no task has a row there, as the claim skips it then.
        routing = [
            table
            for table, used in (
                (task_pool, self._pools_in_use),
                (task_queue, self._queues_routed),
                (task_priority, self._priorities_in_use),
            )
            if used
        ]
        if routing:
            copy_item_routing(connection, self._insert, routing, dag_name, [name for name, _ in items])
        self._notify(connection)

    def item_values(self, keys: Collection[tuple[int, str]]) -> dict[tuple[int, str], Any]:
        """The item of each (run id, item task name), from the item's first attempt."""
        if not keys:
            return {}
        with self._tx() as connection:
            rows = connection.execute(
                select(task_run.c.dag_run_id, task_run.c.task_name, task_run.c.map_items).where(
                    tuple_(task_run.c.dag_run_id, task_run.c.task_name).in_(sorted(keys)),
                    task_run.c.attempt == bindparam("first", 1),
                )
            ).all()
        return {(int(r.dag_run_id), r.task_name): json.loads(r.map_items or "null") for r in rows}


__all__ = ["FanoutOperations"]
