"""W10 alerts.

Latency: N runs of a one-task DAG whose task exits 1 (retries 0) are queued; one
`dagctl schedule` runs them; a webhook receiver on loopback stamps each arrival. The
latency of an event = its arrival (this host's clock) - the run's `ended_at` (the same
host's clock, written in the transaction that wrote the event). Median and p95.

Loop time: an in-process Scheduler iterating over an idle DAGs folder (`run_once`),
first with no alert pending, then with 1,000 pending events whose channel answers each
post after 20 ms, so that its delivery thread is busy all along: the median iteration
time of each (what delivery costs the loop; it never waits for a send).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.common import Config, Db, Env, Figure, percentile, ts, workspace

FAILING = "description: fails\nretries: 0\nmax_active_runs: 50\n"


class _Receiver:
    def __init__(self, delay: float = 0.0) -> None:
        self.arrivals: dict[int, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.arrivals.setdefault(body["run"]["id"] if body["run"] else -1, time.time())
                time.sleep(delay)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _config(dags: Path, url: str) -> None:
    (dags / "dagctl.yaml").write_text(
        f"channels:\n  hook: {{type: webhook, url: '{url}'}}\n"
        "notify:\n  - events: [failure]\n    to: [hook]\n"
    )


def _latencies(cfg: Config, backend: str, runs: int) -> list[float]:
    receiver = _Receiver()
    try:
        with workspace("w9") as work:
            url = cfg.dbs.fresh(backend)
            env = Env(work, url, cfg.exe)
            _config(env.dags, receiver.url)
            env.write_dag("fails", FAILING, {"boom.sh": "exit 1\n"})
            env.run("db", "upgrade")
            for _ in range(runs):
                env.run("trigger", "fails")
            env.schedule("--concurrency", "4", "--poll-interval", "0.05")
            deadline = time.monotonic() + 120
            while len(receiver.arrivals) < runs and time.monotonic() < deadline:
                time.sleep(0.05)
            env.stop_all()
            db = Db(url)
            try:
                ended = {int(i): ts(e) for i, e in db.rows("SELECT id, ended_at FROM dag_run")}
            finally:
                db.close()
            cfg.dbs.drop(url)
    finally:
        receiver.close()
    return [
        at - ended[run].replace(tzinfo=timezone.utc).timestamp()
        for run, at in receiver.arrivals.items()
        if run in ended
    ]


def _loop_times(cfg: Config, backend: str, pending: int, iterations: int) -> list[float]:
    from dagctl.managers.worker import WorkerManager
    from dagctl.scheduling.scheduler import Scheduler, SchedulerOptions
    from dagctl.store import open_store

    receiver = _Receiver(delay=0.02)
    try:
        with workspace("w9loop") as work:
            url = cfg.dbs.fresh(backend)
            dags = work / "dags"
            (dags / "idle").mkdir(parents=True)
            (dags / "idle" / "workflow.yaml").write_text("description: idle\n")
            (dags / "idle" / "a.yaml").write_text("type: no_op\n")
            _config(dags, receiver.url)
            store = open_store(url, migrate=True)
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            for _ in range(pending):
                store.enqueue_notification("idle", None, "test", ["hook"], now)
            scheduler = Scheduler(store, dags, WorkerManager(concurrency=2), SchedulerOptions(concurrency=2))
            scheduler._alerts.start()  # as run() does: the delivery thread, its own connection
            times = []
            for _ in range(iterations):
                began = time.perf_counter()
                scheduler.run_once(datetime.now(timezone.utc).replace(tzinfo=None))
                times.append(time.perf_counter() - began)
                time.sleep(0.01)
            left = store.pending_notification_count()
            scheduler._alerts.stop(0.0)
            store.close()
            cfg.dbs.drop(url)
            if pending and left == 0:
                cfg.say("warning: every pending event was delivered before the loop was measured")
    finally:
        receiver.close()
    return times


def alerts(cfg: Config, backend: str) -> list[Figure]:
    runs = 10 if cfg.small else 50
    latencies = []
    for _ in range(cfg.reps if not cfg.small else 1):
        latencies += _latencies(cfg, backend, runs)
    iterations = 20 if cfg.small else 100
    quiet = _loop_times(cfg, backend, 0, iterations)
    busy = _loop_times(cfg, backend, 1000, iterations)
    median_quiet = statistics.median(quiet) * 1000
    return [
        Figure(
            "W10", backend, f"failure -> webhook latency, median ({len(latencies)} events)", latencies, "s"
        ),
        Figure(
            "W10",
            backend,
            "failure -> webhook latency, p95",
            [percentile(latencies, 0.95)],
            "s",
            target=2.0,
        ),
        Figure(
            "W10",
            backend,
            "scheduler loop (run_once), 1,000 alerts pending",
            [t * 1000 for t in busy],
            "ms",
            baselines={"no alert pending": median_quiet},
        ),
    ]
