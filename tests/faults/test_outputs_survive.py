"""Task outputs are part of the attempt's recorded end: a scheduler killed with
`kill -9` after an upstream task succeeded loses nothing of them; the attempt it
was running is reaped and its retry, on another scheduler, reads them from the
database (the upstream task does not run again)."""

from __future__ import annotations

import signal

import pytest

from tests.faults.conftest import Harness
from tests.faults.invariants import wait_until

pytestmark = pytest.mark.postgres

LEASE = 3.0

PRODUCE = """
#!/usr/bin/env bash
# inputs: []
echo "produce $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
printf 'rows=7\\nbatch=%s\\n' "$DAGCTL_RUN_ID" > "$DAGCTL_OUTPUT"
"""

# Hangs on its first attempt, so that the scheduler dies while it runs.
CONSUME = """
#!/usr/bin/env bash
# inputs: [produce.sh]
# worker_config:
#   env:
#     ROWS: "{{ outputs['produce.sh'].rows }}"
echo "consume $DAGCTL_ATTEMPT $ROWS" >> "$FAULT_OUT"
if [ "$DAGCTL_ATTEMPT" = 1 ]; then sleep 300; fi
"""


def test_outputs_survive_a_kill_9_of_the_scheduler(harness: Harness) -> None:
    harness.dag(
        "pair", "description: d\nretries: 2\nretry_delay: 0\n", produce__sh=PRODUCE, consume__sh=CONSUME
    )
    (run_id,) = harness.trigger_many("pair", 1)
    first = harness.start("--concurrency", "2", DAGCTL_LEASE_SECONDS=str(LEASE))
    wait_until(lambda: "consume 1 7" in harness.executions(), 20, "the consumer's first attempt")
    first.signal(signal.SIGKILL)
    first.wait(10)
    stored = harness.sql("SELECT outputs FROM task_run WHERE task_name = 'produce.sh'")
    assert stored == [(f'{{"rows":"7","batch":"{run_id}"}}',)]

    second = harness.start("--concurrency", "2", DAGCTL_LEASE_SECONDS=str(LEASE))
    assert harness.wait_runs_finished(LEASE + 20) == {"success": 1}
    assert harness.executions() == ["produce 1", "consume 1 7", "consume 2 7"]
    second.signal(signal.SIGTERM)
    assert second.wait(20) == 0
    harness.check(triggered=[run_id], all_finished=True)
