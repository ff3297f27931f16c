"""The summaries `dagctl list` reads (store table dag_summary), kept by the scheduler.

Each row is what the DAG's files say (dags/summary.py) with the stat stamp of the
folder it was read from, plus its next slot after the time it was written. A row is
rewritten only when that changes: the DAG was loaded again (or its broken reason
changed), its stamp changed, or its stored next slot has passed (at most once per slot
per DAG), so an unchanged tree writes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from dagctl.dags import cron
from dagctl.dags.model import Dag, DagTree
from dagctl.dags.summary import summary_of
from dagctl.errors import DagctlError
from dagctl.store import Store

log = logging.getLogger("dagctl.scheduling.scheduler")


class ListingSummaries:
    def __init__(self, store: Store) -> None:
        self.store = store
        # name -> (stamp, what its summary was made of, next slot after, next slot). What
        # it was made of is the Dag itself (the cache hands back the very same object
        # while a DAG is unchanged), or a broken DAG's reason: no copy of the summary.
        self._written: dict[str, tuple[str, Dag | str, datetime, datetime | None]] = {}
        self._refresh_at: datetime | None = None  # the earliest stored next slot

    def due(self, now: datetime) -> bool:
        """Whether a stored next slot has passed (the rows need writing again)."""
        return self._refresh_at is not None and now >= self._refresh_at

    def write(self, tree: DagTree, stamps: dict[str, str], now: datetime) -> None:
        rows: dict[str, tuple[str, Dag | str, datetime, datetime | None]] = {}
        changed: dict[str, tuple[str, str]] = {}
        for name in (*tree.dags, *tree.broken):
            stamp = stamps.get(name)
            if stamp is None:
                continue
            dag = tree.dags.get(name)
            source = dag if dag is not None else tree.broken[name].reason
            old = self._written.get(name)
            if (
                old is not None
                and old[0] == stamp
                and (old[1] is source or (isinstance(source, str) and old[1] == source))
                and (old[3] is None or old[3] > now)
            ):
                rows[name] = old
                continue
            summary = summary_of(name, tree)
            schedule = summary["schedule"]
            slot = cron.next_slot_after(schedule, summary["timezone"], now) if schedule else None
            rows[name] = (stamp, source, now, slot)
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
