"""What an alert says: the versioned JSON body (webhook, command) and the text (Slack,
email) of one outbox event, read from the store when it is delivered.

Body version 1 (documented in the README): `version`, `idempotency_key` (the same for
every delivery of one event: receivers drop repeats), `event`, `dag`, `summary`, `run`
(id, kind, status, logical_date, started_at, ended_at, duration_seconds, error), `tasks`
(task, attempts, status, exit_code, error, log_tail: for `failure` the failing tasks,
for `retry` and `lost` the one attempt, `attempts` being its number), `url` (or null).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dagctl import secrets
from dagctl.config import alert_tuning
from dagctl.store import Store
from dagctl.store.records import Notification

BODY_VERSION = 1
LOG_TAIL_LINES = 20
_FAILED = {"failed", "upstream_failed", "cancelled"}
_ABOUT_AN_ATTEMPT = {"retry", "lost"}


def build_payload(store: Store, event: Notification) -> dict[str, Any]:
    run, attempts = store.run_with_attempts(event.dag_run_id) if event.dag_run_id is not None else (None, [])
    ui = alert_tuning().ui_url
    payload: dict[str, Any] = {
        "version": BODY_VERSION,
        "idempotency_key": f"dagctl-notification-{event.id}",
        "event": event.event,
        "dag": event.dag_name,
        "run": None,
        "tasks": [],
        "url": f"{ui}/runs/{event.dag_run_id}" if ui and event.dag_run_id is not None else ui,
    }
    if run is not None:
        started, ended = run.get("started_at"), run.get("ended_at")
        payload["run"] = {
            "id": run["id"],
            "kind": run["kind"],
            "status": run["status"],
            "logical_date": _iso(run["logical_date"]),
            "started_at": _iso(started),
            "ended_at": _iso(ended),
            "duration_seconds": (ended - started).total_seconds() if started and ended else None,
            # Why the run itself failed, when no task says (its DAG was deleted or broken).
            "error": secrets.mask(run["error"]) if run.get("error") else None,
        }
        if event.event == "failure":
            payload["tasks"] = _failing_tasks(store, attempts)
        elif event.event in _ABOUT_AN_ATTEMPT:
            payload["tasks"] = [_task(store, a) for a in attempts if a["id"] == event.task_run_id]
    payload["summary"] = _summary(payload)
    return payload


def _failing_tasks(store: Store, attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for attempt in attempts:  # in queue order: the last one per task wins
        last[attempt["task_name"]] = attempt
    # Tasks that failed themselves first; those that only missed a failed input after.
    failing = sorted(
        (a for a in last.values() if a["status"] in _FAILED),
        key=lambda a: (a["status"] != "failed", a["task_name"]),
    )
    return [_task(store, a) for a in failing]


def _task(store: Store, attempt: dict[str, Any]) -> dict[str, Any]:
    """One attempt as the body shows it; the log tail of one that ran (not of one that
    only missed a failed input or was cancelled before it started)."""
    ran = attempt["status"] in ("failed", "interrupted")
    return {
        "task": attempt["task_name"],
        "attempts": attempt["attempt"],
        "status": attempt["status"],
        "exit_code": attempt["exit_code"],
        "error": secrets.mask(attempt["error"]) if attempt["error"] else None,
        "log_tail": _log_tail(store, attempt["id"]) if ran else [],
    }


def _log_tail(store: Store, task_run_id: int) -> list[str]:
    text = "".join(chunk for _, chunk, _ in store.read_log(task_run_id))
    return [secrets.mask(line) for line in text.splitlines()[-LOG_TAIL_LINES:]]


def _summary(payload: dict[str, Any]) -> str:
    run = payload["run"]
    what = {
        "failure": "failed",
        "recovery": "recovered",
        "success": "succeeded",
        "deadline_missed": "missed its deadline, still not finished",
        "retry": "failed, will be retried",
        "lost": "was lost (its scheduler stopped renewing the lease), runs again",
        "test": "test alert",
    }
    head = f"[dagctl] {payload['dag']}: {what.get(payload['event'], payload['event'])}"
    if payload["event"] in _ABOUT_AN_ATTEMPT and payload["tasks"]:
        task = payload["tasks"][0]
        attempt = f"{task['task']} attempt {task['attempts']}"
        head = f"[dagctl] {payload['dag']}: {attempt} {what[payload['event']]}"
    if run is not None:
        head += f" (run {run['id']}, {run['kind']}, {run['logical_date']})"
    return head


def render_text(payload: dict[str, Any]) -> str:
    """The human message (Slack, email): the summary, then each failing task with its
    error and log tail."""
    lines = [payload["summary"]]
    run = payload["run"]
    if run is not None and run["duration_seconds"] is not None:
        lines.append(f"duration: {run['duration_seconds']:.1f} s")
    if run is not None and run["error"]:
        lines.append(f"error: {run['error']}")
    for task in payload["tasks"]:
        lines.append("")
        lines.append(
            f"{task['task']}: {task['status']} after {task['attempts']} attempt(s),"
            f" exit code {task['exit_code']}: {task['error'] or '-'}"
        )
        lines.extend(f"    {line}" for line in task["log_tail"])
    if payload["url"]:
        lines += ["", str(payload["url"])]
    return "\n".join(lines)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


__all__ = ["BODY_VERSION", "build_payload", "render_text"]
