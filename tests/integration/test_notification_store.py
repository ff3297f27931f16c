"""The alert outbox in the store (store/notifications.py), on SQLite and PostgreSQL:
events written by the transaction that finishes a run (or fails and retries an attempt,
or reaps it as lost, or fails a run whose DAG is gone) and only by it; claims that
never hand one event to two owners; a missed deadline written once."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dagctl.notify.delivery import AlertDelivery
from dagctl.notify.messages import build_payload
from dagctl.scheduling.planner import NewTaskRun
from dagctl.store import FinishedAttempt, Store, open_store
from dagctl.store.attempts import LOST
from dagctl.store.records import AdvancePlan
from tests.integration.test_scheduler_loop import Loop

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


ATTEMPT_RULES = {"etl": {"retry": ("hook",), "lost": ("chat",), "failure": ("hook",)}}


def test_a_retried_failure_and_a_lost_attempt_each_write_one_event_about_that_attempt(store: Store) -> None:
    run_id = store.trigger("etl", {}, "test", T0, None, T0)
    with store.transaction():
        plan = AdvancePlan(start_runs=[run_id], new_task_runs=[NewTaskRun(run_id, "etl", "a.sh", "queued")])
        store.apply_advance(plan, T0)
    [first] = store.claim("me", 5, 30, T0)
    failed = FinishedAttempt(first.task_run_id, "failed", 3, "exit code 3", 0.0, "one\ntwo\n")
    assert store.finish("me", [failed], T0, alert_rules=ATTEMPT_RULES) == 1
    [second] = store.claim("dead", 5, -1, T0)  # its lease has run out already
    assert len(store.reap_expired(T0, alert_rules=ATTEMPT_RULES)) == 1
    [third] = store.claim("me", 5, 30, T0)
    last = FinishedAttempt(third.task_run_id, "failed", 3, "exit code 3", None)  # no retry left
    assert store.finish("me", [last], T0, alert_rules=ATTEMPT_RULES) == 1
    events = sorted((n.event, n.task_run_id, n.channels) for n in store.notifications())
    assert events == [("lost", second.task_run_id, ("chat",)), ("retry", first.task_run_id, ("hook",))]
    retry = next(n for n in store.notifications() if n.event == "retry")
    payload = build_payload(store, retry)
    assert payload["tasks"] == [
        {
            "task": "a.sh",
            "attempts": 1,
            "status": "failed",
            "exit_code": 3,
            "error": "exit code 3",
            "log_tail": ["one", "two"],
        }
    ]
    assert "etl: a.sh attempt 1 failed, will be retried" in payload["summary"]
    lost = build_payload(store, next(n for n in store.notifications() if n.event == "lost"))
    assert [(t["attempts"], t["status"], t["error"]) for t in lost["tasks"]] == [(2, "interrupted", LOST)]
    assert "etl: a.sh attempt 2 was lost" in lost["summary"]


def test_a_run_failed_because_its_dag_is_gone_writes_its_failure_event(store: Store) -> None:
    store.sync_dags({"etl": "f1"}, T0)
    run_id = store.trigger("etl", {}, "test", T0, "f1", T0)
    with store.transaction():
        store.apply_advance(AdvancePlan(start_runs=[run_id]), T0)
    reason = "DAG etl is no longer in the DAGs folder (deleted or renamed)"
    store.mark_missing_dags({"etl": reason}, [], T0)
    assert store.fail_orphaned_runs(60, T0 + timedelta(seconds=30), RULES) == []  # within the grace
    assert store.fail_orphaned_runs(60, T0 + timedelta(seconds=61), RULES) == [(run_id, "etl", reason)]
    assert store.fail_orphaned_runs(60, T0 + timedelta(seconds=90), RULES) == []
    (event,) = store.notifications()
    assert (event.dag_run_id, event.event, event.channels) == (run_id, "failure", ("hook",))
    assert build_payload(store, event)["run"]["error"] == reason


def test_the_loop_writes_one_lost_one_retry_and_one_failure_event_for_a_run(
    tmp_path: Path, db_url: str
) -> None:
    loop = Loop(tmp_path, db_url)
    try:
        (loop.dags / "dagctl.yaml").write_text(
            "channels:\n  hook: {type: webhook, url: 'http://127.0.0.1:9/'}\n"
            "notify:\n  - events: [failure, lost, retry, success]\n    to: [hook]\n"
        )
        loop.dag("etl", "description: d\nretries: 1\nretry_delay: 0\n", a__sh="echo why; exit 3\n")
        run_id = loop.store.trigger("etl", {}, "test", T0, None, T0)
        with loop.store.transaction():
            plan = AdvancePlan(
                start_runs=[run_id], new_task_runs=[NewTaskRun(run_id, "etl", "a.sh", "queued")]
            )
            loop.store.apply_advance(plan, T0)
        loop.store.claim("dead", 5, -1, T0)  # a scheduler that died holding the first attempt
        loop.until(lambda: loop.finished(run_id))
        events = sorted((n.event, n.task_run_id) for n in loop.store.notifications())
        attempt = {a["attempt"]: a["id"] for a in loop.store.task_runs([run_id])}
        # The lost attempt is run again without counting against `retries: 1`; the
        # second attempt's failure is retried; the third ends the run: one failure.
        assert events == [("failure", None), ("lost", attempt[1]), ("retry", attempt[2])]
    finally:
        loop.manager.shutdown(0)
        loop.store.close()


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
