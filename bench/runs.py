"""W1 chain20 and W2 fan100: trigger a run, wait for it, read its timings back.

A `dagctl schedule` process runs in the background (worker manager); each repetition
times `dagctl trigger DAG --wait` (wall, as a user sees it) and reads from the state
database the run's created_at -> ended_at and each task's started_at / ended_at.
"""

from __future__ import annotations

import statistics

from bench import dags, floor
from bench.common import Config, Db, Env, Figure, percentile, seconds, workspace

AIRFLOW_CHAIN20_S = 29.0
AIRFLOW_TASK_S = 1.25
AIRFLOW_FAN100_S = 52.0
PREFECT_END_TO_END_S = 8.6
CHAIN_FLOOR_RATIO = 1.3  # issue 18: dagctl's run wall against the bare loop's
FAN_FLOOR_RATIO = 1.5
HOP_GROWTH = 1.2  # a hop in a chain of 1,000 against one in a chain of 20
POLL_INTERVAL = "1.0"  # the default: on PostgreSQL NOTIFY wakes the loop, not the poll


def _timings(db: Db, run_id: int) -> tuple[str, float, list[tuple[str, object, object]], object]:
    status, created, ended = db.rows("SELECT status, created_at, ended_at FROM dag_run WHERE id = ?", run_id)[
        0
    ]
    tasks = db.rows(
        "SELECT task_name, started_at, ended_at FROM task_run WHERE dag_run_id = ? ORDER BY started_at, id",
        run_id,
    )
    return str(status), seconds(created, ended), [(str(t[0]), t[1], t[2]) for t in tasks], created


def _start(cfg: Config, env: Env, concurrency: int) -> Db:
    env.run("db", "upgrade")
    db = Db(env.db_url)
    env.schedule(
        "--concurrency",
        str(concurrency),
        "--poll-interval",
        POLL_INTERVAL,
        extra={"DAGCTL_BENCH_STAMPS": str(env.workdir / "stamps.txt")},
    )
    env.wait_for(db, "SELECT count(*) FROM dag", 1)
    return db


def _task_starts(env: Env, run_id: int) -> list[float]:
    """When each task of the run started, on the tasks' own clock (see dags.STAMP)."""
    path = env.workdir / "stamps.txt"
    starts = []
    for line in path.read_text().splitlines() if path.exists() else []:
        run, _, start = line.split()
        if run == str(run_id):
            starts.append(float(start))
    return sorted(starts)


def _trigger_and_wait(env: Env, dag: str) -> tuple[float, int]:
    wall, done = env.run("trigger", dag, "--wait")
    return wall, int(done.stdout.split()[0])


def chain20(cfg: Config, backend: str) -> list[Figure]:
    length = 5 if cfg.small else 20
    name = f"chain{length}"
    w = "W1"
    with workspace("w1") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        dags.chain(env.dags, name, length)
        db = _start(cfg, env, concurrency=2)
        try:
            _trigger_and_wait(env, name)  # warm-up: page cache, .pyc files, connections
            walls, runs, hop_medians, hop_p95s, pickups = [], [], [], [], []
            step_medians, step_p95s, floors, ratios = [], [], [], []
            floor.run_floor(url, 0, floor.chain_shape(length), 2)  # warm-up
            for rep in range(cfg.reps):
                wall, run_id = _trigger_and_wait(env, name)
                status, run_s, tasks, created = _timings(db, run_id)
                floors.append(floor.run_floor(url, rep + 1, floor.chain_shape(length), 2))
                ratios.append(run_s / floors[-1])
                if status != "success" or len(tasks) != length:
                    raise RuntimeError(f"{name} run {run_id} ended {status} with {len(tasks)} tasks")
                hops = [seconds(tasks[i - 1][2], tasks[i][1]) * 1000 for i in range(1, len(tasks))]
                starts = _task_starts(env, run_id)
                steps = [(starts[i] - starts[i - 1]) * 1000 for i in range(1, len(starts))]
                if len(starts) != length:
                    raise RuntimeError(f"{len(starts)} task start stamps for run {run_id}, expected {length}")
                step_medians.append(statistics.median(steps))
                step_p95s.append(percentile(steps, 0.95))
                walls.append(wall)
                runs.append(run_s)
                hop_medians.append(statistics.median(hops))
                hop_p95s.append(percentile(hops, 0.95))
                pickups.append(seconds(created, tasks[0][1]) * 1000)
                cfg.say(
                    f"{w} {backend} rep {rep + 1}: run {run_s * 1000:.0f} ms, wall {wall * 1000:.0f} ms, "
                    f"hop median {hop_medians[-1]:.1f} ms p95 {hop_p95s[-1]:.1f} ms, "
                    f"start→start median {step_medians[-1]:.1f} ms; floor {floors[-1] * 1000:.0f} ms"
                )
        finally:
            env.stop_all()
            db.close()
            cfg.dbs.drop(url)
    scale = length / 20
    return [
        Figure(
            w,
            backend,
            f"{name} run (created→ended, DB)",
            runs,
            "s",
            target=0.3 * scale,
            baselines={"Airflow": AIRFLOW_CHAIN20_S * scale},
        ),
        *_floor_figures(w, backend, name, floors, ratios, CHAIN_FLOOR_RATIO),
        Figure(
            w,
            backend,
            f"{name} trigger --wait (wall)",
            walls,
            "s",
            baselines={"Airflow": AIRFLOW_CHAIN20_S * scale, "Prefect": PREFECT_END_TO_END_S},
            note="includes the trigger process start-up and --wait's polling",
        ),
        Figure(
            w,
            backend,
            "hop median (end→next start)",
            hop_medians,
            "ms",
            target=15.0,
            baselines={"Airflow": AIRFLOW_TASK_S * 1000},
        ),
        Figure(w, backend, "hop p95", hop_p95s, "ms"),
        Figure(
            w,
            backend,
            "task start→next start median",
            step_medians,
            "ms",
            note="the tasks' own clock: a hop plus the bash start and run (~2 ms)",
        ),
        Figure(w, backend, "task start→next start p95", step_p95s, "ms"),
        Figure(
            w,
            backend,
            "pickup (created→first start)",
            pickups,
            "ms",
            note="PostgreSQL: NOTIFY wakes the scheduler; SQLite: trigger rings its doorbell",
        ),
    ]


