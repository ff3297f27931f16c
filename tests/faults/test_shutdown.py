"""A routine shutdown during runs (F26, a rolling deploy): SIGTERM with a task running
and `retries: 0`. The attempt killed after the grace period is `interrupted`, not
failed; the next scheduler runs it again without using up a retry, and the run
succeeds. `status`, `why` and `-o json` say what happened."""

from __future__ import annotations

import json
import signal

import pytest

from tests.faults.conftest import Harness
from tests.faults.invariants import marked_processes, wait_until

pytestmark = pytest.mark.postgres

# The first attempt outlives any grace period; a second one finishes at once.
HANG_FIRST = """
#!/usr/bin/env bash
echo "start $DAGCTL_RUN_ID $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
if [ "$DAGCTL_ATTEMPT" = 1 ]; then sleep 300; fi
echo "end $DAGCTL_RUN_ID $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
"""


def test_a_deploy_interrupts_attempts_without_using_up_their_retries(harness: Harness) -> None:
    harness.dag("deploy", "description: d\nretries: 0\n", work__sh=HANG_FIRST)
    [run] = harness.trigger_many("deploy", 1)
    old = harness.start("--grace", "1")
    wait_until(lambda: f"start {run} 1" in harness.executions(), 20, "attempt 1 to start")
    old.signal(signal.SIGTERM)
    assert old.wait(20) == 0, old.output()[-3000:]
    assert marked_processes(harness.marker) == []

    rows = harness.sql("SELECT attempt, status, error FROM task_run ORDER BY attempt")
    assert rows == [(1, "interrupted", "killed at scheduler shutdown"), (2, "queued", None)]
    assert harness.run_statuses() == {"running": 1}  # not failed, though retries is 0

    [shown] = json.loads(harness.run("status", "--run", str(run), "-o", "json").stdout)
    [task] = shown["tasks"]
    assert (task["status"], task["attempt"]) == ("queued", 2)
    assert task["interrupted"] == [{"attempt": 1, "error": "killed at scheduler shutdown"}]
    table = " ".join(harness.run("status", "--run", str(run)).stdout.split())
    assert "attempt 1 interrupted (not counted as a retry): killed at scheduler shutdown" in table
    reasons = json.loads(harness.run("why", "deploy", "-o", "json").stdout)["reasons"]
    assert {
        "code": "interrupted",
        "message": f"run {run}: work.sh attempt 1 was interrupted (killed at scheduler shutdown); "
        "attempt 2 runs it again, not counted against retries",
    } in reasons
    logs = json.loads(harness.run("logs", str(run), "-o", "json").stdout)
    assert [(a["attempt"], a["status"]) for a in logs["attempts"]] == [(1, "interrupted"), (2, "queued")]

    harness.run("schedule", "--until-idle", "--poll-interval", "0.1", timeout=60)
    assert harness.run_statuses() == {"success": 1}
    assert harness.sql("SELECT attempt, status FROM task_run ORDER BY attempt") == [
        (1, "interrupted"),
        (2, "success"),
    ]
    assert f"end {run} 2" in harness.executions()
    harness.check(triggered=[run], all_finished=True)


def test_a_grace_period_longer_than_the_lease_keeps_the_lease(harness: Harness) -> None:
    """While a stopping scheduler waits for its tasks, it keeps renewing their leases:
    neither its guardian nor another scheduler takes them over before the grace ends."""
    harness.dag(
        "slow",
        "description: d\nretries: 0\n",
        work__sh="""
        #!/usr/bin/env bash
        echo "start $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
        sleep 5
        echo "end $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
        """,
    )
    lease = {"DAGCTL_LEASE_SECONDS": "2"}
    [run] = harness.trigger_many("slow", 1)
    stopping = harness.start("--grace", "10", **lease)
    wait_until(lambda: harness.executions() == ["start 1"], 20, "the task to start")
    other = harness.start(**lease)
    stopping.signal(signal.SIGTERM)
    assert stopping.wait(20) == 0, stopping.output()[-3000:]
    assert harness.executions() == ["start 1", "end 1"]
    assert harness.sql("SELECT attempt, status FROM task_run") == [(1, "success")]
    assert harness.run_statuses() == {"success": 1}
    other.signal(signal.SIGTERM)
    assert other.wait(20) == 0
    harness.check(triggered=[run], all_finished=True)
