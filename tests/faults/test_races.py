"""Several schedulers on one PostgreSQL: claims, slots and migrations raced for real
(F5, F6, F9), and a manual trigger at a slot's instant (F24)."""

from __future__ import annotations

import collections
import threading
from datetime import datetime

import pytest

from dagctl.actions.runs import trigger_run
from dagctl.config import Settings
from dagctl.store.revision import HEAD_REVISION
from tests.faults.conftest import Harness, wait_all
from tests.faults.invariants import wait_until

pytestmark = pytest.mark.postgres

APPEND = """
#!/usr/bin/env bash
echo "$DAGCTL_RUN_ID $DAGCTL_TASK $DAGCTL_ATTEMPT $$" >> "$FAULT_OUT"
"""


def test_claim_race_each_ready_attempt_executes_exactly_once(harness: Harness) -> None:
    dags, runs_per_dag = 10, 50
    triggered = []
    for i in range(dags):
        harness.dag(f"d{i}", "description: d\nmax_active_runs: 100\nretries: 0\n", append__sh=APPEND)
    for i in range(dags):
        triggered += harness.trigger_many(f"d{i}", runs_per_dag)
    schedulers = [harness.start("--until-idle", "--concurrency", "4") for _ in range(4)]
    codes = wait_all(schedulers, timeout=120)
    assert codes == [0, 0, 0, 0], [s.output()[-2000:] for s in schedulers]

    lines = harness.executions()
    per_run = collections.Counter(line.split()[0] for line in lines)
    assert len(per_run) == dags * runs_per_dag
    assert set(per_run.values()) == {1}, [r for r, n in per_run.items() if n > 1]
    assert {line.split()[2] for line in lines} == {"1"}  # no retry was needed
    owners = harness.sql("SELECT count(DISTINCT lease_owner) FROM task_run")  # all cleared
    assert owners == [(0,)]
    hosts = harness.sql("SELECT count(*) FROM task_run WHERE status = 'success'")
    assert hosts == [(dags * runs_per_dag,)]
    counts = harness.check(triggered=triggered, all_finished=True)
    assert counts == {"success": dags * runs_per_dag}
    for scheduler in schedulers:
        assert "UniqueViolation" not in scheduler.output()


def test_joins_raced_by_schedulers_whose_inputs_end_at_once_run_every_task_once(
    harness: Harness,
) -> None:
    """Each scheduler advances the runs of the attempts it saw succeed, in the
    transaction that records them (scheduling/scheduler.py, _advance_ends): the inputs of
    one join ending on several schedulers at once must still create the join once, and
    finish every run, without a deadlock between them."""
    fan = {f"b{i}__sh": f"# inputs: [a.sh]\n{APPEND}" for i in range(6)}
    join = "# inputs: [" + ", ".join(f"b{i}.sh" for i in range(6)) + "]\n" + APPEND
    harness.dag(
        "diamond",
        "description: d\nmax_active_runs: 20\nretries: 0\n",
        a__sh=APPEND,
        join__sh=join,
        last__sh=f"# inputs: [join.sh]\n{APPEND}",
        **fan,
    )
    triggered = harness.trigger_many("diamond", 12)
    schedulers = [harness.start("--until-idle", "--concurrency", "4") for _ in range(3)]
    codes = wait_all(schedulers, timeout=120)
    assert codes == [0, 0, 0], [s.output()[-2000:] for s in schedulers]
    per_task = collections.Counter(tuple(line.split()[:2]) for line in harness.executions())
    assert len(per_task) == 12 * 9 and set(per_task.values()) == {1}
    assert harness.check(triggered=triggered, all_finished=True) == {"success": 12}
    for scheduler in schedulers:
        assert "deadlock" not in scheduler.output().lower()


HOURLY = 'description: hourly\nschedule: "0 * * * *"\n'


