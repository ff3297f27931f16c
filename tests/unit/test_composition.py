"""Pure parts of composition: which for_each items start, how a rendered list is read,
item names, the run of another DAG a cross-DAG input counts, and planning `dag` and
`for_each` tasks as attempts no scheduler claims."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from dagctl.dags.model import Task
from dagctl.scheduling import crossdag, fanout, planner
from dagctl.store.records import AttemptSnapshot, RunSnapshot
from tests.unit.test_planner import make_dag, no_external

MAPPED = Task(name="t.sh", folder="/x", type="shell", for_each="{{ x }}", max_parallel=3)


def _latest(**statuses: str) -> dict[str, AttemptSnapshot]:
    return {f"t.sh[{i}]": AttemptSnapshot(f"t.sh[{i}]", 1, s) for i, s in statuses.items()}


def test_items_start_in_order_up_to_max_parallel() -> None:
    assert fanout.plan_items(MAPPED, 10, {}).start == [0, 1, 2]
    step = fanout.plan_items(MAPPED, 10, {"t.sh[0]": AttemptSnapshot("t.sh[0]", 1, "success"), **_latest()})
    assert step.start == [1, 2, 3]
    busy = {
        f"t.sh[{i}]": AttemptSnapshot(f"t.sh[{i}]", 1, s)
        for i, s in enumerate(["success", "running", "waiting", "queued"])
    }
    step = fanout.plan_items(MAPPED, 10, busy)
    assert (step.active, step.succeeded, step.start) == (3, 1, [])


def test_a_failed_item_stops_new_ones() -> None:
    latest = {
        f"t.sh[{i}]": AttemptSnapshot(f"t.sh[{i}]", 1, s)
        for i, s in enumerate(["success", "failed", "running"])
    }
    step = fanout.plan_items(MAPPED, 10, latest)
    assert (step.failed_item, step.active, step.start) == (1, 1, [])


@pytest.mark.parametrize(
    ("text", "items"),
    [('["a", 1]', ["a", 1]), ("['a', 'b c']", ["a", "b c"]), ("[]", []), ('{"a": 1}', None), ("a,b", None)],
)
def test_rendered_lists(text: str, items: list[object] | None) -> None:
    assert fanout.parse_items(text) == items


def test_item_names() -> None:
    assert fanout.split_item_name("t.sh[12]") == ("t.sh", 12)
    assert fanout.split_item_name("t.sh") is None
    assert fanout.split_item_name("odd[name].sh") is None


def test_same_day_window_is_the_local_day() -> None:
    dag = make_dag({"r.sh": ("load:done.sh",)}, tz="Europe/Paris")
    task = dag.tasks["r.sh"]
    latest, earliest = crossdag.window(dag, task, datetime(2026, 3, 2, 6, 0))  # 07:00 in Paris
    assert earliest == datetime(2026, 3, 1, 23, 0)
    assert latest == datetime(2026, 3, 2, 22, 59, 59, 999999)
    other = dataclasses.replace(task, input_match="latest")
    assert crossdag.window(dag, other, datetime(2026, 3, 2, 6, 0)) == (datetime(2026, 3, 2, 6, 0), None)


def test_wait_timeout_fails_the_task_with_the_reason() -> None:
    dag = make_dag({"r.sh": ("load:done.sh",)})
    task = dataclasses.replace(dag.tasks["r.sh"], wait_timeout=60.0)
    dag = dataclasses.replace(dag, tasks={"r.sh": task})
    run = RunSnapshot(1, "d", "running", datetime(2026, 3, 2, 7), started_at=datetime(2026, 3, 2, 7))
    waiting = planner.plan_advance(
        {"d": dag}, {"d": False}, [run], {}, no_external, datetime(2026, 3, 2, 7, 0, 59)
    )
    assert waiting.new_task_runs == [] and waiting.still_dirty == [1]
    late = planner.plan_advance({"d": dag}, {"d": False}, [run], {}, no_external, datetime(2026, 3, 2, 7, 1))
    (created,) = late.new_task_runs
    assert created.status == "failed"
    assert created.error == (
        "gave up waiting for load:done.sh after 1m (wait_timeout): in a run of load on 2026-03-02 (UTC)"
        " it has not run"
    )


def test_dag_and_for_each_tasks_start_running_unclaimed() -> None:
    dag = make_dag({"a.sh": (), "b.yaml": (), "c.sh": ()})
    tasks = {
        "a.sh": dag.tasks["a.sh"],
        "b.yaml": dataclasses.replace(dag.tasks["b.yaml"], type="dag", child_dag="other"),
        "c.sh": dataclasses.replace(dag.tasks["c.sh"], for_each="{{ x }}"),
    }
    dag = dataclasses.replace(dag, tasks=tasks)
    plan = planner.plan_advance(
        {"d": dag}, {"d": False}, [RunSnapshot(1, "d", "running", datetime(2026, 1, 1))], {}, no_external
    )
    assert {t.task_name: t.status for t in plan.new_task_runs} == {
        "a.sh": "queued",
        "b.yaml": "running",
        "c.sh": "running",
    }
