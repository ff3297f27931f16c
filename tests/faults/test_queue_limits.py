"""A queue's `limit:` across real `dagctl schedule` processes on PostgreSQL: never more
of the queue's attempts at once than its limit, counted from the task side."""

from __future__ import annotations

import pytest

from tests.faults.conftest import Harness
from tests.faults.test_pools import STAMPED, most_at_once, with_pools

pytestmark = pytest.mark.postgres


def test_two_schedulers_never_run_more_of_a_queue_than_its_limit(harness: Harness) -> None:
    with_pools(harness, "queues:\n  gpu: {limit: 2, description: two GPUs}\n")
    with_parent = STAMPED.replace("$DAGCTL_TASK", "$DAGCTL_TASK $PPID")
    tasks = {f"t{i}__sh": with_parent for i in range(4)}
    harness.dag("train", "description: d\nmax_active_runs: 50\nqueue: gpu\n", **tasks)
    harness.dag(
        "etl",
        "description: default queue\nmax_active_runs: 50\n",
        work__sh=with_parent.replace("0.01", "0.2"),
    )
    gpu = harness.trigger_many("train", 25)  # 100 attempts
    free = harness.trigger_many("etl", 12)
    queues = ("--queue", "gpu", "--queue", "default")
    schedulers = [harness.start("--concurrency", "4", *queues, "--until-idle") for _ in range(2)]
    for scheduler in schedulers:
        assert scheduler.wait(90) == 0, scheduler.output()[-3000:]
    assert harness.run_statuses() == {"success": 37}
    lines = harness.executions()
    gpu_lines = [line for line in lines if line.split()[2] in {str(r) for r in gpu}]
    assert len(gpu_lines) == 200
    assert most_at_once(gpu_lines) == 2
    # The default queue was not held to it.
    assert most_at_once([line for line in lines if line not in gpu_lines]) > 2
    # Both schedulers ran attempts while the limit held (each task's parent is its
    # scheduler). Not necessarily gpu ones: the scheduler whose gpu attempt ends is the
    # one awake when the queue has room, and usually takes it again at once.
    assert len({line.split()[4] for line in lines}) == 2, {s.pid for s in schedulers}
    harness.check(triggered=gpu + free, all_finished=True)
