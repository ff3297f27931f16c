"""The scheduling loop: sync definitions, create due runs, advance runs, claim ready task
attempts, hand them to the manager, record what ended, keep leases alive.

Every step is a named store operation (one transaction) or a pure planner call. One
iteration is `iterate(now)`, so tests drive time directly. Between iterations the loop
sleeps on file descriptors: a task's output pipe or exit, a PostgreSQL NOTIFY from
another process, or a signal wake it at once; the poll interval is only the fallback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from dagctl import planner
from dagctl.cron import utcnow
from dagctl.errors import EXIT_DATABASE, EXIT_OK, DatabaseError
from dagctl.loader import DagCache
from dagctl.managers.base import Attempt, Manager, Outcome, TaskContext
from dagctl.model import Dag
from dagctl.store import ClaimedAttempt, FinishedAttempt, Store

log = logging.getLogger("dagctl.scheduler")

DEFAULT_POLL_INTERVAL_S = 1.0
DEFAULT_LEASE_S = 30.0
DEFAULT_RELOAD_INTERVAL_S = 5.0
DEFAULT_GRACE_S = 30.0
# A database outage longer than this ends the scheduler with exit code 3, so a
# supervisor can restart or alert, instead of a process that looks alive but does nothing.
DEFAULT_MAX_OUTAGE_S = 120.0
LOG_FLUSH_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    concurrency: int
    poll_interval: float = DEFAULT_POLL_INTERVAL_S
    lease_seconds: float = DEFAULT_LEASE_S
    reload_interval: float = DEFAULT_RELOAD_INTERVAL_S
    grace_seconds: float = DEFAULT_GRACE_S
    max_outage: float = DEFAULT_MAX_OUTAGE_S
    once: bool = False
    until_idle: bool = False

    @classmethod
    def from_env(cls, **given: Any) -> SchedulerOptions:
        """Test and operations knobs without flags: DAGCTL_LEASE_SECONDS, DAGCTL_RELOAD_SECONDS,
        DAGCTL_MAX_OUTAGE_SECONDS."""
        env = os.environ
        extra: dict[str, Any] = {}
        if "DAGCTL_LEASE_SECONDS" in env:
            extra["lease_seconds"] = float(env["DAGCTL_LEASE_SECONDS"])
        if "DAGCTL_RELOAD_SECONDS" in env:
            extra["reload_interval"] = float(env["DAGCTL_RELOAD_SECONDS"])
        if "DAGCTL_MAX_OUTAGE_SECONDS" in env:
            extra["max_outage"] = float(env["DAGCTL_MAX_OUTAGE_SECONDS"])
        return cls(**{**extra, **{k: v for k, v in given.items() if v is not None}})


@dataclass
class _Timers:
    next_reload: float = 0.0
    next_lease: float = 0.0
    next_log_flush: float = 0.0
    outage_since: float | None = None


@dataclass
class Scheduler:
    store: Store
    dags_root: Path
    manager: Manager
    options: SchedulerOptions
    clock: Callable[[], datetime] = utcnow
    owner: str = field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}")

    def __post_init__(self) -> None:
        self._cache = DagCache(self.dags_root)
        self.dags: dict[str, Dag] = {}
        self._next_due: dict[str, datetime] = {}
        self._inflight: dict[int, ClaimedAttempt] = {}
        self._unrecorded: list[FinishedAttempt] = []
        self._log_chunks: list[tuple[int, str]] = []
        self._timers = _Timers()
        self._stop_signal: int | None = None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._listener: Any = None
        self._progress = False

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        self.store.register_scheduler(self.owner, self.manager.name, self.clock())
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        log.info(
            "scheduler %s started: manager=%s concurrency=%d",
            self.owner,
            self.manager.name,
            self.options.concurrency,
        )
        code = EXIT_OK
        try:
            while self._stop_signal is None:
                ok = self._guarded_iteration()
                if not ok and self._outage_too_long():
                    log.error("state database unreachable for over %.0f s: stopping", self.options.max_outage)
                    code = EXIT_DATABASE
                    break
                if self.options.once or (ok and self.options.until_idle and self._idle()):
                    break
                if self._progress:
                    # Attempts ended during this pass after runs were advanced: go round
                    # again now, nothing else would wake us for their successors.
                    self._progress = False
                    continue
                self._wait(self._wait_timeout(ok))
        finally:
            self._shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _guarded_iteration(self) -> bool:
        try:
            self.iterate(self.clock())
        except DatabaseError as exc:
            # The failed transaction rolled back as a whole: nothing is half-written, and
            # the next iteration starts again from what the database holds.
            self._note_outage(str(exc))
            return False
        if self._timers.outage_since is not None:
            log.warning("state database reachable again")
        self._timers.outage_since = None
        return True

    def _note_outage(self, reason: str) -> None:
        if self._timers.outage_since is None:
            self._timers.outage_since = time.monotonic()
            log.warning("iteration abandoned, will retry: %s", reason)
        self._listener = None

    def _outage_too_long(self) -> bool:
        since = self._timers.outage_since
        return since is not None and time.monotonic() - since > self.options.max_outage

    def iterate(self, now: datetime) -> None:
        """One pass. Any database error abandons it whole; the next pass starts afresh."""
        self._poll_manager()
        self._record_finished(now)
        self._sync_definitions(now)
        self._create_due_runs(now)
        self._advance(now)
        self._keep_leases(now)
        self._claim_and_launch(now)
        self._flush_logs(now)

    # ------------------------------------------------------------ steps

    def _sync_definitions(self, now: datetime) -> None:
        clock = time.monotonic()
        if clock < self._timers.next_reload:
            return
        self._timers.next_reload = clock + self.options.reload_interval
        tree = self._cache.load()
        self.dags = dict(tree.dags)
        for name, broken in tree.broken.items():
            log.warning("DAG %s is broken and will not be scheduled: %s", name, broken.reason)
        states = self.store.sync_dags({name: d.fingerprint for name, d in self.dags.items()}, now)
        self._next_due = {}
        for name, dag in self.dags.items():
            state = states.get(name)
            if state is None or state.paused:
                continue
            due = planner.next_due(dag, state.last_slot, state.first_seen_at)
            if due is not None:
                self._next_due[name] = due

    def _create_due_runs(self, now: datetime) -> None:
        candidates = [name for name, due in self._next_due.items() if due <= now]
        if not candidates:
            return
        import json

        states = self.store.dag_states()
        work = []
        for name in candidates:
            dag, state = self.dags.get(name), states.get(name)
            if dag is None or state is None or state.paused:
                self._next_due.pop(name, None)
                continue
            due = planner.due_slots(dag, state.last_slot, state.first_seen_at, now)
            if due is None:
                next_due = planner.next_due(dag, state.last_slot, state.first_seen_at)
            else:
                defaults = {n: p.default for n, p in dag.params.items()}
                work.append((name, due.slots, due.watermark, json.dumps(defaults), dag.fingerprint))
                next_due = planner.next_due(dag, due.watermark, state.first_seen_at)
            if next_due is None:
                self._next_due.pop(name, None)
            else:
                self._next_due[name] = next_due
        if work:
            created = self.store.create_scheduled_runs(work, now)
            if created:
                log.info("created %d scheduled run(s)", created)

    def _advance(self, now: datetime) -> None:
        def decide(paused: Any, runs: Any, attempts: Any, external: Any) -> planner.AdvancePlan:
            return planner.plan_advance(self.dags, paused, runs, attempts, external)

        plan = self.store.advance(decide, now)
        if plan.finish_runs:
            # A finished run frees a max_active_runs slot for a queued one.
            self._progress = True
        for run_id, status in plan.finish_runs:
            log.info("run %d finished: %s", run_id, status)

    def _keep_leases(self, now: datetime) -> None:
        clock = time.monotonic()
        if clock < self._timers.next_lease:
            return
        self._timers.next_lease = clock + self.options.lease_seconds / 3
        self.store.renew_leases(self.owner, self.options.lease_seconds)
        lost = self.store.reap_expired(self._retry_policy, now)
        for attempt in lost:
            log.warning(
                "attempt %d of %s/%s was lost (its scheduler is gone); retrying if allowed",
                attempt.attempt,
                attempt.dag_name,
                attempt.task_name,
            )

    def _retry_policy(self, dag_name: str, task_name: str, attempt: int) -> float | None:
        dag = self.dags.get(dag_name)
        return planner.retry_delay(dag, task_name, attempt) if dag else None

    def _claim_and_launch(self, now: datetime) -> None:
        free = self.options.concurrency - self.manager.running()
        if free <= 0:
            return
        claimed = self.store.claim(self.owner, free, self.options.lease_seconds, now)
        for item in claimed:
            dag = self.dags.get(item.dag_name)
            task = dag.tasks.get(item.task_name) if dag else None
            self._inflight[item.task_run_id] = item
            if dag is None or task is None:
                self._unrecorded.append(
                    self._finished(
                        Outcome(
                            item.task_run_id,
                            "failed",
                            error=f"{item.dag_name}/{item.task_name} is missing or broken on this host",
                        )
                    )
                )
                continue
            context = TaskContext(
                dag=dag.name,
                task=task.name,
                run_id=item.dag_run_id,
                attempt=item.attempt,
                logical_date=item.logical_date,
                params=item.params,
                secret_params=dag.secret_params,
            )
            self.manager.launch(Attempt(item.task_run_id, dag, task, context))
        if claimed:
            self._poll_manager()
            self._record_finished(now)

    def _poll_manager(self) -> None:
        result = self.manager.poll()
        for outcome in result.finished:
            self._unrecorded.append(self._finished(outcome))
        self._log_chunks.extend((chunk.task_run_id, chunk.text) for chunk in result.logs)

    def _finished(self, outcome: Outcome) -> FinishedAttempt:
        item = self._inflight.pop(outcome.task_run_id, None)
        retry_after = None
        if outcome.status == "failed" and item is not None:
            retry_after = self._retry_policy(item.dag_name, item.task_name, item.attempt)
        return FinishedAttempt(
            task_run_id=outcome.task_run_id,
            status=outcome.status,
            exit_code=outcome.exit_code,
            error=outcome.error,
            retry_after=retry_after,
            log=outcome.log,
            log_truncated_bytes=outcome.log_truncated_bytes,
        )

    def _record_finished(self, now: datetime) -> None:
        if not self._unrecorded and not self._log_chunks:
            return
        now = self.clock()  # when it ended, not when the iteration began
        # Logs of a finished attempt must precede its final chunk; flush them first.
        self._flush_logs(now, force=True)
        pending, self._unrecorded = self._unrecorded, []
        try:
            if self.store.finish(self.owner, pending, now):
                self._progress = True
        except BaseException:
            # Keep them: they are recorded once the database is back (nothing is lost).
            self._unrecorded = pending + self._unrecorded
            raise

    def _flush_logs(self, now: datetime, force: bool = False) -> None:
        clock = time.monotonic()
        if not self._log_chunks or (not force and clock < self._timers.next_log_flush):
            return
        self._timers.next_log_flush = clock + LOG_FLUSH_INTERVAL_S
        chunks, self._log_chunks = self._log_chunks, []
        try:
            self.store.append_logs(chunks, now)
        except BaseException:
            self._log_chunks = chunks + self._log_chunks
            raise

    def _idle(self) -> bool:
        return (
            self.manager.running() == 0
            and not self._unrecorded
            and not self._inflight
            and self.store.active_run_count() == 0
        )

    # ------------------------------------------------------------ waiting

    def _wait_timeout(self, last_ok: bool) -> float:
        if not last_ok:
            return min(5.0, self.options.poll_interval * 2)
        timeout = self.options.poll_interval
        wakeup = self.manager.next_wakeup()
        if wakeup is not None:
            timeout = min(timeout, wakeup)
        if self._next_due:
            until_due = (min(self._next_due.values()) - self.clock()).total_seconds()
            timeout = min(timeout, max(0.0, until_due))
        return timeout

    def _wait(self, timeout: float) -> None:
        poller = select.poll()
        fds = [self._wake_r, *self.manager.wait_fds()]
        listener = self._ensure_listener()
        if listener is not None:
            fds.append(listener.fileno())
        for fd in fds:
            poller.register(fd, select.POLLIN)
        with contextlib.suppress(InterruptedError):
            poller.poll(max(0.0, timeout) * 1000)
        self._drain_wake_pipe()
        if listener is not None:
            try:
                listener.drain()
            except Exception:  # the NOTIFY connection broke: reconnect on the next wait
                self._listener = None

    def _ensure_listener(self) -> Any:
        if self._listener is None and self.store.is_postgres:
            try:
                self._listener = self.store.listener()
            except Exception as exc:  # LISTEN is an optimisation; polling still works
                log.debug("LISTEN unavailable: %s", exc)
        return self._listener

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self._stop_signal is not None:
            # A second signal: do not wait for the grace period.
            self.options = SchedulerOptions(**{**_as_dict(self.options), "grace_seconds": 0.0})
        self._stop_signal = signum
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    # ------------------------------------------------------------ stopping

    def _shutdown(self) -> None:
        if self.manager.running():
            log.info(
                "stopping: waiting up to %.0f s for %d running task(s)",
                self.options.grace_seconds,
                self.manager.running(),
            )
        result = self.manager.shutdown(self.options.grace_seconds)
        for outcome in result.finished:
            self._unrecorded.append(self._finished(outcome))
        self._log_chunks.extend((chunk.task_run_id, chunk.text) for chunk in result.logs)
        now = self.clock()
        for _ in range(3):
            try:
                self._record_finished(now)
                self.store.unregister_scheduler(self.owner, now)
                break
            except Exception as exc:
                log.warning("could not record the final state (%s); retrying", exc)
                time.sleep(1)
        else:
            log.error(
                "gave up recording %d attempt(s); their leases expire and they are retried",
                len(self._unrecorded),
            )
        os.close(self._wake_r)
        os.close(self._wake_w)
        if self._listener is not None:
            self._listener.close()


def _as_dict(options: SchedulerOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}
