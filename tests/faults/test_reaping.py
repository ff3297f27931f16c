"""Reaping at the earliest expiry (issue 12, item 7): a live scheduler takes over a dead
one's attempts as soon as their lease has run out on the database's clock, not at its
next fixed reaping period (which made it up to 4/3 of the lease)."""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.conftest import Harness
from tests.faults.invariants import wait_until

pytestmark = pytest.mark.postgres

LEASE = 6.0  # a reaper on a fixed lease/3 period would be up to 2 s late

HANG_FIRST = """
#!/usr/bin/env bash
echo "start $DAGCTL_RUN_ID $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
if [ "$DAGCTL_ATTEMPT" = 1 ]; then sleep 300; fi
"""


def test_dead_schedulers_attempts_are_reaped_at_their_lease_expiry(harness: Harness) -> None:
    harness.dag("reap", "description: d\nmax_active_runs: 5\nretries: 0\n", work__sh=HANG_FIRST)
    lease = {"DAGCTL_LEASE_SECONDS": str(LEASE)}
    survivor = harness.start("--concurrency", "1", "--grace", "1", **lease)
    blocker = harness.trigger_many("reap", 1)  # keeps the survivor's only slot busy
    wait_until(
        lambda: harness.sql("SELECT count(*) FROM task_run WHERE status = 'running'") == [(1,)], 20, "a start"
    )
    # Three doomed schedulers, each running one attempt, killed at unrelated moments:
    # their leases run out at unrelated phases of the survivor's own renewal period.
    doomed: list[int] = []
    expiries = {}
    for index in range(3):
        [run] = harness.trigger_many("reap", 1)
        scheduler = harness.start("--concurrency", "1", **lease)
        running = f"SELECT count(*) FROM task_run WHERE dag_run_id = {run} AND status = 'running'"
        wait_until(lambda q=running: harness.sql(q) == [(1,)], 20, "the doomed scheduler's attempt")
        time.sleep(0.45 * (index + 1))
        scheduler.signal(signal.SIGKILL)
        scheduler.wait(10)
        doomed.append(run)
        [(expiry,)] = harness.sql(f"SELECT lease_expires_at FROM task_run WHERE dag_run_id = {run}")
        expiries[run] = expiry
    late: dict[int, float] = {}

    def all_reaped() -> bool:
        rows = harness.sql(
            "SELECT dag_run_id, status, timezone('utc', now()) FROM task_run "
            "WHERE dag_run_id = ANY(%s) AND attempt = 1",
            (doomed,),
        )
        for run_id, status, db_now in rows:
            if status != "running" and run_id not in late:
                late[run_id] = (db_now - expiries[run_id]).total_seconds()
        return len(late) == len(doomed)

    wait_until(all_reaped, 4 * LEASE, "the dead schedulers' attempts to be reaped", interval=0.02)
    # Each at its expiry: the reaper's 0.05 s slack, a pass, and this test's polling.
    assert max(late.values()) < 0.5, late
    assert min(late.values()) >= 0, late
    statuses = harness.sql(
        "SELECT status FROM task_run WHERE dag_run_id = ANY(%s) AND attempt = 1", (doomed,)
    )
    assert statuses == [("interrupted",)] * 3
    survivor.signal(signal.SIGTERM)
    assert survivor.wait(20) == 0
    harness.check(triggered=blocker + doomed)
