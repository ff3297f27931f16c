"""A `dag` task and a `for_each` task survive a `kill -9` of the scheduler running
their work: the child run and the items are in the database, the attempts the dead
scheduler held are reaped and run again by another scheduler, and the parent ends
`success` with exactly one child run and one successful attempt per item."""

from __future__ import annotations

import signal

import pytest

from tests.faults.conftest import Harness
from tests.faults.invariants import wait_until

pytestmark = pytest.mark.postgres

LEASE = 3.0

# Hangs on its first attempt, so that the scheduler dies while it runs.
HANG_FIRST = 'echo "$DAGCTL_TASK $DAGCTL_ITEM_INDEX $DAGCTL_ATTEMPT" >> "$FAULT_OUT"\n'
HANG_FIRST += 'if [ "$DAGCTL_ATTEMPT" = 1 ]; then sleep 300; fi\n'
HANG_FIRST += 'echo "v=$DAGCTL_ITEM" >> "$DAGCTL_OUTPUT"\n'

CHILD = "description: c\nretries: 2\nretry_delay: 0\noutputs:\n  v: work.sh.v\n"
PARENT = "description: p\nretries: 2\nretry_delay: 0\n"


def test_child_runs_and_items_survive_a_kill_9(harness: Harness) -> None:
    harness.dag("child", CHILD, work__sh="#!/bin/bash\n# inputs: []\n" + HANG_FIRST)
    harness.dag(
        "parent",
        PARENT,
        run_child__yaml="type: dag\ndag: child\ninputs: []\n",
        items__sh=("#!/bin/bash\n# inputs: []\n# for_each: [a, b, c]\n# max_parallel: 3\n" + HANG_FIRST),
    )
    (run_id,) = harness.trigger_many("parent", 1)
    first = harness.start("--concurrency", "4", DAGCTL_LEASE_SECONDS=str(LEASE))
    wait_until(lambda: len(harness.executions()) == 4, 20, "the child's task and three items running")
    first.signal(signal.SIGKILL)
    first.wait(10)
    second = harness.start("--concurrency", "4", DAGCTL_LEASE_SECONDS=str(LEASE))
    assert harness.wait_runs_finished(LEASE + 30) == {"success": 2}
    assert sorted(harness.executions()) == sorted(
        ["work.sh  1", "work.sh  2", *(f"items.sh {i} {n}" for i in range(3) for n in (1, 2))]
    )
    children = harness.sql("SELECT id FROM dag_run WHERE parent_run_id = %s", (run_id,))
    assert len(children) == 1
    ok = harness.sql(
        "SELECT count(*) FROM task_run WHERE task_name LIKE 'items.sh[%%' AND status = 'success'"
    )
    assert ok == [(3,)]
    outputs = harness.sql("SELECT outputs FROM task_run WHERE task_name = 'items.sh' AND status = 'success'")
    assert outputs == [('{"results":[{"v":"a"},{"v":"b"},{"v":"c"}]}',)]
    second.signal(signal.SIGTERM)
    assert second.wait(20) == 0
    harness.check(triggered=[run_id], all_finished=True)
