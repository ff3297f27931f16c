"""W12: 10,000 DAGs x 5 tasks (the tree of W3, ten times over).

- `dagctl validate DIR` as a subprocess: wall time and CPU time (user + system of it
  and its worker processes), backend-independent, timed once per rep;
- a real `dagctl schedule`: the first sync (process start -> all 10,000 `dag` rows
  written), then, once synced and idle (nothing due: its clock is fixed before every
  slot), its CPU use over an idle window as % of one core (utime + stime from
  /proc/PID/stat, so the load of other processes does not inflate it the way it does
  a wall time) and its resident memory. No slot falls due meanwhile (see FAKE_NOW).
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

from bench import dags
from bench.common import Config, Db, Env, Figure, rss_mb, workspace

VALIDATE_TARGET_S = 5.0
FIRST_SYNC_TARGET_S = 5.0
IDLE_CPU_TARGET_PCT = 2.0
RSS_TARGET_MB = 100.0
# The DAGs are scheduled on the 1st of the month only: from the 2nd, with the
# scheduler's clock running on from here, nothing falls due and no task runs, so what
# is measured is the idle cost alone.
FAKE_NOW = "2024-06-02T00:00:30"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _validate(env: Env) -> tuple[float, float]:
    """Wall and CPU seconds of one `dagctl validate` (its children included)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([env.exe, "validate", str(env.dags)], env=env.vars, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def many_dags(cfg: Config, backend: str) -> list[Figure]:
    count = 50 if cfg.small else 10_000
    window = 3.0 if cfg.small else 60.0
    w = "W12"
    figures: list[Figure] = []
    with workspace("w11") as work:
        env = Env(work, cfg.dbs.fresh(backend), cfg.exe)
        dags.thousand(env.dags, count, day="1")
        if backend == cfg.backends[0]:
            _validate(env)  # warm the page cache and .pyc files
            runs = [_validate(env) for _ in range(1 if cfg.small else max(1, cfg.reps // 2))]
            figures += [
                Figure(
                    w,
                    "-",
                    f"validate {count:,} DAGs x 5 tasks (wall)",
                    [r[0] for r in runs],
                    "s",
                    target=VALIDATE_TARGET_S,
                ),
                Figure(
                    w,
                    "-",
                    f"validate {count:,} DAGs x 5 tasks (CPU, all processes)",
                    [r[1] for r in runs],
                    "s",
                ),
            ]
        env.vars["DAGCTL_FAKE_NOW"] = FAKE_NOW
        env.run("db", "upgrade")
        db = Db(env.db_url)
        try:
            proc = env.schedule("--poll-interval", "1", log_name="idle")
            synced = env.wait_for(db, "SELECT count(*) FROM dag", count, timeout=600)
            time.sleep(1.0 if cfg.small else 10.0)  # the summaries, the first reloads
            cpu_before, wall_before = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(window)
            idle_pct = 100 * (cpu_seconds(proc.pid) - cpu_before) / (time.monotonic() - wall_before)
            rss, peak = rss_mb(proc.pid)
        finally:
            env.stop_all()
            db.close()
            cfg.dbs.drop(env.db_url)
    cfg.say(f"{w} {backend}: first sync {synced:.1f} s, idle {idle_pct:.2f} % of a core, RSS {rss:.0f} MB")
    return [
        *figures,
        Figure(
            w,
            backend,
            f"first sync of {count:,} DAGs (start -> rows written)",
            [synced],
            "s",
            target=FIRST_SYNC_TARGET_S,
            note="includes the process start and connecting",
        ),
        Figure(
            w,
            backend,
            f"idle scheduler, {count:,} DAGs: CPU over {window:.0f} s",
            [idle_pct],
            "%",
            target=IDLE_CPU_TARGET_PCT,
            note="% of one core: utime+stime from /proc, not wall time",
        ),
        Figure(w, backend, f"idle scheduler, {count:,} DAGs: RSS", [rss], "MB", target=RSS_TARGET_MB),
        Figure(w, backend, "idle scheduler: peak RSS (VmHWM)", [peak], "MB"),
    ]
