"""`dag` tasks: a task that runs another DAG as a child run, inside the advance step.

Its attempt never takes a worker slot nor a process: the advance step creates it
`running` and unheld (planner.plan_advance), then, in the same transaction, this
module creates its child run (params rendered with the parent run's variables and the
outputs of its upstream tasks, checked against the child DAG's params) and, once the
child run has finished, ends the attempt: `success` with the outputs the child DAG
declares (`outputs:` of its workflow.yaml), or `failed` naming the child run and the
task that failed in it. With `wait: false` the attempt succeeds as soon as its child
run exists. A `dag` task is not retried by itself (the child's tasks retry on their
own); `dagctl retry` runs it again with a new child run.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from dagctl.dags import templating
from dagctl.dags.model import Dag, Task
from dagctl.errors import ParamError
from dagctl.scheduling import fanout
from dagctl.scheduling.shape import shape_of
from dagctl.states import RunStatus
from dagctl.store import Store
from dagctl.store.children import ChildFacts, ChildStart, DagAttempt, DagAttemptEnd
from dagctl.store.records import AdvancePlan, AdvanceSnapshot

FINISHED_CHILD = frozenset({RunStatus.SUCCESS.value, RunStatus.FAILED.value, RunStatus.CANCELLED.value})


def advance_children(
    store: Store, dags: Mapping[str, Dag], snapshot: AdvanceSnapshot, plan: AdvancePlan, now: datetime
) -> bool:
    """Inside the advance transaction, after `plan` was applied to the `snapshot`'s
    runs: start the child runs of new `dag` attempts, end those whose child run has
    finished, and move `for_each` tasks on (fanout.py). One query, and only for runs
    of DAGs with such tasks. Returns whether anything changed (the caller goes round
    again at once)."""
    started = set(plan.start_runs)
    run_ids = [
        r.id
        for r in snapshot.runs
        if (r.status == RunStatus.RUNNING.value or r.id in started) and _has_unheld(dags.get(r.dag_name))
    ]
    if not run_ids:
        return False
    mapped: list[DagAttempt] = []
    attempts: list[DagAttempt] = []
    for attempt in store.dag_attempts(run_ids):
        task = _task_of(dags, attempt)
        if task is not None:
            (mapped if task.for_each else attempts).append(attempt)
    changed = fanout.advance_fanout(store, dags, mapped, snapshot.attempts, now) if mapped else False
    if not attempts:
        return changed
    fresh = [a for a in attempts if a.child_run_id is None]
    done = [a for a in attempts if a.child_run_id is not None and a.child_status in FINISHED_CHILD]
    to_start: list[ChildStart] = []
    ends: list[DagAttemptEnd] = []
    upstream = store.run_outputs({a.dag_run_id for a in fresh}) if fresh else {}
    for attempt in fresh:
        start = plan_child_start(dags, attempt, upstream.get(attempt.dag_run_id, {}))
        if isinstance(start, DagAttemptEnd):
            ends.append(start)
        else:
            to_start.append(start)
    created = store.start_child_runs(to_start, now)
    for attempt in fresh:
        child_run_id = created.get(attempt.task_run_id)
        task = dags[attempt.dag_name].tasks[attempt.task_name]
        if child_run_id is not None and not task.wait:
            ends.append(DagAttemptEnd(attempt.task_run_id, "success", outputs={"run_id": child_run_id}))
    facts = store.child_facts([a.child_run_id for a in done if a.child_run_id is not None])
    ends.extend(plan_child_end(dags, attempt, facts) for attempt in done)
    store.end_dag_attempts(ends, now)
    return bool(created or ends) or changed


def _has_unheld(dag: Dag | None) -> bool:
    return dag is not None and shape_of(dag).has_unheld  # once per definition, not per hop


def _task_of(dags: Mapping[str, Dag], attempt: DagAttempt) -> Task | None:
    """The unheld task (`dag` or `for_each`) of an unheld attempt; None for anything else."""
    dag = dags.get(attempt.dag_name)
    task = dag.tasks.get(attempt.task_name) if dag else None
    return task if task is not None and task.unheld else None


def plan_child_start(
    dags: Mapping[str, Dag], attempt: DagAttempt, run_outputs: Mapping[str, Any]
) -> ChildStart | DagAttemptEnd:
    """The child run of a new attempt, or its failure when it cannot have one."""
    parent = dags[attempt.dag_name]
    task = parent.tasks[attempt.task_name]
    child = dags.get(task.child_dag or "")
    if child is None:
        return DagAttemptEnd(
            attempt.task_run_id,
            "failed",
            f"child DAG {task.child_dag} is not loaded (missing or broken: see dagctl validate)",
        )
    variables = fanout.attempt_variables(parent, task, attempt, run_outputs)
    try:
        given = templating.render_mapping(task.params, variables, "params")
        params = templating.resolve_run_params(child, fanout.attempt_dates(parent, attempt), given)
    except (templating.TemplateError, ParamError) as exc:
        return DagAttemptEnd(attempt.task_run_id, "failed", f"cannot start a run of {child.name}: {exc}")
    return ChildStart(
        attempt.task_run_id,
        attempt.dag_run_id,
        child.name,
        params,
        attempt.logical_date,
        attempt.data_interval_start,
        attempt.data_interval_end,
        child.fingerprint,
    )


def plan_child_end(dags: Mapping[str, Dag], attempt: DagAttempt, facts: ChildFacts) -> DagAttemptEnd:
    """How an attempt whose child run has finished ends."""
    child_run_id = attempt.child_run_id or 0
    name = f"child run {child_run_id} ({attempt.child_dag})"
    if attempt.child_status != RunStatus.SUCCESS.value:
        failed = facts.failures.get(child_run_id)
        if failed is not None:
            task_name, error = failed
            reason = f"task {task_name} failed" + (f": {error}" if error else "")
        else:
            reason = attempt.child_error or "no task failed in it"
        return DagAttemptEnd(attempt.task_run_id, "failed", f"{name} {attempt.child_status}: {reason}")
    child = dags.get(attempt.child_dag or "")
    outputs: dict[str, Any] = {}
    published = facts.outputs.get(child_run_id, {})
    for key, (task_name, field) in (child.outputs if child else {}).items():
        values = published.get(task_name, {})
        if field not in values:
            return DagAttemptEnd(
                attempt.task_run_id,
                "failed",
                f"{name} succeeded but its task {task_name} published no {field!r}"
                f" (declared as output {key!r} of {attempt.child_dag})",
            )
        outputs[key] = values[field]
    outputs.setdefault("run_id", child_run_id)
    return DagAttemptEnd(attempt.task_run_id, "success", outputs=outputs)


__all__ = ["advance_children", "plan_child_end", "plan_child_start"]
