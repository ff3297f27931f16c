"""Task outputs in the state database: written with a successful attempt's end (in
`finish`'s transaction, so an output exists exactly when its success is recorded),
read when downstream attempts are claimed, and by the terminal commands. A mixin of
`Store` (see store.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Collection, Hashable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update

from dagctl.states import TaskStatus
from dagctl.store.tables import task_run

if TYPE_CHECKING:
    from sqlalchemy import Connection


def outputs_from_json(text: str | None) -> dict[str, Any] | None:
    """A stored outputs column as a dict (None when absent or unreadable)."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class OutputOperations:
    if TYPE_CHECKING:

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _statement(self, key: Hashable, build: Callable[[], Any]) -> Any: ...

    def _store_outputs(
        self, connection: Connection, recorded: Iterable[tuple[int, dict[str, Any] | None]]
    ) -> None:
        """Attach outputs to attempts `finish` has just recorded as succeeded (no
        statement at all when none of them published any)."""
        values = [
            {"i": task_run_id, "o": json.dumps(outputs, ensure_ascii=False, separators=(",", ":"))}
            for task_run_id, outputs in recorded
            if outputs
        ]
        if values:
            connection.execute(
                update(task_run).where(task_run.c.id == bindparam("i")).values(outputs=bindparam("o")), values
            )

    def run_outputs(self, run_ids: Collection[int]) -> dict[int, dict[str, dict[str, Any]]]:
        """The outputs of the succeeded tasks of these runs: run id -> task -> outputs.
        A task that succeeded more than once (a manual retry) counts by its latest attempt."""
        if not run_ids:
            return {}
        found: dict[int, dict[str, dict[str, Any]]] = {}
        with self._tx() as connection:
            # Built once per store: it runs at every claim of a task with inputs.
            rows = connection.execute(
                self._statement("run outputs", _build_run_outputs), {"p_runs": sorted(run_ids)}
            ).all()
        for row in rows:
            outputs = outputs_from_json(row.outputs)
            if outputs is not None:
                found.setdefault(row.dag_run_id, {})[row.task_name] = outputs
        return found


def _build_run_outputs() -> Any:
    return (
        select(task_run.c.dag_run_id, task_run.c.task_name, task_run.c.outputs)
        .where(
            task_run.c.dag_run_id.in_(bindparam("p_runs", expanding=True)),
            task_run.c.status == TaskStatus.SUCCESS.value,
            task_run.c.outputs.is_not(None),
        )
        .order_by(task_run.c.attempt)
    )
