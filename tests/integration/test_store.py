"""The store's named operations on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from dagctl.errors import DatabaseError
from dagctl.scheduling.planner import AdvancePlan, NewTaskRun
from dagctl.store import FinishedAttempt, Store, open_store
from dagctl.store.records import NewRun

NOW = datetime(2024, 5, 1, 12, 0)


def queue_tasks(store: Store, run_id: int, names: list[str]) -> None:
    with store.transaction():
        snapshot = store.lock_flagged_runs()
        plan = AdvancePlan(start_runs=[r.id for r in snapshot.runs if r.status == "queued"])
        plan.new_task_runs = [NewTaskRun(run_id, "etl", n, "queued") for n in names]
        store.apply_advance(plan, NOW)


def test_one_run_per_slot_whatever_the_number_of_callers(store: Store) -> None:
    store.sync_dags({"etl": "f1"}, NOW)
    slot = NOW - timedelta(minutes=1)
    due = [("etl", [NewRun(slot, slot, "{}")], slot, "f1")]
    assert store.create_scheduled_runs(due, NOW) == 1
    assert store.create_scheduled_runs(due, NOW) == 0
    runs = store.runs("etl")
    assert len(runs) == 1
    assert runs[0]["scheduled_slot"] == slot
    assert store.dag_states()["etl"].last_slot == slot


def test_manual_trigger_at_a_slots_instant_keeps_both_runs(store: Store) -> None:
    store.sync_dags({"etl": "f1"}, NOW)
    slot = NOW - timedelta(minutes=1)
    store.create_scheduled_runs([("etl", [NewRun(slot, slot, "{}")], slot, "f1")], NOW)
    store.trigger("etl", {}, "test", slot, "f1", NOW)
    assert sorted(r["kind"] for r in store.runs("etl")) == ["manual", "scheduled"]


def test_claims_are_exclusive_across_connections(db_url: str, store: Store) -> None:
    run_id = store.trigger("etl", {"date": "2024-01-01"}, "test", NOW, "f1", NOW)
    names = [f"t{i:03}.sh" for i in range(200)]
    queue_tasks(store, run_id, names)
    others = [Store(db_url) for _ in range(4)]
    claimed: list[list[int]] = [[] for _ in others]
    barrier = threading.Barrier(len(others))

    def worker(index: int) -> None:
        barrier.wait()
        while True:
            batch = others[index].claim(f"owner{index}", 7, 30, NOW + timedelta(seconds=1))
            if not batch:
                return
            claimed[index].extend(c.task_run_id for c in batch)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(others))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in others:
        other.close()
    flat = [i for ids in claimed for i in ids]
    assert len(flat) == len(names)
    assert len(set(flat)) == len(names)


def test_claim_takes_the_oldest_ready_attempt_first(store: Store) -> None:
    first = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    queue_tasks(store, first, ["a.sh"])
    second = store.trigger("etl", {}, "test", NOW, "f1", NOW + timedelta(seconds=5))
    queue_tasks(store, second, ["b.sh"])
    claimed = store.claim("me", 1, 30, NOW + timedelta(seconds=10))
    assert [c.task_name for c in claimed] == ["a.sh"]
    assert claimed[0].params == {}


def test_failed_attempt_queues_a_delayed_retry(store: Store) -> None:
    run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    queue_tasks(store, run_id, ["a.sh"])
    [attempt] = store.claim("me", 5, 30, NOW)
    recorded = store.finish(
        "me", [FinishedAttempt(attempt.task_run_id, "failed", 3, "exit code 3", 60.0, "boom\n")], NOW
    )
    assert recorded == 1
    assert store.claim("me", 5, 30, NOW + timedelta(seconds=59)) == []
    [retry] = store.claim("me", 5, 30, NOW + timedelta(seconds=61))
    assert retry.attempt == 2
    assert store.read_log(attempt.task_run_id) == [(1, "boom\n", 0)]


def test_finish_by_a_stranger_is_ignored(store: Store) -> None:
    run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    queue_tasks(store, run_id, ["a.sh"])
    [attempt] = store.claim("me", 5, 30, NOW)
    assert (
        store.finish("someone-else", [FinishedAttempt(attempt.task_run_id, "success", 0, None, None)], NOW)
        == 0
    )


def test_expired_leases_are_reaped_and_retried(store: Store) -> None:
    run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    queue_tasks(store, run_id, ["a.sh"])
    [attempt] = store.claim("dead-owner", 5, -1, NOW)  # a lease already in the past
    lost = store.reap_expired(NOW)
    assert [item.task_run_id for item in lost] == [attempt.task_run_id]
    [retry] = store.claim("me", 5, 30, NOW)
    # run again at once; the interrupted attempt does not count against retries
    assert (retry.attempt, retry.tries) == (2, 1)
    assert store.finish("me", [FinishedAttempt(retry.task_run_id, "interrupted", None, "x", 0.0)], NOW) == 1
    [third] = store.claim("me", 5, 30, NOW)
    assert (third.attempt, third.tries) == (3, 1)
    # the dead owner's late report changes nothing
    assert (
        store.finish("dead-owner", [FinishedAttempt(attempt.task_run_id, "success", 0, None, None)], NOW) == 0
    )


def test_unreachable_database_is_a_database_error_without_the_password() -> None:
    with pytest.raises(DatabaseError) as caught:
        open_store("postgresql://bob:s3cret-pw@127.0.0.1:1/nowhere", migrate=False)
    assert "s3cret-pw" not in str(caught.value)
    assert "host=127.0.0.1 port=1 db=nowhere user=bob" in str(caught.value)
    assert caught.value.exit_code == 3
