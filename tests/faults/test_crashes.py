"""Schedulers and tasks that die or refuse to: `kill -9` of a scheduler (F2), SIGTERM
with tasks running (F19), and tasks that leave children or ignore SIGTERM (F21)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.conftest import Harness
from tests.faults.invariants import marked_processes, pid_alive, wait_until

pytestmark = pytest.mark.postgres

LEASE = 3.0

# The first attempt hangs; a retry finishes at once.
HANG_FIRST = """
#!/usr/bin/env bash
echo "start $DAGCTL_RUN_ID $DAGCTL_ATTEMPT $$" >> "$FAULT_OUT"
if [ "$DAGCTL_ATTEMPT" = 1 ]; then sleep "${secs:-300}"; fi
echo "end $DAGCTL_RUN_ID $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
"""


def started(harness: Harness, attempt: int = 1) -> set[str]:
    return {
        line.split()[1]
        for line in harness.executions()
        if line.startswith("start ") and line.split()[2] == str(attempt)
    }


def test_kill_9_scheduler_tasks_die_attempts_reaped_within_the_lease_and_retried(harness: Harness) -> None:
    harness.dag(
        "slow", "description: d\nmax_active_runs: 10\nretries: 2\nretry_delay: 0\n", work__sh=HANG_FIRST
    )
    runs = harness.trigger_many("slow", 4)
    first = harness.start("--concurrency", "4", DAGCTL_LEASE_SECONDS=str(LEASE))
    wait_until(lambda: len(started(harness)) == 4, 20, "four attempts to start")

    def all_processes() -> list[tuple[int, str]] | None:
        found = marked_processes(harness.marker)
        return found if len(found) >= 8 else None  # bash and its sleep, per attempt

    tasks = wait_until(all_processes, 10, "the task processes")
    first.signal(signal.SIGKILL)
    first.wait(10)
    killed_at = time.monotonic()
    # The guardian kills the task process groups of a scheduler that died.
    wait_until(lambda: not any(pid_alive(pid) for pid, _ in tasks), 5, "the dead scheduler's tasks to die")
    assert harness.sql("SELECT count(*) FROM task_run WHERE status = 'running'") == [(4,)]

    second = harness.start("--concurrency", "4", DAGCTL_LEASE_SECONDS=str(LEASE))
    wait_until(
        lambda: harness.sql("SELECT count(*) FROM task_run WHERE status = 'interrupted'") == [(4,)],
        LEASE + 10,
        "the lost attempts to be reaped",
    )
    reaped_after = time.monotonic() - killed_at
    # Within the lease, plus the new scheduler's start-up and one reaper period.
    assert reaped_after < LEASE + 6, reaped_after
    assert harness.wait_runs_finished(20) == {"success": 4}
    attempts = harness.sql("SELECT attempt, status FROM task_run ORDER BY dag_run_id, attempt")
    assert attempts == [(1, "interrupted"), (2, "success")] * 4
    assert started(harness, attempt=2) == {str(r) for r in runs}
    second.signal(signal.SIGTERM)
    assert second.wait(20) == 0
    harness.check(triggered=runs, all_finished=True)


def test_sigterm_stops_claiming_waits_the_grace_then_kills_and_records(harness: Harness) -> None:
    harness.dag(
        "term",
        """
        description: d
        max_active_runs: 10
        retries: 1
        retry_delay: 0
        params:
          secs: {type: string, default: "300"}
        """,
        work__sh=HANG_FIRST,
    )
    quick = harness.trigger_many("term", 1, {"secs": "1"})
    stuck = harness.trigger_many("term", 1, {"secs": "300"})
    waiting = harness.trigger_many("term", 2, {"secs": "1"})
    scheduler = harness.start("--concurrency", "2", "--grace", "3")
    wait_until(lambda: started(harness) == {str(quick[0]), str(stuck[0])}, 20, "two attempts to start")
    scheduler.signal(signal.SIGTERM)
    signalled = time.monotonic()
    code = scheduler.wait(20)
    took = time.monotonic() - signalled
    assert code == 0, scheduler.output()[-3000:]  # documented: a signal stop exits 0
    assert 3 <= took < 10, took  # the grace, then the kill and the records
    output = scheduler.output()
    assert "stopping: waiting up to 3 s for 2 running task(s)" in output

    rows = harness.sql("SELECT dag_run_id, attempt, status, error FROM task_run ORDER BY dag_run_id, attempt")
    assert (quick[0], 1, "success", None) in rows  # finished within the grace
    # interrupted, not failed: run again by the next scheduler, not counted as a retry
    assert (stuck[0], 1, "interrupted", "killed at scheduler shutdown") in rows
    assert (stuck[0], 2, "queued", None) in rows
    for run_id in waiting:  # never claimed after the signal
        assert (run_id, 1, "queued", None) in rows
    assert started(harness) == {str(quick[0]), str(stuck[0])}
    assert harness.sql("SELECT count(*) FROM task_run WHERE status = 'running'") == [(0,)]
    assert harness.sql("SELECT count(*) FROM scheduler WHERE stopped_at IS NOT NULL") == [(1,)]
    assert marked_processes(harness.marker) == []
    harness.check(triggered=quick + stuck + waiting)

    harness.run("schedule", "--until-idle", "--poll-interval", "0.1", timeout=60)
    harness.check(triggered=quick + stuck + waiting, all_finished=True)
    assert harness.run_statuses() == {"success": 4}


def test_stubborn_tasks_are_cleaned_up(harness: Harness) -> None:
    harness.dag(
        "stubborn",
        "description: d\nretries: 0\ntimeout: 1s\n",
        background__sh="""
        #!/usr/bin/env bash
        sleep 300 &
        echo $! > "$FAULT_DIR/background.pid"
        nohup sleep 301 >/dev/null 2>&1 &
        echo $! > "$FAULT_DIR/nohup.pid"
        echo "left two children behind"
        """,
        deaf__sh="""
        #!/usr/bin/env bash
        trap '' TERM
        echo $$ > "$FAULT_DIR/deaf.pid"
        sleep 300 &
        echo $! > "$FAULT_DIR/deaf-child.pid"
        while true; do sleep 1; done
        """,
    )
    [run] = harness.trigger_many("stubborn", 1)
    started_at = time.monotonic()
    harness.run("schedule", "--until-idle", "--poll-interval", "0.1", timeout=60)
    assert time.monotonic() - started_at < 15
    rows = dict(
        (name, (status, error))
        for name, status, error in harness.sql("SELECT task_name, status, error FROM task_run")
    )
    assert rows == {
        "background.sh": ("success", None),
        "deaf.sh": ("failed", "timed out after 1s"),
    }
    for name in ("background", "nohup", "deaf", "deaf-child"):
        pid = int((harness.root / f"{name}.pid").read_text())
        assert not pid_alive(pid), name
    harness.check(triggered=[run], all_finished=True)
