"""/metrics: the state database's view in Prometheus text format, computed per scrape
with a handful of aggregate queries (actions.dashboard.metrics)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from dagctl.actions import dashboard
from dagctl.states import TaskStatus

if TYPE_CHECKING:
    from dagctl.store import Store


class StateCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        snapshot = dashboard.metrics(self.store)
        runs = GaugeMetricFamily("dagctl_runs", "DAG runs by DAG and status", labels=["dag", "status"])
        run_seconds = SummaryMetricFamily(
            "dagctl_run_duration_seconds", "Durations of runs that ended", labels=["dag", "status"]
        )
        for dag, status, count, total, timed in snapshot["runs"]:
            runs.add_metric([dag, status], count)
            if timed:
                run_seconds.add_metric([dag, status], count_value=timed, sum_value=total)
        attempts = GaugeMetricFamily(
            "dagctl_task_attempts", "Task attempts by DAG and status", labels=["dag", "status"]
        )
        attempt_seconds = SummaryMetricFamily(
            "dagctl_task_attempt_duration_seconds",
            "Durations of attempts that ended",
            labels=["dag", "status"],
        )
        queued = 0
        for dag, status, count, total, timed in snapshot["attempts"]:
            attempts.add_metric([dag, status], count)
            if status == TaskStatus.QUEUED.value:
                queued += count
            if timed and status not in (TaskStatus.RUNNING.value, TaskStatus.QUEUED.value):
                attempt_seconds.add_metric([dag, status], count_value=timed, sum_value=total)
        yield runs
        yield run_seconds
        yield attempts
        yield attempt_seconds
        yield GaugeMetricFamily(
            "dagctl_queue_depth", "Task attempts queued (waiting to be claimed)", value=queued
        )
        yield GaugeMetricFamily(
            "dagctl_oldest_queued_attempt_age_seconds",
            "Age of the oldest queued task attempt (0 when none)",
            value=snapshot["oldest_queued_age_s"],
        )
        beats = GaugeMetricFamily(
            "dagctl_scheduler_heartbeat_age_seconds",
            "Seconds since each running scheduler's last heartbeat",
            labels=["scheduler", "host"],
        )
        for scheduler_id, host, age in snapshot["schedulers"]:
            beats.add_metric([scheduler_id, host], age)
        yield beats


def registry_for(store: Store) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector(store))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
