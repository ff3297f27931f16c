"""W9 web: every page and API call of `dagctl serve` with 1,000 DAGs and 100,000 task
attempts (20,000 finished runs of 5 attempts, one 200-character log chunk each).

A real `dagctl serve` on loopback; each URL is fetched once to warm up (the DAGs folder
is loaded once per DAGCTL_RELOAD_SECONDS), then `REQUESTS` times in a row; the figure is
each request's wall time as the client sees it (connection kept alive), in ms."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import datetime, timedelta

from bench.common import Config, Env, Figure, after_bulk_insert, workspace

DAGS = 1000
RUNS_PER_DAG = 20
TASKS = 5
REQUESTS = 20
TARGET_MS = 100.0

WORKFLOW = """
description: web bench DAG
schedule: "{minute} * * * *"
timezone: Europe/Paris
params:
  limit: {{type: integer, default: 10}}
"""


def _write_dags(env: Env, count: int) -> None:
    for d in range(count):
        tasks = {"t0.yaml": "type: no_op\n"}
        for t in range(1, TASKS):
            tasks[f"t{t}.yaml"] = f"type: no_op\ninputs: [t{t - 1}.yaml]\n"
        env.write_dag(f"dag{d:04d}", WORKFLOW.format(minute=d % 60), tasks)


def _fill(url: str, dags: int, runs_per_dag: int) -> None:
    from sqlalchemy import insert

    from dagctl.store import open_store
    from dagctl.store.tables import dag, dag_run, task_log, task_run

    store = open_store(url, migrate=False)
    start = datetime(2026, 1, 1)
    try:
        with store.engine.begin() as connection:
            connection.execute(
                insert(dag),
                [
                    {
                        "name": f"dag{d:04d}",
                        "paused": d % 50 == 0,
                        "first_seen_at": start,
                        "updated_at": start,
                    }
                    for d in range(dags)
                ],
            )
            runs, attempts, logs = [], [], []
            for i in range(dags * runs_per_dag):
                name = f"dag{i % dags:04d}"
                begun = start + timedelta(minutes=i)
                status = "failed" if i % 17 == 0 else "success"
                runs.append(
                    {
                        "id": i + 1,
                        "dag_name": name,
                        "kind": "scheduled",
                        "creator": "bench",
                        "logical_date": begun,
                        "params": '{"limit": 10}',
                        "status": status,
                        "dirty": False,
                        "created_at": begun,
                        "started_at": begun,
                        "ended_at": begun + timedelta(seconds=TASKS),
                    }
                )
                for t in range(TASKS):
                    task_run_id = i * TASKS + t + 1
                    attempts.append(
                        {
                            "id": task_run_id,
                            "dag_run_id": i + 1,
                            "dag_name": name,
                            "task_name": f"t{t}.yaml",
                            "attempt": 1,
                            "status": "failed" if status == "failed" and t == TASKS - 1 else "success",
                            "not_before": begun,
                            "queued_at": begun + timedelta(seconds=t),
                            "started_at": begun + timedelta(seconds=t),
                            "ended_at": begun + timedelta(seconds=t + 1),
                            "exit_code": 0,
                        }
                    )
                    logs.append(
                        {"task_run_id": task_run_id, "seq": 1, "text": "x" * 200, "created_at": begun}
                    )
            connection.execute(insert(dag_run), runs)
            for chunk in range(0, len(attempts), 20_000):
                connection.execute(insert(task_run), attempts[chunk : chunk + 20_000])
                connection.execute(insert(task_log), logs[chunk : chunk + 20_000])
        after_bulk_insert(store)
    finally:
        store.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def web(cfg: Config, backend: str) -> list[Figure]:
    import httpx2 as httpx

    dags = 20 if cfg.small else DAGS
    with workspace("w9") as work:
        url = cfg.dbs.fresh(backend)
        env = Env(work, url, cfg.exe)
        env.run("db", "upgrade")
        _write_dags(env, dags)
        _fill(url, dags, RUNS_PER_DAG)
        last_run = dags * RUNS_PER_DAG
        middle = f"dag{dags // 2:04d}"
        paths = {
            "DAGs page 1": "/",
            "DAGs page 10": f"/?page={min(10, max(1, dags // 50))}",
            "DAG page": f"/dags/{middle}",
            "DAG page, failed runs": f"/dags/{middle}?status=failed",
            "run page": f"/runs/{last_run}",
            "run fragment (live poll)": f"/runs/{last_run}?fragment=live",
            "schedulers page": "/schedulers",
            "API dags": "/api/v1/dags?limit=50",
            "API dag": f"/api/v1/dags/{middle}",
            "API run": f"/api/v1/runs/{last_run}",
            "API logs": f"/api/v1/runs/{last_run}/logs",
            "/metrics": "/metrics",
            "/healthz": "/healthz",
        }
        port = _free_port()
        server = subprocess.Popen(
            [cfg.exe, "serve", "--port", str(port)],
            env={**env.vars, "DAGCTL_RELOAD_SECONDS": "3600"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        samples: dict[str, list[float]] = {label: [] for label in paths}
        cold_samples: list[float] = []
        computed: list[float] = []
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=60) as http:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if http.get("/healthz").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("dagctl serve did not start")
                    time.sleep(0.1)
                began = time.perf_counter()
                first = http.get("/")
                cold = time.perf_counter() - began
                cfg.say(f"W9 {backend}: first DAGs page (loads {dags} DAG folders) {cold:.2f} s")
                cold_samples.append(cold * 1000)
                for label, path in paths.items():
                    t0 = time.perf_counter()
                    if http.get(path).status_code != 200 or first.status_code != 200:
                        raise RuntimeError(f"{path} did not answer 200")
                    if path == "/metrics":  # the first scrape computes; later ones are cached
                        computed.append((time.perf_counter() - t0) * 1000)
                    for _ in range(REQUESTS * cfg.reps):
                        t0 = time.perf_counter()
                        answer = http.get(path)
                        samples[label].append((time.perf_counter() - t0) * 1000)
                        if answer.status_code != 200:
                            raise RuntimeError(f"{path} answered {answer.status_code}")
        finally:
            server.terminate()
            server.wait(timeout=10)
            cfg.dbs.drop(url)
    size = f"{dags:,} DAGs, {dags * RUNS_PER_DAG * TASKS:,} attempts"
    return [
        Figure("W9", backend, f"first DAGs page after start ({size}; loads the folders)", cold_samples, "ms"),
        Figure("W9", backend, f"/metrics computed on a cache miss ({size})", computed, "ms"),
    ] + [
        Figure("W9", backend, f"{label} ({size})", values, "ms", target=TARGET_MS)
        for label, values in samples.items()
    ]
