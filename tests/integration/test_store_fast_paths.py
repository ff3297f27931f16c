"""The store's fast paths behave exactly like the plain ones, on SQLite and PostgreSQL:
the `trigger` path without SQLAlchemy, several operations in one transaction, attempts
that ended alike recorded by one statement, and SQLite's data-version watch."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dagctl.scheduling.planner import AdvancePlan, NewTaskRun
from dagctl.store import FinishedAttempt, Store, open_store
from dagctl.store import fast_trigger as quick

NOW = datetime(2024, 5, 1, 12, 0)
COLUMNS = (
    "dag_name, kind, creator, logical_date, scheduled_slot, params, status, dirty, fingerprint, created_at"
)


def _row(store: Store, run_id: int) -> tuple[object, ...]:
    from sqlalchemy import text

    with store.engine.connect() as connection:
        row = connection.execute(text(f"SELECT {COLUMNS} FROM dag_run WHERE id = :i"), {"i": run_id}).one()
    return tuple(row)


def test_quick_trigger_writes_what_store_trigger_writes(store: Store, db_url: str) -> None:
    params = {"date": "2024-01-01", "n": 3, "quote": 'it\'s "x"', "nested": [1, {"a": None}]}
    slow = store.trigger("etl", params, "cli", NOW, "fp1", NOW)
    fast = quick.trigger(db_url, "etl", params, "cli", NOW, "fp1", lambda: NOW)
    assert fast == slow + 1
    assert _row(store, fast) == _row(store, slow)
    # The run is visible to the store's own reads, with its params.
    assert store.runs(run_id=fast, limit=1)[0]["params"] == store.runs(run_id=slow, limit=1)[0]["params"]
    # A first trigger of a DAG creates its row, as the full path does.
    assert quick.trigger(db_url, "new_dag", {}, "cli", None, None, lambda: NOW) is not None
    assert "new_dag" in store.dag_states()


def test_quick_trigger_declines_what_it_cannot_be_sure_of(tmp_path: Path) -> None:
    clock = lambda: NOW  # noqa: E731
    missing = f"sqlite:///{tmp_path}/nothing-here.db"
    assert quick.trigger(missing, "etl", {}, "cli", None, None, clock) is None
    assert not (tmp_path / "nothing-here.db").exists()  # nothing created either
    unmigrated = tmp_path / "empty.db"
    sqlite3.connect(unmigrated).close()
    assert quick.trigger(f"sqlite:///{unmigrated}", "etl", {}, "cli", None, None, clock) is None
    assert quick.trigger("sqlite://", "etl", {}, "cli", None, None, clock) is None
    assert quick.trigger(f"sqlite:///{unmigrated}?mode=ro", "etl", {}, "cli", None, None, clock) is None
    assert quick.trigger("mysql://u@h/db", "etl", {}, "cli", None, None, clock) is None


def test_a_quick_trigger_reads_the_presence_the_store_reads_in_its_own_transaction(
    store: Store, db_url: str
) -> None:
    run = quick.ManualRun("etl", {"n": 1}, "cli", NOW, "fp1", None)
    queued = quick.queue_run(db_url, run, lambda: NOW, 60.0)
    assert queued is not None
    run_id, presence = queued
    assert store.runs(run_id=run_id, limit=1)[0]["dag_name"] == "etl"
    # No scheduler: nobody alive, nobody knowing, not paused, on both clocks.
    assert presence == store.presence("etl", 60.0)
    assert presence is not None and (presence.paused, presence.live_schedulers) == (False, 0)
    store.set_paused("etl", True, NOW)
    queued = quick.queue_run(db_url, run, lambda: NOW, 60.0)
    assert queued is not None and queued[1] == store.presence("etl", 60.0)
    assert queued[1] is not None and queued[1].paused
    # Without a stale limit it reads no presence.
    assert quick.queue_run(db_url, run, lambda: NOW, None) == (queued[0] + 1, None)


def test_quick_trigger_writes_nothing_on_a_schema_of_another_revision(store: Store, db_url: str) -> None:
    from sqlalchemy import text

    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    run = quick.ManualRun("fresh_dag", {}, "cli", NOW, "fp1", None)
    assert quick.queue_run(db_url, run, lambda: NOW, 60.0) is None
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM dag_run")).scalar_one() == 0
        assert connection.execute(text("SELECT count(*) FROM dag")).scalar_one() == 0


def test_quick_trigger_declines_an_unreachable_server() -> None:
    url = "postgresql://bob:pw@127.0.0.1:1/nowhere"
    assert quick.trigger(url, "etl", {}, "cli", None, None, lambda: NOW) is None


def test_one_transaction_commits_all_or_nothing(store: Store) -> None:
    with store.transaction():
        first = store.trigger("etl", {}, "test", NOW, "f1", NOW)
        second = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    assert {r["id"] for r in store.runs("etl")} == {first, second}
    with pytest.raises(RuntimeError), store.transaction():
        store.trigger("etl", {}, "test", NOW, "f1", NOW)
        raise RuntimeError("abandon")
    assert {r["id"] for r in store.runs("etl")} == {first, second}


def _queue(store: Store, run_id: int, names: list[str]) -> None:
    with store.transaction():
        snapshot = store.lock_flagged_runs()
        plan = AdvancePlan(start_runs=[r.id for r in snapshot.runs if r.status == "queued"])
        plan.new_task_runs = [NewTaskRun(run_id, "etl", n, "queued") for n in names]
        store.apply_advance(plan, NOW)


def test_attempts_that_ended_alike_and_apart_are_all_recorded(store: Store) -> None:
    run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    _queue(store, run_id, [f"t{i}.sh" for i in range(6)])
    claimed = store.claim("me", 10, 30, NOW)
    assert len(claimed) == 6
    ended = NOW + timedelta(seconds=1)
    ids = [c.task_run_id for c in claimed]
    finished = [FinishedAttempt(i, "success", 0, None, None, ended_at=ended) for i in ids[:4]]
    finished.append(FinishedAttempt(ids[4], "failed", 2, "exit code 2", 0.0, "out\n", ended_at=ended))
    finished.append(FinishedAttempt(ids[5], "failed", 2, "exit code 2", None, ended_at=ended))
    finished.append(FinishedAttempt(999_999, "success", 0, None, None))  # not ours: ignored
    assert store.finish("me", finished, NOW + timedelta(seconds=2)) == 6
    attempts = {(a["task_name"], a["attempt"]): a for a in store.task_runs([run_id])}
    assert [attempts[(f"t{i}.sh", 1)]["status"] for i in range(6)] == ["success"] * 4 + ["failed"] * 2
    assert {attempts[(f"t{i}.sh", 1)]["ended_at"] for i in range(6)} == {ended}
    # Only the failed attempt with a retry delay got a second attempt.
    assert attempts[("t4.sh", 2)]["status"] == "queued"
    assert ("t5.sh", 2) not in attempts
    assert store.read_log(ids[4]) == [(1, "out\n", 0)]
    # The run was flagged: the next advance looks at it.
    with store.transaction():
        seen = [r.id for r in store.lock_flagged_runs().runs]
        store.apply_advance(AdvancePlan(), NOW)
    assert seen == [run_id]


def test_sqlite_watch_sees_other_processes_changes_not_ours(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    store = open_store(url, migrate=True)
    try:
        watch = store.listener()
        assert watch.fileno() is not None and watch.check_every  # its doorbell, and a look now and then
        assert watch.drain() is False
        store.trigger("etl", {}, "test", NOW, "f1", NOW)  # our own commit rings nobody
        assert not _readable(watch.fileno(), 0.0)
        assert watch.drain() is False
        assert quick.trigger(url, "etl", {}, "cli", None, None, lambda: NOW)  # another "process"
        assert _readable(watch.fileno(), 5.0)  # its bell rang: the wait ends at once
        assert watch.drain() is True
        assert watch.drain() is False
        other = open_store(url, migrate=False)  # another process queuing through the full path
        try:
            other.trigger("etl", {}, "test", NOW, "f1", NOW)
        finally:
            other.close()
        assert _readable(watch.fileno(), 5.0)
        assert watch.drain() is True
        watch.close()
        assert list((tmp_path / ".state.db-bells").iterdir()) == []  # its bell went with it
    finally:
        store.close()


def test_a_ring_counts_even_when_our_own_commit_moved_the_data_version_past_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    store = open_store(url, migrate=True)
    try:
        watch = store.listener()
        assert quick.trigger(url, "etl", {}, "cli", None, None, lambda: NOW)
        store.trigger("etl", {}, "test", NOW, "f1", NOW)  # settles the mark past both commits
        assert watch.drain() is True
        watch.close()
    finally:
        store.close()


def _readable(fd: int | None, timeout: float) -> bool:
    import select

    assert fd is not None
    return bool(select.select([fd], [], [], timeout)[0])


def test_news_that_was_rolled_back_rings_nobody(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state.db"
    store = open_store(url, migrate=True)
    other = open_store(url, migrate=False)
    try:
        watch = store.listener()
        with pytest.raises(RuntimeError), other._tx() as connection:
            other._notify(connection)
            raise RuntimeError("rolled back")
        other.register_scheduler("s1", "worker", NOW)  # a commit with no news in it
        assert not _readable(watch.fileno(), 0.0)
        watch.close()
    finally:
        other.close()
        store.close()
