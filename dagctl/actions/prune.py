"""`dagctl db prune`: delete old finished runs with their attempts and logs, and old
alert events delivered or given up."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dagctl.actions.common import store_session
from dagctl.config import Settings
from dagctl.errors import UsageError

_DURATION = re.compile(r"^\s*([0-9]+(\.[0-9]+)?\s*(s|m|h|d)\s*)+$")


def parse_age(text: str) -> float:
    """`--older-than` as seconds: 90d, 12h, 1d12h, 30m."""
    from dagctl.dags.sources import parse_duration

    if not _DURATION.match(text):
        raise UsageError(f"--older-than {text!r} is not a duration", "write e.g. --older-than 90d or 12h")
    return parse_duration(text)


def prune(
    settings: Settings,
    older_than: str,
    keep_last: int,
    dry_run: bool,
    on_batch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Delete (or count, with dry_run) the finished runs that ended more than
    `older_than` ago, keeping the `keep_last` newest finished runs of each DAG; queued
    and running runs are never touched. Returns the counts."""
    seconds = parse_age(older_than)
    with store_session(settings) as store:

        def progress(counts: Any) -> None:
            if on_batch is not None:
                on_batch(_view(counts, dry_run, seconds, keep_last))

        counts = store.prune(seconds, keep_last, dry_run=dry_run, on_batch=progress)
    return _view(counts, dry_run, seconds, keep_last)


def _view(counts: Any, dry_run: bool, seconds: float, keep_last: int) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "older_than_s": seconds,
        "keep_last": keep_last,
        "runs": counts.runs,
        "attempts": counts.attempts,
        "log_chunks": counts.log_chunks,
        "bytes": counts.bytes,
        "alerts": counts.alerts,
    }
