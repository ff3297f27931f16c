"""`retention:` of dagctl.yaml (old finished runs, and old alert events delivered or
given up), applied by the schedulers: at most once per period, by one of them at a time
(the database decides, see `Store.claim_chore`), and bounded per turn so a large first
clean-up never stalls a loop (use `dagctl db prune` for that)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from dagctl.dags.model import Retention
from dagctl.store import Store

log = logging.getLogger("dagctl.scheduling.retention")

RETENTION_PERIOD_S = 3600.0
# How often a scheduler asks the database whether the chore is due: one cheap UPDATE.
CHECK_INTERVAL_S = 60.0
# At most this many batches (of DEFAULT_PRUNE_BATCH runs) per turn.
MAX_BATCHES_PER_TURN = 20


@dataclass
class RetentionChore:
    store: Store
    owner: str
    check_interval: float = CHECK_INTERVAL_S
    _next_check: float = field(default=0.0, init=False)

    def maybe_run(self, retention: Retention | None) -> int:
        """Prune if this scheduler won this period's turn; returns the runs deleted."""
        clock = time.monotonic()
        if retention is None or clock < self._next_check:
            return 0
        self._next_check = clock + self.check_interval
        if not self.store.claim_chore("retention", RETENTION_PERIOD_S, self.owner):
            return 0
        pruned = self.store.prune(
            retention.older_than_s, retention.keep_last, max_batches=MAX_BATCHES_PER_TURN
        )
        if pruned.runs or pruned.alerts:
            log.info(
                "retention: deleted %d run(s) that ended and %d alert event(s) settled over %.0f s ago",
                pruned.runs,
                pruned.alerts,
                retention.older_than_s,
            )
        return pruned.runs
