"""Scheduling decisions as pure functions of time, definitions and a state snapshot.

No database, no clock, no sleeping: tests feed times and snapshots in, the store and
the scheduler loop carry the decisions out.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dagctl.dags import cron
from dagctl.dags.hints import did_you_mean
from dagctl.dags.model import Dag
from dagctl.errors import DagctlError, UsageError
from dagctl.scheduling import crossdag
from dagctl.scheduling.shape import shape_of
from dagctl.states import (
    DONE_OK_TASK_VALUES,
    FINISHED_TASK,
    UNSUCCESSFUL_TASK_VALUES,
    RunStatus,
    TaskStatus,
)
from dagctl.store.records import AdvancePlan, AttemptSnapshot, DagState, NewRun, NewTaskRun, RunSnapshot

# With catchup "none", a slot still counts as on time this long after it passed.
ON_TIME_GRACE = timedelta(seconds=60)
# With catchup "all", at most this many runs are created per DAG per iteration.
CATCHUP_ALL_BATCH = 500


# ---------------------------------------------------------------- cron slots


@dataclass(frozen=True, slots=True)
class DueSlots:
    slots: tuple[datetime, ...]  # runs to create, oldest first
    watermark: datetime  # the new last_slot


def due_slots(dag: Dag, last_slot: datetime | None, first_seen: datetime, now: datetime) -> DueSlots | None:
    """What the catch-up policy creates for `dag` at `now`, or None when nothing is due.

    A DAG never seen before gets no runs for slots before it was first seen.
    """
    if not dag.schedule:
        return None
    after = last_slot or first_seen
    upcoming = cron.next_slot_after(dag.schedule, dag.timezone, after)
    if upcoming is None or upcoming > now:
        return None
    if dag.catchup == "all":
        slots = tuple(cron.slots_between(dag.schedule, dag.timezone, after, now, limit=CATCHUP_ALL_BATCH))
        return DueSlots(slots, slots[-1])
    latest = cron.latest_slot_at_or_before(dag.schedule, dag.timezone, now, not_before=after) or upcoming
    if dag.catchup == "none" and now - latest > ON_TIME_GRACE:
        return DueSlots((), latest)
    return DueSlots((latest,), latest)


def new_runs(
    dag: Dag,
    slots: Sequence[datetime],
    schedule: str | None = None,
    given: Mapping[str, Any] | None = None,
) -> list[NewRun]:
    """The runs of `slots` (oldest first): each with its data interval (from the previous
    slot of `schedule`, the DAG's by default) and its params (`given` over the defaults,
    templated ones rendered for that slot). A param that cannot be rendered or checked
    makes that run an error."""
    import json

    from dagctl.dags import templating
    from dagctl.errors import ParamError

    expression = schedule or dag.schedule or ""
    fixed: str | None = None
    if not given and not templating.has_templated_defaults(dag):
        # Without templates every slot has the same params: worked out once.
        fixed = json.dumps({n: p.default for n, p in dag.params.items() if p.has_default})
    runs: list[NewRun] = []
    previous: datetime | None = None
    for slot in slots:
        if previous is not None and cron.next_slot_after(expression, dag.timezone, previous) == slot:
            dates = templating.RunDates(slot, previous, slot, dag.timezone)  # no cron search
        else:
            dates = templating.dates_for_slot(expression, dag.timezone, slot)
        previous = slot
        if fixed is not None:
            runs.append(NewRun(slot, dates.data_interval_start, fixed))
            continue
        try:
            params = templating.resolve_run_params(dag, dates, given or {})
        except ParamError as exc:
            runs.append(NewRun(slot, dates.data_interval_start, "{}", str(exc)))
            continue
        runs.append(NewRun(slot, dates.data_interval_start, json.dumps(params)))
    return runs


def next_due(dag: Dag, last_slot: datetime | None, first_seen: datetime) -> datetime | None:
    if not dag.schedule:
        return None
    return cron.next_slot_after(dag.schedule, dag.timezone, last_slot or first_seen)


def missing_dags(
    states: Mapping[str, DagState], loaded: Collection[str], broken: Mapping[str, str]
) -> tuple[dict[str, str], list[str], bool]:
    """DAGs the database knows but this scheduler did not load: ({name: reason} to mark
    as missing now, names loaded again to unmark, whether any is missing at all)."""
    missing = {
        name: f"DAG {name} is broken: {broken[name]}"
        if name in broken
        else f"DAG {name} is no longer in the DAGs folder (deleted or renamed)"
        for name in states.keys() - set(loaded)
    }
    marked = {name: reason for name, reason in missing.items() if states[name].missing_since is None}
    back = sorted(name for name in loaded if name in states and states[name].missing_since is not None)
    return marked, back, bool(missing)


# ---------------------------------------------------------------- advancing runs
# The snapshot decided from and the plan decided are records of the store (records.py):
# the store reads the one and applies the other, in the transaction that locked the runs.

# (other DAG, other task, latest logical date[, earliest]) -> status (crossdag.py)
ExternalLookup = Callable[..., "str | None"]


def plan_advance(
    dags: Mapping[str, Dag],
    paused: Mapping[str, bool],
    runs: Sequence[RunSnapshot],
    attempts: Mapping[int, Mapping[str, AttemptSnapshot]],
    external_status: ExternalLookup,
    now: datetime | None = None,
) -> AdvancePlan:
    """Start queued runs (oldest first, within max_active_runs), create the task runs whose
    inputs are all done, and finish runs that have nothing left to do. `now`: when
    cross-DAG inputs' `wait_timeout`s are counted to (none pass without it)."""
    plan = AdvancePlan()
    by_dag: dict[str, list[RunSnapshot]] = {}
    for run in runs:
        by_dag.setdefault(run.dag_name, []).append(run)
    for dag_name, dag_runs in by_dag.items():
        dag = dags.get(dag_name)
        if dag is None:
            plan.still_dirty.extend(r.id for r in dag_runs)
            continue
        running = [r for r in dag_runs if r.status == RunStatus.RUNNING.value]
        if not paused.get(dag_name):
            running.extend(_start_runs(dag, dag_runs, plan))
        else:
            plan.still_dirty.extend(r.id for r in dag_runs if r.status == RunStatus.QUEUED.value)
        for run in running:
            _advance_one(dag, run, attempts.get(run.id, {}), external_status, plan, now)
    return plan


