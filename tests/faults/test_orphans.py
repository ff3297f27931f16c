"""DAGs deleted, renamed away or made broken while a run is in progress (F30): after
the grace period (DAGCTL_ORPHAN_GRACE_SECONDS) their runs end `failed` with the reason,
their attempts not started are cancelled, and `why` explains them. A DAG broken for
less than the grace period (an editor saving, a deploy) loses nothing."""

from __future__ import annotations

import json
import shutil
import signal
import time

import pytest

from tests.faults.conftest import Harness
from tests.faults.invariants import wait_until

pytestmark = pytest.mark.postgres

GRACE = 3.0

WORKFLOW = "description: d\nretries: 0\n"
# a.sh runs until the test lets it end; b.sh comes after it.
FIRST = """
#!/usr/bin/env bash
echo "start $DAGCTL_DAG" >> "$FAULT_OUT"
while [ ! -e "$FAULT_DIR/go" ]; do sleep 0.05; done
"""
SECOND = """
#!/usr/bin/env bash
# inputs: [a.sh]
echo "second $DAGCTL_DAG" >> "$FAULT_OUT"
"""


def test_runs_of_deleted_renamed_or_broken_dags_fail_after_the_grace_period(harness: Harness) -> None:
    for name in ("gone", "moved", "broke", "blip"):
        harness.dag(name, WORKFLOW, a__sh=FIRST, b__sh=SECOND)
    runs = {name: harness.trigger_many(name, 1)[0] for name in ("gone", "moved", "broke", "blip")}
    scheduler = harness.start("--concurrency", "4", DAGCTL_ORPHAN_GRACE_SECONDS=str(GRACE))
    wait_until(lambda: len(harness.executions()) == 4, 20, "every a.sh to start")

    shutil.rmtree(harness.dags / "gone")
    (harness.dags / "moved").rename(harness.dags / "moved_away")
    broken = "description: d\nretries: [\n"
    (harness.dags / "broke" / "workflow.yaml").write_text(broken)
    (harness.dags / "blip" / "workflow.yaml").write_text(broken)
    changed = time.monotonic()
    wait_until(
        lambda: harness.sql("SELECT count(*) FROM dag WHERE missing_since IS NOT NULL") == [(4,)],
        10,
        "the scheduler to notice",
    )
    (harness.root / "go").touch()  # every a.sh ends now, its DAG gone or broken
    (harness.dags / "blip" / "workflow.yaml").write_text(WORKFLOW)  # mended within the grace

    wait_until(lambda: harness.run_statuses().get("running", 0) == 0, 20, "the orphaned runs to end")
    assert time.monotonic() - changed >= GRACE
    rows = dict(
        (name, (status, error))
        for name, status, error in harness.sql("SELECT dag_name, status, error FROM dag_run")
    )
    assert rows == {
        "gone": ("failed", "DAG gone is no longer in the DAGs folder (deleted or renamed)"),
        # The renamed folder is a new DAG of its own: the old one's run fails.
        "moved": ("failed", "DAG moved is no longer in the DAGs folder (deleted or renamed)"),
        "broke": ("failed", rows["broke"][1]),
        "blip": ("success", None),
    }
    assert rows["broke"][1].startswith("DAG broke is broken: ")
    # Each a.sh ran to its end and was recorded; b.sh never started for the orphans.
    assert [line for line in harness.executions() if line.startswith("second")] == ["second blip"]
    tasks = harness.sql("SELECT dag_name, task_name, status FROM task_run WHERE dag_name <> 'blip'")
    assert sorted(tasks) == sorted((name, "a.sh", "success") for name in ("gone", "moved", "broke"))

    why = json.loads(harness.run("why", "gone", "-o", "json").stdout)
    assert why["reasons"][0] == {
        "code": "missing",
        "message": "gone is not in the DAGs folder (deleted or renamed): no run is created or started",
    }
    assert (
        f"its last run, {runs['gone']}, failed: DAG gone is no longer in the DAGs folder (deleted or renamed)"
        in why["reasons"][-1]["message"]
    )
    assert harness.run("why", "never_was", check=False).returncode == 2
    scheduler.signal(signal.SIGTERM)
    assert scheduler.wait(20) == 0
    harness.check(triggered=list(runs.values()), all_finished=True)


def test_queued_attempts_of_a_deleted_dag_wait_then_are_cancelled(harness: Harness) -> None:
    harness.dag("later", WORKFLOW, a__sh=FIRST)
    [run] = harness.trigger_many("later", 1)
    # Deleted after its run started (as if a scheduler had queued a.sh) and before a.sh
    # was claimed: no scheduler claims it any more.
    shutil.rmtree(harness.dags / "later")
    harness.sql(
        "INSERT INTO task_run (dag_run_id, dag_name, task_name, attempt, status, not_before, queued_at) "
        "VALUES (%s, 'later', 'a.sh', 1, 'queued', timezone('utc', now()), timezone('utc', now()))",
        (run,),
    )
    harness.sql("UPDATE dag_run SET status = 'running' WHERE id = %s", (run,))
    why_before = json.loads(harness.run("why", "later", "-o", "json").stdout)["reasons"]
    assert why_before[0]["code"] == "missing"
    harness.run(
        "schedule",
        "--until-idle",
        "--poll-interval",
        "0.1",
        DAGCTL_ORPHAN_GRACE_SECONDS=str(GRACE),
        timeout=60,
    )
    assert harness.executions() == []  # never started
    reason = "DAG later is no longer in the DAGs folder (deleted or renamed)"
    assert harness.sql("SELECT status, error FROM dag_run") == [("failed", reason)]
    assert harness.sql("SELECT status, error FROM task_run") == [("cancelled", reason)]
    harness.check(triggered=[run], all_finished=True)
