"""The sections of dagctl.yaml and workflow.yaml read into the model once the schema
check has passed (so their shapes are known): notify rules, pools, queues, retention."""

from __future__ import annotations

from typing import Any

from dagctl.dags.model import NotifyRule, Pool, Retention
from dagctl.dags.sources import parse_duration


def notify_rules(raw: Any) -> tuple[NotifyRule, ...]:
    return tuple(
        NotifyRule(tuple(str(e) for e in r["events"]), tuple(str(c) for c in r["to"]))
        for r in raw or ()
        if isinstance(r, dict)
    )


def pools(raw: Any) -> dict[str, Pool]:
    specs = {name: v if isinstance(v, dict) else {"slots": v} for name, v in (raw or {}).items()}
    return {name: Pool(name, int(s["slots"]), str(s.get("description") or "")) for name, s in specs.items()}


def queues(raw: Any) -> dict[str, str]:
    return {str(name): str((value or {}).get("description") or "") for name, value in (raw or {}).items()}


def queue_limits(raw: Any) -> dict[str, int]:
    """{queue: limit} of the queues with a `limit:` (at most that many attempts of the
    queue running at once, across every scheduler)."""
    return {
        str(name): int(value["limit"])
        for name, value in (raw or {}).items()
        if isinstance(value, dict) and value.get("limit") is not None
    }


def retention(raw: Any) -> Retention | None:
    ok = isinstance(raw, dict) and "older_than" in raw
    return Retention(parse_duration(raw["older_than"]), int(raw.get("keep_last") or 0)) if ok else None
