"""`dagctl notifications` and `dagctl notify test`: the alert outbox as plain values."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from dagctl.actions.common import store_session
from dagctl.actions.views import iso
from dagctl.config import Settings
from dagctl.dags.hints import did_you_mean
from dagctl.dags.loader import load_root_config
from dagctl.dags.model import ROOT_CONFIG_FILE
from dagctl.errors import DagctlError, UsageError
from dagctl.notify.channels import Channel, ChannelError
from dagctl.notify.messages import BODY_VERSION, render_text
from dagctl.store.records import Notification

if TYPE_CHECKING:
    from dagctl.store import Store


def notification_json(event: Notification) -> dict[str, Any]:
    """The stable -o json shape of one alert event (also for the web dashboard)."""
    return {
        "id": event.id,
        "dag": event.dag_name,
        "run_id": event.dag_run_id,
        "task_run_id": event.task_run_id,  # the attempt of a retry or lost event, else null
        "event": event.event,
        "channels": list(event.channels),
        "sent_to": list(event.sent_to),
        "status": event.status,
        "attempts": event.attempts,
        "created_at": iso(event.created_at),
        "delivered_at": iso(event.delivered_at),
        "last_error": event.last_error,
    }


def list_notifications(settings: Settings, dag_name: str | None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest alert events (of `dag_name`, or of every DAG), newest first."""
    with store_session(settings) as store:
        return notifications_in(store, dag_name, limit)


def notifications_in(store: Store, dag_name: str | None, limit: int = 50) -> list[dict[str, Any]]:
    """`list_notifications` on an open store (the web dashboard keeps one)."""
    return [notification_json(n) for n in store.notifications(dag_name, limit)]


def failing_alerts(settings: Settings, dag_name: str) -> list[dict[str, Any]]:
    """`why` reasons for the alerts of `dag_name` a channel holds up."""
    with store_session(settings) as store:
        failing = store.failing_notifications(dag_name, limit=5)
    return [
        {
            "code": "alert_failing",
            "message": f"alert {n.id} ({n.event} of run {n.dag_run_id}) is {_state(n)}"
            f" after {n.attempts} attempt(s): {n.last_error}",
        }
        for n in failing
    ]


def _state(event: Notification) -> str:
    return "given up" if event.status == "failed" else "still retried"


def test_channel(settings: Settings, name: str) -> str:
    """Send a sample event through channel `name` now, outside the outbox; its type."""
    config, problems = load_root_config(settings.dags, settings.dags)
    errors = [p for p in problems if p.severity == "error"] if problems else []
    if errors:
        raise UsageError(f"{ROOT_CONFIG_FILE} has problems: {errors[0].render()}", "run dagctl validate")
    spec = config.channels.get(name)
    if spec is None:
        hint = did_you_mean(name, config.channels) or f"declare it under channels: in {ROOT_CONFIG_FILE}"
        raise UsageError(f"unknown channel {name!r}", hint)
    payload: dict[str, Any] = {
        "version": BODY_VERSION,
        "idempotency_key": f"dagctl-test-{os.getpid()}",
        "event": "test",
        "dag": None,
        "summary": f"[dagctl] test alert through channel {name}",
        "run": None,
        "tasks": [],
        "url": None,
    }
    channel = Channel(name, spec)
    try:
        channel.send(payload, render_text(payload), os.environ)
    except ChannelError as exc:
        raise DagctlError(
            f"channel {name} ({channel.kind}): {exc}", "check its settings in dagctl.yaml"
        ) from None
    return channel.kind


__all__ = ["failing_alerts", "list_notifications", "notification_json", "test_channel"]
