"""DAG names from the DAGs folder alone: no parsing, no database (shell completion,
"did you mean" hints)."""

from __future__ import annotations

import os


def may_be_dag(name: str) -> bool:
    """Folders starting with `_` or `.` are never DAGs (shared code, tool folders), nor
    are __pycache__ and node_modules."""
    return not name.startswith(("_", ".")) and name != "node_modules"


def dag_names(root: str | os.PathLike[str]) -> list[str]:
    """DAG folder names (those with a workflow.yaml), without parsing anything."""
    names = []
    try:
        with os.scandir(root) as listing:
            for entry in listing:
                if not may_be_dag(entry.name) or not _is_text(entry.name) or not entry.is_dir():
                    continue
                if os.path.exists(os.path.join(entry.path, "workflow.yaml")):
                    names.append(entry.name)
    except OSError:
        return []
    return sorted(names)


def _is_text(name: str) -> bool:
    """A folder name that is not UTF-8 is no DAG name (validate reports it): completing
    or suggesting it would print bytes no terminal can show."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
