"""`dagctl schedule --metrics-port N`: this scheduler's own counters (iterations, claims,
loop time, attempts running) in Prometheus format, served by prometheus-client's own
small HTTP server in a daemon thread. The state database's view (runs, queue depth,
heartbeats of every scheduler) is `dagctl serve`'s /metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dagctl.errors import UsageError


@dataclass
class SchedulerStats:
    """Updated by the loop only (one thread); read by the exporter's thread."""

    iterations: int = 0
    claims: int = 0
    loop_seconds: float = 0.0
    last_loop_seconds: float = 0.0

    def loop_done(self, seconds: float) -> None:
        self.iterations += 1
        self.loop_seconds += seconds
        self.last_loop_seconds = seconds


def serve_metrics(port: int, owner: str, stats: SchedulerStats, running: Callable[[], int]) -> None:
    """Listen on every interface at `port` (the counters hold no state and no secret)."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
        from prometheus_client.registry import Collector
    except ImportError:
        raise UsageError("--metrics-port needs prometheus-client", "pip install 'dagctl[web]'") from None

    class Counters(Collector):
        def collect(self) -> Iterator[Any]:
            labels = ["scheduler"]
            iterations = CounterMetricFamily(
                "dagctl_scheduler_iterations", "Loop passes completed", labels=labels
            )
            iterations.add_metric([owner], stats.iterations)
            claims = CounterMetricFamily("dagctl_scheduler_claims", "Task attempts claimed", labels=labels)
            claims.add_metric([owner], stats.claims)
            loop = SummaryMetricFamily(
                "dagctl_scheduler_loop_seconds", "Time of each loop pass", labels=labels
            )
            loop.add_metric([owner], count_value=stats.iterations, sum_value=stats.loop_seconds)
            last = GaugeMetricFamily(
                "dagctl_scheduler_last_loop_seconds", "Time of the latest loop pass", labels=labels
            )
            last.add_metric([owner], stats.last_loop_seconds)
            busy = GaugeMetricFamily(
                "dagctl_scheduler_running_attempts", "Task attempts this scheduler runs now", labels=labels
            )
            busy.add_metric([owner], running())
            yield from (iterations, claims, loop, last, busy)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Counters())
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        raise UsageError(
            f"--metrics-port {port}: cannot listen: {exc.strerror}", "pick a free port"
        ) from None
