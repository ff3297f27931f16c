"""`dagctl backfill` through the installed CLI, on SQLite and PostgreSQL: 31 daily slots
make 31 runs, the same command again makes none, two schedulers run them all with no
attempt twice, each run sees its own date; --wait, --dry-run and --cancel."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from tests.acceptance.conftest import Env

DAILY = """
description: daily
schedule: "0 3 * * *"
timezone: Europe/Berlin
params:
  day: {type: string, format: date, default: "{{ ds }}"}
"""

RECORD_SH = """
#!/usr/bin/env bash
# inputs: []
echo "$DAGCTL_RUN_ID $day $DAGCTL_DS" >> "$OUT"
"""


def test_31_slots_run_once_each_with_two_schedulers(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "executions.txt"
    env.dag("daily", DAILY, record__sh=RECORD_SH, done__yaml="type: no_op\ninputs: [record.sh]\n")
    created = json.loads(
        env.run("backfill", "daily", "--start", "2024-07-01", "--end", "2024-07-31", "-o", "json").stdout
    )
    assert (created["slots"], created["created"]) == (31, 31)
    again = json.loads(
        env.run("backfill", "daily", "--start", "2024-07-01", "--end", "2024-07-31", "-o", "json").stdout
    )
    assert (again["slots"], again["created"]) == (31, 0)

    schedulers = [
        env.spawn("schedule", "--poll-interval", "0.05", "--concurrency", "3", "--until-idle", OUT=str(out))
        for _ in range(2)
    ]
    for scheduler in schedulers:
        _, err = scheduler.communicate(timeout=120)
        assert scheduler.returncode == 0, err
    runs = env.status("daily", "--limit", "100")[:31]
    assert len(runs) == 31
    assert {r["status"] for r in runs} == {"success"}
    assert all(t["attempt"] == 1 for r in runs for t in r["tasks"])
    lines = out.read_text().splitlines()
    assert len(lines) == 31
    assert max(Counter(line.split()[0] for line in lines).values()) == 1  # no run's task ran twice
    days = sorted(line.split()[1] for line in lines)
    assert days == [f"2024-07-{d:02d}" for d in range(1, 32)]
    assert all(line.split()[1] == line.split()[2] for line in lines)


def test_dry_run_wait_and_cancel(env: Env) -> None:
    env.dag("manual", "description: no schedule\n", noop__yaml="type: no_op\n")
    line = env.error("backfill", "manual", "--start", "2024-07-01", "--end", "2024-07-03")
    assert line == (
        "dagctl: error: DAG 'manual' has no schedule, so it has no slots to backfill"
        " (pass --schedule CRON, e.g. --schedule '0 0 * * *')"
    )
    dry = env.run(
        "backfill",
        "manual",
        "--start",
        "2024-07-01",
        "--end",
        "2024-07-03",
        "--schedule",
        "0 6 * * *",
        "--dry-run",
    ).stdout
    assert "3 of 3 slot(s)" in dry and "2024-07-01T06:00:00Z" in dry
    assert env.status() == []

    waiting = env.spawn(
        "backfill",
        "manual",
        "--start",
        "2024-07-01",
        "--end",
        "2024-07-03",
        "--schedule",
        "0 6 * * *",
        "--wait",
    )
    for _ in range(200):  # until the backfill's runs exist: an idle scheduler would exit at once
        if len(env.status("manual")) == 3:
            break
        time.sleep(0.05)
    env.schedule("--until-idle")
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    backfill_id = out.strip()
    ended = [line for line in err.splitlines() if line.startswith("run ")]
    assert len(ended) == 3 and all(": success (" in line for line in ended)
    assert f"backfill {backfill_id}: 3 succeeded, 0 not" in err

    second = env.run(
        "backfill", "manual", "--start", "2024-08-01", "--end", "2024-08-04", "--schedule", "0 6 * * *"
    ).stdout.strip()
    cancelled = json.loads(env.run("backfill", "--cancel", second, "-o", "json").stdout)
    assert cancelled == {"backfill_id": int(second), "cancelled_queued_runs": 4, "cancelled_running_runs": 0}
    statuses = Counter(r["status"] for r in env.status("manual"))
    assert statuses == {"success": 3, "cancelled": 4}
    assert env.error("backfill", "--cancel", "999") == (
        "dagctl: error: no backfill 999 (its id is what dagctl backfill printed)"
    )
