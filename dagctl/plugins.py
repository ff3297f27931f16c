"""Entry-point registries for plug-in task types and managers.

`importlib.metadata` is only consulted when a name is not built in, so the common
path never pays for scanning installed distributions.
"""

from __future__ import annotations

from functools import cache
from typing import Any

TASK_TYPES_GROUP = "dagctl.task_types"
MANAGERS_GROUP = "dagctl.managers"


@cache
def _entry_points(group: str) -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group)}


def task_type_names() -> frozenset[str]:
    return frozenset(_entry_points(TASK_TYPES_GROUP))


def manager_names() -> frozenset[str]:
    return frozenset(_entry_points(MANAGERS_GROUP))


def load_task_type(name: str) -> Any:
    return _entry_points(TASK_TYPES_GROUP)[name].load()


def load_manager(name: str) -> Any:
    return _entry_points(MANAGERS_GROUP)[name].load()
