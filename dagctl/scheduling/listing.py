"""The summaries `dagctl list` reads (store table dag_summary), kept by the scheduler.

Each row is what the DAG's files say (dags/summary.py) with the stat stamp of the
folder it was read from, plus its next slot after the time it was written. A row is
rewritten only when that changes: the DAG's summary or stamp, or its stored next slot
has passed (at most once per slot per DAG), so an unchanged tree writes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from dagctl.dags import cron
from dagctl.dags.model import DagTree
from dagctl.dags.summary import summary_of
from dagctl.errors import DagctlError
from dagctl.store import Store

log = logging.getLogger("dagctl.scheduling.scheduler")


class ListingSummaries:
    def __init__(self, store: Store) -> None:
        self.store = store
        # name -> (stamp, _kept(summary without its next slot), next slot after, next slot)
        self._written: dict[str, tuple[str, tuple[Any, ...], datetime, datetime | None]] = {}
        self._refresh_at: datetime | None = None  # the earliest stored next slot

    def due(self, now: datetime) -> bool:
        """Whether a stored next slot has passed (the rows need writing again)."""
        return self._refresh_at is not None and now >= self._refresh_at

    def write(self, tree: DagTree, stamps: dict[str, str], now: datetime) -> None:
        rows: dict[str, tuple[str, tuple[Any, ...], datetime, datetime | None]] = {}
        changed: dict[str, tuple[str, str]] = {}
        for name in (*tree.dags, *tree.broken):
            stamp = stamps.get(name)
            if stamp is None:
                continue
            summary = summary_of(name, tree)
            kept = _kept(summary)
            old = self._written.get(name)
            if old is not None and old[:2] == (stamp, kept) and (old[3] is None or old[3] > now):
                rows[name] = old
                continue
            schedule = summary["schedule"]
            slot = cron.next_slot_after(schedule, summary["timezone"], now) if schedule else None
            rows[name] = (stamp, kept, now, slot)
            stored = dict(summary)
            if schedule:  # see summary.stored_next_slot
                stored["next_after"] = now.isoformat()
                stored["next_run"] = slot.isoformat() if slot else None
            changed[name] = (stamp, json.dumps(stored, sort_keys=True, separators=(",", ":")))
        removed = [name for name in self._written if name not in rows]
        if changed or removed:
            try:
                self.store.record_summaries(changed, removed, cron.utcnow())
            except DagctlError as exc:  # `list` parses the files instead: not worth a failed sync
                log.warning("cannot store the DAG summaries `list` reads: %s", exc)
                return
        self._written = rows
        slots = [row[3] for row in rows.values() if row[3] is not None]
        self._refresh_at = min(slots) if slots else None


def _kept(summary: dict[str, Any]) -> tuple[Any, ...]:
    """What is kept of a written summary to tell whether it changed: its values, whose
    strings are the model's own, instead of a dict a DAG (4 MB for 10,000 DAGs). Every
    summary has the same keys in the same order (summary_of)."""
    return tuple(tuple(v) if isinstance(v, list) else v for v in summary.values())
