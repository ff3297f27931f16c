"""`dagctl queues`: every work queue with its waiting and running attempts and the live
schedulers that serve it (a queue nobody serves is where attempts wait for ever)."""

from __future__ import annotations

from typing import Any

from dagctl.actions.common import now, stale_after_s, store_session
from dagctl.actions.views import queue_json
from dagctl.config import Settings
from dagctl.dags.hints import did_you_mean
from dagctl.dags.loader import load_root_config
from dagctl.dags.model import DEFAULT_QUEUE
from dagctl.errors import UsageError


def queues(settings: Settings) -> list[dict[str, Any]]:
    with store_session(settings) as store:
        usage = store.queue_usage(stale_after_s())
    at = now()
    return [queue_json(item, at) for item in usage]


def set_queue_paused(settings: Settings, name: str, paused: bool) -> dict[str, Any]:
    """`dagctl queue pause|unpause NAME`: `default` or a queue of dagctl.yaml's `queues:`."""
    config, _ = load_root_config(settings.dags, settings.dags)
    known = {DEFAULT_QUEUE, *config.queues}
    if name not in known:
        hint = did_you_mean(name, known)
        fix = hint or f"declare it under queues: in {settings.dags / 'dagctl.yaml'}"
        raise UsageError(f"no work queue {name!r} ({fix}; known: {', '.join(sorted(known))})")
    with store_session(settings) as store:
        changed = store.set_queue_paused(name, paused, now())
    return {"queue": name, "paused": paused, "changed": changed}


__all__ = ["queues", "set_queue_paused"]
