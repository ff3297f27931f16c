"""The whole DAGs folder: which sub-folders are DAGs, loading them (on every core when
there are many), and putting the per-DAG results together into one DagTree with the
checks that need every DAG at once (cross-DAG inputs, a broken dagctl.yaml).

Loading a DAG is pure CPU on small files (YAML, schema checks, `ast`), so a large tree
is split between worker processes: 10,000 DAGs take ~15 s of CPU on this machine's
cores. A small tree is loaded in this process, where a pool would cost more to start
than it saves.
"""

from __future__ import annotations

import copyreg
import dataclasses
import functools
import gc
import multiprocessing
import operator
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PosixPath, PurePath
from types import MappingProxyType
from typing import Any, TypeVar

from dagctl.dags import checks, composition
from dagctl.dags.loader import LoadResult, load_dag, load_root_config, problem_base
from dagctl.dags.model import (
    ROOT_CONFIG_FILE,
    BrokenDag,
    Connection,
    Dag,
    DagTree,
    NotifyRule,
    ParamSpec,
    Pool,
    Problem,
    Retention,
    RootConfig,
    Task,
)
from dagctl.dags.sources import Collector, is_utf8, printable
from dagctl.dags.summary import dag_dirs_of

# Below this many folders to load, one process does it: starting workers (~0.1 s each,
# importing the loader) and sending the results back would cost more than it saves.
PARALLEL_FROM = 1500
# Folders per task sent to a worker: large enough that the pickling round trip is a
# small share, small enough that the workers finish together.
CHUNK = 250
R = TypeVar("R")
D = TypeVar("D", Path, str)  # a DAG folder


