"""Pools enforced by the claim, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import random
import threading
import time
from datetime import datetime, timedelta

from dagctl.store import ClaimedAttempt, FinishedAttempt, Store
from tests.integration.test_store import queue_tasks

NOW = datetime(2024, 5, 1, 12, 0)
LATER = NOW + timedelta(seconds=1)


def pooled_run(store: Store, pools: dict[str, int], tasks: dict[str, tuple[str, int] | None]) -> int:
    """One run of DAG etl with these tasks queued; those with a (pool, slots) take it."""
    store.sync_pools(
        {name: (slots, "") for name, slots in pools.items()},
        {"etl": {t: p for t, p in tasks.items() if p is not None}},
        frozenset({"etl"}),
    )
    run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    queue_tasks(store, run_id, list(tasks))
    return run_id


def done(store: Store, owner: str, task_run_id: int, status: str = "success") -> None:
    assert store.finish(owner, [FinishedAttempt(task_run_id, status, 0, None, None)], LATER) == 1


def test_a_full_pool_holds_its_tasks_and_lets_the_others_run(store: Store) -> None:
    tasks: dict[str, tuple[str, int] | None] = {f"w{i}.sql": ("warehouse", 1) for i in range(6)}
    tasks.update({f"free{i}.sh": None for i in range(4)})
    pooled_run(store, {"warehouse": 3}, tasks)
    claimed = store.claim("me", 20, 30, LATER)
    assert sorted(c.task_name for c in claimed if c.task_name.startswith("w")) == [
        "w0.sql",
        "w1.sql",
        "w2.sql",
    ]
    assert len([c for c in claimed if c.task_name.startswith("free")]) == 4
    assert store.claim("me", 20, 30, LATER) == []
    usage = {p.name: p for p in store.pool_usage()}["warehouse"]
    assert (usage.slots, usage.used, usage.waiting) == (3, 3, 3)
    assert [h.task_name for h in usage.holders] == ["w0.sql", "w1.sql", "w2.sql"]
    # An ended attempt gives its slot back at once, whatever its end (cancelled, timed out).
    first = next(c for c in claimed if c.task_name == "w0.sql")
    done(store, "me", first.task_run_id, "cancelled")
    assert [c.task_name for c in store.claim("me", 20, 30, LATER)] == ["w3.sql"]


def test_pool_slots_count_per_attempt(store: Store) -> None:
    pooled_run(store, {"api": 4}, {"big.sh": ("api", 3), "small.sh": ("api", 1), "more.sh": ("api", 1)})
    claimed = store.claim("me", 10, 30, LATER)
    assert sorted(c.task_name for c in claimed) == ["big.sh", "small.sh"]
    assert {p.name: p.used for p in store.pool_usage()} == {"api": 4}


def test_an_expired_lease_frees_its_slots_before_it_is_reaped(store: Store) -> None:
    pooled_run(store, {"warehouse": 1}, {"a.sql": ("warehouse", 1), "b.sql": ("warehouse", 1)})
    # Lease of 0 s: the holder is as good as dead (its scheduler stopped renewing).
    [dead] = store.claim("dead", 10, 0, LATER)
    [taken] = store.claim("alive", 10, 30, LATER)
    assert (dead.task_name, taken.task_name) == ("a.sql", "b.sql")
    assert [h.task_name for h in store.pool_usage()[0].holders] == ["b.sql"]


def test_a_pool_change_applies_at_the_next_sync(store: Store) -> None:
    tasks: dict[str, tuple[str, int] | None] = {f"w{i}.sql": ("warehouse", 1) for i in range(4)}
    pooled_run(store, {"warehouse": 1}, tasks)
    assert len(store.claim("me", 10, 30, LATER)) == 1
    store.sync_pools({"warehouse": (3, "bigger")}, {"etl": tasks}, frozenset({"etl"}))  # type: ignore[dict-item]
    assert len(store.claim("me", 10, 30, LATER)) == 2
    # A task taken out of its pool runs unlimited from then on.
    store.sync_pools({"warehouse": (3, "")}, {"etl": {}}, frozenset({"etl"}))
    assert len(store.claim("me", 10, 30, LATER)) == 1
    assert store.pool_usage()[0].used == 3  # attempts keep the slots they were claimed with


def test_a_pool_is_never_overrun_by_concurrent_claimers(db_url: str, store: Store) -> None:
    """Measured from the task side: each claimer counts the attempts it holds in a
    shared counter between claim and finish."""
    tasks: dict[str, tuple[str, int] | None] = {f"t{i:03}.sh": ("warehouse", 1) for i in range(120)}
    pooled_run(store, {"warehouse": 3}, tasks)
    others = [Store(db_url) for _ in range(4)]
    lock = threading.Lock()
    held, peak, ran = 0, 0, 0
    barrier = threading.Barrier(len(others))

    def worker(index: int) -> None:
        nonlocal held, peak, ran
        other, owner = others[index], f"owner{index}"
        other.sync_pools({"warehouse": (3, "")}, {"etl": tasks}, frozenset({"etl"}))  # type: ignore[dict-item]
        barrier.wait()
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < 1.0:
            batch = other.claim(owner, 8, 30, LATER)
            if not batch:
                time.sleep(0.001)
                continue
            idle_since = time.monotonic()
            with lock:
                held += len(batch)
                peak = max(peak, held)
                ran += len(batch)
            time.sleep(random.uniform(0, 0.003))
            with lock:
                held -= len(batch)  # the tasks ended: before their ends are recorded
            other.finish(
                owner, [FinishedAttempt(c.task_run_id, "success", 0, None, None) for c in batch], LATER
            )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(others))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in others:
        other.close()
    assert ran == len(tasks)
    assert peak == 3


# ---------------------------------------------------------------- work queues


def test_a_scheduler_claims_only_the_queues_it_serves(db_url: str, store: Store) -> None:
    store.sync_task_queues({"etl": {"train.py": "gpu"}}, frozenset({"etl"}))
    run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    queue_tasks(store, run_id, ["train.py", "load.sh", "report.sh"])
    gpu = Store(db_url)
    try:
        gpu.sync_task_queues({"etl": {"train.py": "gpu"}}, frozenset({"etl"}))
        gpu.serve_queues(["gpu"])
        assert [c.task_name for c in gpu.claim("gpu", 10, 30, LATER)] == ["train.py"]
        assert gpu.claim("gpu", 10, 30, LATER) == []
    finally:
        gpu.close()
    store.serve_queues(["default"])
    assert sorted(c.task_name for c in store.claim("default", 10, 30, LATER)) == ["load.sh", "report.sh"]


def test_queues_and_pools_together(store: Store) -> None:
    store.sync_task_queues({"etl": {"a.sql": "gpu", "b.sql": "gpu"}}, frozenset({"etl"}))
    pooled_run(store, {"warehouse": 1}, {"a.sql": ("warehouse", 1), "b.sql": ("warehouse", 1), "c.sql": None})
    assert [c.task_name for c in store.claim("default", 10, 30, LATER)] == ["c.sql"]
    store.serve_queues(["gpu", "default"])
    assert [c.task_name for c in store.claim("both", 10, 30, LATER)] == ["a.sql"]


def test_a_claim_passes_over_slots_another_claim_holds_without_waiting(
    migrated_postgres_url: str,
) -> None:
    """PostgreSQL: a pool's slots are rows taken with SKIP LOCKED. While one scheduler's
    claim is uncommitted, another claims what is left at once instead of queueing behind
    it; once the first commits, its slot is seen taken, never given twice."""
    first, second = Store(migrated_postgres_url), Store(migrated_postgres_url)
    try:
        tasks: dict[str, tuple[str, int] | None] = {f"w{i}.sql": ("warehouse", 1) for i in range(4)}
        pooled_run(first, {"warehouse": 2}, tasks)
        second.sync_pools({"warehouse": (2, "")}, {"etl": tasks}, frozenset({"etl"}))  # type: ignore[dict-item]
        with first.transaction():
            [mine] = first.claim("first", 1, 30, LATER)
            # Were it to wait for `first`'s open claim, it would wait for ever: a thread.
            got: list[list[ClaimedAttempt]] = []
            claimer = threading.Thread(target=lambda: got.append(second.claim("second", 10, 30, LATER)))
            claimer.start()
            claimer.join(timeout=30)
            assert not claimer.is_alive() and [c.task_name for c in got[0]] != [mine.task_name]
            assert len(got[0]) == 1
        assert second.claim("second", 10, 30, LATER) == []  # both slots held, 2 waiting
        done(first, "first", mine.task_run_id)
        assert len(second.claim("second", 10, 30, LATER)) == 1
        assert {p.name: p.used for p in second.pool_usage()} == {"warehouse": 2}
    finally:
        first.close()
        second.close()


def test_the_routing_of_a_deleted_dag_is_forgotten(store: Store) -> None:
    """Rows of DAGs gone from the folder are deleted at sync, unless another live
    scheduler (another DAGs folder) has that DAG loaded."""
    store.sync_pools({"warehouse": (2, "")}, {"etl": {"a.sql": ("warehouse", 1)}}, frozenset({"etl"}))
    store.sync_pools({"warehouse": (2, "")}, {"kept": {"b.sql": ("warehouse", 1)}}, frozenset({"kept"}))
    store.sync_task_queues({"etl": {"a.sql": "gpu"}, "kept": {"b.sql": "gpu"}}, frozenset({"etl", "kept"}))
    store.register_scheduler("other", "worker", NOW)
    store.record_loaded_dags("other", ["kept"])
    assert store.forget_routing("me", ["etl", "kept"]) == 2  # etl's task_pool and task_queue rows
    assert store.forget_routing("me", ["etl", "kept"]) == 0
    store.unregister_scheduler("other", NOW)
    assert store.forget_routing("me", ["kept"]) == 2


# ---------------------------------------------------------------- priorities


def test_the_highest_priority_is_claimed_first_then_the_oldest(store: Store) -> None:
    """Among the attempts without a pool (for the scheduler's free concurrency), and
    among those of one pool (for its free slots)."""
    pooled_run(
        store,
        {"warehouse": 1},
        {"old.sh": None, "urgent.sh": None, "low.sql": ("warehouse", 1), "high.sql": ("warehouse", 1)},
    )
    store.sync_task_priorities({"etl": {"urgent.sh": 5, "high.sql": 9, "low.sql": -1}}, frozenset({"etl"}))
    store.sync_pools(
        {"warehouse": (1, "")},
        {"etl": {"low.sql": ("warehouse", 1), "high.sql": ("warehouse", 1)}},
        frozenset({"etl"}),
        unpooled_tasks=True,
    )
    assert [c.task_name for c in store.claim("me", 1, 30, LATER)] == ["urgent.sh"]
    # The pool has one slot: high.sql (9) takes it before the older low.sql (-1).
    assert sorted(c.task_name for c in store.claim("me", 5, 30, LATER)) == ["high.sql", "old.sh"]
    # Back to age alone once no task has a priority.
    store.sync_task_priorities({}, frozenset({"etl"}))
    assert not store._priorities_in_use