def test_slot_race_exactly_one_run_per_due_slot(harness: Harness) -> None:
    count = 500
    for i in range(count):
        harness.dag(f"h{i:03d}", HOURLY, noop__yaml="type: no_op\n")
    # First sighting at 10:20: no run for earlier slots.
    harness.run("schedule", "--once", DAGCTL_FAKE_NOW="2024-05-01T10:20:00")
    assert harness.sql("SELECT count(*) FROM dag") == [(count,)]
    env = harness.env(DAGCTL_FAKE_NOW="2024-05-01T11:00:30")
    schedulers = [harness.start("--until-idle", "--concurrency", "50", env=env) for _ in range(2)]
    codes = wait_all(schedulers, timeout=120)
    assert codes == [0, 0], [s.output()[-2000:] for s in schedulers]
    rows = harness.sql("SELECT dag_name, scheduled_slot, status FROM dag_run")
    assert len(rows) == count
    assert {r[1] for r in rows} == {datetime(2024, 5, 1, 11)}
    assert len({r[0] for r in rows}) == count
    assert {r[2] for r in rows} == {"success"}
    for scheduler in schedulers:
        text = scheduler.output()
        assert "UniqueViolation" not in text and "ERROR" not in text, text[-2000:]
    harness.check(all_finished=True)


def test_migration_race_three_schedulers_on_an_empty_database(harness: Harness) -> None:
    harness.dag("ok", "description: d\nmax_active_runs: 10\n", append__sh=APPEND)
    assert harness.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    schedulers = [harness.start() for _ in range(3)]
    wait_until(
        lambda: _table_count(harness, "scheduler") == 3, 30, "three schedulers to register", interval=0.2
    )
    assert harness.sql("SELECT version_num FROM alembic_version") == [(HEAD_REVISION,)]
    run_ids = [int(harness.run("trigger", "ok").stdout) for _ in range(3)]
    harness.wait_runs_finished(30, expected=3)
    for scheduler in schedulers:
        assert scheduler.alive(), scheduler.output()
        scheduler.signal(15)
    assert wait_all(schedulers, 30) == [0, 0, 0]
    outputs = "".join(s.output() for s in schedulers)
    assert outputs.count("migrating the state database") == 1, outputs
    assert "ERROR" not in outputs, outputs
    assert harness.sql("SELECT count(*) FROM scheduler WHERE stopped_at IS NOT NULL") == [(3,)]
    harness.check(triggered=run_ids, all_finished=True)


def _table_count(harness: Harness, table: str) -> int:
    exists = harness.sql("SELECT to_regclass(%s) IS NOT NULL", (table,))[0][0]
    return int(harness.sql(f"SELECT count(*) FROM {table}")[0][0]) if exists else 0


def test_trigger_at_a_slots_instant_keeps_both_runs(harness: Harness) -> None:
    harness.dag("hourly", HOURLY, append__sh=APPEND)
    harness.run("schedule", "--once", DAGCTL_FAKE_NOW="2024-05-01T10:20:00")
    slot = datetime(2024, 5, 1, 11)
    settings = Settings.resolve(dags=harness.dags, db=harness.db_url)
    # The scheduler's clock crosses 11:00 a second after it starts, while the trigger
    # for 11:00 exactly lands at about the same moment.
    scheduler = harness.start(env=harness.env(DAGCTL_FAKE_NOW="2024-05-01T10:59:59"))
    wait_until(lambda: _table_count(harness, "scheduler") == 1, 30, "the scheduler to start", interval=0.05)
    manual: list[int] = []
    thread = threading.Thread(target=lambda: manual.append(trigger_run(settings, "hourly", {}, "t", slot)))
    thread.start()
    thread.join(30)
    finished = harness.wait_runs_finished(30, expected=2)
    assert finished == {"success": 2}
    rows = harness.sql("SELECT kind, logical_date, scheduled_slot FROM dag_run ORDER BY kind")
    assert rows == [("manual", slot, None), ("scheduled", slot, slot)]
    assert len(harness.executions()) == 2
    scheduler.signal(15)
    assert scheduler.wait(30) == 0
    harness.check(triggered=manual, all_finished=True)
