"""Run variables and templates through the real scheduler loop, driven by an injected
clock (`run_once(now)`), on SQLite and PostgreSQL: every slot's run sees its own dates,
across a DST change, in its params, its environment, its templated env values and argv."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from dagctl.dags import cron
from tests.integration.test_scheduler_loop import Loop, loop

__all__ = ["loop"]  # the fixture, shared with the loop tests

NIGHTLY = """
description: nightly, Berlin time
schedule: "30 2 * * *"
timezone: Europe/Berlin
catchup: latest
params:
  date:
    type: string
    format: date
    default: "{{ data_interval_start | ds }}"
  day:
    type: string
    default: "{{ ds }}"
  limit:
    type: integer
    default: 3
worker_config:
  env:
    STAMP: "{{ ds_nodash }}-{{ task }}-{{ attempt }}-{{ params.limit }}"
"""

RECORD_SH = """
#!/usr/bin/env bash
# inputs: []
echo "$date $day $DAGCTL_DS $DAGCTL_DATA_INTERVAL_START $DAGCTL_DATA_INTERVAL_END $STAMP" >> "$OUT/env.txt"
"""

ARGV_YAML = """
type: command
inputs: [record.sh]
command:
  - bash
  - -c
  - echo "$1 $2" >> "$OUT/argv.txt"
  - argv
  - "{{ params.date }}"
  - "{{ logical_date | iso }}"
"""


def _slots(after: datetime, count: int) -> list[datetime]:
    return list(cron.slots_between("30 2 * * *", "Europe/Berlin", after, datetime(2100, 1, 1), limit=count))


def test_each_nightly_slot_processes_its_own_date_across_the_spring_dst_change(
    loop: Loop, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    loop.dag("nightly", NIGHTLY, record__sh=RECORD_SH, argv__yaml=ARGV_YAML)
    (loop.dags / "nightly" / "workflow.yaml").write_text(
        (loop.dags / "nightly" / "workflow.yaml").read_text() + f"    OUT: {out}\n"
    )
    first_seen = datetime(2024, 3, 28, 12, 0)
    loop.at(first_seen)
    # Berlin springs forward on 2024-03-31 (02:00 -> 03:00): 02:30 does not exist that day.
    slots = _slots(first_seen, 4)
    for slot in slots:
        loop.at(slot)
        run_id = loop.runs("nightly")[-1]["id"]
        loop.until(lambda run_id=run_id: loop.finished(run_id))

    runs = loop.runs("nightly")
    assert [r["status"] for r in runs] == ["success"] * 4
    assert [r["logical_date"] for r in runs] == slots
    # Each run's interval is (previous slot, its slot], the previous one being the
    # slot before, DST or not.
    assert [r["data_interval_end"] for r in runs] == slots
    assert [r["data_interval_start"] for r in runs][1:] == slots[:-1]
    assert [json.loads(r["params"]) for r in runs] == [
        {"date": "2024-03-28", "day": "2024-03-29", "limit": 3},
        {"date": "2024-03-29", "day": "2024-03-30", "limit": 3},
        {"date": "2024-03-30", "day": "2024-03-31", "limit": 3},
        {"date": "2024-03-31", "day": "2024-04-01", "limit": 3},
    ]
    lines = (out / "env.txt").read_text().splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["2024-03-28", "2024-03-29", "2024-03-29"],
        ["2024-03-29", "2024-03-30", "2024-03-30"],
        ["2024-03-30", "2024-03-31", "2024-03-31"],
        ["2024-03-31", "2024-04-01", "2024-04-01"],
    ]
    # 02:30 CET is 01:30 UTC, 02:30 CEST 00:30 UTC; on the gap day the slot moves to 03:00 CEST.
    assert lines[1].split()[3:5] == ["2024-03-29T01:30:00+00:00", "2024-03-30T01:30:00+00:00"]
    assert lines[3].split()[3:5] == [f"{slots[2].isoformat()}+00:00", "2024-04-01T00:30:00+00:00"]
    assert [line.split()[5] for line in lines] == [
        "20240329-record.sh-1-3",
        "20240330-record.sh-1-3",
        "20240331-record.sh-1-3",
        "20240401-record.sh-1-3",
    ]
    assert (out / "argv.txt").read_text().splitlines() == [
        f"{date} {slot.isoformat()}+00:00"
        for date, slot in zip(["2024-03-28", "2024-03-29", "2024-03-30", "2024-03-31"], slots, strict=True)
    ]


def test_a_default_that_does_not_render_to_its_type_fails_that_run_with_the_reason(loop: Loop) -> None:
    loop.dag(
        "bad",
        """
        description: the template renders, but not to a date
        schedule: "0 * * * *"
        params:
          date:
            type: string
            format: date
            default: "day {{ ds }}"
        """,
        noop__yaml="type: no_op\n",
    )
    loop.at(datetime(2024, 5, 1, 10, 20))
    loop.at(datetime(2024, 5, 1, 11, 0))
    (run,) = loop.runs("bad")
    assert run["status"] == "failed"
    assert "param 'date'" in run["error"] and "day 2024-05-01" in run["error"]
    assert loop.store.task_runs([run["id"]]) == []


def test_each_nightly_slot_processes_its_own_date_across_the_autumn_fold(loop: Loop, tmp_path: Path) -> None:
    loop.dag("fold", NIGHTLY.split("worker_config:")[0], noop__yaml="type: no_op\n")
    first_seen = datetime(2024, 10, 25, 12, 0)
    loop.at(first_seen)
    # Berlin falls back on 2024-10-27: 02:30 happens twice and runs once, at its first occurrence.
    slots = _slots(first_seen, 3)
    assert slots == [
        datetime(2024, 10, 26, 0, 30),
        datetime(2024, 10, 27, 0, 30),
        datetime(2024, 10, 28, 1, 30),
    ]
    for slot in slots:
        loop.at(slot)
    runs = loop.runs("fold")
    assert [r["logical_date"] for r in runs] == slots
    assert [json.loads(r["params"])["date"] for r in runs] == ["2024-10-25", "2024-10-26", "2024-10-27"]
    assert [json.loads(r["params"])["day"] for r in runs] == ["2024-10-26", "2024-10-27", "2024-10-28"]
    # The run after the fold covers the 25-hour day.
    assert runs[2]["data_interval_end"] - runs[2]["data_interval_start"] == timedelta(hours=25)
