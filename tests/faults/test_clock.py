"""A host clock hours off (F27): one scheduler whose wall clock is 2 h fast shares the
database. Slots, the watermark, retry delays and recorded times must follow the
database's clock: no future run, no watermark moved ahead, no skewed durations.

The skew is injected into a real `dagctl schedule` process by shifting dagctl's one
source of wall-clock time (`dagctl.dags.cron.utcnow`) before the CLI is imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest

from tests.faults.conftest import Harness

pytestmark = pytest.mark.postgres

FAST = timedelta(hours=2)

SKEWED_DAGCTL = textwrap.dedent(
    """
    import sys
    from datetime import timedelta

    import dagctl.dags.cron as cron

    real_utcnow = cron.utcnow
    cron.utcnow = lambda: real_utcnow() + timedelta(hours=2)

    from dagctl.cli import main

    sys.argv[0] = "dagctl"
    sys.exit(main())
    """
)

FAIL_FIRST = """
#!/usr/bin/env bash
if [ "$DAGCTL_ATTEMPT" = 1 ]; then exit 1; fi
"""


def test_a_host_two_hours_fast_creates_no_future_run_and_skews_nothing(harness: Harness) -> None:
    harness.dag(
        "minutely",
        'description: d\nschedule: "* * * * *"\nretries: 1\nretry_delay: 1s\n',
        work__sh=FAIL_FIRST,
    )
    # Known to the database for ten minutes, last scheduled five minutes ago: the most
    # recent real slot is due now (catchup: latest).
    harness.migrate()
    harness.sql(
        "INSERT INTO dag (name, paused, fingerprint, last_slot, first_seen_at, updated_at) VALUES "
        "('minutely', false, NULL, date_trunc('minute', timezone('utc', now())) - interval '5 minutes', "
        "timezone('utc', now()) - interval '10 minutes', timezone('utc', now()))"
    )
    [(started,)] = harness.sql("SELECT timezone('utc', now())")
    script = harness.root / "skewed_dagctl.py"
    script.write_text(SKEWED_DAGCTL)
    result = subprocess.run(
        [sys.executable, str(script), "schedule", "--until-idle", "--poll-interval", "0.1"],
        env=harness.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [(ended,)] = harness.sql("SELECT timezone('utc', now())")

    # One run, for the latest real slot (two if a minute began meanwhile); the
    # watermark is that slot, not 2 h ahead.
    runs = harness.sql("SELECT id, logical_date, scheduled_slot, created_at, status FROM dag_run ORDER BY id")
    assert 1 <= len(runs) <= 2, runs
    for _, logical_date, slot, created_at, status in runs:
        assert status == "success"
        assert slot == logical_date == slot.replace(second=0, microsecond=0)
        assert started.replace(second=0, microsecond=0) <= slot <= ended, (slot, started)
        assert started - timedelta(seconds=1) <= created_at <= ended
    [(watermark,)] = harness.sql("SELECT last_slot FROM dag WHERE name = 'minutely'")
    assert watermark == runs[-1][2]

    # Attempt times and the retry delay follow the database's clock too, in each run
    # (two when the test straddles a minute).
    for run_id, *_ in runs:
        attempts = harness.sql(
            "SELECT attempt, status, not_before, started_at, ended_at FROM task_run"
            " WHERE dag_run_id = %s ORDER BY attempt",
            (run_id,),
        )
        assert [(a, s) for a, s, *_ in attempts] == [(1, "failed"), (2, "success")], run_id
        for _, _, not_before, started_at, ended_at in attempts:
            for value in (not_before, started_at, ended_at):
                within = started - timedelta(seconds=1) <= value <= ended + timedelta(seconds=1)
                assert within, (value, started)
            assert timedelta(0) <= ended_at - started_at < timedelta(seconds=5)
        first_end, retry_not_before = attempts[0][4], attempts[1][2]
        assert timedelta(seconds=1) <= retry_not_before - first_end < timedelta(seconds=2)
    # ... and the scheduler says loudly that this host's clock is off.
    assert "this host's clock is 2.0 h ahead of the state database's" in result.stderr
    harness.check(all_finished=True)
