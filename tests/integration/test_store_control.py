"""Run control in the store (cancel, retry, pause) and the reads behind the terminal
commands, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from dagctl.scheduling.planner import AdvancePlan, NewTaskRun
from dagctl.store import FinishedAttempt, Store

NOW = datetime(2024, 5, 1, 12, 0)


def start(store: Store, names: list[str]) -> int:
    run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)

    with store.transaction():
        snapshot = store.lock_flagged_runs()
        plan = AdvancePlan(start_runs=[r.id for r in snapshot.runs if r.status == "queued"])
        plan.new_task_runs = [NewTaskRun(run_id, "etl", n, "queued") for n in names]
        store.apply_advance(plan, NOW)
    return run_id


def statuses(store: Store, run_id: int) -> dict[tuple[str, int], str]:
    return {(a["task_name"], a["attempt"]): a["status"] for a in store.task_runs([run_id])}


def test_cancel_leaves_running_attempts_to_their_owner_and_they_end_cancelled(store: Store) -> None:
    other = start(store, ["c.sh"])
    [elsewhere] = store.claim("me", 1, 30, NOW)  # a running attempt of a run that goes on
    run_id = start(store, ["a.sh", "b.sh"])
    [running] = store.claim("me", 1, 30, NOW)

    result = store.cancel_run(run_id, NOW)
    assert result is not None
    assert (result.previous_status, result.cancelled) == ("running", True)
    assert result.running_tasks == (running.task_name,)
    assert len(result.cancelled_tasks) == 1
    assert store.run_status(run_id) == "cancelled"
    assert store.cancelled_attempts("me") == [running.task_run_id]
    assert store.cancelled_attempts("someone-else") == []

    # The owner stops it: the manager reports a failure, which is recorded as cancelled
    # with no retry, although retries were allowed.
    failed = FinishedAttempt(running.task_run_id, "failed", -15, "cancelled by dagctl cancel", 0.0)
    assert store.finish("me", [failed], NOW) == 1
    assert statuses(store, run_id) == {("a.sh", 1): "cancelled", ("b.sh", 1): "cancelled"}
    assert store.cancelled_attempts("me") == []
    assert store.claim("me", 5, 30, NOW + timedelta(hours=1)) == []
    # a failure elsewhere is still retried
    store.finish("me", [FinishedAttempt(elsewhere.task_run_id, "failed", 1, "exit code 1", 0.0)], NOW)
    assert statuses(store, other) == {("c.sh", 1): "failed", ("c.sh", 2): "queued"}

    again = store.cancel_run(run_id, NOW)
    assert again is not None and (again.previous_status, again.cancelled) == ("cancelled", False)
    assert store.cancel_run(9999, NOW) is None


def test_a_lost_attempt_of_a_cancelled_run_is_not_retried(store: Store) -> None:
    run_id = start(store, ["a.sh"])
    store.claim("dead-owner", 1, -1, NOW)  # a lease already expired
    store.cancel_run(run_id, NOW)
    store.reap_expired(NOW)
    assert statuses(store, run_id) == {("a.sh", 1): "cancelled"}


def test_retry_reopens_a_finished_run_only(store: Store) -> None:
    run_id = start(store, ["a.sh", "b.sh"])
    first, second = store.claim("me", 2, 30, NOW)
    store.cancel_run(run_id, NOW)
    # still running: nothing is reopened
    assert not store.retry_run(run_id, [("a.sh", 2)], [], NOW).reopened
    store.finish(
        "me",
        [
            FinishedAttempt(first.task_run_id, "failed", -15, "cancelled", None),
            FinishedAttempt(second.task_run_id, "failed", -15, "cancelled", None),
        ],
        NOW,
    )
    result = store.retry_run(run_id, [(first.task_name, 2)], [], NOW)
    assert result.reopened
    assert store.run_status(run_id) == "running"
    assert statuses(store, run_id)[(first.task_name, 2)] == "queued"
    retry = store.retry_run(run_id, [(first.task_name, 3)], [], NOW)
    assert (retry.reopened, retry.status) == (False, "running")
    [claimed] = store.claim("me", 5, 30, NOW)
    assert (claimed.task_name, claimed.attempt) == (first.task_name, 2)


def test_pause_and_the_overview(store: Store) -> None:
    run_id = start(store, ["a.sh"])
    store.set_paused("etl", True, NOW)
    store.set_paused("new_dag", True, NOW)
    summaries = store.dag_summaries()
    assert summaries["etl"]["paused"] is True
    assert summaries["new_dag"] == {"paused": True, "last_run": None}
    assert summaries["etl"]["last_run"]["id"] == run_id
    snapshot = store.why_snapshot("etl", 90)
    assert snapshot["paused"] is True
    assert [r["id"] for r in snapshot["runs"]] == [run_id]
    assert snapshot["queued_attempts"] == 1
    assert snapshot["live_schedulers"] == 0
    store.register_scheduler("s1", "worker", NOW)
    assert store.live_schedulers(90) == 1
    store.unregister_scheduler("s1", NOW)
    assert store.live_schedulers(90) == 0
