"""The definition side of composition: the `dag` task type's fields and `for_each`
(fan-out), the `outputs:` a DAG declares for its parents, and the checks across DAGs
(an unknown child DAG, a DAG that runs itself through its children).

A `dag` task (`.yaml`) is written:

    type: dag
    dag: child             # the DAG folder to run
    params: {limit: 10}    # its params, templates rendered when the task starts
    wait: true             # default; false: succeed once the child run exists

and the child's workflow.yaml declares what its parents read, each `TASK.KEY`:

    outputs:
      rows: extract.sh.rows
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dagctl.dags.hints import did_you_mean
from dagctl.dags.model import Problem, Task
from dagctl.dags.sources import Collector, parse_duration
from dagctl.dags.yamldoc import YamlDoc

_DAG_ONLY_KEYS = ("dag", "wait")


def task_fields(
    path: Path,
    spec: Mapping[str, Any],
    task_type: str,
    line_of: Callable[[str], int | None],
    out: Collector,
) -> dict[str, Any]:
    """The Task fields of a `dag` task (`child_dag`, `wait`) and of a `for_each` one; a
    problem for a dag task without `dag:`, for `dag:`/`wait:` on another type, and for
    `for_each` on a dag task."""
    fields: dict[str, Any] = {}
    for_each = spec.get("for_each")
    if isinstance(for_each, list):
        for_each = json.dumps(for_each)  # items written out: rendered like a template's result
    if isinstance(for_each, str):
        if task_type == "dag":
            out.add(
                path,
                line_of("/for_each"),
                "for_each is not supported on a dag task yet",
                "fan out inside the child DAG instead",
                "/for_each",
            )
        fields["for_each"] = for_each
        limit = spec.get("max_parallel")
        if isinstance(limit, int) and not isinstance(limit, bool):
            fields["max_parallel"] = limit
    elif "max_parallel" in spec:
        out.add(
            path,
            line_of("/max_parallel"),
            "max_parallel: is only for a task with for_each",
            "remove max_parallel, or add for_each",
            "/max_parallel",
        )
    if isinstance(spec.get("input_match"), str):
        fields["input_match"] = spec["input_match"]
    if spec.get("wait_timeout") is not None:
        with contextlib.suppress(ValueError, TypeError):  # else a schema error, reported
            fields["wait_timeout"] = parse_duration(spec["wait_timeout"])
    return {**fields, **_dag_fields(path, spec, task_type, line_of, out)}


def _dag_fields(
    path: Path,
    spec: Mapping[str, Any],
    task_type: str,
    line_of: Callable[[str], int | None],
    out: Collector,
) -> dict[str, Any]:
    if task_type != "dag":
        for key in _DAG_ONLY_KEYS:
            if key in spec:
                out.add(
                    path,
                    line_of(f"/{key}"),
                    f"{key}: is only for tasks of type dag",
                    f"remove {key}, or set type: dag",
                    f"/{key}",
                )
        return {}
    child = spec.get("dag")
    if not isinstance(child, str) or not child:
        out.add(path, line_of(""), "a dag task needs dag:", "add dag: NAME (a DAG folder)", "/dag")
        return {}
    wait = spec.get("wait", True)
    return {"child_dag": child, "wait": wait if isinstance(wait, bool) else True}


# Shared by every DAG without `outputs:` (most): one empty mapping, not one each.
_NO_OUTPUTS: Mapping[str, tuple[str, str]] = MappingProxyType({})


def declared_outputs(
    path: Path, doc: YamlDoc | None, raw: Any, tasks: Mapping[str, Task], out: Collector
) -> Mapping[str, tuple[str, str]]:
    """`outputs:` of workflow.yaml as name -> (task, key). `TASK.KEY` splits after the
    longest task name it starts with (task names hold dots: `extract.sh.rows`)."""
    if not isinstance(raw, Mapping):
        return _NO_OUTPUTS  # absent, or a schema error already reported
    declared: dict[str, tuple[str, str]] = {}
    for name, source in raw.items():
        if not isinstance(source, str):
            continue
        pointer = f"/outputs/{name}"
        owners = [t for t in tasks if source.startswith(t + ".") and len(source) > len(t) + 1]
        if not owners:
            head = source.rsplit(".", 1)[0]
            out.add(
                path,
                doc.line_of(pointer) if doc else None,
                f"output {name!r}: {source!r} names no task of this DAG",
                did_you_mean(head, tasks) or "write TASK.KEY, e.g. extract.sh.rows",
                pointer,
            )
            continue
        task = max(owners, key=len)
        declared[str(name)] = (task, source[len(task) + 1 :])
    return MappingProxyType(declared)


def check_child_dags(
    dags: Mapping[str, Mapping[str, Task]],
    per_dag: dict[str, list[Problem]],
    base: Path,
) -> None:
    """Every `dag` task names a DAG folder of the tree, and no DAG runs itself through
    its children (a child run that would start its own parent again, for ever)."""
    from dagctl.dags.checks import find_cycles, header_line

    runs: dict[str, list[tuple[str, Task]]] = {}
    for dag_name, tasks in dags.items():
        out = Collector(base=base, dag=dag_name)
        for task in tasks.values():
            if task.type != "dag" or task.child_dag is None:
                continue
            if task.child_dag not in dags:
                out.add(
                    task.path,
                    header_line(task, "/dag"),
                    f"unknown DAG {task.child_dag!r} in dag:",
                    did_you_mean(task.child_dag, dags) or "name an existing DAG folder",
                    "/dag",
                )
            else:
                runs.setdefault(dag_name, []).append((task.child_dag, task))
        per_dag[dag_name].extend(out.problems)
    if not runs:
        return
    graph = {name: [child for child, _ in children] for name, children in runs.items()}
    for cycle in find_cycles(graph):
        parent, child = cycle[0], cycle[1]
        task = next(t for c, t in runs[parent] if c == child)
        out = Collector(base=base, dag=parent)
        out.add(
            task.path,
            header_line(task, "/dag"),
            f"DAGs run each other in a cycle: {' -> '.join(cycle)}",
            "a DAG may not run itself, directly or through its child DAGs",
            "/dag",
        )
        per_dag[parent].extend(out.problems)


__all__ = ["check_child_dags", "declared_outputs", "task_fields"]
