"""for_each items take their task's pool, queue and priority in the claim, on SQLite and
on a real PostgreSQL."""

from __future__ import annotations

from dagctl.store import Store
from tests.integration.test_pools import LATER, NOW, done
from tests.integration.test_store import queue_tasks


def items_of(store: Store, run_id: int, task: str, count: int) -> None:
    with store.transaction():
        store.start_items(run_id, "etl", [(f"{task}[{i}]", i) for i in range(count)], NOW)


def fanned_run(store: Store) -> int:
    run_id = store.trigger("etl", {}, "test", NOW, "f1", NOW)
    queue_tasks(store, run_id, [])
    return run_id


def test_a_pooled_for_each_task_runs_no_more_items_than_the_pool_has_slots(store: Store) -> None:
    pools = {"warehouse": (2, "")}
    store.sync_pools(pools, {"etl": {"load.sh": ("warehouse", 1)}}, frozenset({"etl"}))
    run_id = fanned_run(store)
    items_of(store, run_id, "load.sh", 5)
    first = store.claim("me", 10, 30, LATER)
    assert sorted(c.task_name for c in first) == ["load.sh[0]", "load.sh[1]"]
    assert store.claim("me", 10, 30, LATER) == []
    # The next sync keeps the items' rows (they are not in the definitions)...
    store.sync_pools(pools, {"etl": {"load.sh": ("warehouse", 1)}}, frozenset({"etl"}))
    done(store, "me", first[0].task_run_id)
    assert [c.task_name for c in store.claim("me", 10, 30, LATER)] == ["load.sh[2]"]
    assert store.pool_usage()[0].waiting == 2
    # ...and follows the task: out of its pool, its items run unlimited.
    store.sync_pools(pools, {"etl": {}}, frozenset({"etl"}))
    assert sorted(c.task_name for c in store.claim("me", 10, 30, LATER)) == ["load.sh[3]", "load.sh[4]"]


def test_items_of_a_queued_task_are_claimed_only_by_its_queue(store: Store) -> None:
    store.sync_task_queues({"etl": {"fit.sh": "k8s"}}, frozenset({"etl"}))
    run_id = fanned_run(store)
    items_of(store, run_id, "fit.sh", 3)
    items_of(store, run_id, "plain.sh", 1)
    store.sync_task_queues({"etl": {"fit.sh": "k8s"}}, frozenset({"etl"}))
    assert [c.task_name for c in store.claim("default", 10, 30, LATER)] == ["plain.sh[0]"]
    store.serve_queues(["k8s"])
    assert sorted(c.task_name for c in store.claim("k8s", 10, 30, LATER)) == [
        "fit.sh[0]",
        "fit.sh[1]",
        "fit.sh[2]",
    ]


def test_items_take_their_tasks_priority(store: Store) -> None:
    store.sync_task_priorities({"etl": {"urgent.sh": 5}}, frozenset({"etl"}))
    run_id = fanned_run(store)
    items_of(store, run_id, "slow.sh", 2)
    items_of(store, run_id, "urgent.sh", 2)
    claimed = store.claim("me", 2, 30, LATER)
    assert sorted(c.task_name for c in claimed) == ["urgent.sh[0]", "urgent.sh[1]"]
