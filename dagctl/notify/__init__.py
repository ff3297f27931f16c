"""Alerts: channels (channels.py), the message of an event (messages.py) and the outbox
sender every scheduler runs (delivery.py). Events are written to the outbox by the store
in the transaction that changes the state they are about (a run finished, an attempt
failed and retried, an attempt reaped as lost); `rules_by_dag` tells it which ones to
write."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from dagctl.dags.model import Dag, NotifyRule


def channels_by_event(rules: Iterable[NotifyRule]) -> dict[str, tuple[str, ...]]:
    """event -> channels, from `notify:` rules."""
    events: dict[str, set[str]] = {}
    for rule in rules:
        for event in rule.events:
            events.setdefault(event, set()).update(rule.to)
    return {event: tuple(sorted(to)) for event, to in events.items()}


def rules_by_dag(dags: Mapping[str, Dag]) -> dict[str, dict[str, tuple[str, ...]]]:
    """dag -> event -> channels, from each DAG's rules (its own, then dagctl.yaml's)."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for name, dag in dags.items():
        events = channels_by_event(dag.notify)
        if events:
            out[name] = events
    return out
