"""`trigger --wait`'s follower (store/fast_follow.py) reads what the store reads, and
wakes when the run ends: by NOTIFY on PostgreSQL, by data_version on SQLite."""

from __future__ import annotations

import select
import time
from datetime import datetime
from typing import Any

import pytest

from dagctl.scheduling.planner import AdvancePlan, NewTaskRun
from dagctl.store import Store
from dagctl.store.fast_follow import RUN_ENDED_CHANNEL, RunFollower

NOW = datetime(2024, 5, 1, 12, 0)


def _advance(store: Store, plan: AdvancePlan) -> None:
    with store.transaction():
        store.lock_flagged_runs()
        store.apply_advance(plan, NOW)


def test_the_follower_reads_what_the_store_reads_and_wakes_when_the_run_ends(
    store: Store, db_url: str
) -> None:
    run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    _advance(
        store, AdvancePlan(start_runs=[run_id], new_task_runs=[NewTaskRun(run_id, "etl", "a.sh", "success")])
    )
    follower = RunFollower.open(db_url)
    assert follower is not None
    try:
        assert follower.read(run_id) == store.run_with_attempts(run_id)
        assert follower.read(run_id + 100) == (None, [])
        began = time.monotonic()
        follower.wait(0.3)  # nothing changes: it waits (SQLite: all of it; PostgreSQL: its poll)
        assert time.monotonic() - began >= 0.09
        _advance(store, AdvancePlan(finish_runs=[(run_id, "success")]))
        began = time.monotonic()
        follower.wait(5.0)
        assert time.monotonic() - began < 1.0  # woken by the change, not the 5 s
        run, attempts = follower.read(run_id) or (None, [])
        assert run is not None and run["status"] == "success" and run["ended_at"] == NOW
        assert [a["task_name"] for a in attempts] == ["a.sh"]
    finally:
        follower.close()


def test_a_run_ending_notifies_its_followers_on_postgresql(store: Store, db_url: str) -> None:
    if not store.is_postgres:
        pytest.skip("SQLite has no NOTIFY: the follower reads data_version (above)")
    import psycopg2

    listener = psycopg2.connect(db_url.replace("postgresql+psycopg2://", "postgresql://"))
    listener.autocommit = True
    try:
        listener.cursor().execute(f"LISTEN {RUN_ENDED_CHANNEL}")
        run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)
        _advance(store, AdvancePlan(start_runs=[run_id]))
        assert _notified(listener, 0.3) == []  # starting a run is no end
        _advance(store, AdvancePlan(finish_runs=[(run_id, "failed")]))
        assert _notified(listener, 5.0) == [str(run_id)]
    finally:
        listener.close()


def _notified(connection: Any, within: float) -> list[str]:
    """The payloads delivered within `within` seconds (a NOTIFY arrives after the commit,
    not with it)."""
    deadline = time.monotonic() + within
    while not connection.notifies and time.monotonic() < deadline:
        select.select([connection], [], [], max(0.0, deadline - time.monotonic()))
        connection.poll()
    return [n.payload for n in connection.notifies]
