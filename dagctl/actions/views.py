"""The stable JSON shapes of `-o json` (documented in the README): one place builds
each, so the terminal, `--watch` and the Python API agree."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dagctl.dags.cron import utcnow
from dagctl.states import UNCOUNTED_TASK_VALUES

if TYPE_CHECKING:  # importing the records costs `status` and `trigger --wait` ~10 ms
    from dagctl.store.records import PoolUsage, QueueUsage


def iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None:
        return None
    return round(((end or utcnow()) - start).total_seconds(), 3)


MASK = "***"


def masked_params(raw: str | None, secrets: Collection[str] | None) -> dict[str, Any]:
    """A run's params with the values of secret params masked; every value masked when
    the secret ones are unknown (`secrets` None: its DAG cannot be loaded now)."""
    try:
        params = json.loads(raw or "{}")
    except ValueError:
        return {}
    if not isinstance(params, dict):
        return {}
    return {k: MASK if secrets is None or k in secrets else v for k, v in params.items()}


def run_json(
    run: Mapping[str, Any], attempts: list[dict[str, Any]], secrets: Collection[str] | None = None
) -> dict[str, Any]:
    latest: dict[str, dict[str, Any]] = {}
    interrupted: dict[str, list[dict[str, Any]]] = {}
    for attempt in attempts:
        if attempt["task_name"] not in latest or attempt["attempt"] > latest[attempt["task_name"]]["attempt"]:
            latest[attempt["task_name"]] = attempt
        if attempt["status"] in UNCOUNTED_TASK_VALUES:
            interrupted.setdefault(attempt["task_name"], []).append(
                {"attempt": attempt["attempt"], "error": attempt["error"]}
            )
    return {
        "id": run["id"],
        "dag": run["dag_name"],
        "kind": run["kind"],
        "creator": run["creator"],
        "status": run["status"],
        "error": run["error"],
        "logical_date": iso(run["logical_date"]),
        "data_interval_start": iso(run.get("data_interval_start") or run["logical_date"]),
        "data_interval_end": iso(run.get("data_interval_end") or run["logical_date"]),
        "backfill_id": run.get("backfill_id"),
        "parent_run_id": run.get("parent_run_id"),
        "params": masked_params(run.get("params"), secrets),
        "created_at": iso(run["created_at"]),
        "started_at": iso(run["started_at"]),
        "ended_at": iso(run["ended_at"]),
        "duration_s": seconds(run["started_at"], run["ended_at"]),
        "tasks": [
            {
                "task": a["task_name"],
                "status": a["status"],
                "attempt": a["attempt"],
                "exit_code": a["exit_code"],
                "error": a["error"],
                "host": a["host"],
                "started_at": iso(a["started_at"]),
                "ended_at": iso(a["ended_at"]),
                "duration_s": seconds(a["started_at"], a["ended_at"]) if a["started_at"] else None,
                "outputs": stored_outputs(a.get("outputs")),
                "child_run_id": a.get("child_run_id"),  # a `dag` task's child run
                # Earlier attempts stopped by their scheduler, run again without
                # counting against retries.
                "interrupted": sorted(interrupted.get(a["task_name"], []), key=lambda i: i["attempt"]),
            }
            for a in latest.values()
        ],
    }


def attempt_json(attempt: Mapping[str, Any], text: str, truncated: int) -> dict[str, Any]:
    return {
        "task": attempt["task_name"],
        "attempt": attempt["attempt"],
        "status": attempt["status"],
        "exit_code": attempt["exit_code"],
        "error": attempt["error"],
        "started_at": iso(attempt["started_at"]),
        "ended_at": iso(attempt["ended_at"]),
        "log": text,
        "truncated_bytes": truncated,
        "outputs": stored_outputs(attempt.get("outputs")),
    }


def pool_json(usage: PoolUsage, now: datetime) -> dict[str, Any]:
    """`dagctl pools -o json`, one pool (stable)."""
    oldest = usage.oldest_waiting_since
    return {
        "pool": usage.name,
        "slots": usage.slots,
        "used": usage.used,
        "free": max(0, usage.slots - usage.used),
        "description": usage.description,
        "running": [
            {"dag": h.dag_name, "task": h.task_name, "run_id": h.dag_run_id, "slots": h.slots}
            for h in usage.holders
        ],
        "waiting": usage.waiting,
        "oldest_waiting_since": iso(oldest),
        "oldest_wait_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
    }


def queue_json(usage: QueueUsage, now: datetime) -> dict[str, Any]:
    """`dagctl queues -o json`, one queue (stable)."""
    oldest = usage.oldest_waiting_since
    return {
        "queue": usage.name,
        "waiting": usage.waiting,
        "oldest_waiting_since": iso(oldest),
        "oldest_wait_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
        "running": usage.running,
        "served_by": list(usage.served_by),
        "paused": usage.paused,
        "limit": usage.limit,
    }


def stored_outputs(raw: str | None) -> dict[str, Any] | None:
    """An attempt's stored outputs (JSON text) as an object; None when it published none."""
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
