"""Upstream outputs for claimed attempts: read right after the claim, in the claim's
transaction (one extra query, and only when a claimed task has inputs in its DAG), and
narrowed to each attempt's upstream tasks when it is launched."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from dagctl.dags.model import Dag, Task
from dagctl.store import ClaimedAttempt, Store


def with_run_outputs(
    store: Store, dags: Mapping[str, Dag], claimed: list[ClaimedAttempt]
) -> list[ClaimedAttempt]:
    """`claimed` with each attempt's `run_outputs` filled when its task has upstream tasks."""
    runs = set()
    for item in claimed:
        dag = dags.get(item.dag_name)
        task = dag.tasks.get(item.task_name) if dag else None
        if task is not None and task.local_inputs:
            runs.add(item.dag_run_id)
    found = store.run_outputs(runs)
    if not found:
        return claimed
    return [
        dataclasses.replace(item, run_outputs=found[item.dag_run_id]) if item.dag_run_id in found else item
        for item in claimed
    ]


def upstream_outputs(dag: Dag, task: Task, run_outputs: Mapping[str, Any]) -> dict[str, Any]:
    """What one attempt may read: the outputs of the tasks it runs after."""
    if not run_outputs:
        return {}
    upstream = dag.upstream_of(task.name)
    return {name: values for name, values in run_outputs.items() if name in upstream}
