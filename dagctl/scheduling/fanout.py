"""Fan-out: a task with `for_each` runs once per item of a list, inside the advance step.

Its own attempt is created `running` and unheld (planner.plan_advance); here, in the
advance transaction, its `for_each` template is rendered (with the run's variables and
the outputs of its upstream tasks) to a JSON list, kept with the attempt, and items
are queued as task runs of their own, `task.sh[0]`, `task.sh[1]`, ..., never more
than `max_parallel` not yet ended. Each item is claimed, run (`DAGCTL_ITEM`,
`context["item"]`) and retried on its own, with the task's settings. The task
succeeds once every item has, with output `results`: the items' outputs, in order;
it fails once an item has failed for good and none is still going.

The counts come from the advance snapshot (the latest attempt of every task run of
the run), so a pass costs no query per item: one to read the unheld attempts (shared
with `dag` tasks), and the inserts.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from dagctl.dags import templating
from dagctl.dags.model import Dag, Task
from dagctl.scheduling.outputs import upstream_outputs
from dagctl.states import DONE_OK_TASK_VALUES, NOT_ENDED_TASK_VALUES, UNSUCCESSFUL_TASK_VALUES
from dagctl.store import ClaimedAttempt, Store
from dagctl.store.children import DagAttempt, DagAttemptEnd
from dagctl.store.records import AttemptSnapshot

# More items than this in one for_each is a mistake (a list of rows, not of files).
MAX_ITEMS = 10_000


def item_name(task_name: str, index: int) -> str:
    return f"{task_name}[{index}]"


def split_item_name(name: str) -> tuple[str, int] | None:
    """("task.sh", 3) for "task.sh[3]"; None for a task's own name."""
    if not name.endswith("]"):
        return None
    base, _, index = name[:-1].rpartition("[")
    return (base, int(index)) if base and index.isdigit() else None


def mapped_task(dag: Dag, name: str) -> tuple[Task, int] | None:
    """The for_each task an item task run belongs to, and the item's index."""
    split = split_item_name(name)
    if split is None:
        return None
    task = dag.tasks.get(split[0])
    return (task, split[1]) if task is not None and task.for_each else None


def with_items(store: Store, claimed: list[ClaimedAttempt]) -> list[ClaimedAttempt]:
    """`claimed` with the item of each item attempt (one query, only when there is one)."""
    keys = {(c.dag_run_id, c.task_name) for c in claimed if split_item_name(c.task_name)}
    if not keys:
        return claimed
    values = store.item_values(keys)
    return [
        dataclasses.replace(c, item=values.get((c.dag_run_id, c.task_name)))
        if (c.dag_run_id, c.task_name) in keys
        else c
        for c in claimed
    ]


def advance_fanout(
    store: Store,
    dags: Mapping[str, Dag],
    attempts: Sequence[DagAttempt],
    snapshot: Mapping[int, Mapping[str, AttemptSnapshot]],
    now: datetime,
) -> bool:
    """Render new for_each attempts' lists, queue the next items, and end the
    attempts whose items are all done (or one failed). Returns whether anything changed."""
    mapped = [(a, dags[a.dag_name].tasks[a.task_name]) for a in attempts]
    fresh = [a for a, _ in mapped if a.map_items is None]
    upstream = store.run_outputs({a.dag_run_id for a in fresh}) if fresh else {}
    ends: list[DagAttemptEnd] = []
    finished_runs: list[tuple[DagAttempt, int]] = []
    changed = False
    for attempt, task in mapped:
        if attempt.map_items is None:
            dag = dags[attempt.dag_name]
            variables = attempt_variables(dag, task, attempt, upstream.get(attempt.dag_run_id, {}))
            items = render_items(task, variables)
            if isinstance(items, str):
                ends.append(DagAttemptEnd(attempt.task_run_id, "failed", items))
                continue
            store.set_map_items(attempt.task_run_id, items)
            latest: Mapping[str, AttemptSnapshot] = {}
        else:
            items = json.loads(attempt.map_items)
            latest = snapshot.get(attempt.dag_run_id, {})
        step = plan_items(task, len(items), latest)
        if step.failed_item is not None and step.active == 0:
            ends.append(
                DagAttemptEnd(attempt.task_run_id, "failed", _failure(task, step.failed_item, len(items)))
            )
        elif step.succeeded == len(items):
            finished_runs.append((attempt, len(items)))
        elif step.start:
            names = [(item_name(task.name, i), items[i]) for i in step.start]
            store.start_items(attempt.dag_run_id, attempt.dag_name, names, now)
            changed = True
    if finished_runs:
        outputs = store.run_outputs({a.dag_run_id for a, _ in finished_runs})
        for attempt, count in finished_runs:
            published = outputs.get(attempt.dag_run_id, {})
            results = [published.get(item_name(attempt.task_name, i)) for i in range(count)]
            ends.append(DagAttemptEnd(attempt.task_run_id, "success", outputs={"results": results}))
    store.end_dag_attempts(ends, now)
    return changed or bool(ends)


