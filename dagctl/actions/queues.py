"""`dagctl queues`: every work queue with its waiting and running attempts and the live
schedulers that serve it (a queue nobody serves is where attempts wait for ever)."""

from __future__ import annotations

from typing import Any

from dagctl.actions.common import now, stale_after_s, store_session
from dagctl.actions.views import queue_json
from dagctl.config import Settings


def queues(settings: Settings) -> list[dict[str, Any]]:
    with store_session(settings) as store:
        usage = store.queue_usage(stale_after_s())
    at = now()
    return [queue_json(item, at) for item in usage]


__all__ = ["queues"]