def _start_runs(dag: Dag, dag_runs: Sequence[RunSnapshot], plan: AdvancePlan) -> list[RunSnapshot]:
    """The queued runs to start now. Scheduled and manual runs start first, oldest first,
    within the DAG's max_active_runs; each backfill's runs start within the backfill's
    own max_active_runs, oldest (or, with --reverse, newest) first, counted apart: a
    backfill never holds a scheduled run back. The rest stay flagged."""
    groups: dict[int | None, list[RunSnapshot]] = {}
    for run in dag_runs:
        groups.setdefault(run.backfill_id, []).append(run)
    started: list[RunSnapshot] = []
    for backfill_id in sorted(groups, key=lambda b: -1 if b is None else b):
        members = groups[backfill_id]
        limit = dag.max_active_runs if backfill_id is None else (members[0].backfill_max_active or 1)
        newest_first = backfill_id is not None and members[0].backfill_reverse
        queued = sorted(
            (r for r in members if r.status == RunStatus.QUEUED.value),
            key=lambda r: (r.logical_date, r.id),
            reverse=newest_first,
        )
        if not queued:
            continue
        free = max(0, limit - sum(1 for r in members if r.status == RunStatus.RUNNING.value))
        plan.start_runs.extend(r.id for r in queued[:free])
        plan.still_dirty.extend(r.id for r in queued[free:])
        started.extend(queued[:free])
    return started


