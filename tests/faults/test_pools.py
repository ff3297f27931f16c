"""Pools across real `dagctl schedule` processes on PostgreSQL: never more attempts in
a pool than its slots (counted from the task side), and a killed scheduler's slots
come back when its leases run out."""

from __future__ import annotations

import signal
import time

import pytest

from tests.faults.conftest import Harness
from tests.faults.invariants import wait_until

pytestmark = pytest.mark.postgres

LEASE = 3.0

# Task-side timestamps (bash's own clock variable: no process started to read it).
STAMPED = """
#!/usr/bin/env bash
echo "start $EPOCHREALTIME $DAGCTL_RUN_ID $DAGCTL_TASK" >> "$FAULT_OUT"
sleep 0.01
echo "end $EPOCHREALTIME $DAGCTL_RUN_ID $DAGCTL_TASK" >> "$FAULT_OUT"
"""


def with_pools(harness: Harness, pools: str) -> None:
    config = harness.dags / "dagctl.yaml"
    config.write_text(config.read_text() + pools)


def most_at_once(lines: list[str]) -> int:
    events = []
    for line in lines:
        kind, stamp = line.split()[:2]
        events.append((float(stamp), 0 if kind == "end" else 1))  # at a tie, the end first
    running = peak = 0
    for _, starting in sorted(events):
        running += 1 if starting else -1
        peak = max(peak, running)
    return peak


def test_four_schedulers_never_run_more_of_a_pool_than_its_slots(harness: Harness) -> None:
    with_pools(harness, "pools:\n  warehouse: 3\n")
    with_parent = STAMPED.replace("$DAGCTL_TASK", "$DAGCTL_TASK $PPID")
    tasks = {f"load{i}__sh": with_parent for i in range(4)}
    harness.dag("wh", "description: d\nmax_active_runs: 200\npool: warehouse\n", **tasks)
    harness.dag("other", "description: unpooled\nmax_active_runs: 200\n", work__sh=with_parent)
    runs = harness.trigger_many("wh", 125)  # 500 pooled attempts
    others = harness.trigger_many("other", 50)
    schedulers = [harness.start("--concurrency", "8", "--until-idle") for _ in range(4)]
    for scheduler in schedulers:
        assert scheduler.wait(120) == 0, scheduler.output()[-3000:]
    assert harness.run_statuses() == {"success": 175}
    lines = harness.executions()
    pooled = [line for line in lines if line.split()[2] in {str(r) for r in runs}]
    assert len(pooled) == 1000
    assert most_at_once(pooled) == 3
    # Several schedulers ran attempts while the pool held (each task's parent is its
    # scheduler); not necessarily pooled ones: the scheduler whose pooled attempt ends
    # is the one awake when the slot frees, and usually takes it again at once.
    assert len({line.split()[4] for line in lines}) >= 2, {s.pid for s in schedulers}
    harness.check(triggered=runs + others, all_finished=True)


HANG_FIRST = """
#!/usr/bin/env bash
echo "start $EPOCHREALTIME $DAGCTL_DAG $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
if [ "$DAGCTL_ATTEMPT" = 1 ]; then sleep 300; fi
"""


def test_a_killed_schedulers_pool_slots_come_back_within_the_lease(harness: Harness) -> None:
    with_pools(harness, "pools:\n  warehouse: 1\n")
    workflow = "description: d\npool: warehouse\nretries: 1\nretry_delay: 60\n"
    harness.dag("hold", workflow, work__sh=HANG_FIRST)
    harness.dag("next", workflow, work__sh=HANG_FIRST.replace("= 1 ]", "= 0 ]"))
    harness.trigger_many("hold", 1)
    first = harness.start("--concurrency", "4", DAGCTL_LEASE_SECONDS=str(LEASE))
    wait_until(lambda: any(" hold " in line for line in harness.executions()), 20, "hold to start")
    harness.trigger_many("next", 1)
    second = harness.start("--concurrency", "4", DAGCTL_LEASE_SECONDS=str(LEASE))
    live = "SELECT count(*) FROM scheduler WHERE stopped_at IS NULL"
    wait_until(lambda: harness.sql(live) == [(2,)], 10, "the second scheduler")
    time.sleep(1.0)  # both schedulers loop: the pool's one slot is held
    assert not any(" next " in line for line in harness.executions())
    first.signal(signal.SIGKILL)
    first.wait(10)
    killed_at = time.time()
    wait_until(lambda: any(" next " in line for line in harness.executions()), LEASE + 10, "next to start")
    started_at = next(float(line.split()[1]) for line in harness.executions() if " next " in line)
    assert started_at - killed_at < LEASE + 2, started_at - killed_at
    second.signal(signal.SIGTERM)
    second.wait(20)


LIST_SH = """
#!/usr/bin/env bash
# inputs: []
echo "{\\"n\\": [$(seq -s, 1 40)]}" > "$DAGCTL_OUTPUT"
"""


def test_for_each_items_of_a_pooled_task_never_run_more_than_its_slots(harness: Harness) -> None:
    with_pools(harness, "pools:\n  warehouse: 2\n")
    # The items' own max_parallel would allow 20; the pool allows 2, across 2 schedulers.
    work = "#!/usr/bin/env bash\n# inputs: [list.sh]\n# for_each: \"{{ outputs['list.sh'].n }}\"\n"
    work += "# max_parallel: 20\n# pool: warehouse\n" + STAMPED.lstrip().split("\n", 1)[1]
    harness.dag("fan", "description: d\nmax_active_runs: 10\n", list__sh=LIST_SH, work__sh=work)
    runs = harness.trigger_many("fan", 2)  # 80 items
    schedulers = [harness.start("--concurrency", "8", "--until-idle") for _ in range(2)]
    for scheduler in schedulers:
        assert scheduler.wait(120) == 0, scheduler.output()[-3000:]
    assert harness.run_statuses() == {"success": 2}
    lines = harness.executions()
    assert len(lines) == 160
    assert most_at_once(lines) == 2
    harness.check(triggered=runs, all_finished=True)
