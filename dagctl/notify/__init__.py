"""Alerts: channels (channels.py), the message of an event (messages.py) and the outbox
sender every scheduler runs (delivery.py). Events are written to the outbox by the store
in the transaction that finishes a run; `rules_by_dag` tells it which ones to write."""

from __future__ import annotations

from collections.abc import Mapping

from dagctl.dags.model import Dag


def rules_by_dag(dags: Mapping[str, Dag]) -> dict[str, dict[str, tuple[str, ...]]]:
    """dag -> event -> channels, from each DAG's rules (its own, then dagctl.yaml's)."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, dag in dags.items():
        events: dict[str, set[str]] = {}
        for rule in dag.notify:
            for event in rule.events:
                events.setdefault(event, set()).update(rule.to)
        if events:
            out[name] = {event: tuple(sorted(to)) for event, to in events.items()}
    return out
