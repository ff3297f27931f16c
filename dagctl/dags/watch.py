"""Keeping a loaded DAGs folder up to date without reading what did not change.

A scheduler reloads its definitions every few seconds. Reading 10,000 DAG folders
each time cost a quarter of a core, so what is read is decided from `stat` alone, and
at most a fixed number of folders is looked at per load, in turn:

- the DAGs folder and dagctl.yaml: at every load (a DAG folder added, removed or
  renamed changes the DAGs folder's mtime; a changed dagctl.yaml reloads every DAG);
- each DAG folder and each of its files (mtime_ns, size, inode): FOLDERS_PER_LOAD
  folders a load, in turn. A tree up to that size is checked whole at every load; a
  larger one within tree size / FOLDERS_PER_LOAD loads (10,000 DAGs: 10 loads, 50 s
  at the default reload interval), so the cost of a load does not grow with the tree;
- the contents themselves, CONTENT_CHECK_FOLDERS folders a load, in turn: each valid
  DAG's files are read and hashed again and compared with its fingerprint, which
  catches an edit that kept the size and the mtime (a restored timestamp, a coarse-
  grained file system), without a pause of the loop to read the whole tree at once.

Nothing here parses: a folder found changed is loaded again (tree.in_parallel).
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from dagctl.dags.loader import (
    LoadResult,
    content_fingerprint,
    load_dag,
    load_root_config,
    problem_base,
    shared,
)
from dagctl.dags.model import ROOT_CONFIG_FILE, Dag, DagTree, Problem, RootConfig
from dagctl.dags.summary import Stat, dag_dirs_of, folder_stamp, stamp_digest, stat_key
from dagctl.dags.tree import assemble, in_parallel, usable_dirs, without_gc_pauses

FOLDERS_PER_LOAD = 1000
CONTENT_CHECK_FOLDERS = 50
_UNREADABLE: Stat = (-1, -1, -1)


def _files_key(dag_dir: str, names: tuple[str, ...]) -> int:
    """One number for the stats of these files: kept instead of the stats themselves,
    which for 10,000 folders would hold 60,000 tuples."""
    stats = []
    for name in names:
        try:
            stats.append(stat_key(os.path.join(dag_dir, name)))
        except OSError:
            stats.append(_UNREADABLE)
    return hash(tuple(stats))


@dataclass(slots=True)
class _Seen:
    own: int  # hash of the folder's own stat (like files_key: one int, not three in a tuple)
    names: tuple[str, ...]  # the folder's entries, interned (the same few names everywhere)
    files_key: int  # _files_key of them when loaded
    stamp: str  # summary.stamp_digest when loaded
    result: LoadResult


def _stamp(dag_dir: Path, config: Stat | None) -> tuple[int, tuple[str, ...], int, str]:
    """_Seen's fields but the result."""
    try:
        own, files = folder_stamp(dag_dir)
    except OSError:
        return hash(_UNREADABLE), (), 0, ""  # loaded again next time
    names = shared(tuple(sys.intern(f[0]) for f in files))
    return hash(own), names, hash(tuple(f[1:] for f in files)), stamp_digest(config, own, files)


def _stamp_and_load(
    dag_dirs: list[str], config_stamp: Stat | None, config: RootConfig, base: Path
) -> list[tuple[tuple[int, tuple[str, ...], int, str], LoadResult]]:
    """Each folder stamped, then loaded: in the worker processes with the loading, as
    the 60,000 stat calls of 10,000 folders took ~0.8 s in the scheduler alone.
    Stamped before reading: a change made while loading shows at the next load."""
    with without_gc_pauses():
        paths = [Path(d) for d in dag_dirs]
        return [(_stamp(d, config_stamp), load_dag(d, config, base)) for d in paths]


