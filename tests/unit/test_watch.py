"""The scheduler's view of a DAGs folder (dags/watch.py): what a reload reads again,
and the parallel loading of a large tree (dags/tree.py) against the serial one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dagctl.dags import tree as tree_module
from dagctl.dags import watch
from dagctl.dags.summary import config_stat, folder_stamp, stamp_digest
from dagctl.dags.tree import load_tree
from dagctl.dags.watch import DagCache


def _dag(root: Path, name: str, description: str = "a DAG") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "workflow.yaml").write_text(f"description: {description}\n")
    (folder / "a.yaml").write_text("type: no_op\n")
    (folder / "b.sh").write_text("#!/bin/bash\n# inputs: [a.yaml]\ntrue\n")
    return folder


def _rewrite_keeping_stat(path: Path, text: str) -> None:
    """Change a file's bytes but not its size, mtime or inode (nor its folder's mtime)."""
    info = path.stat()
    folder = path.parent.stat()
    assert len(text.encode()) == info.st_size
    with open(path, "r+", encoding="utf-8") as handle:
        handle.write(text)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.utime(path.parent, ns=(folder.st_atime_ns, folder.st_mtime_ns))


def test_an_unchanged_folder_gives_the_same_tree_and_each_kind_of_change_is_seen(tmp_path: Path) -> None:
    root = tmp_path / "dags"
    first = _dag(root, "first")
    _dag(root, "second")
    cache = DagCache(root)
    tree = cache.load()
    assert sorted(tree.dags) == ["first", "second"] and cache.changed
    assert cache.load() is tree and not cache.changed

    # Rewritten in place (the folder's mtime unchanged): the file's own stat shows it.
    folder_info = first.stat()
    (first / "workflow.yaml").write_text("description: edited in place\n")
    os.utime(first, ns=(folder_info.st_atime_ns, folder_info.st_mtime_ns))
    assert cache.load().dags["first"].description == "edited in place" and cache.changed

    # Same size, same mtime, same inode: only the content check sees it.
    _rewrite_keeping_stat(first / "workflow.yaml", "description: edited AGAIN!!!\n")
    assert cache.load().dags["first"].description == "edited AGAIN!!!"

    _dag(root, "third")
    assert sorted(cache.load().dags) == ["first", "second", "third"]
    (root / "dagctl.yaml").write_text("defaults:\n  retries: 7\n")
    assert {d.retries for d in cache.load().dags.values()} == {7}
    for path in (root / "second").iterdir():
        path.unlink()
    (root / "second").rmdir()
    assert sorted(cache.load().dags) == ["first", "third"]
    assert cache.load() is cache.load()


def test_in_a_large_tree_files_and_contents_are_checked_in_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "FOLDERS_PER_LOAD", 2)
    monkeypatch.setattr(watch, "CONTENT_CHECK_FOLDERS", 1)
    root = tmp_path / "dags"
    folders = [_dag(root, f"dag{i}") for i in range(6)]
    cache = DagCache(root)
    cache.load()
    folder_info = folders[4].stat()
    (folders[4] / "workflow.yaml").write_text("description: edited in place\n")
    os.utime(folders[4], ns=(folder_info.st_atime_ns, folder_info.st_mtime_ns))
    seen_at = next(n for n in range(1, 4) if cache.load().dags["dag4"].description == "edited in place")
    assert seen_at <= 3  # 6 folders, 2 a load

    _rewrite_keeping_stat(folders[1] / "workflow.yaml", "description: b DAG\n")
    loads = [cache.load().dags["dag1"].description for _ in range(6)]
    assert loads[-1] == "b DAG" and loads.count("a DAG") >= 1  # one folder's content a load


def test_the_stamps_of_a_load_are_what_list_computes_from_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "dags"
    for name in ("one", "two"):
        _dag(root, name)
    (root / "dagctl.yaml").write_text("defaults:\n  retries: 1\n")
    cache = DagCache(root)
    cache.load()
    fresh = {name: stamp_digest(config_stat(root), *folder_stamp(root / name)) for name in ("one", "two")}
    assert cache.stamps() == fresh
    (root / "one" / "b.sh").write_text("#!/bin/bash\n# inputs: [a.yaml]\nfalse\n")
    assert stamp_digest(config_stat(root), *folder_stamp(root / "one")) != cache.stamps()["one"]


def test_a_tree_loaded_by_worker_processes_equals_one_loaded_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "dags"
    for i in range(7):
        _dag(root, f"dag{i}", description=f"number {i}")
    (root / "dag3" / "b.sh").write_text("#!/bin/bash\n# inputs: [nothere.yaml]\ntrue\n")  # broken
    (root / "dag5" / "c.sh").write_text("#!/bin/bash\n# inputs: [dag6:a.yaml]\ntrue\n")  # cross-DAG
    here = load_tree(root)
    monkeypatch.setattr(tree_module, "PARALLEL_FROM", 1)
    monkeypatch.setattr(tree_module, "CHUNK", 2)
    monkeypatch.setattr(tree_module, "workers", lambda: 2)
    there = load_tree(root)
    assert there.dags == here.dags and there.broken == here.broken
    assert there.problems == here.problems and sorted(here.broken) == ["dag3"]
    assert dict(there.dags["dag5"].tasks["c.sh"].worker_config) == {}


def test_a_cache_loaded_by_worker_processes_stamps_each_folder_as_one_loaded_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "dags"
    for i in range(5):
        _dag(root, f"dag{i}", description=f"number {i}")
    here = DagCache(root)
    here_tree = here.load()
    monkeypatch.setattr(tree_module, "PARALLEL_FROM", 1)
    monkeypatch.setattr(tree_module, "CHUNK", 2)
    monkeypatch.setattr(tree_module, "workers", lambda: 2)
    there = DagCache(root)
    there_tree = there.load()
    assert there_tree.dags == here_tree.dags and there.stamps() == here.stamps()
    assert there.load() is there_tree  # stamped as loaded: nothing is stale
