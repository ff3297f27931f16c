"""Pools, work queues and priorities as a scheduler syncs them: dagctl.yaml's `pools:`,
which task takes which pool, goes to which queue and has which priority, and each DAG's
max_active_tasks and the queues' limits, written to the state database (store/pools.py,
queues.py, priorities.py, dag_limits.py, queue_limits.py) whenever they differ from what this scheduler last
wrote, so a change applies at the next sync of definitions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagctl.dags.model import DEFAULT_QUEUE, Dag, RootConfig
from dagctl.store import Store


def pool_assignments(dags: Mapping[str, Dag]) -> dict[str, dict[str, tuple[str, int]]]:
    """{DAG: {task: (pool, slots)}} of the tasks that take a pool."""
    assignments: dict[str, dict[str, tuple[str, int]]] = {}
    for name, dag in dags.items():
        for task in dag.tasks.values():
            taken = dag.pool_for(task)
            if taken is not None:
                assignments.setdefault(name, {})[task.name] = taken
    return assignments


def queue_assignments(dags: Mapping[str, Dag]) -> dict[str, dict[str, str]]:
    """{DAG: {task: queue}} of the tasks of a queue other than default."""
    assignments: dict[str, dict[str, str]] = {}
    for name, dag in dags.items():
        for task in dag.tasks.values():
            queue = dag.queue_for(task)
            if queue != DEFAULT_QUEUE:
                assignments.setdefault(name, {})[task.name] = queue
    return assignments


def priority_assignments(dags: Mapping[str, Dag]) -> dict[str, dict[str, int]]:
    """{DAG: {task: priority}} of the tasks whose priority is not 0."""
    assignments: dict[str, dict[str, int]] = {}
    for name, dag in dags.items():
        for task in dag.tasks.values():
            priority = dag.priority_for(task)
            if priority:
                assignments.setdefault(name, {})[task.name] = priority
    return assignments


@dataclass
class PoolSync:
    store: Store
    owner: str = ""
    _last: Any = field(default=None, init=False)
    _forgotten: frozenset[str] = field(default=frozenset(), init=False)

    def sync(
        self, config: RootConfig, dags: Mapping[str, Dag], missing: frozenset[str] = frozenset()
    ) -> None:
        """Write what differs from the last sync; `missing`: DAGs marked missing (deleted
        or renamed away) that this scheduler did not load, whose rows go."""
        pools = {name: (p.slots, p.description) for name, p in config.pools.items()}
        assignments = pool_assignments(dags)
        queues = queue_assignments(dags)
        priorities = priority_assignments(dags)
        limits = {
            name: dag.max_active_tasks for name, dag in dags.items() if dag.max_active_tasks is not None
        }
        queue_limits = dict(config.queue_limits)
        wanted = (pools, assignments, queues, priorities, limits, queue_limits, frozenset(dags))
        if wanted != self._last:
            pooled = sum(len(tasks) for tasks in assignments.values())
            unpooled = pooled < sum(len(dag.tasks) for dag in dags.values())
            self.store.sync_pools(pools, assignments, frozenset(dags), unpooled_tasks=unpooled)
            self.store.sync_task_queues(queues, frozenset(dags))
            self.store.sync_task_priorities(priorities, frozenset(dags))
            self.store.sync_dag_limits(limits, frozenset(dags))
            self.store.sync_queue_limits(queue_limits)
            self._last = wanted
        if missing != self._forgotten:
            self.store.forget_routing(self.owner, missing)
            self._forgotten = missing
