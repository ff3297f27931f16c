"""What the scheduler has to record of its attempts: the ends it noticed and the output
they wrote, kept until the transaction that records them has committed.

Ends are recorded before each advance, so their runs are advanced in the same pass:
in the advance's own transaction when only their runs are advanced, else in a
transaction of their own (scheduler.py, _advance_and_claim), and at shutdown. When it
rolls back (the database went away), the ends and the output go back where they were,
to be recorded once the database is back: nothing is lost.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from dagctl.managers.base import AdoptingManager
from dagctl.notify.delivery import AlertDelivery
from dagctl.store import FinishedAttempt, Store

log = logging.getLogger("dagctl.scheduling.scheduler")

LOG_FLUSH_INTERVAL_S = 1.0

Chunks = list[tuple[int, str]]


@dataclass
class Ends:
    store: Store
    owner: str
    clock: Callable[[], datetime]
    alerts: AlertDelivery  # its rules say which ends also send an alert
    adopter: AdoptingManager | None = None
    unrecorded: list[FinishedAttempt] = field(default_factory=list)
    log_chunks: Chunks = field(default_factory=list)
    # Output that could not be stored, by attempt: said in the attempt's error.
    log_problems: dict[int, str] = field(default_factory=dict)
    next_log_flush: float = 0.0

    def _take(self) -> tuple[list[FinishedAttempt], Chunks]:
        """The ends to record, with every log chunk: a finished attempt's output must be
        stored before its end."""
        if not self.unrecorded:
            return [], []
        pending, chunks = self.unrecorded, self.log_chunks
        self.unrecorded, self.log_chunks = [], []
        return pending, chunks

    def _restore(self, pending: list[FinishedAttempt], chunks: Chunks) -> None:
        """The transaction that was to record them rolled back whole: keep them."""
        self.unrecorded = pending + self.unrecorded
        self.log_chunks = chunks + self.log_chunks

    def _write(self, pending: list[FinishedAttempt], chunks: Chunks, *, advancing: bool) -> int:
        """Inside a transaction: store `chunks` and record `pending`; how many were
        recorded."""
        now = self.clock()  # when it ended, not when the iteration began
        if chunks:
            self._store_logs(chunks, now)
        if not pending:
            return 0
        return self.store.finish(
            self.owner, pending, now, wake_others=not advancing, alert_rules=self.alerts.rules
        )

    def _committed(self, pending: Sequence[FinishedAttempt], recorded: int) -> None:
        if self.adopter is not None and pending and recorded == len(pending):
            # What is left of these attempts (finished pods) may go now. If some were not
            # ours any more (adopted by another scheduler while we stalled), the
            # adopters' sweep sorts the pods out instead.
            self.adopter.discard([item.task_run_id for item in pending])

    def record(self, *, advancing: bool = False) -> None:
        """Record the ends, with the output held so far, in a transaction of their own.
        `advancing`: the caller advances their runs right after, so the other schedulers
        need not be woken for them. Without ends, at shutdown (not advancing), the output
        still held is stored."""
        if not self.unrecorded:
            if not advancing:
                self.flush_logs(self.clock(), force=True)
            return
        pending, chunks = self._take()
        try:
            with self.store.transaction():
                recorded = self._write(pending, chunks, advancing=advancing)
        except BaseException:
            self._restore(pending, chunks)
            raise
        self._committed(pending, recorded)

    @contextlib.contextmanager
    def recording(self) -> Iterator[bool]:
        """A transaction that records the ends first, with the output held so far, for
        the caller to go on in: it advances their runs and claims in the same commit.
        Yields whether every end was recorded (then their runs are locked, by `finish`)."""
        pending, chunks = self._take()
        try:
            with self.store.transaction():
                recorded = self._write(pending, chunks, advancing=True)
                yield recorded == len(pending)
        except BaseException:
            self._restore(pending, chunks)
            raise
        self._committed(pending, recorded)

    def flush_logs(self, now: datetime, force: bool = False) -> None:
        """Store the running attempts' output, at most once a second unless `force`."""
        clock = time.monotonic()
        if not self.log_chunks or (not force and clock < self.next_log_flush):
            return
        self.next_log_flush = clock + LOG_FLUSH_INTERVAL_S
        chunks, self.log_chunks = self.log_chunks, []
        try:
            self._store_logs(chunks, now)
        except BaseException:
            self.log_chunks = chunks + self.log_chunks
            raise

    def flush_due(self) -> bool:
        return bool(self.log_chunks) and time.monotonic() >= self.next_log_flush

    def _store_logs(self, chunks: Chunks, now: datetime) -> None:
        for task_run_id, problem in self.store.append_logs(chunks, now).items():
            # Dropped, not retried: the attempt goes on, and its record will say so.
            if task_run_id not in self.log_problems:
                log.warning("could not store the output of task run %d: %s", task_run_id, problem)
            self.log_problems[task_run_id] = problem
