"""Keeping a loaded DAGs folder up to date without reading what did not change.

A scheduler reloads its definitions every few seconds. Reading 10,000 DAG folders
each time cost a quarter of a core, so what is read is decided from `stat` alone:

- the DAGs folder and dagctl.yaml: at every load (a DAG added, removed or renamed
  changes the folder; a changed dagctl.yaml reloads every DAG);
- each DAG folder: at every load (a file added, removed or renamed in it, which is also
  how most editors, git and rsync write a file, changes the folder's mtime);
- the files of each DAG folder (mtime_ns, size, inode): at every load for up to
  FILE_CHECK_FOLDERS folders, in turn, so a file rewritten in place is noticed within
  one load in a tree of that size and within a few loads in a larger one;
- and every FULL_CHECK_S, the contents themselves: each valid DAG's files are read and
  hashed again and compared with its fingerprint, which catches an edit that kept the
  size and the mtime (a restored timestamp, a coarse-grained file system).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dagctl.dags.loader import LoadResult, content_fingerprint, load_root_config, problem_base
from dagctl.dags.model import ROOT_CONFIG_FILE, Dag, DagTree, Problem, RootConfig
from dagctl.dags.summary import FileStamp, Stat, folder_stamp, stamp_digest, stat_key
from dagctl.dags.tree import assemble, dag_dirs_of, load_many, usable_dirs

FILE_CHECK_FOLDERS = 1000
FULL_CHECK_S = 300.0


def _files_changed(dag_dir: str, files: tuple[FileStamp, ...]) -> bool:
    for name, mtime, size, inode in files:
        try:
            if stat_key(os.path.join(dag_dir, name)) != (mtime, size, inode):
                return True
        except OSError:
            if mtime != -1:
                return True
    return False


@dataclass(slots=True)
class _Seen:
    own: Stat
    files: tuple[FileStamp, ...]
    result: LoadResult


class DagCache:
    """The DAGs under `root`, reloaded folder by folder as they change (see above).
    `changed` tells whether the last load() found anything new; when it did not,
    load() returns the very same DagTree object."""

    def __init__(
        self,
        root: Path | str,
        *,
        full_check_s: float = FULL_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = Path(root)
        self.changed = True
        self._full_check_s = full_check_s
        self._clock = clock
        self._next_full = clock() + full_check_s
        self._seen: dict[Path, _Seen] = {}
        self._root_stamp: Stat | None = None
        self._dirs: list[Path] = []
        self._config_root = self.root
        self._config_stamp: Stat | None = None
        self._config = RootConfig()
        self._config_problems: list[Problem] = []
        self._folder_problems: list[Problem] = []
        self._cursor = 0
        self._tree: DagTree | None = None

    def load(self) -> DagTree:
        base = problem_base(self.root)
        full = self._clock() >= self._next_full
        if full:
            self._next_full = self._clock() + self._full_check_s
        listing_changed = self._list_folders(base)
        config_changed = self._load_config(base)
        if config_changed:
            self._seen.clear()
        stale = self._stale_folders(full)
        if stale:
            stamps = {}
            for dag_dir in stale:
                try:
                    stamps[dag_dir] = folder_stamp(dag_dir)
                except OSError:
                    stamps[dag_dir] = ((-1, -1, -1), ())  # loaded again next time
            for dag_dir, result in zip(stale, load_many(stale, self._config, base), strict=True):
                own, files = stamps[dag_dir]
                self._seen[dag_dir] = _Seen(own, files, result)
        present = set(self._dirs)
        gone = [d for d in self._seen if d not in present]
        for dag_dir in gone:
            del self._seen[dag_dir]
        self.changed = bool(self._tree is None or listing_changed or config_changed or stale or gone)
        if self.changed or self._tree is None:
            results = {d.name: self._seen[d].result for d in self._dirs}
            self._tree = assemble(
                self.root, self._config, self._config_problems, self._folder_problems, results, base
            )
        return self._tree

    def stamps(self) -> dict[str, str]:
        """Each loaded DAG's stamp (summary.stamp_digest) as of its last load."""
        return {
            d.name: stamp_digest(self._config_stamp, seen.own, seen.files) for d, seen in self._seen.items()
        }

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
        self._dirs = usable_dirs(dag_dirs, base, self._folder_problems)
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

    def _stale_folders(self, full: bool) -> list[Path]:
        count = len(self._dirs)
        checked = min(count, FILE_CHECK_FOLDERS)
        start = self._cursor % count if count else 0
        self._cursor = start + checked
        return [
            dag_dir
            for index, dag_dir in enumerate(self._dirs)
            if self._is_stale(dag_dir, files=full or (index - start) % count < checked, content=full)
        ]

    def _is_stale(self, dag_dir: Path, *, files: bool, content: bool) -> bool:
        seen = self._seen.get(dag_dir)
        if seen is None:
            return True
        path = str(dag_dir)
        try:
            if stat_key(path) != seen.own:
                return True
        except OSError:
            return True
        if files and _files_changed(path, seen.files):
            return True
        return content and not self._same_content(dag_dir, seen.result)

    @staticmethod
    def _same_content(dag_dir: Path, result: LoadResult) -> bool:
        dag = result[0]
        if not isinstance(dag, Dag):
            return False  # a broken DAG has no fingerprint: read it again (there are few)
        try:
            return content_fingerprint(dag_dir) == dag.fingerprint
        except OSError:
            return False