def tasks_to_read(dag: Dag, succeeded: Collection[str]) -> frozenset[str]:
    """What `plan_after_ends` decides from for tasks that just succeeded: those tasks,
    their successors and their successors' other inputs."""
    shape = shape_of(dag)
    wanted = set(succeeded)
    for name in succeeded:
        for successor in shape.successors.get(name, ()):
            wanted.add(successor)
            wanted.update(shape.inputs[successor])
    return frozenset(wanted)


def plan_after_ends(
    dags: Mapping[str, Dag],
    runs: Sequence[RunSnapshot],
    attempts: Mapping[int, Mapping[str, AttemptSnapshot]],
    succeeded: Mapping[int, Collection[str]],
    external_status: ExternalLookup,
    now: datetime | None = None,
) -> tuple[AdvancePlan, list[int]]:
    """Advance running runs after some of their tasks (`succeeded`, by run) succeeded,
    knowing only the attempts of `tasks_to_read`: create the successors whose inputs
    are all done. Returns the plan and the runs it cannot decide that way, to be planned
    from all their attempts (plan_advance): those where an input that failed earlier
    makes a successor upstream_failed (which cascades beyond what was read), and those
    whose successors of what succeeded all have finished (so the run may be done)."""
    plan, whole = AdvancePlan(), []
    for run in runs:
        dag = dags[run.dag_name]
        known = attempts.get(run.id, {})
        successors = shape_of(dag).successors
        seeds = {s for name in succeeded[run.id] for s in successors.get(name, ()) if s not in known}
        own = AdvancePlan()
        _advance_one(dag, run, known, external_status, own, now, seeds=seeds)
        created = {t.task_name: t.status for t in own.new_task_runs}
        settled = not created and all(
            s in known and known[s].status in FINISHED_TASK
            for name in succeeded[run.id]
            for s in successors.get(name, ())
        )
        if settled or any(status not in _NOT_ENDED for status in created.values()):
            whole.append(run.id)
            continue
        plan.absorb(own)
    return plan, whole


_NOT_ENDED = frozenset({TaskStatus.QUEUED.value, TaskStatus.RUNNING.value})


def _advance_one(
    dag: Dag,
    run: RunSnapshot,
    known: Mapping[str, AttemptSnapshot],
    external_status: ExternalLookup,
    plan: AdvancePlan,
    now: datetime | None = None,
    seeds: set[str] | None = None,
) -> None:
    """`seeds`: the tasks to decide first, where `known` holds only the attempts around
    them (plan_after_ends); by default every task that can be decided."""
    latest = dict(known)
    shape = shape_of(dag)
    waiting_outside = False
    # Only a task without inputs or with one that has an attempt can be decided: the
    # successors of what exists, not every task of the DAG (a chain of 1,000 would
    # otherwise walk 1,000 tasks at each hop). Passes go in the DAG's task order, as a
    # walk over every task would; an upstream_failed task created in one pass decides
    # its own successors in the same or the next pass, so a failure reaches the end of
    # the DAG (and the run finishes) without waiting for another iteration.
    candidates = seeds
    if candidates is None:
        candidates = {name for name in shape.roots if name not in latest}
        for name in known:
            candidates.update(s for s in shape.successors.get(name, ()) if s not in latest)
    while candidates:
        this_pass = [(shape.index[name], name) for name in candidates]
        heapq.heapify(this_pass)
        candidates = set()
        while this_pass:
            position, name = heapq.heappop(this_pass)
            if name in latest:
                continue
            task = dag.tasks[name]
            verdict, reason = _inputs_verdict(shape.inputs[name], latest), None
            if verdict == "ok" and task.external_inputs:
                verdict, reason = crossdag.verdict(
                    dag, task, run.logical_date, run.started_at, now, external_status
                )
                waiting_outside = waiting_outside or verdict == "wait"
            if verdict == "wait":
                continue
            status = TaskStatus.QUEUED if verdict == "ok" else TaskStatus.UPSTREAM_FAILED
            if verdict == "timeout":
                status = TaskStatus.FAILED
            if status is TaskStatus.QUEUED and task.unheld:
                status = TaskStatus.RUNNING  # never claimed: scheduling/children.py, fanout.py
            plan.new_task_runs.append(NewTaskRun(run.id, dag.name, name, status.value, reason))
            latest[name] = AttemptSnapshot(name, 1, status.value)
            for successor in shape.successors.get(name, ()):
                if successor in latest:
                    continue
                if shape.index[successor] > position:
                    heapq.heappush(this_pass, (shape.index[successor], successor))
                else:
                    candidates.add(successor)
    if waiting_outside:
        plan.still_dirty.append(run.id)
    if len(latest) < len(dag.tasks):
        return  # some task has no attempt yet
    statuses = [latest[name].status for name in dag.tasks if name in latest]
    if len(statuses) < len(dag.tasks) or any(s not in FINISHED_TASK for s in statuses):
        return
    final = RunStatus.SUCCESS if all(s in DONE_OK_TASK_VALUES for s in statuses) else RunStatus.FAILED
    plan.finish_runs.append((run.id, final.value))


