"""W15: where a hop's time goes, against where the floor loop's goes, in the same run.

A scheduler runs a chain in this process (`dagctl schedule --until-idle`, as the CLI
runs it), with `time.perf_counter` around its steps: no profiler, whose own cost would
swamp steps of a tenth of a millisecond. Per task of the chain:

- the task running: the scheduler waits from the launch's return until it sees the end
  (and takes in the end: it polls the manager when the task's descriptors wake it);
- record the end, advance, claim the next: the one transaction of a hop, and of it the
  time in the database driver (statements, hot reads, commits) and the rest (Python);
- the launch: building the task's environment and files, and of it `Popen` (fork, exec);
- the rest of the loop: polling the manager again, the timers of periodic work.

The floor (bench/floor.py) is split the same way: `bash -c true` spawned and waited for
alone, and the rest (its statements and commits). Together they show which part of
dagctl's hop is the work the floor leaves out, and how much of it is the database's.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench import dags, floor
from bench.common import Config, Env, Figure, workspace

Totals = dict[str, float]


Wrap = Callable[[Callable[..., Any]], Callable[..., Any]]


@contextlib.contextmanager
def _patched(targets: list[tuple[Any, str, Wrap]]) -> Iterator[None]:
    """Each owner.name replaced by wrap(owner.name) while inside; the originals put back."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in targets]
    for owner, name, wrap in targets:
        setattr(owner, name, wrap(getattr(owner, name)))
    try:
        yield
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


def _timed(targets: list[tuple[Any, str, str]], totals: Totals) -> contextlib.AbstractContextManager[None]:
    """Add each call's wall time to totals[label] while inside."""
    return _patched(
        [
            (owner, name, functools.partial(_timer, add=functools.partial(_add, totals, label)))
            for owner, name, label in targets
        ]
    )


def _add(totals: Totals, label: str, seconds: float) -> None:
    totals[label] = totals.get(label, 0.0) + seconds


def _timer(original: Callable[..., Any], add: Callable[[float], None]) -> Callable[..., Any]:
    """`original`, handing the wall time of each call to `add`."""

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            add(time.perf_counter() - started)

    return timed


