"""Creating backfill runs in the store, on SQLite and PostgreSQL: one run per slot
whatever the number of processes creating them, nothing new the second time, and the
--reprocess rules."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from dagctl.dags.model import Dag
from dagctl.scheduling.planner import new_runs
from dagctl.store import Store, open_store

NOW = datetime(2024, 8, 1, 12, 0)
DAG = Dag(name="daily", folder="daily", description="", tasks={}, fingerprint="f", schedule="0 3 * * *")
SLOTS = [datetime(2024, 7, 1, 3) + timedelta(days=i) for i in range(31)]


def _spec(reprocess: str = "missing") -> dict[str, Any]:
    return {
        "dag_name": "daily",
        "start_slot": SLOTS[0],
        "end_slot": SLOTS[-1],
        "reprocess": reprocess,
        "max_active_runs": 2,
        "reverse": False,
        "schedule": "0 3 * * *",
        "params": "{}",
        "creator": "test",
    }


def _create(store: Store, reprocess: str = "missing") -> tuple[int, int]:
    return store.create_backfill(_spec(reprocess), new_runs(DAG, SLOTS), "f", NOW)


def test_31_slots_make_31_runs_and_running_it_again_makes_none(store: Store) -> None:
    first, created = _create(store)
    assert created == 31
    again, created_again = _create(store)
    assert (created_again, again != first) == (0, True)
    runs = store.runs("daily", limit=100)
    assert sorted(r["logical_date"] for r in runs) == SLOTS
    assert {(r["kind"], r["backfill_id"], r["status"]) for r in runs} == {("backfill", first, "queued")}
    # Each run's interval is (previous slot, slot].
    by_slot = {r["logical_date"]: r for r in runs}
    assert by_slot[SLOTS[5]]["data_interval_start"] == SLOTS[4]
    assert by_slot[SLOTS[0]]["data_interval_start"] == SLOTS[0] - timedelta(days=1)


def test_a_slot_the_scheduler_took_is_not_backfilled(store: Store) -> None:
    from dagctl.store.records import NewRun

    store.create_scheduled_runs([("daily", [NewRun(SLOTS[3], SLOTS[2], "{}")], SLOTS[3], "f")], NOW)
    _, created = _create(store)
    assert created == 30
    assert len([r for r in store.runs("daily", limit=100) if r["logical_date"] == SLOTS[3]]) == 1


def test_reprocess_failed_reruns_only_failed_slots_and_all_reruns_every_slot(store: Store) -> None:
    _create(store)
    failed = [r["id"] for r in store.runs("daily", limit=100) if r["logical_date"] in SLOTS[:2]]
    with store._tx() as connection:  # two runs ended failed
        from sqlalchemy import update

        from dagctl.store.tables import dag_run

        connection.execute(update(dag_run).where(dag_run.c.id.in_(failed)).values(status="failed"))
    rerun, created = _create(store, "failed")
    assert created == 2
    info = store.backfill_info(rerun)
    assert info is not None
    assert [r["logical_date"] for r in info["runs"]] == SLOTS[:2]
    assert _create(store, "failed")[1] == 0  # the newest runs of those slots are queued now
    assert _create(store, "all")[1] == 31


def test_two_processes_backfilling_the_same_range_at_once_make_one_run_per_slot(db_url: str) -> None:
    stores = [open_store(db_url, migrate=True) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[int] = []

    def create(store: Store) -> None:
        barrier.wait()
        results.append(_create(store)[1])

    threads = [threading.Thread(target=create, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert sum(results) == 31
        runs = stores[0].runs("daily", limit=100)
        assert sorted(r["logical_date"] for r in runs) == SLOTS
    finally:
        for store in stores:
            store.close()
