"""A scheduler stalled, not dead (F25): `kill -STOP` for longer than its lease while it
runs a long task, a second scheduler alive. The stalled loop cannot stop anything, so
its guardian (a separate process) must kill the task before the lease runs out; the
other scheduler runs the task again only after that, and the stalled scheduler's late
report of the killed attempt is not recorded when it wakes up."""

from __future__ import annotations

import signal
import time

import pytest

from dagctl.store.attempts import LOST
from tests.faults.conftest import Harness
from tests.faults.invariants import marked_processes, wait_until

pytestmark = pytest.mark.postgres

LEASE = 3.0

# Attempt 1 ticks (with a timestamp) for 20 s; attempt 2 ticks three times.
TICKER = """
#!/usr/bin/env bash
n=200
if [ "$DAGCTL_ATTEMPT" != 1 ]; then n=3; fi
for i in $(seq "$n"); do
  echo "tick $DAGCTL_ATTEMPT $(date +%s.%N)" >> "$FAULT_OUT"
  sleep 0.1
done
"""


def ticks(harness: Harness) -> dict[int, list[float]]:
    found: dict[int, list[float]] = {}
    for line in harness.executions():
        kind, attempt, stamp = line.split()
        if kind == "tick":
            found.setdefault(int(attempt), []).append(float(stamp))
    return found


def test_a_stalled_scheduler_never_lets_its_task_run_twice_at_once(harness: Harness) -> None:
    harness.dag("stall", "description: d\nretries: 1\nretry_delay: 0\n", tick__sh=TICKER)
    lease = {"DAGCTL_LEASE_SECONDS": str(LEASE)}
    stalled = harness.start(**lease)
    [run] = harness.trigger_many("stall", 1)
    wait_until(lambda: len(ticks(harness).get(1, [])) >= 3, 20, "attempt 1 to tick")
    other = harness.start(**lease)
    wait_until(
        lambda: harness.sql("SELECT count(*) FROM scheduler WHERE stopped_at IS NULL") == [(2,)],
        10,
        "the second scheduler to start",
    )

    stalled.signal(signal.SIGSTOP)
    stopped_at = time.time()
    try:
        wait_until(lambda: len(ticks(harness).get(2, [])) >= 3, LEASE + 10, "attempt 2 elsewhere")
        taken_over = time.time() - stopped_at
        first, second = ticks(harness)[1], ticks(harness)[2]
        # Attempt 1 was killed while its scheduler was still stopped, before attempt 2
        # started: never two executions at once.
        assert max(first) < min(second), (max(first) - min(second), taken_over)
        assert max(first) - stopped_at < LEASE, max(first) - stopped_at
        assert taken_over < LEASE + 2, taken_over
        time.sleep(max(0.0, 2 * LEASE - (time.time() - stopped_at)))  # stalled for twice the lease
    finally:
        stalled.signal(signal.SIGCONT)

    assert harness.wait_runs_finished(20) == {"success": 1}
    time.sleep(1.0)  # let the woken scheduler report what it saw: it must change nothing
    rows = harness.sql("SELECT attempt, status, error FROM task_run ORDER BY attempt")
    # Reaped as interrupted (not failed: it does not use up the one retry); the stalled
    # scheduler's late report ("killed by the guardian") was not recorded.
    assert rows == [(1, "interrupted", LOST), (2, "success", None)], rows
    assert len(ticks(harness)[2]) == 3
    assert marked_processes(harness.marker) == []
    for scheduler in (stalled, other):
        scheduler.signal(signal.SIGTERM)
    assert [stalled.wait(20), other.wait(20)] == [0, 0]
    assert "Traceback" not in stalled.output() + other.output()
    harness.check(triggered=[run], all_finished=True)
