"""`dagctl run DAG`: a whole DAG (or a slice of it) here and now, in the foreground.

Tasks run one at a time in dependency order, each exactly as `dagctl run DAG TASK`
runs it (`execution.foreground`: the same environment, process group, timeout and
masking as the worker manager). The first failure stops the run; nothing is retried,
and nothing is written to the state database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dagctl.actions.common import load_dag
from dagctl.config import Settings
from dagctl.dags.cron import utcnow
from dagctl.dags.hints import did_you_mean
from dagctl.dags.model import Dag
from dagctl.dags.params import resolve
from dagctl.errors import UsageError
from dagctl.execution.attempt import SUCCESS, Outcome, TaskContext


@dataclass(frozen=True, slots=True)
class TaskRun:
    task: str
    outcome: Outcome
    seconds: float


@dataclass(frozen=True, slots=True)
class DagRunResult:
    dag: str
    ran: list[TaskRun]
    not_run: list[str]  # of the planned tasks, those after the failure

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
    on_start: Callable[[str, int, int], None] = lambda task, index, total: None,
    on_end: Callable[[TaskRun, int, int], None] = lambda ran, index, total: None,
) -> DagRunResult:
    """Run the DAG's tasks (or the slice between `first` and `last`) one after the
    other in the foreground, stopping at the first failure. One logical date (now)
    and one set of params for every task, as in a run; no run id."""
    from dagctl.execution.foreground import run_foreground

    dag = load_dag(settings.dags, dag_name)
    order = dependency_order(dag, first, last)
    params = resolve(dag.name, dag.params, given)
    logical_date = utcnow()
    ran: list[TaskRun] = []
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
        )
        started = time.monotonic()
        outcome = run_foreground(dag, dag.tasks[name], context)
        result = TaskRun(name, outcome, time.monotonic() - started)
        ran.append(result)
        on_end(result, index, len(order))
        if outcome.status != SUCCESS:
            return DagRunResult(dag.name, ran, order[index:])
    return DagRunResult(dag.name, ran, [])
