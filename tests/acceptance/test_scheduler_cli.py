"""What a user does, end to end: the installed `dagctl` run as a subprocess, against an
SQLite file and a real PostgreSQL, with real task processes."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

from tests.acceptance.conftest import DAGCTL, Env, tasks_by_name

HOURLY = """
description: hourly
schedule: "0 * * * *"
"""


def test_cron_slot_is_created_once_even_with_two_schedulers(env: Env) -> None:
    env.dag("hourly", HOURLY, noop__yaml="type: no_op\n")
    env.schedule("--once", fake_now="2024-05-01T10:20:00")  # first sighting: no past slots
    assert env.status() == []
    env_vars = env.environ(fake_now="2024-05-01T11:00:30")
    both = [
        subprocess.Popen(
            [DAGCTL, "schedule", "--until-idle", "--poll-interval", "0.05"],
            env=env_vars,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for process in both:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert "Traceback" not in err and "UniqueViolation" not in err
    runs = env.status()
    assert [(r["kind"], r["logical_date"], r["status"]) for r in runs] == [
        ("scheduled", "2024-05-01T11:00:00Z", "success")
    ]


def test_one_catch_up_run_after_downtime(env: Env) -> None:
    env.dag("hourly", HOURLY, noop__yaml="type: no_op\n")
    env.schedule("--once", fake_now="2024-05-01T10:20:00")
    env.schedule("--until-idle", fake_now="2024-05-01T17:05:00")  # down for 7 slots
    env.schedule("--until-idle", fake_now="2024-05-01T17:50:00")  # nothing new is due
    runs = env.status()
    assert [r["logical_date"] for r in runs] == ["2024-05-01T17:00:00Z"]


def test_dst_days_in_berlin_run_once_per_local_day(env: Env) -> None:
    env.dag(
        "nightly",
        """
        description: nightly at 02:30 Berlin time
        schedule: "30 2 * * *"
        timezone: Europe/Berlin
        catchup: all
    """,
        noop__yaml="type: no_op\n",
    )
    env.schedule("--once", fake_now="2024-03-30T12:00:00")
    # spring: 02:30 does not exist on 31 March; it runs at 03:30 CEST = 01:30 UTC
    env.schedule("--until-idle", fake_now="2024-03-31T01:29:00")
    assert env.status() == []
    env.schedule("--until-idle", fake_now="2024-04-01T12:00:00")
    assert sorted(r["logical_date"] for r in env.status()) == ["2024-03-31T01:30:00Z", "2024-04-01T00:30:00Z"]


def test_dst_autumn_fold_runs_once(env: Env) -> None:
    env.dag(
        "nightly",
        """
        description: nightly at 02:30 Berlin time
        schedule: "30 2 * * *"
        timezone: Europe/Berlin
        catchup: all
    """,
        noop__yaml="type: no_op\n",
    )
    env.schedule("--once", fake_now="2024-10-26T12:00:00")
    env.schedule("--until-idle", fake_now="2024-10-27T00:31:00")  # first 02:30 (CEST)
    env.schedule("--until-idle", fake_now="2024-10-27T01:31:00")  # second 02:30 (CET): no run
    assert [r["logical_date"] for r in env.status()] == ["2024-10-27T00:30:00Z"]


NASTY = [
    "a=b=c",
    'it\'s "quoted"',
    "$(touch {marker})",
    "`touch {marker}`",
    "x; touch {marker} #",
    "line one\nline two",
    "--leading-dashes",
    "ünïcødé ✓",
]


def test_params_reach_the_task_verbatim_and_are_never_executed(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    marker = tmp_path / f"pwned-{uuid.uuid4().hex}"
    env.dag(
        "echo",
        """
        description: writes its param to a file
        params:
          value: {type: string}
    """,
        write__sh=f"""
        #!/usr/bin/env bash
        # parameters: [value]
        printf '%s' "$value" > "{out}/$DAGCTL_RUN_ID"
    """,
    )
    expected = {}
    for template in NASTY:
        value = template.format(marker=marker)
        run_id = env.run("trigger", "echo", "-p", f"value={value}").stdout.strip()
        expected[run_id] = value
    env.schedule("--until-idle")
    assert all(r["status"] == "success" for r in env.status())
    for run_id, value in expected.items():
        assert (out / run_id).read_bytes() == value.encode()
    assert not marker.exists()


def test_nul_byte_in_a_param_is_refused_at_trigger(env: Env) -> None:
    env.dag(
        "echo",
        """
        description: d
        params:
          value: {type: string}
    """,
        noop__yaml="type: no_op\n",
    )
    env.run("db", "upgrade")
    params_file = env.root / "params.json"
    params_file.write_text(json.dumps({"value": "a\x00b"}))
    result = env.run("trigger", "echo", "--params-file", str(params_file), code=None)
    assert result.returncode == 2
    assert "NUL" in result.stderr
    assert env.status() == []


def test_a_retry_then_success(env: Env) -> None:
    env.dag(
        "flaky",
        """
        description: fails once
        retries: 2
        retry_delay: 0
    """,
        flaky__sh="""
        #!/usr/bin/env bash
        [ "$DAGCTL_ATTEMPT" -ge 2 ] || { echo "not yet" >&2; exit 7; }
        echo ok
    """,
    )
    env.run("trigger", "flaky")
    env.schedule("--until-idle")
    [run] = env.status()
    assert run["status"] == "success"
    assert tasks_by_name(run)["flaky.sh"]["attempt"] == 2
    logs_of_first = env.run("status", "-o", "json")  # the first attempt is kept as its own row
    assert logs_of_first.returncode == 0


def test_exhausted_retries_fail_the_run_and_mark_downstream(env: Env) -> None:
    env.dag(
        "broken",
        """
        description: always fails
        retries: 1
        retry_delay: 0
    """,
        a__sh="""
        #!/usr/bin/env bash
        exit 3
    """,
        b__sh="""
        #!/usr/bin/env bash
        # inputs: [a.sh]
        echo never
    """,
        c__yaml="""
        type: no_op
        inputs: [b.sh]
    """,
    )
    env.run("trigger", "broken")
    env.schedule("--until-idle")
    [run] = env.status()
    assert run["status"] == "failed"
    tasks = tasks_by_name(run)
    assert (tasks["a.sh"]["status"], tasks["a.sh"]["attempt"], tasks["a.sh"]["exit_code"]) == ("failed", 2, 3)
    assert tasks["b.sh"]["status"] == "upstream_failed"
    assert tasks["c.yaml"]["status"] == "upstream_failed"


def test_trigger_wait_exits_with_the_runs_outcome(env: Env) -> None:
    env.dag("ok", "description: d\n", noop__yaml="type: no_op\n")
    scheduler = subprocess.Popen(
        [DAGCTL, "schedule", "--poll-interval", "0.05"],
        env=env.environ(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        result = env.run("trigger", "ok", "--wait", timeout=30)
        assert result.returncode == 0
        assert "success" in result.stderr
    finally:
        scheduler.terminate()
        _, err = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, err


def test_timeout_kills_the_task_and_its_children(env: Env, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    env.dag(
        "slow",
        """
        description: hangs
        retries: 0
        timeout: 1s
    """,
        hang__sh=f"""
        #!/usr/bin/env bash
        sleep 300 &
        echo $! > {pid_file}
        sleep 300
    """,
    )
    env.run("trigger", "slow")
    env.schedule("--until-idle")
    [run] = env.status()
    task = tasks_by_name(run)["hang.sh"]
    assert run["status"] == "failed"
    assert "timed out" in task["error"]
    child = int(pid_file.read_text())
    assert (
        not Path(f"/proc/{child}").exists() or "zombie" in Path(f"/proc/{child}/status").read_text().lower()
    )


def test_run_executes_one_task_in_the_foreground(env: Env) -> None:
    env.dag(
        "hello",
        """
        description: d
        params:
          who: {type: string, default: world}
    """,
        hello__sh="""
        #!/usr/bin/env bash
        echo "hello $who"
        exit 4
    """,
    )
    result = env.run("run", "hello", "hello.sh", "-p", "who=dagctl", code=None)
    assert result.returncode == 4
    assert "hello dagctl" in result.stdout
