"""A DAG's task graph as the hot path asks it, computed once per loaded definition.

The advance at each hop and the outputs check at each claim used to walk every task
(and each task's `local_inputs`, a property that builds a tuple per call): in a chain
of 1,000 tasks that was most of a hop. A Dag is immutable once loaded, so its shape is
kept beside it until the definition is replaced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dagctl.dags.model import Dag, Task

# Definitions are replaced on change; stale entries (each holds its Dag) go when the
# cache is full, so a scheduler keeps at most this many graphs beside its DAGs.
_MAX_CACHED = 1024


@dataclass(slots=True)
class Shape:
    index: dict[str, int]  # the position of each task in dag.tasks (the planner's order)
    inputs: dict[str, tuple[str, ...]]  # local inputs
    successors: dict[str, tuple[str, ...]]  # tasks with that one among their local inputs
    roots: tuple[str, ...]  # tasks without local inputs
    has_unheld: bool  # a `dag` or `for_each` task (children.py), run by the advance itself
    _reads_outputs: dict[str, bool] = field(default_factory=dict)

    def may_read_outputs(self, dag: Dag, name: str) -> bool:
        """Whether any task `name` runs after, directly or not, can publish outputs (a
        `no_op` cannot); memoised along the graph, so a chain costs O(tasks) once."""
        known = self._reads_outputs.get(name)
        if known is not None:
            return known
        stack, order = [name], []
        while stack:  # depth-first without recursion: a chain of 1,000 is 1,000 deep
            current = stack.pop()
            if current in self._reads_outputs or current in order:
                continue
            order.append(current)
            stack.extend(p for p in self.inputs.get(current, ()) if p in dag.tasks)
        for current in reversed(order):
            self._reads_outputs[current] = any(
                dag.tasks[p].type != "no_op" or self._reads_outputs.get(p, False)
                for p in self.inputs.get(current, ())
                if p in dag.tasks
            )
        return self._reads_outputs[name]


_cache: dict[int, tuple[Dag, Shape]] = {}


def shape_of(dag: Dag) -> Shape:
    entry = _cache.get(id(dag))
    if entry is not None and entry[0] is dag:
        return entry[1]
    if len(_cache) >= _MAX_CACHED:
        _cache.clear()
    shape = _build(dag.tasks)
    _cache[id(dag)] = (dag, shape)  # holding the Dag keeps its id from being reused
    return shape


def _build(tasks: Mapping[str, Task]) -> Shape:
    inputs = {name: task.local_inputs for name, task in tasks.items()}
    successors: dict[str, list[str]] = {name: [] for name in tasks}
    for name, parents in inputs.items():
        for parent in parents:
            successors.setdefault(parent, []).append(name)
    return Shape(
        index={name: i for i, name in enumerate(tasks)},
        inputs=inputs,
        successors={name: tuple(kids) for name, kids in successors.items()},
        roots=tuple(name for name, parents in inputs.items() if not parents),
        has_unheld=any(task.unheld for task in tasks.values()),
    )
