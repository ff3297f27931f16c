"""Task output: a flood of it (F17), and log storage that fails (F16)."""

from __future__ import annotations

import logging
import time

import psutil
import pytest
from sqlalchemy.exc import OperationalError

from dagctl.execution.logbuffer import DEFAULT_LOG_CAP_BYTES
from dagctl.store.store import Store
from tests.faults.conftest import Harness, InProcess
from tests.faults.invariants import wait_until

pytestmark = pytest.mark.postgres

FLOOD_BYTES = 200_000_000


def test_a_200_mb_flood_keeps_scheduler_memory_flat_and_the_stored_log_capped(harness: Harness) -> None:
    harness.dag(
        "flood",
        "description: d\nretries: 0\n",
        flood__sh=f"""
        #!/usr/bin/env bash
        echo "first line"
        yes 'all work and no play makes jack a dull boy, again and again' | head -c {FLOOD_BYTES}
        echo "last line"
        """,
    )
    harness.migrate()
    scheduler = harness.start("--poll-interval", "0.2")
    wait_until(lambda: harness.sql("SELECT count(*) FROM scheduler") == [(1,)], 20, "the scheduler")
    process = psutil.Process(scheduler.pid)
    time.sleep(1.0)  # a few idle iterations: imports done, pools warm
    baseline = process.memory_info().rss
    [run_id] = harness.trigger_many("flood", 1)
    peak = baseline
    deadline = time.monotonic() + 60
    while harness.run_statuses().get("success", 0) + harness.run_statuses().get("failed", 0) == 0:
        peak = max(peak, process.memory_info().rss)
        assert time.monotonic() < deadline, "the flood did not finish in 60 s"
        time.sleep(0.05)
    growth = peak - baseline
    assert growth < 40 * 2**20, f"scheduler RSS grew by {growth / 2**20:.0f} MiB during a 200 MB flood"

    [(task_run_id, status, exit_code)] = harness.sql("SELECT id, status, exit_code FROM task_run")
    assert (status, exit_code) == ("success", 0)
    [(stored, dropped)] = harness.sql(
        "SELECT string_agg(text, '' ORDER BY seq), sum(truncated_bytes) FROM task_log WHERE task_run_id = %s",
        (task_run_id,),
    )
    assert stored.startswith("first line\n") and stored.endswith("last line\n")
    assert len(stored) <= DEFAULT_LOG_CAP_BYTES + 200
    marker = f"[dagctl: {dropped} bytes of output truncated]"
    assert marker in stored and "truncated" in stored
    assert FLOOD_BYTES - DEFAULT_LOG_CAP_BYTES <= dropped <= FLOOD_BYTES
    scheduler.signal(15)
    assert scheduler.wait(20) == 0
    harness.check(triggered=[run_id], all_finished=True)


CHATTY = """
#!/usr/bin/env bash
for i in $(seq 1 12); do echo "line $i of $DAGCTL_TASK"; sleep 0.1; done
exit {code}
"""


def test_a_failing_log_write_does_not_stop_scheduling(
    harness: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in harness.env().items():
        monkeypatch.setenv(name, value)
    harness.dag(
        "chatty",
        "description: d\nretries: 0\n",
        fails__sh=CHATTY.format(code=3),
        works__sh=CHATTY.format(code=0),
    )
    harness.dag("later", "description: d\n", after__sh="#!/usr/bin/env bash\necho still scheduling\n")
    harness.migrate()
    [first] = harness.trigger_many("chatty", 1)

    def broken_log_write(*args: object, **kwargs: object) -> None:
        raise OperationalError(
            "INSERT INTO task_log ...", {}, Exception("could not extend file: No space left")
        )

    monkeypatch.setattr(Store, "_append_log", broken_log_write)
    proc = InProcess(harness)
    try:
        with caplog.at_level(logging.INFO, logger="dagctl"):
            assert proc.run_until_idle(guarded=True) == 0  # no iteration was abandoned
            [second] = harness.trigger_many("later", 1)
            assert proc.run_until_idle(guarded=True) == 0
    finally:
        proc.close()
    rows = {
        task: (status, exit_code, error)
        for task, status, exit_code, error in harness.sql(
            "SELECT task_name, status, exit_code, error FROM task_run"
        )
    }
    # The tasks' outcomes are their real exit codes; the log failure is recorded.
    assert rows["fails.sh"][:2] == ("failed", 3)
    assert rows["works.sh"][:2] == ("success", 0)
    assert rows["after.sh"][:2] == ("success", 0)
    assert rows["fails.sh"][2].startswith("exit code 3") and "output not stored" in rows["fails.sh"][2]
    assert "output not stored" in rows["works.sh"][2]
    assert harness.sql("SELECT count(*) FROM task_log") == [(0,)]
    assert any("could not store" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert harness.run_statuses() == {"failed": 1, "success": 1}
    harness.check(triggered=[first, second], all_finished=True)
