"""`dagctl schedule --metrics-port`: a real scheduler's own counters, scraped over HTTP
and read with prometheus_client's parser."""

from __future__ import annotations

import signal
import subprocess
import time

import httpx2 as httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.acceptance.conftest import Env
from tests.web.conftest import free_port


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_a_scheduler_counts_its_claims_iterations_and_loop_time(sqlite_env: Env) -> None:
    env = sqlite_env
    (env.root / "gates" / "all-go").touch()
    run_id = env.run("trigger", "etl").stdout.strip()
    port = free_port()
    worker = env.spawn("schedule", "--poll-interval", "0.05", "--metrics-port", str(port))
    try:
        deadline = time.monotonic() + 30
        while env.status("--run", run_id)[0]["status"] != "success":
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.1)
        samples = scrape(port)
        assert samples["dagctl_scheduler_claims_total"] == 2  # extract.sh, load.sh
        assert samples["dagctl_scheduler_iterations_total"] >= 2
        assert samples["dagctl_scheduler_loop_seconds_count"] == samples["dagctl_scheduler_iterations_total"]
        assert samples["dagctl_scheduler_loop_seconds_sum"] > 0
        assert samples["dagctl_scheduler_running_attempts"] == 0
        assert (
            scrape(port)["dagctl_scheduler_iterations_total"] >= samples["dagctl_scheduler_iterations_total"]
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()


def test_a_taken_metrics_port_is_a_one_line_usage_error(sqlite_env: Env) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = sqlite_env.run("schedule", "--once", "--metrics-port", str(port), code=2)
    assert result.stderr.count("\n") == 1 and f"--metrics-port {port}" in result.stderr
