"""`max_active_tasks`: at most N attempts of a DAG running at once, enforced by the claim
on SQLite and on a real PostgreSQL, together with pools."""

from __future__ import annotations

from dagctl.store import Store
from tests.integration.test_pools import LATER, done, pooled_run


def test_a_dag_never_runs_more_attempts_than_its_max_active_tasks(store: Store) -> None:
    store.sync_dag_limits({"etl": 2}, frozenset({"etl"}))
    pooled_run(store, {}, {f"t{i}.sh": None for i in range(5)})
    first = store.claim("me", 10, 30, LATER)
    assert len(first) == 2
    assert store.claim("other", 10, 30, LATER) == []
    assert store.dag_running_attempts("etl") == 2
    done(store, "me", first[0].task_run_id)
    assert len(store.claim("other", 10, 30, LATER)) == 1
    # Lifted at the next sync: the rest run.
    store.sync_dag_limits({}, frozenset({"etl"}))
    assert len(store.claim("me", 10, 30, LATER)) == 2


def test_an_attempt_counts_against_its_pool_and_its_dag(store: Store) -> None:
    store.sync_dag_limits({"etl": 2}, frozenset({"etl"}))
    tasks: dict[str, tuple[str, int] | None] = {f"w{i}.sql": ("warehouse", 1) for i in range(3)}
    tasks["free.sh"] = None
    pooled_run(store, {"warehouse": 1}, tasks)
    claimed = sorted(c.task_name for c in store.claim("me", 10, 30, LATER))
    assert claimed == ["free.sh", "w0.sql"]  # pool full at 1, DAG full at 2
    assert store.pool_usage()[0].used == 1


def test_an_expired_lease_no_longer_counts(store: Store) -> None:
    store.sync_dag_limits({"etl": 1}, frozenset({"etl"}))
    pooled_run(store, {}, {"a.sh": None, "b.sh": None})
    [dead] = store.claim("dead", 10, 0, LATER)  # lease of 0 s: as good as dead
    [taken] = store.claim("alive", 10, 30, LATER)
    assert (dead.task_name, taken.task_name) == ("a.sh", "b.sh")
