"""Per-queue concurrency limits (`queues: {gpu: {limit: 2}}`), enforced by the claim on
SQLite and on a real PostgreSQL, together with max_active_tasks and pools."""

from __future__ import annotations

from dagctl.store import Store
from tests.integration.test_pools import LATER, done, pooled_run


def routed_run(store: Store, queues: dict[str, str], unrouted: int = 0) -> None:
    """One run of DAG etl: `queues` {task: queue} plus `unrouted` tasks of default."""
    store.serve_queues(["default", "gpu"])
    store.sync_task_queues({"etl": queues}, frozenset({"etl"}))
    pooled_run(store, {}, {**dict.fromkeys(queues), **{f"d{i}.sh": None for i in range(unrouted)}})


def test_a_queue_never_runs_more_attempts_than_its_limit(store: Store) -> None:
    store.sync_queue_limits({"gpu": 2})
    routed_run(store, {f"g{i}.sh": "gpu" for i in range(5)}, unrouted=2)
    first = store.claim("me", 10, 30, LATER)
    assert sorted(c.task_name for c in first) == ["d0.sh", "d1.sh", "g0.sh", "g1.sh"]
    assert store.claim("other", 10, 30, LATER) == []
    assert store.queue_limits() == {"gpu": (2, 2)}
    done(store, "me", next(c.task_run_id for c in first if c.task_name == "g0.sh"))
    assert [c.task_name for c in store.claim("other", 10, 30, LATER)] == ["g2.sh"]
    # A change applies at the next sync; taken away, the queue runs unlimited.
    store.sync_queue_limits({"gpu": 3})
    assert [c.task_name for c in store.claim("other", 10, 30, LATER)] == ["g3.sh"]
    store.sync_queue_limits({})
    assert [c.task_name for c in store.claim("other", 10, 30, LATER)] == ["g4.sh"]
    assert store.queue_limits() == {}
    assert {q.name: q.limit for q in store.queue_usage(60)} == {"default": None, "gpu": None}


def test_an_expired_lease_no_longer_counts_against_the_queue(store: Store) -> None:
    store.sync_queue_limits({"gpu": 1})
    routed_run(store, {"a.sh": "gpu", "b.sh": "gpu"})
    [dead] = store.claim("dead", 10, 0, LATER)  # lease of 0 s: as good as dead
    [taken] = store.claim("alive", 10, 30, LATER)
    assert (dead.task_name, taken.task_name) == ("a.sh", "b.sh")
    assert {q.name: q.limit for q in store.queue_usage(60)}["gpu"] == 1


def test_the_default_queue_can_be_limited(store: Store) -> None:
    store.sync_queue_limits({"default": 1})
    routed_run(store, {"g.sh": "gpu"}, unrouted=3)
    assert sorted(c.task_name for c in store.claim("me", 10, 30, LATER)) == ["d0.sh", "g.sh"]
    assert store.claim("me", 10, 30, LATER) == []


def test_an_attempt_counts_against_its_queue_its_dag_and_its_pool(store: Store) -> None:
    store.sync_queue_limits({"gpu": 2})
    store.sync_dag_limits({"etl": 3}, frozenset({"etl"}))
    store.serve_queues(["default", "gpu"])
    tasks = {f"g{i}.sh": "gpu" for i in range(3)}
    store.sync_task_queues({"etl": tasks}, frozenset({"etl"}))
    pooled = {"g0.sh": ("one", 1), "g1.sh": ("one", 1), "g2.sh": None, "d0.sh": None, "d1.sh": None}
    pooled_run(store, {"one": 1}, pooled)
    first = store.claim("me", 10, 30, LATER)
    # The DAG's limit stops the claim at three, default's tasks before the gpu ones.
    assert sorted(c.task_name for c in first) == ["d0.sh", "d1.sh", "g2.sh"]
    for claimed in first:
        if claimed.task_name.startswith("d"):
            done(store, "me", claimed.task_run_id)
    # The DAG has room for two more, the gpu queue for one, the pool for one.
    assert [c.task_name for c in store.claim("other", 10, 30, LATER)] == ["g0.sh"]
    assert store.claim("other", 10, 30, LATER) == []
    assert store.queue_limits() == {"gpu": (2, 2)}
