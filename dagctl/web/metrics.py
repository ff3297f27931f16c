"""/metrics: the state database's view in Prometheus text format, computed per scrape
with a handful of aggregate queries (actions.dashboard.metrics): runs, attempts, queue,
schedulers, alert events by state, pool slots."""

from __future__ import annotations

import logging
import threading
import time
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
        alerts = GaugeMetricFamily("dagctl_alerts", "Alert events by delivery state", labels=["state"])
        for state, count in sorted(snapshot["alerts"].items()):
            alerts.add_metric([state], count)
        yield alerts
        used = GaugeMetricFamily(
            "dagctl_pool_slots_used", "Pool slots held by running attempts", labels=["pool"]
        )
        slots = GaugeMetricFamily("dagctl_pool_slots", "Pool slots configured", labels=["pool"])
        for pool, held, size in snapshot["pools"]:
            used.add_metric([pool], held)
            slots.add_metric([pool], size)
        yield used
        yield slots


# A scrape answers from the last exposition while a newer one is computed in the
# background once it is this old: with 1,000 DAGs and 100,000 attempts the aggregates
# take 100-250 ms, longer than a page may, and a scrape every few seconds (or several
# Prometheus servers) must not run them back to back. Only scrapes cause queries.
MAX_AGE_S = 10.0


class CachedExposition:
    def __init__(self, store: Store, max_age_s: float = MAX_AGE_S) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StateCollector(store))
        self.max_age_s = max_age_s
        self._body: bytes | None = None
        self._made_at = 0.0
        self._lock = threading.Lock()
        self._refreshing = False

    def get(self) -> bytes:
        """The newest exposition: computed now on the first scrape, else the cached one,
        refreshed in a background thread once older than `max_age_s`."""
        with self._lock:
            body, stale = self._body, time.monotonic() - self._made_at > self.max_age_s
            refresh = body is not None and stale and not self._refreshing
            if refresh:
                self._refreshing = True
        if body is None:
            return self._compute()
        if refresh:
            threading.Thread(target=self._refresh, name="dagctl-metrics", daemon=True).start()
        return body

    def _compute(self) -> bytes:
        body = generate_latest(self.registry)
        with self._lock:
            self._body, self._made_at = body, time.monotonic()
        return body

    def _refresh(self) -> None:
        try:
            self._compute()
        except Exception as exc:  # the database is down: keep the last figures, try again later
            logging.getLogger("dagctl.web").warning("metrics refresh failed: %s", exc)
        finally:
            with self._lock:
                self._refreshing = False
