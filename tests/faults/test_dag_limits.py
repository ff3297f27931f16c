"""`max_active_tasks` across real `dagctl schedule` processes on PostgreSQL: never more
of a DAG's attempts at once than its limit, counted from the task side."""

from __future__ import annotations

import pytest

from tests.faults.conftest import Harness
from tests.faults.test_pools import STAMPED, most_at_once

pytestmark = pytest.mark.postgres


def test_two_schedulers_never_run_more_of_a_dag_than_its_max_active_tasks(harness: Harness) -> None:
    with_parent = STAMPED.replace("$DAGCTL_TASK", "$DAGCTL_TASK $PPID")
    tasks = {f"t{i}__sh": with_parent for i in range(4)}
    harness.dag("capped", "description: d\nmax_active_runs: 50\nmax_active_tasks: 3\n", **tasks)
    harness.dag("free", "description: unlimited\nmax_active_runs: 50\n", work__sh=with_parent)
    capped = harness.trigger_many("capped", 30)  # 120 attempts
    free = harness.trigger_many("free", 30)
    schedulers = [harness.start("--concurrency", "8", "--until-idle") for _ in range(2)]
    for scheduler in schedulers:
        assert scheduler.wait(120) == 0, scheduler.output()[-3000:]
    assert harness.run_statuses() == {"success": 60}
    lines = harness.executions()
    capped_lines = [line for line in lines if line.split()[2] in {str(r) for r in capped}]
    assert len(capped_lines) == 240
    assert most_at_once(capped_lines) == 3
    # The unlimited DAG was not held to it.
    assert most_at_once([line for line in lines if line not in capped_lines]) > 3
    # Both schedulers ran attempts while the limit held (each task's parent is its
    # scheduler); not necessarily capped ones (see test_queue_limits.py).
    assert len({line.split()[4] for line in lines}) == 2, {s.pid for s in schedulers}
    harness.check(triggered=capped + free, all_finished=True)
