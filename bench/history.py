"""W7 backfill and W8 prune: run history at scale.

W7: `dagctl backfill` of 1,000 hourly slots of a DAG of two no_op tasks (a -> b) with
a templated param: the CLI's wall time to create the runs (start-up included), then
two `dagctl schedule` processes run them (`--max-active-runs 50`); runs/s = runs /
(last run ended - first run started), from the database; attempts claimed twice are
counted by a trigger of the harness (as in W4).

W8: `dagctl db prune --older-than 30d` of 100,000 old attempts (20,000 finished runs
of 5 attempts, one 200-character log chunk each) next to 1,000 recent runs it must
keep: its wall time and its peak RSS (ru_maxrss of a wrapper whose only child is the
prune).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta

from bench.common import Config, Db, Env, Figure, after_bulk_insert, seconds, workspace
from bench.throughput import _AUDIT_POSTGRES, _AUDIT_SQLITE

BACKFILL_DAG = """
description: hourly, two no_op tasks
schedule: "0 * * * *"
timezone: UTC
retries: 0
params:
  hour: {type: string, default: "{{ logical_date | strftime('%Y-%m-%dT%H') }}"}
"""


def _backfill_once(cfg: Config, backend: str, slots: int) -> tuple[float, float, int]:
    """(seconds to create, runs/s completed, attempts claimed twice)."""
    start = datetime(2024, 1, 1)
    end = start + timedelta(hours=slots - 1)
    with workspace("w7") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        env.write_dag(
            "bf", BACKFILL_DAG, {"a.yaml": "type: no_op\n", "b.yaml": "type: no_op\ninputs: [a.yaml]\n"}
        )
        env.run("db", "upgrade")
        db = Db(url)
        try:
            db.execute_script(_AUDIT_SQLITE, _AUDIT_POSTGRES)
            created_s, done = env.run(
                "backfill",
                "bf",
                "--start",
                start.isoformat(timespec="minutes"),
                "--end",
                end.isoformat(timespec="minutes"),
                "--max-active-runs",
                "50",
                "-o",
                "json",
            )
            result = json.loads(done.stdout)
            if result["created"] != slots:
                raise RuntimeError(f"backfill created {result['created']} runs, expected {slots}")
            for _ in range(2):
                env.schedule("--concurrency", "100", "--poll-interval", "1")
            env.wait_for(
                db, "SELECT count(*) FROM dag_run WHERE status = 'success'", slots, timeout=900, interval=0.05
            )
            first, last = db.rows("SELECT min(started_at), max(ended_at) FROM dag_run")[0]
            claims, distinct = db.rows("SELECT count(*), count(DISTINCT task_run_id) FROM bench_claims")[0]
            attempts = db.value("SELECT count(*) FROM task_run")
        finally:
            env.stop_all()
            db.close()
            cfg.dbs.drop(url)
    if attempts != 2 * slots:
        raise RuntimeError(f"{attempts} attempts for {2 * slots} task runs")
    return created_s, slots / max(seconds(first, last), 1e-6), int(claims) - int(distinct)


def backfill(cfg: Config, backend: str) -> list[Figure]:
    slots = 50 if cfg.small else 1000
    created, rates, duplicates = [], [], []
    for rep in range(cfg.reps):
        made, rate, dup = _backfill_once(cfg, backend, slots)
        created.append(made)
        rates.append(rate)
        duplicates.append(float(dup))
        cfg.say(f"W7 {backend} rep {rep + 1}: created in {made:.2f} s, {rate:,.1f} runs/s, {dup} duplicates")
    return [
        Figure("W7", backend, f"backfill {slots:,} slots: create (CLI wall)", created, "s"),
        Figure(
            "W7",
            backend,
            f"backfill {slots:,} runs of 2 no_op tasks, 2 schedulers",
            rates,
            "/s",
            higher_is_better=True,
            note="--max-active-runs 50; first run start -> last run end",
        ),
        Figure("W7", backend, "backfill attempts claimed twice", duplicates, "count", target=0.0),
    ]


def _fill_history(url: str, runs: int, attempts_per_run: int, recent: int) -> None:
    """Old finished runs with attempts and logs, plus recent ones, inserted in bulk."""
    from sqlalchemy import insert

    from dagctl.store import open_store
    from dagctl.store.tables import dag_run, task_log, task_run

    store = open_store(url, migrate=False)
    old = datetime(2020, 1, 1)
    now = datetime.now().replace(microsecond=0)
    try:
        with store.engine.begin() as connection:
            run_rows = [
                {
                    "id": i + 1,
                    "dag_name": f"d{i % 10}",
                    "kind": "scheduled",
                    "creator": "bench",
                    "logical_date": (old if i < runs else now) + timedelta(minutes=i),
                    "params": '{"date": "2020-01-01"}',
                    "status": "success",
                    "dirty": False,
                    "created_at": old if i < runs else now,
                    "ended_at": old if i < runs else now,
                }
                for i in range(runs + recent)
            ]
            connection.execute(insert(dag_run), run_rows)
            attempt_rows, log_rows = [], []
            for i in range(runs + recent):
                for a in range(attempts_per_run):
                    task_run_id = i * attempts_per_run + a + 1
                    attempt_rows.append(
                        {
                            "id": task_run_id,
                            "dag_run_id": i + 1,
                            "dag_name": f"d{i % 10}",
                            "task_name": f"t{a}.sh",
                            "attempt": 1,
                            "status": "success",
                            "not_before": old,
                            "queued_at": old,
                            "ended_at": old,
                        }
                    )
                    log_rows.append(
                        {"task_run_id": task_run_id, "seq": 1, "text": "x" * 200, "created_at": old}
                    )
            for chunk in range(0, len(attempt_rows), 20_000):
                connection.execute(insert(task_run), attempt_rows[chunk : chunk + 20_000])
                connection.execute(insert(task_log), log_rows[chunk : chunk + 20_000])
        after_bulk_insert(store)
    finally:
        store.close()


_PEAK = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "print(done.stdout)\n"
)


def _prune_once(cfg: Config, backend: str, runs: int) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, attempts deleted)."""
    attempts_per_run, recent = 5, 1000 if not cfg.small else 20
    with workspace("w8") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        env.run("db", "upgrade")
        _fill_history(url, runs, attempts_per_run, recent)
        db = Db(url)
        try:
            began = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _PEAK, cfg.exe, "db", "prune", "--older-than", "30d", "-o", "json"],
                env=env.vars,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            wall = time.perf_counter() - began
            head, _, body = done.stdout.partition("\n")
            code, peak_kb = (int(x) for x in head.split())
            if code != 0:
                raise RuntimeError(f"dagctl db prune exited {code}: {done.stderr[-2000:]}")
            result = json.loads(body)
            left = db.value("SELECT count(*) FROM task_run")
        finally:
            db.close()
            cfg.dbs.drop(url)
    if result["attempts"] != runs * attempts_per_run or left != recent * attempts_per_run:
        raise RuntimeError(f"prune reported {result['attempts']} attempts and left {left}")
    return wall, peak_kb / 1024, int(result["attempts"])


def prune(cfg: Config, backend: str) -> list[Figure]:
    runs = 200 if cfg.small else 20_000
    walls, peaks = [], []
    attempts = 0
    for rep in range(cfg.reps):
        wall, peak, attempts = _prune_once(cfg, backend, runs)
        walls.append(wall)
        peaks.append(peak)
        cfg.say(f"W8 {backend} rep {rep + 1}: {attempts:,} attempts in {wall:.2f} s, peak {peak:.0f} MB")
    return [
        Figure("W8", backend, f"db prune {attempts:,} attempts (CLI wall)", walls, "s"),
        Figure("W8", backend, f"db prune {attempts:,} attempts: peak RSS", peaks, "MB"),
    ]
