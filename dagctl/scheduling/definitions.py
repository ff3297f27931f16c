"""The definition side of the loop: reload the DAG folders (cheap when nothing changed),
record them in the state database, mark DAGs that went missing, and create the
scheduled runs that fell due.

Split from the loop so that what a scheduler knows of the definitions (the loaded DAGs,
the broken ones, when each is next due, which tasks other DAGs wait on) lives in one
object the loop asks, instead of being spread over its attributes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from dagctl.dags.model import Dag, DagTree, Retention
from dagctl.dags.watch import DagCache
from dagctl.errors import DagctlError
from dagctl.notify.delivery import AlertDelivery
from dagctl.scheduling import planner
from dagctl.scheduling.listing import ListingSummaries
from dagctl.scheduling.options import SchedulerOptions
from dagctl.scheduling.pooling import PoolSync
from dagctl.store import Store
from dagctl.store.records import DagState

log = logging.getLogger("dagctl.scheduling.scheduler")

# However unchanged the folder and the `dag` table look, the DAG rows are read and the
# due times worked out again this often (what another scheduler marked missing, say).
FULL_SYNC_S = 60.0


class Definitions:
    """What this scheduler has loaded, kept in step with the folders and the database."""

    def __init__(
        self, store: Store, dags_root: Path, owner: str, options: SchedulerOptions, alerts: AlertDelivery
    ) -> None:
        self.store = store
        self.owner = owner
        self.options = options
        self._alerts = alerts
        self._cache = DagCache(dags_root)
        self._pools = PoolSync(store, owner)
        self._next_reload = 0.0
        self.dags: dict[str, Dag] = {}
        self.next_due: dict[str, datetime] = {}
        self.watched: set[tuple[str, str]] = set()  # (dag, task) other DAGs wait on
        self.retention: Retention | None = None
        self._broken: dict[str, str] = {}
        self._load_problem: str | None = None
        self._recorded: frozenset[str] | None = None  # the DAG names last written for `why`
        self._synced: DagTree | None = None  # the tree last synced to the database
        self._mark: tuple[Any, ...] | None = None  # store.dag_mark() before that sync
        self._next_full_sync = 0.0
        self._any_missing = False
        self._not_loaded: frozenset[str] = frozenset()  # DAGs of the database not loaded here
        self._listing = ListingSummaries(store)

    def sync(self, now: datetime) -> bool:
        """Reload when the reload interval has passed; True when definitions were synced
        (their DAGs' runs may need advancing). An unchanged tree costs a few `stat`s and
        one aggregate query (dag_mark), whatever the number of DAGs."""
        clock = time.monotonic()
        if clock < self._next_reload:
            return False
        self._next_reload = clock + self.options.reload_interval
        try:
            tree = self._cache.load()
        except DagctlError as exc:  # the folder is gone or unreadable: keep what we had
            if self._load_problem != str(exc):
                log.error("cannot reload the DAGs, keeping the last good definitions: %s", exc)
            self._load_problem = str(exc)
            return False
        self._load_problem = None
        mark = self.store.dag_mark()
        if tree is self._synced and mark == self._mark and clock < self._next_full_sync:
            if self._any_missing:
                self._fail_orphaned(now)
            if self._listing.due(now):
                self._listing.write(tree, self._cache.stamps(), now)
            return False
        try:
            self._full_sync(tree, mark, clock, now)
        except BaseException:
            # Half a sync (the database went away midway) is no sync: the next pass does
            # it all again instead of taking the tree and mark for synced.
            self._synced = self._mark = None
            self._next_reload = 0.0
            raise
        return True

    def _full_sync(self, tree: DagTree, mark: tuple[Any, ...], clock: float, now: datetime) -> None:
        self._mark = mark
        self._next_full_sync = clock + FULL_SYNC_S
        new_tree = tree is not self._synced
        if new_tree:
            self._take_tree(tree, now)
        states = self.store.sync_dags({name: d.fingerprint for name, d in self.dags.items()}, now)
        gone = frozenset(n for n, s in states.items() if s.missing_since is not None and n not in self.dags)
        self._pools.sync(tree.config, self.dags, gone)
        if self._recorded != self.dags.keys():
            # `why` and `trigger` tell a DAG that no live scheduler has loaded.
            self.store.record_loaded_dags(self.owner, list(self.dags))
            self._recorded = frozenset(self.dags)
        self._track_missing(states, now)
        self.next_due = {}
        for name, dag in self.dags.items():
            state = states.get(name)
            if state is None or state.paused:
                continue
            due = planner.next_due(dag, state.last_slot, state.first_seen_at)
            if due is not None:
                self.next_due[name] = due
        if new_tree:
            # Last: only `list` reads them, and the DAG rows and due times above are what
            # scheduling waits for (10,000 DAGs: ~1 s of summaries and their next slots).
            self._listing.write(tree, self._cache.stamps(), now)

    def _take_tree(self, tree: DagTree, now: datetime) -> None:
        """What follows from a tree that changed: its DAGs, alert channels and the DAGs
        other DAGs wait on."""
        self._synced = tree
        self.retention = tree.config.retention
        self.dags = dict(tree.dags)
        self._alerts.sync(tree.config.channels, self.dags, tree.config.notify)
        self._note_broken({name: b.reason for name, b in tree.broken.items()})
        self.watched = {
            pair for dag in self.dags.values() for t in dag.tasks.values() for pair in t.external_inputs
        }

    def _note_broken(self, broken: dict[str, str]) -> None:
        for name, reason in broken.items():
            if self._broken.get(name) != reason:  # once per problem, not at every reload
                log.warning("DAG %s is broken and will not be scheduled: %s", name, reason)
        for name in self._broken.keys() - broken.keys():
            log.info("DAG %s is no longer broken", name)
        self._broken = broken

    def _track_missing(self, states: Mapping[str, DagState], now: datetime) -> None:
        """Mark DAGs deleted, renamed away or broken (unmark those back); any scheduler
        fails their active runs once marked for longer than the grace period."""
        marked, back, missing = planner.missing_dags(states, self.dags.keys(), self._broken)
        if marked or back:
            self.store.mark_missing_dags(marked, back, now)
        self._any_missing = missing
        self._not_loaded = frozenset(states.keys() - self.dags.keys())
        if missing:
            self._fail_orphaned(now)

    def _fail_orphaned(self, now: datetime) -> None:
        rules = self._alerts.rules_when_gone(self._not_loaded)
        for run_id, dag_name, reason in self.store.fail_orphaned_runs(self.options.orphan_grace, now, rules):
            log.warning("run %d of %s failed: %s", run_id, dag_name, reason)

    def create_due_runs(self, now: datetime) -> bool:
        """Create the scheduled runs due at `now`; True when there were any to create."""
        if not any(due <= now for due in self.next_due.values()):
            return False  # no read of the database on an idle pass
        # Moved on only once the runs are written: should the write fail, the same
        # slots are due at the next pass (the definitions may not be synced again for
        # a while, so nothing else would bring them back).
        next_due = dict(self.next_due)
        work = planner.due_runs(self.dags, self.store.dag_states(), next_due, now)
        if not work:
            self.next_due = next_due
            return False
        created = self.store.create_scheduled_runs(work, now)
        self.next_due = next_due
        if created:
            log.info("created %d scheduled run(s)", created)
        for name, runs, _, _ in work:
            for run in runs:
                if run.error:
                    log.error("run of %s for %s not started: %s", name, run.slot, run.error)
        return True
