"""What a scheduler stores of its loaded definitions for the commands that read them:
one summary row per DAG folder (`list` reads these instead of parsing every file), and
a cheap mark of the `dag` table so an unchanged tree needs no full sync.

`fast_reads.read_summaries` reads the same rows without SQLAlchemy, for `list`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import case, delete, func, select

from dagctl.store.tables import dag, dag_summary

if TYPE_CHECKING:
    from sqlalchemy import Connection


class SummaryOperations:
    if TYPE_CHECKING:

        def _tx(self) -> contextlib.AbstractContextManager[Connection]: ...

        def _insert(self, table: Any) -> Any: ...

    def dag_mark(self) -> tuple[Any, ...]:
        """Changes whenever a DAG row is added, paused or unpaused, re-fingerprinted or
        marked missing by any process: one aggregate instead of reading every row."""
        with self._tx() as connection:
            row = connection.execute(
                select(
                    func.count(),
                    func.sum(case((dag.c.paused, 1), else_=0)),
                    func.max(dag.c.updated_at),
                    func.count(dag.c.missing_since),
                )
            ).one()
            return tuple(row)

    def record_summaries(
        self, changed: Mapping[str, tuple[str, str]], removed: Collection[str], now: datetime
    ) -> None:
        """Write {name: (stamp, summary JSON)} over what was there; delete `removed`."""
        with self._tx() as connection:
            if changed:
                statement = self._insert(dag_summary)
                connection.execute(
                    statement.on_conflict_do_update(
                        index_elements=[dag_summary.c.name],
                        set_={
                            "stamp": statement.excluded.stamp,
                            "summary": statement.excluded.summary,
                            "updated_at": statement.excluded.updated_at,
                        },
                    ),
                    [
                        {"name": name, "stamp": stamp, "summary": summary, "updated_at": now}
                        for name, (stamp, summary) in changed.items()
                    ],
                )
            if removed:
                connection.execute(delete(dag_summary).where(dag_summary.c.name.in_(list(removed))))


__all__ = ["SummaryOperations"]
