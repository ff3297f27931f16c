"""Starting backfill runs: each backfill within its own max_active_runs, scheduled and
manual runs within the DAG's, counted apart, so a backfill never holds a scheduled run
back; --reverse starts the newest slot first."""

from __future__ import annotations

from datetime import datetime

from dagctl.scheduling import planner
from dagctl.scheduling.planner import RunSnapshot
from tests.unit.test_planner import make_dag, no_external


def _run(
    run_id: int, status: str, day: int, backfill: int | None = None, limit: int = 2, reverse: bool = False
) -> RunSnapshot:
    return RunSnapshot(
        run_id, "d", status, datetime(2024, 1, day), backfill, limit if backfill else None, reverse
    )


def test_a_busy_backfill_never_holds_a_scheduled_run_back() -> None:
    dag = make_dag({"a": ()}, max_active_runs=1)
    runs = [
        _run(1, "running", 1, backfill=5),
        _run(2, "running", 2, backfill=5),
        _run(3, "queued", 3, backfill=5),
        _run(9, "queued", 20),  # the scheduled run of today
    ]
    plan = planner.plan_advance({"d": dag}, {"d": False}, runs, {}, no_external)
    assert plan.start_runs == [9]
    assert plan.still_dirty == [3]


def test_each_backfill_starts_within_its_own_limit_oldest_or_newest_first() -> None:
    dag = make_dag({"a": ()}, max_active_runs=1)
    runs = [_run(i, "queued", i, backfill=5, limit=3) for i in range(1, 7)]
    runs += [_run(10 + i, "queued", i, backfill=6, limit=2, reverse=True) for i in range(1, 5)]
    plan = planner.plan_advance({"d": dag}, {"d": False}, runs, {}, no_external)
    assert plan.start_runs == [1, 2, 3, 14, 13]
    assert sorted(plan.still_dirty) == [4, 5, 6, 11, 12]


def test_a_paused_dag_starts_no_backfill_run() -> None:
    dag = make_dag({"a": ()})
    plan = planner.plan_advance({"d": dag}, {"d": True}, [_run(1, "queued", 1, backfill=5)], {}, no_external)
    assert plan.start_runs == []
    assert plan.still_dirty == [1]