class DagCache:
    """The DAGs under `root`, reloaded folder by folder as they change (see above).
    `changed` tells whether the last load() found anything new; when it did not,
    load() returns the very same DagTree object."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.changed = True
        # The DAG folders as text: a Path each would cost ~3 MB for 10,000 DAGs.
        self._seen: dict[str, _Seen] = {}
        self._root_stamp: Stat | None = None
        self._dirs: list[str] = []
        self._config_root = self.root
        self._config_stamp: Stat | None = None
        self._config = RootConfig()
        self._config_problems: list[Problem] = []
        self._folder_problems: list[Problem] = []
        self._file_cursor = 0
        self._content_cursor = 0
        self._tree: DagTree | None = None

    def load(self) -> DagTree:
        base = problem_base(self.root)
        listing_changed = self._list_folders(base)
        config_changed = self._load_config(base)
        if config_changed:
            self._seen.clear()
        stale = self._stale_folders()
        if stale:
            job = functools.partial(
                _stamp_and_load, config_stamp=self._config_stamp, config=self._config, base=base
            )
            for dag_dir, (stamp, result) in zip(stale, in_parallel(job, stale), strict=True):
                self._seen[dag_dir] = _Seen(*stamp, result)
        present = set(self._dirs)
        gone = [d for d in self._seen if d not in present]
        for dag_dir in gone:
            del self._seen[dag_dir]
        self.changed = bool(self._tree is None or listing_changed or config_changed or stale or gone)
        if self.changed or self._tree is None:
            results = {r[0].name: r for r in (self._seen[d].result for d in self._dirs)}
            self._tree = assemble(
                self.root, self._config, self._config_problems, self._folder_problems, results, base
            )
        return self._tree

    def stamps(self) -> dict[str, str]:
        """Each loaded DAG's stamp (summary.stamp_digest) as of its last load."""
        return {seen.result[0].name: seen.stamp for seen in self._seen.values()}

    def _list_folders(self, base: Path) -> bool:
        """Re-list the DAGs folder when its own stat changed; True when it was."""
        try:
            stamp = stat_key(str(self.root))
        except OSError:
            stamp = None
        if stamp is not None and stamp == self._root_stamp:
            return False
        dag_dirs, self._config_root = dag_dirs_of(self.root)  # raises when unreadable
        self._folder_problems = []
        self._dirs = [str(d) for d in usable_dirs(dag_dirs, base, self._folder_problems)]
        self._root_stamp = stamp
        return True

    def _load_config(self, base: Path) -> bool:
        path = self._config_root / ROOT_CONFIG_FILE
        try:
            stamp: Stat | None = stat_key(str(path))
        except OSError:
            stamp = None
        if stamp == self._config_stamp and self._tree is not None:
            return False
        self._config_stamp = stamp
        self._config, self._config_problems = load_root_config(self._config_root, base)
        return True

    def _stale_folders(self) -> list[str]:
        count = len(self._dirs)
        stat_from, stat_count = self._turn("_file_cursor", FOLDERS_PER_LOAD)
        content_from, content_count = self._turn("_content_cursor", CONTENT_CHECK_FOLDERS)
        return [
            dag_dir
            for index, dag_dir in enumerate(self._dirs)
            if self._is_stale(
                dag_dir,
                stat=(index - stat_from) % count < stat_count,
                content=(index - content_from) % count < content_count,
            )
        ]

    def _turn(self, cursor: str, size: int) -> tuple[int, int]:
        """Where this load's turn of a rotating check starts, and how many it covers."""
        count = len(self._dirs)
        start = getattr(self, cursor) % count if count else 0
        setattr(self, cursor, start + min(count, size))
        return start, min(count, size)

    def _is_stale(self, dag_dir: str, *, stat: bool, content: bool) -> bool:
        seen = self._seen.get(dag_dir)
        if seen is None:
            return True
        if not (stat or content):
            return False
        try:
            if hash(stat_key(dag_dir)) != seen.own:
                return True
        except OSError:
            return True
        if stat and _files_key(dag_dir, seen.names) != seen.files_key:
            return True
        return content and not self._same_content(Path(dag_dir), seen.result)

    @staticmethod
    def _same_content(dag_dir: Path, result: LoadResult) -> bool:
        dag = result[0]
        if not isinstance(dag, Dag):
            return False  # a broken DAG has no fingerprint: read it again (there are few)
        try:
            return content_fingerprint(dag_dir) == dag.fingerprint
        except OSError:
            return False
