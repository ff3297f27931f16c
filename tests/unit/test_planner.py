"""The planner's decisions, fed with times and snapshots: no database, no sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import MappingProxyType

from dagctl.dags.model import Dag, Task
from dagctl.scheduling import planner
from dagctl.scheduling.planner import AttemptSnapshot, RunSnapshot


def make_dag(
    tasks: dict[str, tuple[str, ...]],
    schedule: str | None = None,
    catchup: str = "latest",
    max_active_runs: int = 1,
    retries: int = 2,
    tz: str = "UTC",
) -> Dag:
    return Dag(
        name="d",
        folder="/nowhere/d",
        description="test",
        tasks=MappingProxyType(
            {
                name: Task(name=name, folder="/nowhere/d", type="no_op", inputs=inputs)
                for name, inputs in tasks.items()
            }
        ),
        fingerprint="f",
        schedule=schedule,
        timezone=tz,
        catchup=catchup,  # type: ignore[arg-type]
        max_active_runs=max_active_runs,
        retries=retries,
    )


T0 = datetime(2024, 1, 10, 12, 0)


def no_external(_dag: str, _task: str, _when: datetime, _earliest: datetime | None = None) -> str | None:
    return None


class TestDueSlots:
    def test_new_dag_gets_no_runs_for_slots_before_it_was_seen(self) -> None:
        dag = make_dag({"a": ()}, schedule="0 * * * *")
        assert planner.due_slots(dag, None, first_seen=T0, now=T0 + timedelta(minutes=30)) is None

    def test_next_slot_is_due_once_passed(self) -> None:
        dag = make_dag({"a": ()}, schedule="0 * * * *")
        due = planner.due_slots(dag, None, first_seen=T0, now=T0 + timedelta(hours=1, seconds=1))
        assert due is not None
        assert due.slots == (T0 + timedelta(hours=1),)

    def test_latest_after_downtime_creates_exactly_one_run_for_the_most_recent_slot(self) -> None:
        dag = make_dag({"a": ()}, schedule="0 * * * *")
        now = T0 + timedelta(hours=7, minutes=20)
        due = planner.due_slots(dag, last_slot=T0, first_seen=T0, now=now)
        assert due is not None
        assert due.slots == (T0 + timedelta(hours=7),)
        assert due.watermark == T0 + timedelta(hours=7)
        # and then nothing until the next slot
        assert planner.due_slots(dag, due.watermark, T0, now) is None

    def test_all_creates_every_missed_slot(self) -> None:
        dag = make_dag({"a": ()}, schedule="0 * * * *", catchup="all")
        due = planner.due_slots(dag, last_slot=T0, first_seen=T0, now=T0 + timedelta(hours=3, minutes=5))
        assert due is not None
        assert due.slots == tuple(T0 + timedelta(hours=h) for h in (1, 2, 3))

    def test_none_skips_missed_slots_but_runs_on_time_ones(self) -> None:
        dag = make_dag({"a": ()}, schedule="0 * * * *", catchup="none")
        late = planner.due_slots(dag, last_slot=T0, first_seen=T0, now=T0 + timedelta(hours=3, minutes=5))
        assert late is not None
        assert late.slots == ()
        assert late.watermark == T0 + timedelta(hours=3)
        on_time = planner.due_slots(dag, last_slot=T0, first_seen=T0, now=T0 + timedelta(hours=1, seconds=2))
        assert on_time is not None
        assert on_time.slots == (T0 + timedelta(hours=1),)

    def test_unscheduled_dag_is_never_due(self) -> None:
        assert planner.due_slots(make_dag({"a": ()}), None, T0, T0 + timedelta(days=9)) is None


class TestAdvance:
    def run(self, run_id: int, status: str = "running", day: int = 1) -> RunSnapshot:
        return RunSnapshot(run_id, "d", status, datetime(2024, 1, day))

    def test_roots_are_queued_when_a_run_starts(self) -> None:
        dag = make_dag({"a": (), "b": ("a",), "c": ()})
        plan = planner.plan_advance({"d": dag}, {"d": False}, [self.run(1, "queued")], {}, no_external)
        assert plan.start_runs == [1]
        assert sorted(t.task_name for t in plan.new_task_runs) == ["a", "c"]
        assert {t.status for t in plan.new_task_runs} == {"queued"}

    def test_max_active_runs_starts_the_oldest_queued_run_only(self) -> None:
        dag = make_dag({"a": ()}, max_active_runs=1)
        runs = [self.run(7, "queued", day=3), self.run(8, "queued", day=2)]
        plan = planner.plan_advance({"d": dag}, {"d": False}, runs, {}, no_external)
        assert plan.start_runs == [8]
        assert plan.still_dirty == [7]

    def test_paused_dag_starts_nothing(self) -> None:
        plan = planner.plan_advance(
            {"d": make_dag({"a": ()})}, {"d": True}, [self.run(1, "queued")], {}, no_external
        )
        assert plan.start_runs == []
        assert plan.still_dirty == [1]

    def test_downstream_waits_for_all_inputs_then_is_queued(self) -> None:
        dag = make_dag({"a": (), "b": (), "c": ("a", "b")})
        half = {1: {"a": AttemptSnapshot("a", 1, "success"), "b": AttemptSnapshot("b", 1, "running")}}
        assert (
            planner.plan_advance({"d": dag}, {"d": False}, [self.run(1)], half, no_external).new_task_runs
            == []
        )
        done = {1: {"a": AttemptSnapshot("a", 1, "success"), "b": AttemptSnapshot("b", 2, "success")}}
        plan = planner.plan_advance({"d": dag}, {"d": False}, [self.run(1)], done, no_external)
        assert [(t.task_name, t.status) for t in plan.new_task_runs] == [("c", "queued")]

    def test_failure_propagates_upstream_failed_and_fails_the_run(self) -> None:
        dag = make_dag({"a": (), "b": ("a",), "c": ("b",)})
        attempts = {1: {"a": AttemptSnapshot("a", 3, "failed")}}
        plan = planner.plan_advance({"d": dag}, {"d": False}, [self.run(1)], attempts, no_external)
        # the whole chain is decided in one pass, and the run ends with it
        assert [(t.task_name, t.status) for t in plan.new_task_runs] == [
            ("b", "upstream_failed"),
            ("c", "upstream_failed"),
        ]
        assert plan.finish_runs == [(1, "failed")]

    def test_a_dag_with_only_failing_roots_finishes_in_one_pass(self) -> None:
        dag = make_dag({"a": (), "b": ("a",)})
        plan = planner.plan_advance(
            {"d": dag},
            {"d": False},
            [self.run(1)],
            {1: {"a": AttemptSnapshot("a", 1, "failed")}},
            no_external,
        )
        assert plan.finish_runs == [(1, "failed")]

    def test_run_succeeds_when_every_task_succeeded(self) -> None:
        dag = make_dag({"a": (), "b": ("a",)})
        attempts = {1: {"a": AttemptSnapshot("a", 1, "success"), "b": AttemptSnapshot("b", 2, "success")}}
        plan = planner.plan_advance({"d": dag}, {"d": False}, [self.run(1)], attempts, no_external)
        assert plan.finish_runs == [(1, "success")]

    def test_waiting_retry_keeps_the_run_open(self) -> None:
        dag = make_dag({"a": ()})
        attempts = {1: {"a": AttemptSnapshot("a", 2, "waiting")}}
        plan = planner.plan_advance({"d": dag}, {"d": False}, [self.run(1)], attempts, no_external)
        assert plan.finish_runs == []
        assert plan.new_task_runs == []

    def test_cross_dag_input_waits_then_proceeds(self) -> None:
        dag = make_dag({"a": ("other:x.sh",)})
        plan = planner.plan_advance({"d": dag}, {"d": False}, [self.run(1)], {}, no_external)
        assert plan.new_task_runs == []
        assert plan.still_dirty == [1]
        plan = planner.plan_advance({"d": dag}, {"d": False}, [self.run(1)], {}, lambda *_: "success")
        assert [t.task_name for t in plan.new_task_runs] == ["a"]

    def test_runs_of_unloadable_dags_are_left_alone(self) -> None:
        plan = planner.plan_advance({}, {"d": False}, [self.run(1)], {}, no_external)
        assert plan.new_task_runs == []
        assert plan.still_dirty == [1]


def test_retry_delay_counts_attempts_and_backs_off() -> None:
    base = make_dag({"a": ()}, retries=2)
    from dataclasses import replace

    dag = replace(base, retry_delay=10.0, retry_backoff=2.0)
    assert planner.retry_delay(dag, "a", 1) == 10.0
    assert planner.retry_delay(dag, "a", 2) == 20.0
    assert planner.retry_delay(dag, "a", 3) is None  # 1 + 2 retries = 3 attempts at most


class TestAdvanceNeeded:
    """When attempts end, the scheduler may skip the advance step if it provably changes
    nothing; any doubt means advancing."""

    FAN = make_dag(
        {"start": (), "m1": ("start",), "m2": ("start",), "m3": ("start",), "end": ("m1", "m2", "m3")}
    )

    def ended(self, task: str, status: str = "success", run: int = 1) -> planner.Ended:
        return planner.Ended(run, "d", task, status)

    def test_a_middle_task_of_a_fan_out_while_siblings_run_changes_nothing(self) -> None:
        assert not planner.advance_needed({"d": self.FAN}, [self.ended("m1")], {1: {"m2", "m3"}})

    def test_the_last_middle_task_makes_the_join_ready(self) -> None:
        assert planner.advance_needed({"d": self.FAN}, [self.ended("m3")], {1: set()})

    def test_a_task_whose_successor_waits_on_nothing_running(self) -> None:
        chain = make_dag({"a": (), "b": ("a",)})
        assert planner.advance_needed({"d": chain}, [self.ended("a")], {1: {"x"}})

    def test_a_failure_always_advances_for_upstream_failed(self) -> None:
        assert planner.advance_needed({"d": self.FAN}, [self.ended("m1", "failed")], {1: {"m2", "m3"}})

    def test_a_run_with_nothing_running_here_may_be_finishing(self) -> None:
        leaf = make_dag({"a": (), "b": ()})
        assert planner.advance_needed({"d": leaf}, [self.ended("a")], {})
        assert not planner.advance_needed({"d": leaf}, [self.ended("a")], {1: {"b"}})

    def test_running_tasks_of_another_run_do_not_count(self) -> None:
        assert planner.advance_needed({"d": self.FAN}, [self.ended("m1", run=1)], {2: {"m2", "m3"}})

    def test_an_unknown_dag_advances(self) -> None:
        assert planner.advance_needed({}, [self.ended("m1")], {1: {"m2"}})

    def test_a_task_another_dag_waits_on_advances(self) -> None:
        running = {1: {"m2", "m3"}}
        assert planner.advance_needed({"d": self.FAN}, [self.ended("m1")], running, {("d", "m1")})
        assert not planner.advance_needed({"d": self.FAN}, [self.ended("m1")], running, {("d", "end")})