class _Driver:
    """The time in the database driver during the hop's transaction: SQLAlchemy's
    statements (cursor events), the hot reads that use the driver's cursor directly,
    and the commit."""

    def __init__(self, totals: Totals) -> None:
        self.totals = totals
        self.inside = False

    def add(self, seconds: float) -> None:
        if self.inside:
            _add(self.totals, "driver", seconds)

    def around(self, original: Callable[..., Any]) -> Callable[..., Any]:
        return _timer(original, self.add)

    def transaction(self, original: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(original)
        def marked(*args: Any, **kwargs: Any) -> Any:
            self.inside = True
            try:
                return original(*args, **kwargs)
            finally:
                self.inside = False

        return marked

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        from sqlalchemy import event
        from sqlalchemy.engine import Connection, Engine

        from dagctl.scheduling.scheduler import Scheduler
        from dagctl.store import hot_reads

        def before(conn: Any, *_: Any) -> None:
            conn.info["bench_started"] = time.perf_counter()

        def after(conn: Any, *_: Any) -> None:
            self.add(time.perf_counter() - conn.info.pop("bench_started"))

        event.listen(Engine, "before_cursor_execute", before)
        event.listen(Engine, "after_cursor_execute", after)
        try:
            with _patched(
                [
                    (hot_reads, "_fetch", self.around),
                    (Connection, "_commit_impl", self.around),
                    (Scheduler, "_advance_and_claim", self.transaction),
                ]
            ):
                yield
        finally:
            event.remove(Engine, "before_cursor_execute", before)
            event.remove(Engine, "after_cursor_execute", after)


def _schedule_in_process(env: Env) -> Totals:
    """Seconds per step over every iteration but the first (which loads the DAGs, syncs
    them and starts the run): what a hop costs, not a start."""
    from dagctl.cli.main import cli
    from dagctl.scheduling.scheduler import Scheduler
    from dagctl.scheduling.wakeups import Wakeups

    totals: Totals = {}
    first: Totals = {}

    def after_the_first(iterate: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(iterate)
        def noted(*args: Any, **kwargs: Any) -> Any:
            try:
                return iterate(*args, **kwargs)
            finally:
                if not first:
                    # Its own time is in `totals` already; the key marks `first` as taken.
                    first.update(totals, first_iteration=1.0)

        return noted

    steps = [
        (Wakeups, "wait", "waiting"),
        (Scheduler, "_advance_and_claim", "transaction"),
        (Scheduler, "_launch_all", "launch"),
        (subprocess.Popen, "__init__", "popen"),
    ]
    saved = {name: os.environ.get(name) for name in ("DATABASE_URL", "DAGCTL_DAGS")}
    os.environ.update(DATABASE_URL=env.db_url, DAGCTL_DAGS=str(env.dags))
    loop = functools.partial(_add, totals, "loop")
    try:
        with (
            _patched([(Scheduler, "iterate", lambda iterate: after_the_first(_timer(iterate, loop)))]),
            _timed(steps, totals),
            _Driver(totals).watching(),
        ):
            cli(
                ["schedule", "--until-idle", "--concurrency", "2", "--poll-interval", "1"],
                prog_name="dagctl",
                standalone_mode=False,
            )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return {label: seconds - first.get(label, 0.0) for label, seconds in totals.items()}


def _spawn_alone(count: int) -> float:
    """Seconds per `bash -c true` spawned and waited for, as the floor loop does it."""
    started = time.perf_counter()
    for _ in range(count):
        os.waitpid(os.posix_spawnp("bash", ["bash", "-c", "true"], os.environ), 0)
    return (time.perf_counter() - started) / count


def hop_breakdown(cfg: Config, backend: str) -> list[Figure]:
    length = 20 if cfg.small else 200
    reps = max(1, min(cfg.reps, 3))
    w = "W15"
    per_step: dict[str, list[float]] = collections.defaultdict(list)
    with workspace("w15") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        dags.chain(env.dags, "chain", length)
        env.run("db", "upgrade")
        try:
            for rep in range(reps):
                env.run("trigger", "chain")
                totals = _schedule_in_process(env)
                # Per hop: every iteration after the first records one end and starts the next.
                ms = {label: seconds / (length - 1) * 1000 for label, seconds in totals.items()}
                floor_task = floor.run_floor(url, rep + 1, floor.chain_shape(length), 2) / length * 1000
                spawn = _spawn_alone(length) * 1000
                parts = {
                    "dagctl: task running (launch returned -> end seen)": ms["waiting"],
                    "dagctl: record + advance + claim transaction": ms["transaction"],
                    "dagctl:   of which in the database driver": ms["driver"],
                    "dagctl: launch": ms["launch"],
                    "dagctl:   of which Popen (fork + exec)": ms["popen"],
                    "dagctl: rest of the loop (polling the manager, timers)": ms["loop"]
                    - ms["transaction"]
                    - ms["launch"],
                    "dagctl: per task, all": ms["loop"] + ms["waiting"],
                    "floor: bash -c true spawned and waited for": spawn,
                    "floor: the rest (statements, commits)": floor_task - spawn,
                    "floor: per task, all": floor_task,
                }
                for label, value in parts.items():
                    per_step[label].append(value)
                cfg.say(
                    f"{w} {backend} rep {rep + 1}: {parts['dagctl: per task, all']:.2f} ms a task, "
                    f"transaction {ms['transaction']:.2f} (driver {ms['driver']:.2f}), launch "
                    f"{ms['launch']:.2f}; floor {floor_task:.2f} (spawn {spawn:.2f})"
                )
        finally:
            cfg.dbs.drop(url)
    figures = [Figure(w, backend, label, samples, "ms") for label, samples in per_step.items()]
    dagctl_tasks, floor_tasks = per_step["dagctl: per task, all"], per_step["floor: per task, all"]
    ratio = [a / b for a, b in zip(dagctl_tasks, floor_tasks, strict=True)]
    figures.append(
        Figure(
            w,
            backend,
            "per task: dagctl / floor",
            ratio,
            "x",
            note=f"in process, chain of {length}: no trigger, no pickup, unlike W1",
        )
    )
    return figures
