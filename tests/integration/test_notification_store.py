"""The alert outbox in the store (store/notifications.py), on SQLite and PostgreSQL:
events written by the transaction that finishes a run and only by it; claims that never
hand one event to two owners; a missed deadline written once."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import datetime, timedelta

import pytest

from dagctl.notify.delivery import AlertDelivery
from dagctl.store import Store, open_store
from dagctl.store.records import AdvancePlan

T0 = datetime(2024, 5, 1, 10, 0)
RULES = {"etl": {"failure": ("hook",), "recovery": ("chat",)}}


def _finish(store: Store, run_id: int, status: str, now: datetime, *, start: bool = True) -> None:
    if start:
        with store.transaction():
            store.apply_advance(AdvancePlan(start_runs=[run_id]), now)
    with store.transaction():
        store.apply_advance(AdvancePlan(finish_runs=[(run_id, status)], alert_rules=RULES), now)


def test_finishing_a_run_writes_its_events_once(store: Store) -> None:
    failed = store.trigger("etl", {}, "test", T0, None, T0)
    _finish(store, failed, "failed", T0)
    _finish(store, failed, "failed", T0, start=False)  # another scheduler's stale plan: the run moved already
    ok = store.trigger("etl", {}, "test", T0 + timedelta(hours=1), None, T0)
    _finish(store, ok, "success", T0 + timedelta(hours=1))
    again = store.trigger("etl", {}, "test", T0 + timedelta(hours=2), None, T0)
    _finish(store, again, "success", T0 + timedelta(hours=2))  # no recovery: the last one succeeded
    other = store.trigger("quiet", {}, "test", T0, None, T0)
    _finish(store, other, "failed", T0)  # no rule for this DAG: no event
    events = sorted((n.dag_run_id, n.event, n.channels) for n in store.notifications())
    assert events == [(failed, "failure", ("hook",)), (ok, "recovery", ("chat",))]


def test_concurrent_claims_never_hand_an_event_to_two_owners(store: Store) -> None:
    ids = {store.enqueue_notification("etl", None, "test", ["hook"], T0) for _ in range(60)}
    taken: dict[str, list[int]] = {}

    def claimer(owner: str) -> None:
        own = open_store(store.url, migrate=False)
        try:
            got = taken.setdefault(owner, [])
            while batch := own.claim_notifications(owner, 3, 60):
                got += [n.id for n in batch]
        finally:
            own.close()

    threads = [threading.Thread(target=claimer, args=(f"s{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    every = [i for got in taken.values() for i in got]
    assert sorted(every) == sorted(ids)  # each once, none left


def test_a_claim_that_expires_is_taken_again_and_the_old_owner_cannot_finish(store: Store) -> None:
    event = store.enqueue_notification("etl", None, "test", ["hook"], T0)
    (first,) = store.claim_notifications("dead", 10, 0.001)
    assert first.id == event and first.attempts == 1
    (second,) = _claim_when_due(store, "alive")
    assert second.attempts == 2
    assert store.finish_notification(event, "dead", ["hook"], None, None) is False
    assert store.finish_notification(event, "alive", ["hook"], None, None) is True
    (listed,) = store.notifications()
    assert (listed.status, listed.sent_to) == ("delivered", ("hook",))


def _claim_when_due(store: Store, owner: str) -> list[object]:
    for _ in range(200):
        got = store.claim_notifications(owner, 10, 60)
        if got:
            return list(got)
        threading.Event().wait(0.01)
    raise AssertionError("the expired claim never came due")


def test_a_missed_deadline_is_written_once_whatever_the_number_of_deciders(store: Store) -> None:
    late = store.trigger("etl", {}, "test", T0, None, T0)
    store.trigger("etl", {}, "test", datetime(2999, 1, 1), None, T0)  # its deadline is far ahead

    def deadline(dag: str, slot: datetime) -> datetime:
        return slot + timedelta(hours=1)

    fired = [store.enqueue_missed_deadlines(deadline, {"etl": ["hook"]}) for _ in range(3)]
    assert fired == [[late], [], []]
    (event,) = store.notifications()
    assert (event.dag_run_id, event.event) == (late, "deadline_missed")


def _refused_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nothing listens there any more


def test_a_failing_channel_is_logged_once_not_per_event_and_events_are_retried_later(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        store.enqueue_notification("etl", None, "test", ["hook"], T0)
    delivery = AlertDelivery(store, "me")
    delivery.channels = {"hook": {"type": "webhook", "url": _refused_url()}}
    with caplog.at_level(logging.WARNING, logger="dagctl.notify"):
        assert delivery.deliver_due() == 3
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert len(caplog.records) == 1 and "alert channel hook is failing" in caplog.records[0].getMessage()
    events = store.notifications()
    assert {(n.status, n.attempts, n.sent_to) for n in events} == {("pending", 1, ())}
    assert all(n.last_error and "hook:" in n.last_error for n in events)
    assert store.failing_notifications("etl")  # what `dagctl why etl` lists
    assert delivery.deliver_due() == 0  # not due again before the retry delay


def test_a_channel_that_never_answers_times_out(store: Store) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts the connection, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        store.enqueue_notification("etl", None, "test", ["hook"], T0)
        delivery = AlertDelivery(store, "me")
        delivery.channels = {"hook": {"type": "webhook", "url": url, "timeout": 0.5}}
        assert delivery.deliver_due() == 1
    (event,) = store.notifications()
    assert event.status == "pending" and "timed out" in (event.last_error or "")


def test_notification_counts_name_every_state(store: Store) -> None:
    assert store.notification_counts() == {"pending": 0, "delivered": 0, "failed": 0}
    given_up = store.enqueue_notification("etl", None, "test", ["hook"], T0)
    store.enqueue_notification("etl", None, "test", ["hook"], T0)
    assert given_up in {n.id for n in store.claim_notifications("me", 1, 60)}
    assert store.finish_notification(given_up, "me", [], "hook: refused", None)
    assert store.notification_counts() == {"pending": 1, "delivered": 0, "failed": 1}
