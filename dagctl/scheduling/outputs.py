"""Upstream outputs for claimed attempts: read right after the claim, in the claim's
transaction (one extra query, and only when a claimed task has inputs in its DAG), and
narrowed to each attempt's upstream tasks when it is launched."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from dagctl.dags.model import Dag, Task
from dagctl.scheduling.shape import shape_of
from dagctl.store import ClaimedAttempt, Store


def with_run_outputs(
    store: Store, dags: Mapping[str, Dag], claimed: list[ClaimedAttempt]
) -> list[ClaimedAttempt]:
    """`claimed` with `run_outputs` filled for the attempts that may read any: those
    with an upstream task that can publish outputs (a `no_op` cannot)."""
    runs = {item.dag_run_id for item in claimed if item.run_has_outputs and _may_read_outputs(dags, item)}
    found = store.run_outputs(runs) if runs else {}
    if not found:
        return claimed
    return [
        dataclasses.replace(item, run_outputs=found[item.dag_run_id]) if item.dag_run_id in found else item
        for item in claimed
    ]


def _may_read_outputs(dags: Mapping[str, Dag], item: ClaimedAttempt) -> bool:
    dag = dags.get(item.dag_name)
    # An item of a for_each task (`task.sh[3]`) reads what its task may.
    task = dag.tasks.get(item.task_name.rpartition("[")[0] or item.task_name) if dag else None
    if dag is None or task is None:
        return False
    return shape_of(dag).may_read_outputs(dag, task.name)


def upstream_outputs(dag: Dag, task: Task, run_outputs: Mapping[str, Any]) -> dict[str, Any]:
    """What one attempt may read: the outputs of the tasks it runs after."""
    if not run_outputs:
        return {}
    upstream = dag.upstream_of(task.name)
    return {name: values for name, values in run_outputs.items() if name in upstream}
