"""A DAG's graph laid out for SVG: tasks in columns by depth (longest path from a root),
edges as curves. Pure arithmetic, no JavaScript, so the page draws with scripts off."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

NODE_W = 170
NODE_H = 30
GAP_X = 60
GAP_Y = 16
PAD = 10
MAX_LABEL = 22


def layout(tasks: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`tasks` as in the graph JSON (task, inputs, status); returns the SVG's size, the
    nodes (x, y, label, status) and the edges (path data)."""
    names = [t["task"] for t in tasks]
    known = set(names)
    inputs = {t["task"]: [i for i in t["inputs"] if i in known] for t in tasks}
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in depth:
            return depth[name]
        if name in seen:  # a cycle is the loader's error to report; never loop here
            return 0
        parents = inputs.get(name, [])
        value = 1 + max((depth_of(p, seen | {name}) for p in parents), default=-1)
        depth[name] = value
        return value

    columns: dict[int, list[str]] = {}
    for name in names:
        columns.setdefault(depth_of(name), []).append(name)
    position: dict[str, tuple[int, int]] = {}
    for column, members in columns.items():
        for row, name in enumerate(members):
            position[name] = (PAD + column * (NODE_W + GAP_X), PAD + row * (NODE_H + GAP_Y))
    status = {t["task"]: t.get("status") for t in tasks}
    nodes = [
        {
            "task": name,
            "x": x,
            "y": y,
            "label": name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "…",
            "status": status.get(name) or "none",
        }
        for name, (x, y) in position.items()
    ]
    edges = []
    for name in names:
        x2, y2 = position[name]
        for parent in inputs[name]:
            x1, y1 = position[parent]
            sx, sy, ex, ey = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
            mid = (sx + ex) // 2
            edges.append(f"M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}")
    width = PAD * 2 + (max(columns, default=0) + 1) * (NODE_W + GAP_X) - GAP_X
    height = PAD * 2 + max((len(m) for m in columns.values()), default=1) * (NODE_H + GAP_Y) - GAP_Y
    return {
        "width": width,
        "height": height,
        "nodes": nodes,
        "edges": edges,
        "node_w": NODE_W,
        "node_h": NODE_H,
    }
