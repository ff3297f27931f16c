"""A DAG's graph drawn for people and tools: JSON, an indented tree, DOT and Mermaid."""

from __future__ import annotations

from typing import Any

from dagctl.dags.model import Dag


def graph_json(dag: Dag) -> dict[str, Any]:
    children = dag.downstream()
    return {
        "dag": dag.name,
        "tasks": [
            {
                "task": name,
                "type": task.type,
                "inputs": list(task.inputs),
                "downstream": list(children.get(name, ())),
            }
            for name, task in dag.tasks.items()
        ],
    }


def graph_tree(dag: Dag) -> list[tuple[str, str, str]]:
    """The DAG as an indented tree: (prefix, task name, note) per line. A task with several
    inputs appears under each of them, in full under the first, then as a reference."""
    children = dag.downstream()
    lines: list[tuple[str, str, str]] = []
    shown: set[str] = set()

    def note_of(name: str, repeated: bool) -> str:
        task = dag.tasks[name]
        parts = []
        if len(task.local_inputs) > 1:
            parts.append("after " + ", ".join(task.local_inputs))
        if task.external_inputs:
            parts.append("waits on " + ", ".join(f"{d}:{t}" for d, t in task.external_inputs))
        if repeated and children.get(name):
            parts.append("see above")
        return "; ".join(parts)

    def walk(name: str, prefix: str, last: bool, depth: int) -> None:
        branch = "" if depth == 0 else ("└── " if last else "├── ")
        repeated = name in shown
        lines.append((prefix + branch, name, note_of(name, repeated)))
        if repeated:
            return
        shown.add(name)
        kids = children.get(name, ())
        extension = "" if depth == 0 else ("    " if last else "│   ")
        for index, child in enumerate(kids):
            walk(child, prefix + extension, index == len(kids) - 1, depth + 1)

    for root in dag.roots():
        walk(root, "", True, 0)
    return lines


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(dag: Dag) -> str:
    lines = [f"digraph {_dot_id(dag.name)} {{", "  rankdir=LR;", "  node [shape=box];"]
    externals: set[str] = set()
    for name, task in dag.tasks.items():
        lines.append(f"  {_dot_id(name)};")
        for upstream in task.inputs:
            if ":" in upstream:
                externals.add(upstream)
                lines.append(f"  {_dot_id(upstream)} -> {_dot_id(name)} [style=dashed];")
            else:
                lines.append(f"  {_dot_id(upstream)} -> {_dot_id(name)};")
    lines.extend(f"  {_dot_id(e)} [style=dashed];" for e in sorted(externals))
    lines.append("}")
    return "\n".join(lines)


def graph_mermaid(dag: Dag) -> str:
    ids: dict[str, str] = {}

    def node(name: str) -> str:
        if name not in ids:
            ids[name] = f"n{len(ids)}"
        label = name.replace('"', "#quot;")
        return f'{ids[name]}["{label}"]'

    lines = ["flowchart LR"]
    lines.extend(f"  {node(name)}" for name in dag.tasks)
    externals = sorted({i for task in dag.tasks.values() for i in task.inputs if ":" in i})
    lines.extend(f"  {node(name)}" for name in externals)
    for name, task in dag.tasks.items():
        for upstream in task.inputs:
            arrow = "-.->" if ":" in upstream else "-->"
            lines.append(f"  {ids[upstream]} {arrow} {ids[name]}")
    return "\n".join(lines)