def _read_only(mapping: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(mapping)


def _reduce_mapping_proxy(proxy: MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _read_only, (dict(proxy),)


def _reduce_path(path: PurePath) -> tuple[Any, tuple[str]]:
    return type(path), (str(path),)


def _pickle_fields(cls: type) -> None:
    """Pickle a frozen model class as its constructor's arguments: the default for
    slotted dataclasses looks its fields up again for every object it restores, which
    made receiving 10,000 DAGs from the workers cost seconds."""
    names = [f.name for f in dataclasses.fields(cls)]
    # attrgetter reads every field in one C call: a generator over the names cost as
    # much as the pickling itself.
    fields = operator.attrgetter(*names) if len(names) > 1 else lambda obj: (getattr(obj, names[0]),)
    copyreg.pickle(cls, lambda obj: (cls, fields(obj)))


# The model's read-only mappings cross the process boundary as plain dicts, rebuilt as
# read-only mappings on the other side.
copyreg.pickle(MappingProxyType, _reduce_mapping_proxy)
copyreg.pickle(PosixPath, _reduce_path)
for _model_class in (Dag, Task, ParamSpec, Problem, BrokenDag, Connection, NotifyRule, Pool, Retention):
    _pickle_fields(_model_class)


def usable_dirs(dag_dirs: Sequence[Path], base: Path, problems: list[Problem]) -> list[Path]:
    """The folders whose names can be DAG names; a problem for each other one."""
    usable = []
    for dag_dir in dag_dirs:
        if is_utf8(dag_dir.name):
            usable.append(dag_dir)
        else:
            # A DAG name is a key in the state database and in every message: it must be text.
            Collector(base=base, dag=None, problems=problems).add(
                dag_dir, None, "the folder name is not valid UTF-8", "rename the folder"
            )
    return usable


@contextmanager
def without_gc_pauses() -> Iterator[None]:
    """The cycle collector off while a tree is built. Loading allocates millions of
    objects that all stay alive (the model) or die by reference count (YAML nodes), so
    the collector's full passes find nothing, yet they rescan every DAG loaded so far:
    ~11 % of loading 10,000 DAGs in one process. It runs again as soon as this ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_chunk(dag_dirs: list[Path], config: RootConfig, base: Path) -> list[LoadResult]:
    with without_gc_pauses():
        return [load_dag(dag_dir, config, base) for dag_dir in dag_dirs]


def _pool_context() -> Any:
    # fork is the cheapest start, but forking a process that runs other threads (a
    # scheduler's delivery and watch threads) can copy a lock held mid-operation.
    method = "fork" if threading.active_count() == 1 else "forkserver"
    if method not in multiprocessing.get_all_start_methods():
        method = "spawn"
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        # The server imports the loader once, and each worker forked from it starts with
        # it imported (~0.3 s of CPU a worker otherwise). Only a hint: it takes effect
        # when the server starts, the first time it is used.
        context.set_forkserver_preload(["dagctl.dags.watch"])
    return context


def workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_many(dag_dirs: Sequence[Path], config: RootConfig, base: Path) -> list[LoadResult]:
    """load_dag of each folder, in order; split between processes when there are many."""
    return in_parallel(functools.partial(_load_chunk, config=config, base=base), dag_dirs)


def in_parallel(job: Callable[[list[D]], list[R]], dag_dirs: Sequence[D]) -> list[R]:
    """job(folders) over all the folders, in order: in this process for a few, else in
    chunks split between processes (`job` must pickle: a module-level function, or a
    functools.partial of one)."""
    count = workers()
    if len(dag_dirs) < PARALLEL_FROM or count < 2:
        return job(list(dag_dirs))
    chunks = [list(dag_dirs[i : i + CHUNK]) for i in range(0, len(dag_dirs), CHUNK)]
    try:
        with (
            ProcessPoolExecutor(max_workers=count, mp_context=_pool_context()) as pool,
            without_gc_pauses(),  # unpickling the results: the same objects, the same passes
        ):
            parts = list(pool.map(job, chunks))
    except (OSError, RuntimeError):  # no processes to be had (limits, a sandbox): do it here
        return job(list(dag_dirs))
    return [result for part in parts for result in part]


def assemble(
    root: Path,
    config: RootConfig,
    config_problems: Sequence[Problem],
    folder_problems: Sequence[Problem],
    results: Mapping[str, LoadResult],
    base: Path,
) -> DagTree:
    """One DagTree from the per-folder results (by DAG name, in folder order): the
    checks across DAGs, and every DAG broken when dagctl.yaml is."""
    with without_gc_pauses():
        return _assembled(root, config, config_problems, folder_problems, results, base)


def _assembled(
    root: Path,
    config: RootConfig,
    config_problems: Sequence[Problem],
    folder_problems: Sequence[Problem],
    results: Mapping[str, LoadResult],
    base: Path,
) -> DagTree:
    config_broken = any(p.severity == "error" for p in config_problems)
    problems = [*config_problems, *folder_problems]
    dags: dict[str, Dag] = {}
    broken: dict[str, BrokenDag] = {}
    task_names: dict[str, tuple[str, ...]] = {}
    loaded_tasks: dict[str, Any] = {}
    ignored: list[str] = []
    per_dag: dict[str, list[Problem]] = {}
    for name, (result, dag_problems, tasks, names, skipped) in results.items():
        per_dag[name] = list(dag_problems)
        loaded_tasks[name] = tasks
        task_names[name] = names
        ignored.extend(printable(str(p)) for p in skipped)
        if isinstance(result, Dag):
            dags[result.name] = result
        else:
            broken[result.name] = result
    checks.check_external_inputs(loaded_tasks, task_names, per_dag, base)
    composition.check_child_dags(loaded_tasks, per_dag, base)

    for name in list(dags):
        reasons = list(per_dag[name])
        if config_broken:
            reasons.append(
                Problem(
                    path=ROOT_CONFIG_FILE,
                    line=None,
                    dag=name,
                    message=f"{ROOT_CONFIG_FILE} has errors",
                    hint="fix it first: every DAG depends on it",
                )
            )
        if any(p.severity == "error" for p in reasons):
            broken[name] = BrokenDag(name, dags.pop(name).path, tuple(reasons))
    for found in per_dag.values():
        problems.extend(found)
    return DagTree(
        root=root,
        config=config,
        dags=MappingProxyType(dags),
        broken=MappingProxyType(broken),
        problems=tuple(problems),
        ignored_files=tuple(ignored),
    )


def load_tree(root: Path | str) -> DagTree:
    """Every DAG under `root` (or `root` itself when it is one DAG folder)."""
    root = Path(root)
    dag_dirs, config_root = dag_dirs_of(root)
    base = problem_base(root)
    config, problems = load_root_config(config_root, base)
    folder_problems: list[Problem] = []
    dag_dirs = usable_dirs(dag_dirs, base, folder_problems)
    results = load_many(dag_dirs, config, base)
    by_name = {d.name: r for d, r in zip(dag_dirs, results, strict=True)}
    return assemble(root, config, problems, folder_problems, by_name, base)
