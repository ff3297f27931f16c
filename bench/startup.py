"""W5 start-up: wall time of `dagctl --help` and of `dagctl trigger`, as subprocesses.

`--help` does not touch a database, so it is timed once (with the first backend);
`trigger` is timed on each backend, against a migrated database, for a DAG with typed
params given one `-p` (validated before anything is written).
"""

from __future__ import annotations

import subprocess
import time

from bench import dags
from bench.common import Config, Env, Figure, child_env, workspace

HELP_TARGET_S = 0.150
TRIGGER_TARGET_S = 0.300


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


def startup(cfg: Config, backend: str) -> list[Figure]:
    runs = 2 if cfg.small else max(10, cfg.reps)
    figures = []
    if backend == cfg.backends[0]:
        variables = child_env()
        _timed([cfg.exe, "--help"], variables)  # warm-up
        helps = [_timed([cfg.exe, "--help"], variables) for _ in range(runs)]
        figures.append(Figure("W5", "-", "dagctl --help (wall)", helps, "s", target=HELP_TARGET_S))
    with workspace("w5") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        dags.thousand(env.dags, 1)  # one DAG with typed params (date, limit, dry_run)
        env.run("db", "upgrade")
        argv = ["trigger", "dag_0000", "-p", "limit=5"]
        env.run(*argv)  # warm-up
        triggers = [env.run(*argv)[0] for _ in range(runs)]
        cfg.dbs.drop(url)
    figures.append(
        Figure(
            "W5",
            backend,
            "dagctl trigger -p (wall)",
            triggers,
            "s",
            target=TRIGGER_TARGET_S,
            note="a DAG with three typed params, one given; the database already migrated",
        )
    )
    return figures
