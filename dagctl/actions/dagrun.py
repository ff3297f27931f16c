"""`dagctl run DAG`: a whole DAG (or a slice of it) here and now, in the foreground.

Tasks run one at a time in dependency order, each exactly as `dagctl run DAG TASK`
runs it (`execution.foreground`: the same environment, process group, timeout and
masking as the worker manager). The first failure stops the run; nothing is retried.
Nothing is written to the state database, unless `record`: then the finished run is
written as a manual run in one transaction (`store/foreground.py`), so no scheduler
ever sees it unfinished.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dagctl.actions.common import load_dag
from dagctl.config import Settings
from dagctl.dags.cron import utcnow
from dagctl.dags.hints import did_you_mean
from dagctl.dags.model import Dag, Task
from dagctl.dags.params import resolve
from dagctl.errors import UsageError
from dagctl.execution.attempt import FAILED, SUCCESS, Outcome, TaskContext


@dataclass(frozen=True, slots=True)
class TaskRun:
    task: str
    outcome: Outcome
    seconds: float
    started_at: datetime
    ended_at: datetime


@dataclass(frozen=True, slots=True)
class DagRunResult:
    dag: str
    ran: list[TaskRun]
    not_run: list[str]  # of the planned tasks, those after the failure
    run_id: int | None = None  # with record: the run it was recorded as

    @property
    def failed(self) -> TaskRun | None:
        return next((r for r in self.ran if r.outcome.status != SUCCESS), None)


def dependency_order(dag: Dag, first: str | None = None, last: str | None = None) -> list[str]:
    """The DAG's tasks in an order where every input comes before its task (ties by
    name); with `first`, only it and what depends on it; with `last`, only it and what
    it depends on (both: the tasks between them)."""
    for name in (first, last):
        if name is not None and name not in dag.tasks:
            raise UsageError(
                f"DAG {dag.name!r} has no task {name!r}",
                did_you_mean(name, dag.tasks) or f"tasks: {', '.join(dag.tasks)}",
            )
    chosen = set(dag.tasks)
    if first is not None:
        chosen &= _reachable(first, dag.downstream())
    if last is not None:
        chosen &= _reachable(last, {name: task.local_inputs for name, task in dag.tasks.items()})
    if not chosen:
        raise UsageError(f"{last} does not depend on {first}: nothing to run", "swap --from and --to?")
    waiting = {name: {i for i in dag.tasks[name].local_inputs if i in chosen} for name in chosen}
    order: list[str] = []
    while waiting:
        ready = sorted(name for name, inputs in waiting.items() if not inputs)
        name = ready[0]  # the loader rejects cycles, so there always is one
        order.append(name)
        del waiting[name]
        for inputs in waiting.values():
            inputs.discard(name)
    return order


def _reachable(start: str, edges: Mapping[str, tuple[str, ...]]) -> set[str]:
    seen = {start}
    stack = [start]
    while stack:
        for nxt in edges.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def run_dag(
    settings: Settings,
    dag_name: str,
    given: Mapping[str, Any],
    *,
    first: str | None = None,
    last: str | None = None,
    record: bool = False,
    on_start: Callable[[str, int, int], None] = lambda task, index, total: None,
    on_end: Callable[[TaskRun, int, int], None] = lambda ran, index, total: None,
) -> DagRunResult:
    """Run the DAG's tasks (or the slice between `first` and `last`) one after the
    other in the foreground, stopping at the first failure. One logical date (now)
    and one set of params for every task, as in a run; no run id."""
    from dagctl.execution.foreground import run_foreground

    if record and (first is not None or last is not None):
        raise UsageError("--record records a whole run: it cannot take --from or --to")
    dag = load_dag(settings.dags, dag_name)
    order = dependency_order(dag, first, last)
    params = resolve(dag.name, dag.params, given)
    if record:
        from dagctl.actions.runs import check_runnable

        check_runnable(dag)  # as trigger does, before anything runs
    logical_date = utcnow()
    ran: list[TaskRun] = []
    published: dict[str, Any] = {}  # outputs of the tasks run so far, as a run hands them over
    for index, name in enumerate(order, start=1):
        on_start(name, index, len(order))
        context = TaskContext(
            dag=dag.name,
            task=name,
            run_id=None,
            attempt=1,
            logical_date=logical_date,
            params=params,
            secret_params=dag.secret_params,
            outputs={k: v for k, v in published.items() if k in dag.upstream_of(name)},
        )
        started, started_at = time.monotonic(), utcnow()
        if dag.tasks[name].for_each:
            outcome = _run_items(dag, dag.tasks[name], context)
        else:
            outcome = run_foreground(dag, dag.tasks[name], context)
        if outcome.outputs:
            published[name] = outcome.outputs
        result = TaskRun(name, outcome, time.monotonic() - started, started_at, utcnow())
        ran.append(result)
        on_end(result, index, len(order))
        if outcome.status != SUCCESS:
            break
    not_run = order[len(ran) :]
    run_id = _record(settings, dag, params, logical_date, ran, not_run) if record else None
    return DagRunResult(dag.name, ran, not_run, run_id)


def _run_items(dag: Dag, task: Task, context: TaskContext) -> Outcome:
    """A for_each task in the foreground: its items one after the other, stopping at
    the first failure; the items' logs one after the other, and output `results`."""
    import dataclasses

    from dagctl.dags.templating import run_variables
    from dagctl.execution.foreground import run_foreground
    from dagctl.scheduling.fanout import item_name, render_items

    variables = run_variables(
        dag.name, context.dates, task=task.name, attempt=1, params=context.params, outputs=context.outputs
    )
    items = render_items(task, variables)
    if isinstance(items, str):
        return Outcome(0, FAILED, error=items)
    logs: list[str] = []
    results: list[Any] = []
    for index, item in enumerate(items):
        name = item_name(task.name, index)
        each = dataclasses.replace(context, task=name, item_index=index, item=item)
        outcome = run_foreground(dag, task, each)
        logs.append(f"--- {name}\n{outcome.log}")
        if outcome.status != SUCCESS:
            return dataclasses.replace(outcome, error=f"{name}: {outcome.error}", log="".join(logs))
        results.append(outcome.outputs)
    return Outcome(0, SUCCESS, log="".join(logs), outputs={"results": results})


