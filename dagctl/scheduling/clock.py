"""The scheduler's clock: the state database's, not the host's.

Slots, retry delays (`not_before`) and every start and end time a scheduler records are
decisions several hosts share, so they follow one clock: the database's. Reading it
for every timestamp would cost a round trip each, so the scheduler samples it (at
most once a second, `Scheduler.run`) and runs it forward on this host's monotonic
clock in between: both tick at real speed, so durations are never skewed, and a
host whose wall clock is off (by 2 h, or stepped by NTP) changes nothing. A host clock
more than SKEW_WARNING_S away from the database's is logged as a warning, once.

Tests keep their injected clock: `Scheduler(clock=...)` and `run_once(now)` take any
callable. DAGCTL_FAKE_NOW (tests and demos) is an offset on top of the database's
clock: the clock starts at that instant and runs at the database's pace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from dagctl.dags.cron import utcnow

log = logging.getLogger("dagctl.scheduling.clock")

SKEW_WARNING_S = 5.0
SYNC_INTERVAL_S = 1.0


class DatabaseClock:
    def __init__(self, db_now: datetime, fake_start: datetime | None = None) -> None:
        self._offset = timedelta(0) if fake_start is None else fake_start - db_now
        self._db_now = db_now
        self._sampled = time.monotonic()
        self._skewed = False
        self._check_host(db_now)

    def __call__(self) -> datetime:
        return self._db_now + timedelta(seconds=time.monotonic() - self._sampled) + self._offset

    def sync_due(self) -> bool:
        return time.monotonic() - self._sampled >= SYNC_INTERVAL_S

    def sync_if_due(self, read: Callable[[], datetime]) -> None:
        """Sample the database's clock with `read` if the last sample is a second old."""
        if self.sync_due():
            sampled = time.monotonic()
            self.sync(read(), sampled)

    def sync(self, db_now: datetime, sampled: float) -> None:
        """`db_now`: the database's clock as read at `sampled` (time.monotonic(), taken
        just before the query was sent)."""
        self._db_now, self._sampled = db_now, sampled
        self._check_host(db_now + timedelta(seconds=time.monotonic() - sampled))

    def _check_host(self, db_now: datetime) -> None:
        skew = (utcnow() - db_now).total_seconds()
        skewed = abs(skew) > SKEW_WARNING_S
        if skewed and not self._skewed:
            log.warning(
                "this host's clock is %s %s the state database's: dagctl schedules by the"
                " database's clock, but fix this host's (NTP)",
                _amount(abs(skew)),
                "ahead of" if skew > 0 else "behind",
            )
        elif self._skewed and not skewed:
            log.info("this host's clock agrees with the state database's again")
        self._skewed = skewed


def _amount(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