def _inputs_verdict(inputs: Sequence[str], latest: Mapping[str, AttemptSnapshot]) -> str:
    verdict = "ok"
    for upstream in inputs:
        attempt = latest.get(upstream)
        if attempt is None or attempt.status not in FINISHED_TASK:
            verdict = "wait"
        elif attempt.status in UNSUCCESSFUL_TASK_VALUES:
            return "failed"
    return verdict


@dataclass(frozen=True, slots=True)
class Ended:
    """An attempt this scheduler saw end."""

    dag_run_id: int
    dag_name: str
    task_name: str
    status: str


def advance_needed(
    dags: Mapping[str, Dag],
    ended: Sequence[Ended],
    running: Mapping[int, Collection[str]],
    watched: Collection[tuple[str, str]] = (),
) -> bool:
    """Whether advancing the runs of `ended` attempts can change anything, given the
    tasks of each run still `running` here and the (dag, task) pairs other DAGs wait on
    (`watched`). It cannot when every one succeeded, no other DAG waits on it, its run
    still has attempts running (so it cannot finish), and each of its successors has an
    input among them (so none is ready): the middle tasks of a fan-out, say."""
    for item in ended:
        dag = dags.get(item.dag_name)
        busy = running.get(item.dag_run_id)
        if dag is None or not busy or item.status != TaskStatus.SUCCESS.value:
            return True
        if (item.dag_name, item.task_name) in watched or item.task_name not in dag.tasks:
            return True  # another DAG waits on it, or an item of a for_each task ended
        for task in dag.tasks.values():
            inputs = task.local_inputs
            if item.task_name in inputs and not any(name in busy for name in inputs):
                return True
    return False


def retry_delay(dag: Dag, task_name: str, failed_attempt: int) -> float | None:
    """Seconds before the next attempt, or None when retries are exhausted."""
    task = dag.tasks.get(task_name)
    if task is None or failed_attempt > dag.retries_for(task):
        return None
    return dag.retry_delay_for(task, failed_attempt)


# ---------------------------------------------------------------- `dagctl retry`


@dataclass(frozen=True, slots=True)
class RetryPlan:
    requeue: tuple[tuple[str, int], ...]  # (task, new attempt number): tasks that ran before
    reset: tuple[str, ...]  # tasks that never started: recreated once their inputs succeed