def _record(
    settings: Settings,
    dag: Dag,
    params: Mapping[str, Any],
    logical_date: datetime,
    ran: list[TaskRun],
    not_run: list[str],
) -> int:
    """Write the finished run: the attempts that ran, and `upstream_failed` for the
    tasks downstream of the failure (the others were never created, as in a run the
    scheduler stopped; `dagctl retry` creates them)."""
    from dagctl.actions.common import open_store
    from dagctl.store.foreground import ForegroundAttempt

    attempts = [
        ForegroundAttempt(
            task=r.task,
            status=r.outcome.status,
            started_at=r.started_at,
            ended_at=r.ended_at,
            exit_code=r.outcome.exit_code,
            error=(r.outcome.error or "")[:4000] or None,
            log=r.outcome.log,
            log_truncated_bytes=r.outcome.log_truncated_bytes,
            outputs=r.outcome.outputs,
        )
        for r in ran
    ]
    failed = [r.task for r in ran if r.outcome.status != SUCCESS]
    if failed:
        downstream = _reachable(failed[0], dag.downstream()) - {failed[0]}
        ended = ran[-1].ended_at
        attempts.extend(
            ForegroundAttempt(task=name, status="upstream_failed", started_at=None, ended_at=ended)
            for name in not_run
            if name in downstream
        )
    store = open_store(settings, migrate=True)
    try:
        return store.record_foreground_run(
            dag.name, params, "dagctl run", logical_date, dag.fingerprint, ran[0].started_at, attempts
        )
    finally:
        store.close()
