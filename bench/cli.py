"""W13: the terminal commands with 1,000 DAGs (the tree of W3) and a one-task DAG.

After one `dagctl schedule --once` has synced the folder (and stored the summaries
`list` reads), with a `dagctl schedule` running (it keeps them current) and the DAG
whose runs `status` shows paused (no task load), each command is run as a
subprocess and timed: wall time, and CPU time
(user + system, from the wait status) which the load of other processes inflates less:

- `dagctl list` (the table, piped) and `dagctl list -o json`;
- `dagctl status` (the 10 newest runs, each with its attempts);
- `dagctl trigger DAG -p limit=5` (a DAG with typed params);
- `dagctl trigger one --wait` with a `dagctl schedule` running: the wall time beyond
  the task's own run (its attempt's started_at -> ended_at in the database).
"""

from __future__ import annotations

import resource
import subprocess
import time

from bench import dags
from bench.common import Config, Db, Env, Figure, seconds, workspace

LIST_TARGET_S = 0.300
TRIGGER_TARGET_S = 0.200
WAIT_BEYOND_TARGET_S = 0.300


def _timed(env: Env, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of one dagctl command (exit 0 expected)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run([env.exe, *args], env=env.vars, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"dagctl {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _figures(backend: str, metric: str, samples: list[tuple[float, float]], target: float) -> list[Figure]:
    return [
        Figure("W13", backend, f"{metric} (wall)", [s[0] for s in samples], "s", target=target),
        Figure("W13", backend, f"{metric} (CPU)", [s[1] for s in samples], "s"),
    ]


def cli(cfg: Config, backend: str) -> list[Figure]:
    count = 20 if cfg.small else 1000
    runs = 1 if cfg.small else max(5, cfg.reps)
    figures: list[Figure] = []
    with workspace("w12") as work:
        env = Env(work, cfg.dbs.fresh(backend), cfg.exe)
        dags.thousand(env.dags, count)
        env.write_dag("one", "description: One shell task.\nretries: 0\n", {"true.sh": "#!/bin/bash\ntrue\n"})
        env.run("db", "upgrade")
        env.run("schedule", "--once")  # syncs the folder: the summaries `list` reads
        env.run("pause", "dag_0000")  # its triggered runs below stay queued: no task load
        for _ in range(2 if cfg.small else 10):
            env.run("trigger", "dag_0000", "-p", "limit=5")  # runs for `status` to show
        db = Db(env.db_url)
        try:
            # A live scheduler, as in use: it keeps the stored summaries current.
            env.schedule("--poll-interval", "1", log_name="cli")
            env.wait_for(db, "SELECT count(*) FROM scheduler WHERE stopped_at IS NULL", 1)
            for args, metric, target in (
                (("list",), f"list, {count:,} DAGs", LIST_TARGET_S),
                (("list", "-o", "json"), f"list -o json, {count:,} DAGs", LIST_TARGET_S),
                (("status",), f"status, {count:,} DAGs", LIST_TARGET_S),
                (("trigger", "dag_0000", "-p", "limit=5"), "trigger -p", TRIGGER_TARGET_S),
            ):
                if not cfg.small:
                    _timed(env, *args)  # warm-up
                figures += _figures(backend, metric, [_timed(env, *args) for _ in range(runs)], target)
            if not cfg.small:
                env.run("trigger", "one", "--wait")  # warm-up
            beyond = []
            for _ in range(runs):
                wall, cpu = _timed(env, "trigger", "one", "--wait")
                started, ended = db.rows(
                    "SELECT t.started_at, t.ended_at FROM task_run t JOIN dag_run r ON r.id = t.dag_run_id"
                    " WHERE r.dag_name = 'one' ORDER BY t.id DESC LIMIT 1"
                )[0]
                beyond.append((wall - seconds(started, ended), cpu))
        finally:
            env.stop_all()
            db.close()
        cfg.dbs.drop(env.db_url)
    figures += _figures(
        backend, "trigger --wait, one task: beyond the task's run", beyond, WAIT_BEYOND_TARGET_S
    )
    return figures
