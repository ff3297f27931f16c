"""The advance after our own attempts succeeded (planner.plan_after_ends, from the
attempts around them only, then from all of them for the runs it cannot decide) decides
what the full advance decides, on generated DAGs and run states."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from dagctl.scheduling import planner
from dagctl.scheduling.planner import AttemptSnapshot, RunSnapshot
from dagctl.store.records import AdvancePlan
from tests.unit.test_planner import make_dag, no_external

RUN = RunSnapshot(1, "d", "running", datetime(2024, 1, 1))


@st.composite
def dag_and_state(
    draw: st.DrawFn,
) -> tuple[dict[str, tuple[str, ...]], dict[str, str], list[str], bool]:
    """A DAG (edges from earlier to later tasks), the latest status of each task of a
    running run reached by playing it forward, the tasks that just succeeded, and
    whether everything that ended before them was advanced already (else another
    scheduler's advance of those ends is still to come)."""
    size = draw(st.integers(2, 8))
    names = [f"t{i}" for i in range(size)]
    edges = {
        name: tuple(sorted(draw(st.sets(st.sampled_from(names[:i]), max_size=3)))) if i else ()
        for i, name in enumerate(names)
    }
    dag = make_dag(edges)
    state: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 12))):  # play the run forward by full advances
        plan = planner.plan_advance({"d": dag}, {"d": False}, [RUN], {1: _latest(state)}, no_external)
        state.update({t.task_name: t.status for t in plan.new_task_runs})
        open_tasks = sorted(n for n, s in state.items() if s in ("queued", "running"))
        if not open_tasks:
            break
        for name in draw(st.lists(st.sampled_from(open_tasks), max_size=2, unique=True)):
            state[name] = draw(st.sampled_from(["success", "success", "failed", "running"]))
    advanced = draw(st.booleans())
    if advanced:
        plan = planner.plan_advance({"d": dag}, {"d": False}, [RUN], {1: _latest(state)}, no_external)
        state.update({t.task_name: t.status for t in plan.new_task_runs})
    running = sorted(n for n, s in state.items() if s in ("queued", "running"))
    if not running:
        return edges, state, [], advanced
    succeeded = draw(st.lists(st.sampled_from(running), min_size=1, max_size=3, unique=True))
    for name in succeeded:
        state[name] = "success"
    return edges, state, succeeded, advanced


def _latest(state: dict[str, str]) -> dict[str, AttemptSnapshot]:
    return {name: AttemptSnapshot(name, 1, status) for name, status in state.items()}


def _decided(plan: AdvancePlan) -> tuple[set[tuple[str, str]], list[tuple[int, str]]]:
    return {(t.task_name, t.status) for t in plan.new_task_runs}, plan.finish_runs


@settings(max_examples=300, deadline=None)
@given(dag_and_state())
def test_plan_after_ends_decides_what_the_full_advance_decides(
    case: tuple[dict[str, tuple[str, ...]], dict[str, str], list[str], bool],
) -> None:
    """Never anything the full advance would not decide; all of it when the earlier ends
    were advanced already (the others' are left to their schedulers and to the next
    full advance, which the runs' flags ask for)."""
    edges, state, succeeded, advanced = case
    if not succeeded:
        return
    dag = make_dag(edges)
    full = planner.plan_advance({"d": dag}, {"d": False}, [RUN], {1: _latest(state)}, no_external)
    read = planner.tasks_to_read(dag, succeeded)
    around = {name: snap for name, snap in _latest(state).items() if name in read}
    plan, whole = planner.plan_after_ends({"d": dag}, [RUN], {1: around}, {1: succeeded}, no_external)
    if whole:
        assert whole == [1] and not plan.new_task_runs
        plan = planner.plan_advance({"d": dag}, {}, [RUN], {1: _latest(state)}, no_external)
    new, finished = _decided(plan)
    full_new, full_finished = _decided(full)
    assert new <= full_new and set(finished) <= set(full_finished)
    if advanced:
        assert (new, finished) == (full_new, full_finished)


def test_a_middle_hop_of_a_chain_reads_three_tasks_and_needs_no_whole_run() -> None:
    dag = make_dag({f"t{i}": ((f"t{i - 1}",) if i else ()) for i in range(1000)})
    assert planner.tasks_to_read(dag, ["t500"]) == {"t500", "t501"}
    around = {1: {"t500": AttemptSnapshot("t500", 1, "success")}}
    plan, whole = planner.plan_after_ends({"d": dag}, [RUN], around, {1: ["t500"]}, no_external)
    assert whole == []
    assert [(t.task_name, t.status) for t in plan.new_task_runs] == [("t501", "queued")]


def test_the_last_task_of_a_chain_hands_the_run_to_the_whole_advance() -> None:
    dag = make_dag({"a": (), "b": ("a",)})
    around = {1: {"b": AttemptSnapshot("b", 1, "success")}}
    plan, whole = planner.plan_after_ends({"d": dag}, [RUN], around, {1: ["b"]}, no_external)
    assert whole == [1] and plan.finish_runs == []
