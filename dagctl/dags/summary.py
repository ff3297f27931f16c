"""A DAG as `dagctl list` shows it, in a form a scheduler stores at sync, and the stat
stamp that tells whether a stored summary still describes the folder on disk.

The stamp covers the DAG folder, each of its entries and dagctl.yaml (mtime_ns, size,
inode): any edit, addition, removal or rename changes it, without reading a file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from dagctl.dags.model import ROOT_CONFIG_FILE, DagTree

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


def config_stat(config_root: Path) -> Stat | None:
    try:
        return stat_key(str(config_root / ROOT_CONFIG_FILE))
    except OSError:
        return None


def stamp_digest(config: Stat | None, own: Stat, files: tuple[FileStamp, ...]) -> str:
    return hashlib.sha256(repr((config, own, files)).encode("utf-8", "surrogateescape")).hexdigest()[:32]


def summary_of(name: str, tree: DagTree) -> dict[str, Any]:
    """What `list` needs of one DAG that is not in the state database."""
    dag = tree.dags.get(name)
    if dag is not None:
        return {
            "description": dag.description,
            "schedule": dag.schedule,
            "timezone": dag.timezone,
            "tags": list(dag.tags),
            "tasks": len(dag.tasks),
            "reason": None,
        }
    broken = tree.broken[name]
    return {
        "description": None,
        "schedule": None,
        "timezone": None,
        "tags": [],
        "tasks": None,
        "reason": broken.reason,
    }


def summary_json(name: str, tree: DagTree) -> str:
    return json.dumps(summary_of(name, tree), sort_keys=True, separators=(",", ":"))
