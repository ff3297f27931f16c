"""W3: 1,000 DAGs x 5 tasks (see dags.thousand).

- `dagctl validate DIR` as a subprocess (backend-independent: timed once);
- one idle scheduler iteration, in this process: a `dagctl.scheduling.scheduler.Scheduler` with
  the worker manager, its clock fixed just after it first saw the DAGs (so no slot
  is due), timing `iterate()` when neither the definitions reload (every 5 s) nor the
  lease work (every 10 s) is due; those two are timed separately;
- the SQL statements of one idle iteration (a `before_cursor_execute` hook), for 10
  DAGs and for 1,000: they must be the same number;
- the resident memory (VmRSS) of a real `dagctl schedule` process with the 1,000 DAGs
  loaded and synced, and its peak (VmHWM).
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import dags
from bench.common import Config, Db, Env, Figure, rss_mb, workspace

VALIDATE_TARGET_S = 2.0
ITERATION_TARGET_MS = 10.0
RSS_TARGET_MB = 100.0
FIXED_NOW = datetime(2024, 6, 1, 0, 0, 30)


class _InProcess:
    """A Scheduler over `root`, its statements counted."""

    def __init__(self, url: str, root: Path) -> None:
        from sqlalchemy import event

        from dagctl.managers.worker import WorkerManager
        from dagctl.scheduling.scheduler import Scheduler, SchedulerOptions
        from dagctl.store import open_store

        self.store = open_store(url, migrate=True)
        self.statements = 0

        def count(*_: Any) -> None:
            self.statements += 1

        event.listen(self.store.engine, "before_cursor_execute", count)
        self.manager = WorkerManager(concurrency=2, use_guardian=False)
        self.scheduler = Scheduler(
            self.store, root, self.manager, SchedulerOptions(concurrency=2), clock=lambda: FIXED_NOW
        )
        # The harness decides which periodic work is due.
        self.timers = self.scheduler._timers
        self.leases = self.scheduler._leases

    def iterate(self, *, reload: bool = False, leases: bool = False) -> tuple[float, int]:
        """Wall time (ms) and statements of one iteration."""
        far = time.monotonic() + 3600
        self.timers.next_reload = 0.0 if reload else far
        self.leases.next_renewal = self.leases.next_reap = 0.0 if leases else far
        before = self.statements
        start = time.perf_counter()
        self.scheduler.iterate(FIXED_NOW)
        return (time.perf_counter() - start) * 1000, self.statements - before

    def close(self) -> None:
        self.manager.shutdown(0)
        self.store.close()


def _idle_statements(cfg: Config, backend: str, root: Path) -> int:
    url = cfg.dbs.fresh(backend)
    proc = _InProcess(url, root)
    try:
        proc.iterate(reload=True, leases=True)  # first sighting
        proc.iterate()
        return proc.iterate()[1]
    finally:
        proc.close()
        cfg.dbs.drop(url)


def thousand(cfg: Config, backend: str) -> list[Figure]:
    count = 20 if cfg.small else 1000
    w = "W3"
    figures: list[Figure] = []
    with workspace("w3") as work:
        env = Env(work, cfg.dbs.fresh(backend), cfg.exe)
        dags.thousand(env.dags, count)
        if backend == cfg.backends[0]:
            env.run("validate", str(env.dags))  # warm the page cache and .pyc files
            samples = [env.run("validate", str(env.dags))[0] for _ in range(cfg.reps)]
            figures.append(
                Figure(
                    w,
                    "-",
                    f"validate {count:,} DAGs x 5 tasks (wall)",
                    samples,
                    "s",
                    target=VALIDATE_TARGET_S * count / 1000,
                )
            )

        # In process: idle iterations, and their statements.
        proc = _InProcess(env.db_url, env.dags)
        try:
            first, _ = proc.iterate(reload=True, leases=True)
            proc.iterate()
            idle = []
            for _ in range(5 if cfg.small else max(20, cfg.reps * 10)):
                elapsed, _ = proc.iterate()
                idle.append(elapsed)
            statements_many = proc.iterate()[1]
            periodic = 1 if cfg.small else max(3, cfg.reps)
            reloads = [proc.iterate(reload=True)[0] for _ in range(periodic)]
            leases = [proc.iterate(leases=True)[0] for _ in range(periodic)]
        finally:
            proc.close()
        few_root = work / "few"
        dags.thousand(few_root, 10)
        statements_few = _idle_statements(cfg, backend, few_root)
        cfg.say(
            f"{w} {backend}: idle iteration median {statistics.median(idle):.2f} ms; statements "
            f"{statements_few} (10 DAGs) vs {statements_many} ({count} DAGs)"
        )
        figures += [
            Figure(w, backend, f"first iteration: load + sync {count:,} DAGs", [first / 1000], "s"),
            Figure(
                w,
                backend,
                f"idle iteration, {count:,} DAGs",
                idle,
                "ms",
                target=ITERATION_TARGET_MS,
                note="in process; neither the definitions reload nor the lease work due",
            ),
            Figure(w, backend, "iteration with definitions reload (every 5 s)", reloads, "ms"),
            Figure(w, backend, "iteration with lease renewal + reaping (every 10 s)", leases, "ms"),
            Figure(w, backend, "SQL statements per idle iteration, 10 DAGs", [statements_few], "count"),
            Figure(
                w,
                backend,
                f"SQL statements per idle iteration, {count:,} DAGs",
                [statements_many],
                "count",
                target=statements_few,
                note="target: the same number as for 10 DAGs",
            ),
        ]

        # A real scheduler process: its memory with the DAGs loaded and synced.
        url = cfg.dbs.fresh(backend)
        rss_env = Env(work, url, cfg.exe)
        rss_env.dags = env.dags
        rss_env.vars["DAGCTL_DAGS"] = str(env.dags)
        rss_env.vars["DAGCTL_FAKE_NOW"] = FIXED_NOW.isoformat()
        rss_env.run("db", "upgrade")
        db = Db(url)
        try:
            proc_ = rss_env.schedule("--poll-interval", "1", log_name="rss")
            rss_env.wait_for(db, "SELECT count(*) FROM dag", count, timeout=300)
            time.sleep(0.2 if cfg.small else 1.0)
            rss, peak = [], []
            for _ in range(1 if cfg.small else max(3, cfg.reps)):
                now_rss, now_peak = rss_mb(proc_.pid)
                rss.append(now_rss)
                peak.append(now_peak)
                time.sleep(0.2)
        finally:
            rss_env.stop_all()
            db.close()
            cfg.dbs.drop(url)
        cfg.dbs.drop(env.db_url)
    figures += [
        Figure(
            w,
            backend,
            f"scheduler RSS, {count:,} DAGs loaded",
            rss,
            "MB",
            target=RSS_TARGET_MB,
            note="VmRSS of `dagctl schedule` after its first sync",
        ),
        Figure(w, backend, "scheduler peak RSS (VmHWM)", peak, "MB"),
    ]
    return figures