def latest_attempts(attempts: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    latest: dict[str, Mapping[str, Any]] = {}
    for attempt in attempts:
        seen = latest.get(attempt["task_name"])
        if seen is None or attempt["attempt"] > seen["attempt"]:
            latest[attempt["task_name"]] = attempt
    return latest


def descendants(dag: Dag, roots: Iterable[str]) -> set[str]:
    children = dag.downstream()
    found: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in found:
            continue
        found.add(name)
        stack.extend(children.get(name, ()))
    return found


def plan_retry(
    dag: Dag, run: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]], only_task: str | None
) -> RetryPlan:
    """Which tasks of a finished run to run again: the failed, upstream_failed and
    cancelled ones (or only `only_task`) and everything downstream of them. A task that
    ran before gets a new attempt; one that never started is reset, so the scheduler
    creates it when its inputs have succeeded."""
    run_id = run["id"]
    if run["status"] in ("queued", "running"):
        raise UsageError(
            f"run {run_id} is {run['status']}", "retry it once it has finished, or cancel it first"
        )
    running = sorted(a["task_name"] for a in attempts if a["status"] == "running")
    if running:
        raise UsageError(
            f"run {run_id} still has running tasks ({', '.join(running)})",
            "wait for their scheduler to stop them, then retry",
        )
    latest = latest_attempts(attempts)
    if only_task is not None:
        if only_task not in dag.tasks:
            raise UsageError(
                f"DAG {dag.name!r} has no task {only_task!r}",
                did_you_mean(only_task, dag.tasks) or f"tasks: {', '.join(dag.tasks)}",
            )
        status = latest[only_task]["status"] if only_task in latest else None
        if status not in UNSUCCESSFUL_TASK_VALUES:
            raise UsageError(
                f"task {only_task} of run {run_id} "
                + (f"is {status}" if status else "has not run")
                + ": only failed, upstream_failed or cancelled tasks are retried",
                "retry the whole run without --task",
            )
        for upstream in dag.tasks[only_task].local_inputs:
            upstream_status = latest[upstream]["status"] if upstream in latest else "not run"
            if upstream_status not in DONE_OK_TASK_VALUES:
                raise UsageError(
                    f"task {only_task} of run {run_id} needs {upstream}, which is {upstream_status}",
                    f"retry --task {upstream}, or the whole run",
                )
        roots = {only_task}
    else:
        roots = {
            name
            for name, a in latest.items()
            if a["status"] in UNSUCCESSFUL_TASK_VALUES and name in dag.tasks
        }
    clear = descendants(dag, roots)
    missing = [name for name in dag.tasks if name not in latest]
    if not clear and not missing:
        raise UsageError(f"run {run_id} has nothing to retry: every task succeeded")
    requeue: list[tuple[str, int]] = []
    reset: list[str] = []
    for name in dag.tasks:  # definition order: stable output
        rows = [a for a in attempts if a["task_name"] == name]
        if name not in clear:
            if not rows:
                reset.append(name)  # never created: the scheduler creates it once its inputs succeed
            continue
        if all(a["started_at"] is None for a in rows):
            # Never started (or never created): created again once its inputs succeed.
            reset.append(name)
            continue
        blocked = [i for i in dag.tasks[name].local_inputs if i in clear]
        if blocked:
            raise DagctlError(
                f"cannot retry {name}: it ran before, but its input {blocked[0]} is being retried too",
                "retry with --task for the earliest failed task",
            )
        requeue.append((name, max(a["attempt"] for a in rows) + 1))
    return RetryPlan(tuple(requeue), tuple(reset))


DueWork = tuple[str, list[NewRun], datetime, str]


def due_runs(
    dags: Mapping[str, Dag], states: Mapping[str, DagState], due_at: dict[str, datetime], now: datetime
) -> list[DueWork]:
    """The runs to create now for the DAGs whose next due time has come, as (DAG, new
    runs, new watermark, fingerprint); moves each DAG's entry in `due_at` on (removes
    it when the DAG is gone, paused or has no further slot)."""
    work: list[DueWork] = []
    for name in [name for name, due in due_at.items() if due <= now]:
        dag, state = dags.get(name), states.get(name)
        if dag is None or state is None or state.paused:
            due_at.pop(name, None)
            continue
        due = due_slots(dag, state.last_slot, state.first_seen_at, now)
        if due is None:
            upcoming = next_due(dag, state.last_slot, state.first_seen_at)
        else:
            work.append((name, new_runs(dag, due.slots), due.watermark, dag.fingerprint))
            upcoming = next_due(dag, due.watermark, state.first_seen_at)
        if upcoming is None:
            due_at.pop(name, None)
        else:
            due_at[name] = upcoming
    return work
