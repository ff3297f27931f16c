"""The scheduling loop: sync definitions, create due runs, advance runs, claim ready task
attempts, hand them to the manager, record what ended, keep leases alive.

Every step is a named store operation (one transaction; advancing runs and claiming
the task runs that creates share one) or a pure planner call. One iteration is
`run_once(now)`, so tests drive time directly, without sleeping. Between iterations
`run()` sleeps on file descriptors (wakeups.py): a task's exit, a PostgreSQL NOTIFY
from another process (on SQLite, a change of the file's data version, looked at every
50 ms), or a signal wake it at once; the poll interval is only the fallback.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dagctl.dags.cron import utcnow
from dagctl.dags.model import Dag
from dagctl.errors import EXIT_DATABASE, EXIT_OK, DatabaseError
from dagctl.execution.attempt import INTERRUPTED, Attempt, Outcome, TaskContext
from dagctl.managers.base import AdoptingManager, FencingManager, Manager
from dagctl.notify.delivery import AlertDelivery
from dagctl.scheduling import children, fanout, outputs, planner, stopping
from dagctl.scheduling.clock import DatabaseClock
from dagctl.scheduling.definitions import Definitions
from dagctl.scheduling.ends import Ends
from dagctl.scheduling.leases import FENCE_FRACTION, LeaseTimers
from dagctl.scheduling.metrics import SchedulerStats
from dagctl.scheduling.options import SchedulerOptions
from dagctl.scheduling.retention import RetentionChore
from dagctl.scheduling.shape import shape_of
from dagctl.scheduling.wakeups import Wakeups
from dagctl.states import TaskStatus
from dagctl.store import ClaimedAttempt, FinishedAttempt, Store
from dagctl.store.records import AdvancePlan, owner_id

log = logging.getLogger("dagctl.scheduling.scheduler")


@dataclass
class _Timers:
    next_reload: float = 0.0
    next_cancel_check: float = 0.0
    next_pause_check: float = 0.0
    outage_since: float | None = None


@dataclass
class Scheduler:
    store: Store
    dags_root: Path
    manager: Manager
    options: SchedulerOptions
    clock: Callable[[], datetime] = utcnow
    owner: str = field(default_factory=owner_id)

    def __post_init__(self) -> None:
        self._inflight: dict[int, ClaimedAttempt] = {}
        self._timers = _Timers()
        self._leases = LeaseTimers(self.options.lease_seconds)
        self._wakeups = Wakeups(self.store)
        self._adopter = self.manager if isinstance(self.manager, AdoptingManager) else None
        self._fencer = self.manager if isinstance(self.manager, FencingManager) else None
        self._progress = False
        self._news = False  # another process's NOTIFY arrived since we last looked
        self._ended: list[planner.Ended] = []  # attempts that ended since the last advance
        # Whether anything but our own attempts' ends may need advancing: another
        # process's news, runs we created, definitions synced, an abandoned pass.
        self._advance_news = True
        self._last_full_advance = 0.0
        self._fenced: set[int] = set()
        self._paused_queues: frozenset[str] = frozenset()
        self._retention_chore = RetentionChore(self.store, self.owner)
        self.stats = SchedulerStats()  # `schedule --metrics-port` exports these
        self._alerts = AlertDelivery(self.store, self.owner)
        self._definitions = Definitions(self.store, self.dags_root, self.owner, self.options, self._alerts)
        self._ends = Ends(self.store, self.owner, self.clock, self._alerts, self._adopter)
        self.store.serve_queues(self.options.queues)

    # ------------------------------------------------------------ the loop

    def run(self) -> int:
        self.store.register_scheduler(self.owner, self.manager.name, self.clock())
        self.store.record_served_queues(self.owner)  # for `dagctl queues`
        self._alerts.start()
        if self._adopter is not None:
            self._adopter.bind(self.owner, self.store.installation_id())
        with self._wakeups.armed():
            log.info(
                "scheduler %s started: manager=%s concurrency=%d",
                self.owner,
                self.manager.name,
                self.options.concurrency,
            )
            code = EXIT_OK
            try:
                while self._wakeups.stop_signal is None:
                    self._sync_clock()
                    ok = self.run_once(self.clock())
                    self._fence()
                    if not ok and self._outage_too_long():
                        log.error(
                            "state database unreachable for over %.0f s: stopping", self.options.max_outage
                        )
                        code = EXIT_DATABASE
                        break
                    if self.options.once or (ok and self.options.until_idle and self.idle()):
                        break
                    if self._progress:
                        # Attempts ended during this pass after runs were advanced: go round
                        # again now, nothing else would wake us for their successors.
                        self._progress = False
                        continue
                    self._wait(self._wait_timeout(ok))
            finally:
                self._shutdown()
        return code

    def run_once(self, now: datetime) -> bool:
        """One iteration at `now`, without waiting: True when it completed, False when a
        database error abandoned it (logged once per outage; the next one starts again
        from what the database holds). What happens during the pass (attempts claimed,
        ended, runs finished) is stamped with `clock`."""
        try:
            self.iterate(now)
        except DatabaseError as exc:
            # The failed transaction rolled back as a whole: nothing is half-written, and
            # the next iteration starts again from what the database holds.
            self._note_outage(str(exc))
            return False
        if self._timers.outage_since is not None:
            log.warning("state database reachable again")
        self._timers.outage_since = None
        return True

    def _sync_clock(self) -> None:
        """Sample the database's clock (clock.py); not during an outage."""
        if isinstance(self.clock, DatabaseClock) and self._timers.outage_since is None:
            try:
                self.clock.sync_if_due(self.store.database_now)
            except DatabaseError as exc:
                self._note_outage(str(exc))

    def _note_outage(self, reason: str) -> None:
        if self._timers.outage_since is None:
            self._timers.outage_since = time.monotonic()
            log.warning("iteration abandoned, will retry: %s", reason)
        self._advance_news = True  # whatever that pass had seen, look at everything again
        self._wakeups.drop_listener()

    def _fence_at(self) -> float | None:
        """When to stop our running attempts whose leases could not be renewed (see
        leases.py). Never for a manager that adopts attempts (pods): those are taken
        over, not run again."""
        if self._adopter is not None or not self._inflight.keys() - self._fenced:
            return None
        return self._leases.fence_at()

    def _fence(self) -> None:
        fence_at = self._fence_at()
        if fence_at is None or time.monotonic() < fence_at:
            return
        doomed = [i for i in self._inflight if i not in self._fenced]
        lease = self.options.lease_seconds
        message = "could not renew the leases of %d running attempt(s) for %.0f s: stopping them"
        log.error(message + ", another scheduler will run them again", len(doomed), lease * FENCE_FRACTION)
        for task_run_id in doomed:
            self._fenced.add(task_run_id)
            self.manager.cancel(task_run_id, "stopped: its lease could not be renewed (database unreachable)")

    def _outage_too_long(self) -> bool:
        since = self._timers.outage_since
        return since is not None and time.monotonic() - since > self.options.max_outage

    def iterate(self, now: datetime) -> None:
        """One pass. Any database error abandons it whole; the next pass starts afresh."""
        began = time.perf_counter()
        self._poll_manager()
        self._sync_definitions(now)
        self._create_due_runs(now)
        self._keep_leases(now)
        self._check_queue_pauses()
        self._launch_all(self._advance_and_claim())
        self._ends.flush_logs(now)
        self._retention_chore.maybe_run(self._definitions.retention)
        self.stats.loop_done(time.perf_counter() - began)

    def _advance_and_claim(self) -> list[ClaimedAttempt]:
        """Record the attempts that ended, stop cancelled ones, advance runs and claim
        ready attempts. A task run is claimed in the commit that creates it, and nothing
        claimed starts before that commit.

        When all that happened is that our own attempts succeeded, the ends are recorded
        in that same transaction, and only their runs are advanced, from the attempts
        around them (`_advance_ends`): the hop from a task to the next costs one commit,
        whatever the size of the DAG. Otherwise (news from elsewhere, a failure, once
        per poll interval) the ends commit on their own first, and the full advance
        reads every flagged run: each of the two transactions locks the runs it touches
        in one id-ordered statement (store/runs.py, in_id_order), which is what keeps
        two schedulers from deadlocking. Recording the ends and a full advance in one
        transaction would lock two sets of runs, each in order but not their union (tried,
        and undone)."""
        free = self.options.concurrency - self.manager.running()
        mode = self._advance_mode()
        if mode == "full":
            self._ends.record(advancing=True)
            with self.store.transaction():
                claimed, plan = self._advance_and_claim_in(self._advance, free)
            self._advance_news, self._last_full_advance = False, time.monotonic()
        else:
            with self._ends.recording() as all_recorded:
                advance = self._advance_ends if mode == "ends" else None
                if advance is not None and not all_recorded:
                    # Some were not ours any more (reaped or cancelled meanwhile), so their
                    # runs are not locked yet: look at everything next time instead.
                    advance, self._advance_news = None, True
                claimed, plan = self._advance_and_claim_in(advance, free)
        self.stats.claims += len(claimed)
        self._ended.clear()
        self._advanced(plan)
        return claimed

    def _advance_and_claim_in(
        self, advance: Callable[[], AdvancePlan] | None, free: int
    ) -> tuple[list[ClaimedAttempt], AdvancePlan]:
        """The part of _advance_and_claim inside its transaction."""
        claimed: list[ClaimedAttempt] = []
        self._stop_cancelled()
        plan = advance() if advance is not None else AdvancePlan()
        if free > 0:
            # started_at: when claimed, not when the pass began.
            claimed = self.store.claim(self.owner, free, self.options.lease_seconds, self.clock())
            claimed = fanout.with_items(self.store, outputs.with_run_outputs(self.store, self.dags, claimed))
        queued = {(t.dag_run_id, t.task_name) for t in plan.new_task_runs if t.status == "queued"}
        if queued and queued <= {(c.dag_run_id, c.task_name) for c in claimed}:
            self.store.keep_news()  # we took every task run we queued: nobody else to wake
        return claimed, plan

    def _advance_mode(self) -> str:
        """Which advance: "full", every flagged run (another process's news, runs we created,
        definitions synced, an abandoned pass, a failure, or a poll interval since the
        last time); "ends": only the runs of our attempts that succeeded
        (`_advance_ends`); "none": nothing can move yet (planner.advance_needed): the
        runs stay flagged for the next full advance."""
        if (
            self._advance_news
            or not self._ended
            or time.monotonic() - self._last_full_advance >= self.options.poll_interval
        ):
            return "full"
        running: dict[int, set[str]] = {}
        for item in self._inflight.values():
            running.setdefault(item.dag_run_id, set()).add(item.task_name)
        watched = self._definitions.watched
        if not planner.advance_needed(self.dags, self._ended, running, watched):
            return "none"
        for ended in self._ended:
            dag = self.dags.get(ended.dag_name)
            if (
                dag is None
                or ended.status != TaskStatus.SUCCESS.value
                or ended.task_name not in dag.tasks  # an item of a for_each task
                or (ended.dag_name, ended.task_name) in watched
                or shape_of(dag).has_unheld
            ):
                return "full"
        return "ends"

    def _launch_all(self, claimed: list[ClaimedAttempt]) -> None:
        for item in claimed:
            self._launch(item)
        if claimed:
            self._poll_manager()  # no_op attempts, and those that could not start, ended already
        if self._ends.unrecorded:
            # Record them and advance their runs in another pass, at once: nothing else
            # would wake us for their successors.
            self._progress = True

    def _check_queue_pauses(self) -> None:
        """Once per poll interval: which work queues `dagctl queue pause` paused (the
        claims then leave them out in SQL); logged when that changes."""
        clock = time.monotonic()
        if clock < self._timers.next_pause_check:
            return
        self._timers.next_pause_check = clock + self.options.poll_interval
        paused = self.store.refresh_queue_pauses() & set(self.options.queues)
        if paused != self._paused_queues:
            for name in sorted(paused - self._paused_queues):
                log.warning("queue %s is paused: its attempts wait (dagctl queue unpause %s)", name, name)
            for name in sorted(self._paused_queues - paused):
                log.info("queue %s is unpaused", name)
            self._paused_queues = paused

    def _stop_cancelled(self) -> None:
        """`dagctl cancel` marks a run cancelled in the database; stop our attempts of such
        runs (one query, only while attempts are in flight, and at most once per poll
        interval unless another process's NOTIFY, as `cancel` sends, woke us). Their
        ends are recorded as cancelled, without retry, by the store."""
        clock = time.monotonic()
        if not self._inflight or (not self._news and clock < self._timers.next_cancel_check):
            return
        self._news = False
        self._timers.next_cancel_check = clock + self.options.poll_interval
        for task_run_id in self.store.cancelled_attempts(self.owner):
            if task_run_id in self._inflight:
                self.manager.cancel(task_run_id, "cancelled by dagctl cancel")

    # ------------------------------------------------------------ steps

    def _sync_definitions(self, now: datetime) -> None:
        if self._definitions.sync(now):
            self._advance_news = True  # changed definitions flag their DAGs' runs

    def _create_due_runs(self, now: datetime) -> None:
        if self._definitions.create_due_runs(now):
            self._advance_news = True

    @property
    def dags(self) -> dict[str, Dag]:
        return self._definitions.dags

    def _advance(self) -> AdvancePlan:
        """Inside the advance-and-claim transaction: the store locks the flagged runs and
        reads them, we plan, the store applies the plan while the locks still hold."""
        # Stamped when it happens (runs started or ended), not when the pass began.
        now = self.clock()
        snapshot = self.store.lock_flagged_runs(ended_in={item.dag_name for item in self._ended})
        if not snapshot.paused:
            return AdvancePlan()
        # Cross-DAG inputs are looked up in the same transaction.
        plan = planner.plan_advance(
            self.dags, snapshot.paused, snapshot.runs, snapshot.attempts, self.store.external_status, now
        )
        plan.alert_rules = self._alerts.rules  # the events of runs finished here join the outbox
        self.store.apply_advance(plan, now)
        if children.advance_children(self.store, self.dags, snapshot, plan, now):
            self._progress = True  # their runs are flagged again: advance them at once
        return plan

    def _advance_ends(self) -> AdvancePlan:
        """Inside the transaction that recorded our ends, which locked their runs: advance
        those runs past the tasks that succeeded, from the attempts around them only;
        a run that this cannot decide (planner.plan_after_ends) from all of its own."""
        now = self.clock()
        succeeded: dict[int, set[str]] = {}
        for item in self._ended:
            succeeded.setdefault(item.dag_run_id, set()).add(item.task_name)
        dag_of = {item.dag_run_id: self.dags[item.dag_name] for item in self._ended}
        wanted = {run: planner.tasks_to_read(dag_of[run], tasks) for run, tasks in succeeded.items()}
        snapshot = self.store.lock_runs_of_ends(wanted)
        plan, whole = planner.plan_after_ends(
            self.dags, snapshot.runs, snapshot.attempts, succeeded, self.store.external_status, now
        )
        if whole:
            runs = [run for run in snapshot.runs if run.id in whole]
            attempts = self.store.attempts_of(whole)
            plan.absorb(planner.plan_advance(self.dags, {}, runs, attempts, self.store.external_status, now))
        plan.alert_rules = self._alerts.rules
        self.store.apply_advance(plan, now)
        return plan

    def _advanced(self, plan: AdvancePlan) -> None:
        """After the advance committed."""
        if plan.finish_runs:
            # A finished run frees a max_active_runs slot for a queued one.
            self._progress = True
            self._alerts.wake()
        for run_id, status in plan.finish_runs:
            log.info("run %d finished: %s", run_id, status)

    def _keep_leases(self, now: datetime) -> None:
        """Renew our leases every lease/3; reap the others' expired ones at the earliest
        expiry we know of (and at every renewal), not on a fixed period (leases.py)."""
        clock = time.monotonic()
        if self._leases.renewal_due(clock):
            self._renew(clock)
        if not self._leases.reap_due(clock):
            return
        self._adopt(now)
        lost = self.store.reap_expired(now, alert_rules=self._alerts.rules)
        if lost:
            self._advance_news = True
        for attempt in lost:
            log.warning(
                "attempt %d of %s/%s was interrupted (its scheduler stopped renewing the lease);"
                " running it again",
                attempt.attempt,
                attempt.dag_name,
                attempt.task_name,
            )
        self._leases.reaped(time.monotonic(), self.store.next_expiry_in(self.owner))

    def _renew(self, clock: float) -> None:
        self.store.renew_leases(self.owner, self.options.lease_seconds)
        guardian_deadline = self._leases.renewed(clock)
        if self._fencer is not None:
            self._fencer.kill_after(guardian_deadline)

    def _retry_policy(self, dag_name: str, task_name: str, attempt: int) -> float | None:
        dag = self.dags.get(dag_name)
        mapped = fanout.mapped_task(dag, task_name) if dag else None
        name = mapped[0].name if mapped else task_name  # an item retries as its task says
        return planner.retry_delay(dag, name, attempt) if dag else None

    def _launch(self, item: ClaimedAttempt) -> None:
        dag = self.dags.get(item.dag_name)
        task = dag.tasks.get(item.task_name) if dag else None
        mapped = fanout.mapped_task(dag, item.task_name) if dag and task is None else None
        if mapped is not None:
            task = mapped[0]
        self._inflight[item.task_run_id] = item
        if dag is None or task is None:
            self._ends.unrecorded.append(
                self._finished(
                    Outcome(
                        item.task_run_id,
                        "failed",
                        error=f"{item.dag_name}/{item.task_name} is missing or broken on this host",
                    )
                )
            )
            return
        context = TaskContext(
            dag=dag.name,
            task=task.name,
            run_id=item.dag_run_id,
            attempt=item.attempt,
            logical_date=item.logical_date,
            params=item.params,
            secret_params=dag.secret_params,
            data_interval_start=item.data_interval_start,
            data_interval_end=item.data_interval_end,
            timezone=dag.timezone,
            outputs=outputs.upstream_outputs(dag, task, item.run_outputs),
        )
        if mapped is not None:
            context = dataclasses.replace(context, task=item.task_name, item_index=mapped[1], item=item.item)
        self.manager.launch(Attempt(item.task_run_id, dag, task, context))

    def _adopt(self, now: datetime) -> None:
        """Take over the attempts a dead scheduler left running outside (pods), instead
        of letting the reaper fail them as lost: each lease expires first, so a live
        owner never loses one. Attempts that ended meanwhile get their remains cleaned."""
        if self._adopter is None:
            return
        found = self._adopter.found(self.dags)
        if not found:
            return
        result = self.store.adopt(self.owner, found, self.options.lease_seconds, now)
        if result.ended:
            self._adopter.discard(result.ended)
        for item in result.adopted:
            log.warning(
                "adopting attempt %d of %s/%s: its scheduler is gone, its task still runs",
                item.attempt,
                item.dag_name,
                item.task_name,
            )
            self._launch(item)

    def _poll_manager(self) -> None:
        result = self.manager.poll()
        if result.finished:
            noticed = self.clock()  # one time for those noticed together: recorded together
            for outcome in result.finished:
                self._ends.unrecorded.append(self._finished(outcome, noticed))
        self._ends.log_chunks.extend((chunk.task_run_id, chunk.text) for chunk in result.logs)

    def _finished(self, outcome: Outcome, noticed: datetime | None = None) -> FinishedAttempt:
        item = self._inflight.pop(outcome.task_run_id, None)
        if item is not None:
            self._ended.append(planner.Ended(item.dag_run_id, item.dag_name, item.task_name, outcome.status))
        status = outcome.status
        if outcome.task_run_id in self._fenced and status == "failed":
            status = INTERRUPTED  # we stopped it: its lease could not be renewed
        self._fenced.discard(outcome.task_run_id)
        log_problem = self._ends.log_problems.pop(outcome.task_run_id, None)
        retry_after = None
        if status == INTERRUPTED:
            retry_after = 0.0  # run again at once, not counted against retries
        elif status == "failed" and item is not None:
            retry_after = self._retry_policy(item.dag_name, item.task_name, item.tries)
        return FinishedAttempt(
            task_run_id=outcome.task_run_id,
            status=status,
            exit_code=outcome.exit_code,
            error="; ".join(e for e in (outcome.error, log_problem) if e) or None,
            retry_after=retry_after,
            log=outcome.log,
            log_truncated_bytes=outcome.log_truncated_bytes,
            ended_at=noticed or self.clock(),
            outputs=outcome.outputs,
        )

    def idle(self) -> bool:
        """Nothing left to do: no attempt of ours in flight or unrecorded, and no active
        run in the database (False, too, when the database cannot say)."""
        if self.manager.running() or self._ends.unrecorded or self._inflight:
            return False
        try:
            return self.store.active_run_count() == 0
        except DatabaseError as exc:  # an outage like any other, not the end of --until-idle
            self._note_outage(str(exc))
            return False

    # ------------------------------------------------------------ waiting

    def _wait_timeout(self, last_ok: bool) -> float:
        # Wake in time to renew our leases (whatever the poll interval), or to stop our
        # attempts when they could not be renewed.
        now = time.monotonic()
        fence_at = self._fence_at()
        until_fence = math.inf if fence_at is None else max(0.0, fence_at - now)
        if not last_ok:
            return min(5.0, self.options.poll_interval * 2, until_fence)
        timeout = min(self.options.poll_interval, max(0.0, self._leases.next_due() - now), until_fence)
        wakeup = self.manager.next_wakeup()
        if wakeup is not None:
            timeout = min(timeout, wakeup)
        next_due = self._definitions.next_due
        if next_due:
            until_due = (min(next_due.values()) - self.clock()).total_seconds()
            timeout = min(timeout, max(0.0, until_due))
        return timeout

    def _wait(self, timeout: float) -> None:
        if self._wakeups.wait(timeout, self.manager.wait_fds, self._took_task_output):
            self._news = self._advance_news = True

    def _took_task_output(self) -> bool:
        """While waiting, tasks wrote or ended: take that in; True when it is worth an
        iteration now (an end to record, or logs due for a flush)."""
        self._poll_manager()
        return bool(self._ends.unrecorded) or self._ends.flush_due()

    # ------------------------------------------------------------ stopping

    def _shutdown(self) -> None:
        # A second signal: do not wait for the grace period.
        grace = 0.0 if self._wakeups.hurry else self.options.grace_seconds
        if self.manager.running():
            log.info(
                "stopping: waiting up to %.0f s for %d running task(s)",
                grace,
                self.manager.running(),
            )
        self._grace_period(time.monotonic() + grace)
        result = self.manager.shutdown(0.0)
        for outcome in result.finished:
            self._ends.unrecorded.append(self._finished(outcome))
        self._ends.log_chunks.extend((chunk.task_run_id, chunk.text) for chunk in result.logs)
        now = self.clock()
        for _ in range(3):
            try:
                self._ends.record()
                self.store.unregister_scheduler(self.owner, now)
                break
            except Exception as exc:
                log.warning("could not record the final state (%s); retrying", exc)
                time.sleep(1)
        else:
            log.error(
                "gave up recording %d attempt(s); their leases expire and they are retried",
                len(self._ends.unrecorded),
            )
        self._alerts.stop(drain_seconds=max(grace, 5.0))  # what is due now; the rest, any other

    def _grace_period(self, end: float) -> None:
        stopping.grace_period(
            self.manager, self._leases, self._renew, lambda: self._wakeups.hurry, self._poll_manager, end
        )


__all__ = ["Scheduler", "SchedulerOptions"]
