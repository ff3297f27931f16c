"""Pruning history, on SQLite and PostgreSQL: it removes exactly what it reports (the dry
run reports the same), never a queued or running run nor their attempts and logs,
keeps the newest runs asked for, and the shared chore goes to one scheduler per period."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update

from dagctl.dags.cron import utcnow
from dagctl.dags.model import Retention
from dagctl.scheduling.retention import RetentionChore
from dagctl.store import Store, open_store
from dagctl.store.tables import dag_run, notification, task_log, task_run

DAY = timedelta(days=1)


def _run(store: Store, dag: str, status: str, ended_days_ago: float | None, attempts: int = 2) -> int:
    """A run of `dag` with `attempts` attempts of one task, each with two log chunks."""
    now = utcnow()
    run_id = store.trigger(dag, {"n": 1}, "test", now - 100 * DAY, None, now - 100 * DAY)
    ended = None if ended_days_ago is None else now - ended_days_ago * DAY
    with store._tx() as connection:
        connection.execute(
            update(dag_run).where(dag_run.c.id == run_id).values(status=status, ended_at=ended, dirty=False)
        )
        for attempt in range(1, attempts + 1):
            task_status = "running" if status == "running" and attempt == attempts else "failed"
            task_run_id = connection.execute(
                insert(task_run)
                .values(
                    dag_run_id=run_id,
                    dag_name=dag,
                    task_name="t.sh",
                    attempt=attempt,
                    status=task_status,
                    not_before=now,
                    queued_at=now,
                )
                .returning(task_run.c.id)
            ).scalar_one()
            connection.execute(
                insert(task_log),
                [
                    {"task_run_id": task_run_id, "seq": s, "text": "x" * 100, "created_at": now}
                    for s in (1, 2)
                ],
            )
    return run_id


def _counts(store: Store) -> tuple[int, int, int]:
    with store._tx() as connection:
        return tuple(  # type: ignore[return-value]
            connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (dag_run, task_run, task_log)
        )


def _history(store: Store) -> dict[str, Any]:
    old = [_run(store, "a", status, 100) for status in ("success", "failed", "cancelled", "success")]
    recent = [_run(store, "a", "success", 1)]
    queued = _run(store, "a", "queued", None, attempts=0)
    running = _run(store, "b", "running", None)
    old_b = [_run(store, "b", "success", 95) for _ in range(3)]
    return {"old": old, "recent": recent, "queued": queued, "running": running, "old_b": old_b}


def test_prune_removes_what_it_reports_and_nothing_active(store: Store) -> None:
    made = _history(store)
    before = _counts(store)
    dry = store.prune(90 * 86400, dry_run=True, batch=2)
    assert _counts(store) == before  # a dry run deletes nothing
    done = store.prune(90 * 86400, batch=2)
    assert (done.runs, done.attempts, done.log_chunks) == (7, 14, 28)
    assert (dry.runs, dry.attempts, dry.log_chunks, dry.bytes) == (
        done.runs,
        done.attempts,
        done.log_chunks,
        done.bytes,
    )
    assert done.bytes >= 28 * 100
    after = _counts(store)
    assert (before[0] - after[0], before[1] - after[1], before[2] - after[2]) == (7, 14, 28)
    left = {r["id"]: r["status"] for r in store.runs(limit=100)}
    assert left == {made["recent"][0]: "success", made["queued"]: "queued", made["running"]: "running"}
    assert [a["status"] for a in store.task_runs([made["running"]])] == ["failed", "running"]
    assert store.prune(90 * 86400).runs == 0


def test_keep_last_keeps_the_newest_finished_runs_of_each_dag(store: Store) -> None:
    made = _history(store)
    done = store.prune(90 * 86400, keep_last=2)
    left = {r["id"] for r in store.runs(limit=100)}
    # a: its two newest finished runs are the recent one and the last old one.
    assert made["old"][-1] in left and made["old"][0] not in left
    assert set(made["old_b"][-2:]) <= left and made["old_b"][0] not in left
    assert done.runs == 4


def test_one_scheduler_per_period_takes_the_chore(db_url: str) -> None:
    stores = [open_store(db_url, migrate=True) for _ in range(4)]
    barrier = threading.Barrier(4)
    won: list[bool] = []

    def claim(store: Store) -> None:
        barrier.wait()
        won.append(store.claim_chore("retention", 3600, f"s{id(store)}"))

    threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sorted(won) == [False, False, False, True]
        assert stores[0].claim_chore("retention", 3600, "later") is False  # not due for an hour
    finally:
        for store in stores:
            store.close()


def test_the_retention_chore_prunes_once_per_period(store: Store, tmp_path: Path) -> None:
    made = _history(store)
    chore = RetentionChore(store, "me", check_interval=0.0)
    other = RetentionChore(store, "other", check_interval=0.0)
    assert chore.maybe_run(None) == 0  # no retention configured
    assert chore.maybe_run(Retention(90 * 86400.0)) == 7
    _run(store, "a", "success", 200)
    assert other.maybe_run(Retention(90 * 86400.0)) == 0  # this period's turn is taken
    assert chore.maybe_run(Retention(90 * 86400.0)) == 0
    assert {r["id"] for r in store.runs(limit=100)} >= {made["queued"], made["running"]}


def test_prune_deletes_old_settled_alert_events_never_a_pending_one(store: Store) -> None:
    now = utcnow()
    ids = {
        (status, age): store.enqueue_notification("a", None, "failure", ["hook"], now - age * DAY)
        for status in ("delivered", "failed", "pending")
        for age in (100, 1)
    }
    with store._tx() as connection:
        for (status, _), event_id in ids.items():
            connection.execute(
                update(notification).where(notification.c.id == event_id).values(status=status)
            )
    assert store.prune(90 * 86400, dry_run=True).alerts == 2
    assert store.prune(90 * 86400, batch=1).alerts == 2
    left = {n.id for n in store.notifications()}
    assert left == {i for (status, age), i in ids.items() if status == "pending" or age == 1}
    chore = RetentionChore(store, "me", check_interval=0.0)
    with store._tx() as connection:
        connection.execute(update(notification).values(status="delivered"))
    chore.maybe_run(Retention(90 * 86400.0))  # the old pending one, delivered since, goes now
    assert {n.id for n in store.notifications()} == left - {ids[("pending", 100)]}