def fan100(cfg: Config, backend: str) -> list[Figure]:
    width = 10 if cfg.small else 100
    name = f"fan{width}"
    w = "W2"
    with workspace("w2") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        dags.fan(env.dags, name, width)
        db = _start(cfg, env, concurrency=2)
        try:
            _trigger_and_wait(env, name)
            runs, walls, floors, ratios = [], [], [], []
            floor.run_floor(url, 0, floor.fan_shape(width), 2)  # warm-up
            for rep in range(cfg.reps):
                wall, run_id = _trigger_and_wait(env, name)
                status, run_s, tasks, _ = _timings(db, run_id)
                floors.append(floor.run_floor(url, rep + 1, floor.fan_shape(width), 2))
                ratios.append(run_s / floors[-1])
                if status != "success" or len(tasks) != width + 2:
                    raise RuntimeError(f"{name} run {run_id} ended {status} with {len(tasks)} tasks")
                runs.append(run_s)
                walls.append(wall)
                cfg.say(
                    f"{w} {backend} rep {rep + 1}: run {run_s * 1000:.0f} ms, wall {wall * 1000:.0f} ms, "
                    f"floor {floors[-1] * 1000:.0f} ms"
                )
        finally:
            env.stop_all()
            db.close()
            cfg.dbs.drop(url)
    scale = (width + 2) / 102
    return [
        Figure(
            w,
            backend,
            f"1→{width}→1 run, --concurrency 2 (DB)",
            runs,
            "s",
            target=1.0 * scale,
            baselines={"Airflow": AIRFLOW_FAN100_S * scale},
        ),
        *_floor_figures(w, backend, f"1→{width}→1", floors, ratios, FAN_FLOOR_RATIO),
        Figure(w, backend, f"1→{width}→1 trigger --wait (wall)", walls, "s"),
    ]


def _floor_figures(
    w: str, backend: str, name: str, floors: list[float], ratios: list[float], target: float
) -> list[Figure]:
    return [
        Figure(
            w,
            backend,
            f"{name} floor loop run (bench/floor.py)",
            floors,
            "s",
            note="claim -> spawn bash -> wait -> finish -> commit, same database, concurrency 2",
        ),
        Figure(w, backend, f"{name} run / floor, same rep", ratios, "x", target=target),
    ]


def chain1000(cfg: Config, backend: str) -> list[Figure]:
    """W14: hop cost (first task start -> last task end, per hop) in a chain of 1,000 against a chain of 20,
    both DAGs on one scheduler, each rep running both; the floor loop likewise."""
    long, short = (100, 20) if cfg.small else (1000, 20)
    reps = max(1, min(cfg.reps, 3))
    w = "W14"
    with workspace("w14") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        dags.chain(env.dags, f"chain{long}", long)
        dags.chain(env.dags, f"chain{short}", short)
        db = _start(cfg, env, concurrency=2)
        env.wait_for(db, "SELECT count(*) FROM dag", 2)
        hop_long, hop_short, ratios, floor_ratios = [], [], [], []
        try:
            _trigger_and_wait(env, f"chain{short}")  # warm-up
            for rep in range(reps):
                per_hop = []
                for length in (long, short):
                    _, run_id = _trigger_and_wait(env, f"chain{length}")
                    status, _, tasks, _ = _timings(db, run_id)
                    if status != "success" or len(tasks) != length:
                        raise RuntimeError(
                            f"chain{length} run {run_id} ended {status} with {len(tasks)} tasks"
                        )
                    # First start -> last end: the run's pickup and its own finish,
                    # paid once per run, would weigh 50 times more in the short chain.
                    per_hop.append(seconds(tasks[0][1], tasks[-1][2]) / (length - 1) * 1000)
                hop_long.append(per_hop[0])
                hop_short.append(per_hop[1])
                ratios.append(per_hop[0] / per_hop[1])
                floor_long = floor.run_floor(url, 2 * rep + 1, floor.chain_shape(long), 2) / long
                floor_short = floor.run_floor(url, 2 * rep + 2, floor.chain_shape(short), 2) / short
                floor_ratios.append(floor_long / floor_short)
                cfg.say(
                    f"{w} {backend} rep {rep + 1}: hop {per_hop[0]:.1f} ms in chain{long}, "
                    f"{per_hop[1]:.1f} ms in chain{short} ({ratios[-1]:.2f}x); "
                    f"floor {floor_long * 1000:.1f} / {floor_short * 1000:.1f} ms"
                )
        finally:
            env.stop_all()
            db.close()
            cfg.dbs.drop(url)
    return [
        Figure(w, backend, f"hop cost in chain{long} (first start→last end / hops)", hop_long, "ms"),
        Figure(w, backend, f"hop cost in chain{short} (first start→last end / hops)", hop_short, "ms"),
        Figure(w, backend, f"hop cost chain{long} / chain{short}", ratios, "x", target=HOP_GROWTH),
        Figure(w, backend, f"floor loop hop chain{long} / chain{short}", floor_ratios, "x"),
    ]


__all__ = ["chain20", "chain1000", "fan100"]