class ItemStep:
    __slots__ = ("active", "failed_item", "start", "succeeded")

    def __init__(self) -> None:
        self.active = 0
        self.succeeded = 0
        self.failed_item: int | None = None
        self.start: list[int] = []


def plan_items(task: Task, count: int, latest: Mapping[str, AttemptSnapshot]) -> ItemStep:
    """Which items to queue now: the next ones never created, while fewer than
    `max_parallel` are going and none has failed for good. Items are created in
    order, so those created are the first ones."""
    step = ItemStep()
    created = 0
    for index in range(count):
        seen = latest.get(item_name(task.name, index))
        if seen is None:
            break
        created += 1
        if seen.status in NOT_ENDED_TASK_VALUES:
            step.active += 1
        elif seen.status in DONE_OK_TASK_VALUES:
            step.succeeded += 1
        elif seen.status in UNSUCCESSFUL_TASK_VALUES and step.failed_item is None:
            step.failed_item = index
    if step.failed_item is None:
        room = max(0, task.max_parallel - step.active)
        step.start = list(range(created, min(count, created + room)))
    return step


def attempt_dates(dag: Dag, attempt: DagAttempt) -> templating.RunDates:
    """The dates of an attempt's run (runs from before run variables have only the slot)."""
    return templating.RunDates(
        attempt.logical_date,
        attempt.data_interval_start or attempt.logical_date,
        attempt.data_interval_end or attempt.logical_date,
        dag.timezone,
    )


def attempt_variables(
    dag: Dag, task: Task, attempt: DagAttempt, run_outputs: Mapping[str, Any]
) -> dict[str, Any]:
    """The template variables of an attempt the advance runs itself (a `for_each` or
    `dag` task's): its run's dates, params and the outputs of its upstream tasks."""
    return templating.run_variables(
        dag.name,
        attempt_dates(dag, attempt),
        run_id=attempt.dag_run_id,
        task=task.name,
        attempt=attempt.attempt,
        params=attempt.params,
        outputs=upstream_outputs(dag, task, run_outputs),
    )


def render_items(task: Task, variables: Mapping[str, Any]) -> list[Any] | str:
    """The items `for_each` renders to with these template variables (the attempt's:
    templating.run_variables), or why it cannot (the error)."""
    try:
        text = templating.render(task.for_each or "", variables)
    except templating.TemplateError as exc:
        return f"for_each: {exc}"
    items = parse_items(text)
    if items is None:
        shown = text if len(text) <= 80 else text[:79] + "…"
        return f"for_each must render to a JSON list, got {shown!r}"
    try:
        json.dumps(items)
    except (TypeError, ValueError):
        return "for_each must render to a JSON list (of strings, numbers, lists, objects)"
    if len(items) > MAX_ITEMS:
        return f"for_each rendered {len(items):,} items, over the {MAX_ITEMS:,} allowed in one task"
    return items


def parse_items(text: str) -> list[Any] | None:
    """A JSON list; or the Python form a list takes when a template prints one
    (`['a', 'b']`, from a JSON output), read as a literal, never evaluated."""
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    return list(value) if isinstance(value, (list, tuple)) else None


def _failure(task: Task, index: int, count: int) -> str:
    name = item_name(task.name, index)
    return f"item {index} of {count} failed ({name}: see dagctl logs RUN {name})"


__all__ = [
    "MAX_ITEMS",
    "advance_fanout",
    "item_name",
    "mapped_task",
    "parse_items",
    "plan_items",
    "split_item_name",
]
