"""Which folders are DAGs, a DAG as `dagctl list` shows it, in a form a scheduler stores at sync, and the stat
stamp that tells whether a stored summary still describes the folder on disk.

The stamp covers the DAG folder, each of its entries and dagctl.yaml (mtime_ns, size,
inode): any edit, addition, removal or rename changes it, without reading a file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from dagctl.dags.model import ROOT_CONFIG_FILE, WORKFLOW_FILE, DagTree
from dagctl.dags.names import may_be_dag
from dagctl.errors import UsageError

Stat = tuple[int, int, int]
FileStamp = tuple[str, int, int, int]  # name, mtime_ns, size, inode


def stat_key(path: str) -> Stat:
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size, info.st_ino


def folder_stamp(dag_dir: Path) -> tuple[tuple[int, int, int], tuple[FileStamp, ...]]:
    """The folder's own stat and each of its entries' (what a change of any of them shows)."""
    own = stat_key(str(dag_dir))
    files: list[FileStamp] = []
    with os.scandir(dag_dir) as entries:
        for entry in entries:
            try:
                info = entry.stat()
                files.append((entry.name, info.st_mtime_ns, info.st_size, info.st_ino))
            except OSError:
                files.append((entry.name, -1, -1, -1))
    return own, tuple(sorted(files))


def dag_dirs_of(root: Path) -> tuple[list[Path], Path]:
    """The DAG folders under `root` (or `root` itself when it is one DAG folder), and the
    folder whose dagctl.yaml applies to them."""
    if (root / WORKFLOW_FILE).exists():
        return [root], root.parent
    dag_dirs = []
    try:
        listing = os.scandir(root)
    except OSError as exc:
        raise UsageError(
            f"cannot read the DAGs folder {str(root)!r}: {exc.strerror or exc}",
            "pass --dags PATH or set DAGCTL_DAGS",
        ) from None
    with listing as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if not may_be_dag(entry.name):
                continue
            try:
                if entry.is_dir():
                    dag_dirs.append(Path(entry.path))
            except OSError:
                continue
    return dag_dirs, root


def config_stat(config_root: Path) -> Stat | None:
    try:
        return stat_key(str(config_root / ROOT_CONFIG_FILE))
    except OSError:
        return None


def stamp_digest(config: Stat | None, own: Stat, files: tuple[FileStamp, ...]) -> str:
    return hashlib.sha256(repr((config, own, files)).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def summary_of(name: str, tree: DagTree) -> dict[str, Any]:
    """What `list` needs of one DAG that is not in the state database. A scheduler
    stores it with the DAG's next slot after the time it wrote it ("next_after",
    "next_run"), which `list` uses while it has not passed instead of asking croniter
    again (a third of a millisecond a DAG)."""
    dag = tree.dags.get(name)
    if dag is None:
        return {
            "description": None,
            "schedule": None,
            "timezone": None,
            "tags": [],
            "tasks": None,
            "reason": tree.broken[name].reason,
        }
    return {
        "description": dag.description,
        "schedule": dag.schedule,
        "timezone": dag.timezone,
        "tags": list(dag.tags),
        "tasks": len(dag.tasks),
        "reason": None,
    }


def stored_next_slot(summary: Mapping[str, Any], at: datetime) -> tuple[bool, datetime | None]:
    """(known, the next slot after `at`) from a summary that holds one: known when no
    slot can lie between the time it was worked out and `at`."""
    after, slot = summary.get("next_after"), summary.get("next_run")
    if after is None or datetime.fromisoformat(after) > at:
        return False, None
    if slot is None:
        return True, None  # a schedule that never fires
    next_slot = datetime.fromisoformat(slot)
    return (True, next_slot) if next_slot > at else (False, None)
