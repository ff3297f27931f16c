"""The terminal commands (list, status, logs, pause, unpause, cancel, retry, graph, next,
why, trigger --wait) driven through the installed `dagctl`, on SQLite and PostgreSQL,
asserting on their JSON and on their exact error lines; and the `status` layout in an
80-column terminal."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import DAGCTL, Env, tasks_by_name

ANSI = re.compile(r"\x1b\[")


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def process_gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    try:
        return "zombie" in status.read_text().lower()
    except FileNotFoundError:
        return True


# ---------------------------------------------------------------- failure, logs, retry


def test_a_failed_run_is_inspected_and_retried_to_success(env: Env, tmp_path: Path) -> None:
    marker = tmp_path / "warehouse-up"
    env.dag(
        "etl",
        """
        description: loads once the warehouse is up
        retries: 0
        """,
        extract__sh="""
        #!/usr/bin/env bash
        echo "extracted 3 rows"
        """,
        load__sh=f"""
        #!/usr/bin/env bash
        # inputs: [extract.sh]
        echo "loading attempt $DAGCTL_ATTEMPT"
        [ -e {marker} ] || {{ echo "warehouse unreachable" >&2; exit 3; }}
        echo loaded
        """,
        report__yaml="""
        type: no_op
        inputs: [load.sh]
        """,
    )
    run_id = int(env.run("trigger", "etl").stdout)
    env.run("schedule", "--until-idle", "--poll-interval", "0.05")

    [run] = env.json("status", "--run", str(run_id))
    assert (run["id"], run["dag"], run["status"], run["error"]) == (run_id, "etl", "failed", None)
    tasks = tasks_by_name(run)
    assert [(t, tasks[t]["status"], tasks[t]["attempt"], tasks[t]["exit_code"]) for t in tasks] == [
        ("extract.sh", "success", 1, 0),
        ("load.sh", "failed", 1, 3),
        ("report.yaml", "upstream_failed", 1, None),
    ]
    table = env.run("status", "etl").stdout
    assert not ANSI.search(table), "no colour when stdout is not a terminal"
    assert f"run {run_id}  etl  failed" in table.splitlines()[0]

    logs = env.json("logs", str(run_id))
    assert [(a["task"], a["attempt"], a["status"], a["log"]) for a in logs["attempts"]] == [
        ("extract.sh", 1, "success", "extracted 3 rows\n"),
        ("load.sh", 1, "failed", "loading attempt 1\nwarehouse unreachable\n"),
        ("report.yaml", 1, "upstream_failed", ""),
    ]
    assert env.run("logs", str(run_id), "load.sh").stdout == "loading attempt 1\nwarehouse unreachable\n"
    assert env.error("logs", "999") == "dagctl: error: no run 999 (run dagctl status to see recent runs)"
    assert env.error("logs", str(run_id), "lod.sh") == (
        f"dagctl: error: run {run_id} has no task 'lod.sh' (did you mean 'load.sh'?)"
    )
    assert env.error("logs", str(run_id), "load.sh", "--attempt", "2") == (
        f"dagctl: error: task load.sh of run {run_id} has no attempt 2 (its attempts: 1)"
    )
    assert env.error("retry", str(run_id), "--task", "report.yaml") == (
        f"dagctl: error: task report.yaml of run {run_id} needs load.sh, which is failed "
        "(retry --task load.sh, or the whole run)"
    )
    why = env.json("why", "etl")
    assert [r["code"] for r in why["reasons"]] == ["no_scheduler", "nothing_queued"]
    # The run has no error of its own: its first failed task says why.
    assert why["reasons"][1]["message"].endswith(
        f"its last run, {run_id}, failed: load.sh: exit code 3 (dagctl retry {run_id})"
    )

    marker.touch()
    assert env.json("retry", str(run_id)) == {
        "run_id": run_id,
        "dag": "etl",
        "requeued": [{"task": "load.sh", "attempt": 2}],
        "reset": ["report.yaml"],
    }
    assert env.error("retry", str(run_id)) == (
        f"dagctl: error: run {run_id} is running (retry it once it has finished, or cancel it first)"
    )
    env.run("schedule", "--until-idle", "--poll-interval", "0.05")
    [run] = env.json("status", "--run", str(run_id))
    assert run["status"] == "success"
    assert {t["task"]: (t["status"], t["attempt"]) for t in run["tasks"]} == {
        "extract.sh": ("success", 1),
        "load.sh": ("success", 2),
        "report.yaml": ("success", 1),
    }
    assert env.run("logs", str(run_id), "load.sh").stdout == "loading attempt 2\nloaded\n"
    assert env.run("logs", str(run_id), "load.sh", "--attempt", "1").stdout.startswith("loading attempt 1")
    assert env.error("retry", str(run_id)) == (
        f"dagctl: error: run {run_id} has nothing to retry: every task succeeded"
    )
    assert env.error("cancel", str(run_id)) == (
        f"dagctl: error: run {run_id} has already finished (success): nothing to cancel"
    )


# ---------------------------------------------------------------- cancel


def test_cancel_stops_running_tasks_through_the_live_scheduler(env: Env, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    nap = f"""
        #!/usr/bin/env bash
        sleep 300 &
        echo "$$ $!" > {pids}/$DAGCTL_TASK.tmp && mv {pids}/$DAGCTL_TASK.tmp {pids}/$DAGCTL_TASK
        echo "napping"
        sleep 300
        """
    env.dag(
        "slow",
        """
        description: sleeps for five minutes
        retries: 2
        retry_delay: 0
        """,
        nap_a__sh=nap,
        nap_b__sh=nap,
        after__yaml="""
        type: no_op
        inputs: [nap_a.sh]
        """,
    )
    scheduler = env.spawn("schedule", "--concurrency", "1", "--poll-interval", "0.1")
    watchers: list[subprocess.Popen[str]] = []
    try:
        run_id = int(env.run("trigger", "slow").stdout)
        started = wait_for(lambda: list(pids.iterdir()), what="a task to start")
        [pid_file] = [p for p in started if not p.name.endswith(".tmp")]
        leader, child = (int(p) for p in pid_file.read_text().split())
        running, queued = pid_file.name, ({"nap_a.sh", "nap_b.sh"} - {pid_file.name}).pop()
        wait_for(lambda: "napping" in env.run("logs", str(run_id), running).stdout, what="its first output")
        codes = [r["code"] for r in env.json("why", "slow")["reasons"]]
        assert len(codes) == 2 and "running" in codes and {*codes} <= {"running", "queued", "pool_full"}
        watchers = [
            env.spawn("logs", str(run_id), running, "-f"),
            env.spawn("status", "--watch", "--run", str(run_id)),
        ]

        assert env.json("cancel", str(run_id)) == {
            "run_id": run_id,
            "status": "cancelled",
            "cancelled_tasks": [queued],
            "stopping_tasks": [running],
        }

        def stopped() -> dict[str, Any] | None:
            [run] = env.json("status", "--run", str(run_id))
            return run if tasks_by_name(run)[running]["status"] == "cancelled" else None

        run = wait_for(stopped, what="the scheduler to stop the task")
        assert wait_for(lambda: process_gone(leader) and process_gone(child), what="the process group to die")
        assert run["status"] == "cancelled"
        assert run["error"] == "cancelled by dagctl cancel"
        tasks = tasks_by_name(run)
        assert (tasks[running]["attempt"], tasks[running]["error"]) == (1, "cancelled by dagctl cancel")
        assert tasks[running]["started_at"] is not None
        assert (tasks[queued]["status"], tasks[queued]["started_at"]) == ("cancelled", None)
        assert "after.yaml" not in tasks  # nothing new is created, no retry is queued

        follower, watcher = watchers
        out, _ = follower.communicate(timeout=30)
        assert (follower.returncode, out) == (0, "napping\n")
        out, _ = watcher.communicate(timeout=30)
        assert watcher.returncode == 1  # the watched run did not succeed
        assert out.splitlines()[-1].endswith(f"run {run_id} slow: cancelled")
        assert env.error("cancel", str(run_id)) == (
            f"dagctl: error: run {run_id} has already finished (cancelled): nothing to cancel"
        )
    finally:
        for process in [*watchers, scheduler]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)
    assert scheduler.returncode == 0


# ---------------------------------------------------------------- pause, list, why


HOURLY = """
description: every hour
schedule: "0 * * * *"
timezone: Europe/Berlin
"""


def test_pause_prevents_scheduled_runs_until_unpaused(env: Env) -> None:
    env.dag("hourly", HOURLY, noop__yaml="type: no_op\n")
    env.dag("broken", "description: has a typo\nretrys: 2\n", noop__yaml="type: no_op\n")
    env.run("schedule", "--once", fake_now="2024-05-01T10:20:00")  # first sighting: no past slots
    assert env.json("pause", "hourly") == {"dag": "hourly", "paused": True}

    listed = {d["dag"]: d for d in env.json("list", fake_now="2024-05-01T10:20:00")}
    assert listed["hourly"] == {
        "dag": "hourly",
        "description": "every hour",
        "broken": False,
        "reason": None,
        "schedule": "0 * * * *",
        "timezone": "Europe/Berlin",
        "paused": True,
        "next_run": "2024-05-01T11:00:00Z",
        "next_run_local": "2024-05-01T13:00:00+02:00",
        "next_run_tz": "CEST",
        "tasks": 1,
        "last_run": None,
    }
    assert listed["broken"]["broken"] is True
    assert "unknown key 'retrys'" in listed["broken"]["reason"]

    env.run("schedule", "--until-idle", fake_now="2024-05-01T12:05:00")  # two slots passed, paused
    assert env.json("status") == []
    why = env.json("why", "hourly", fake_now="2024-05-01T12:05:00")
    assert [r["code"] for r in why["reasons"]] == ["paused", "no_scheduler", "nothing_queued"]
    assert why["reasons"][0]["message"] == (
        "hourly is paused: no run is created or started (dagctl unpause hourly)"
    )
    assert env.error("pause", "hourlx") == (
        f"dagctl: error: no DAG 'hourlx' in {env.dags} (did you mean 'hourly'?)"
    )

    assert env.json("unpause", "hourly") == {"dag": "hourly", "paused": False}
    env.run("schedule", "--until-idle", fake_now="2024-05-01T12:06:00")
    runs = env.json("status")
    assert [(r["kind"], r["logical_date"], r["status"]) for r in runs] == [
        ("scheduled", "2024-05-01T12:00:00Z", "success")  # catchup latest: the newest missed slot only
    ]
    last = {d["dag"]: d for d in env.json("list", fake_now="2024-05-01T12:06:00")}["hourly"]["last_run"]
    assert (last["id"], last["status"], last["logical_date"]) == (
        runs[0]["id"],
        "success",
        runs[0]["logical_date"],
    )


# ---------------------------------------------------------------- no database needed


@pytest.fixture
def plain_env(tmp_path: Path) -> Env:
    return Env(tmp_path, f"sqlite:///{tmp_path}/state.db")


def test_graph_next_and_completion(plain_env: Env) -> None:
    env = plain_env
    env.dag(
        "nightly",
        """
        description: nightly at 02:30 Berlin time
        schedule: "30 2 * * *"
        timezone: Europe/Berlin
        """,
        extract__sh="#!/usr/bin/env bash\necho\n",
        fx__sh="#!/usr/bin/env bash\necho\n",
        join__yaml="type: no_op\ninputs: [extract.sh, fx.sh]\n",
    )
    env.dag("manual", "description: by hand\n", noop__yaml="type: no_op\n")

    graph = env.json("graph", "nightly")
    assert graph == {
        "dag": "nightly",
        "tasks": [
            {"task": "extract.sh", "type": "shell", "inputs": [], "downstream": ["join.yaml"]},
            {"task": "fx.sh", "type": "shell", "inputs": [], "downstream": ["join.yaml"]},
            {"task": "join.yaml", "type": "no_op", "inputs": ["extract.sh", "fx.sh"], "downstream": []},
        ],
    }
    assert env.run("graph", "nightly").stdout.splitlines() == [
        "nightly",
        "extract.sh",
        "└── join.yaml  (after extract.sh, fx.sh)",
        "fx.sh",
        "└── join.yaml  (after extract.sh, fx.sh)",
    ]
    assert '"extract.sh" -> "join.yaml";' in env.run("graph", "nightly", "--format", "dot").stdout
    assert "n0 --> n2" in env.run("graph", "nightly", "--format", "mermaid").stdout

    upcoming = env.json("next", "nightly", "--count", "2", fake_now="2024-03-30T12:00:00")
    assert upcoming["slots"] == [
        {
            "utc": "2024-03-31T01:30:00Z",
            "local": "2024-03-31T03:30:00+02:00",
            "tz_abbreviation": "CEST",
            "note": "02:30 does not exist on 2024-03-31 (clocks go forward): runs at 03:30 CEST",
        },
        {
            "utc": "2024-04-01T00:30:00Z",
            "local": "2024-04-01T02:30:00+02:00",
            "tz_abbreviation": "CEST",
            "note": None,
        },
    ]
    autumn = env.json("next", "nightly", "--count", "1", fake_now="2024-10-26T12:00:00")["slots"]
    assert (
        autumn[0]["note"]
        == "02:30 happens twice on 2024-10-27 (clocks go back): runs once, at the first (CEST)"
    )
    assert env.error("next", "manual") == (
        "dagctl: error: DAG 'manual' has no schedule: it runs only when triggered (dagctl trigger manual)"
    )
    assert env.error("graph", "nightli") == (
        f"dagctl: error: no DAG 'nightli' in {env.dags} (did you mean 'nightly'?)"
    )

    completion = subprocess.run(
        [DAGCTL],
        env={
            **env.environ(),
            "_DAGCTL_COMPLETE": "bash_complete",
            "COMP_WORDS": "dagctl status ni",
            "COMP_CWORD": "2",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert completion.stdout.splitlines() == ["plain,nightly"]


def test_unreachable_database_exits_3_without_the_password(plain_env: Env) -> None:
    env = plain_env
    env.db_url = "postgresql://dagctl:s3cr3t-Pw@127.0.0.1:1/state"
    env.dag("manual", "description: by hand\n", noop__yaml="type: no_op\n")
    for args in (["status"], ["logs", "1"], ["list"]):
        result = env.run(*args, code=3)
        assert "s3cr3t" not in result.stdout + result.stderr
        assert result.stderr.startswith(
            "dagctl: error: cannot use the state database (host=127.0.0.1 port=1 db=state user=dagctl): "
        )
    verbose = subprocess.run(
        [DAGCTL, "-v", "cancel", "1"],
        env=env.environ(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert verbose.returncode == 3
    assert "Traceback" in verbose.stderr  # -v shows it; the password still never appears
    assert "s3cr3t" not in verbose.stdout + verbose.stderr
    assert env.error("why", "manual", code=3).endswith(
        "(check DATABASE_URL / --db and that the server is running)"
    )


# ---------------------------------------------------------------- layout


def _run_view(**overrides: Any) -> dict[str, Any]:
    run = {
        "id": 42,
        "dag": "nightly_orders_etl_for_the_european_warehouse_region",
        "kind": "scheduled",
        "creator": "scheduler",
        "status": "failed",
        "error": None,
        "logical_date": "2024-06-01T00:15:00Z",
        "created_at": "2024-06-01T00:15:00.2Z",
        "started_at": "2024-06-01T00:15:01Z",
        "ended_at": "2024-06-01T00:17:06Z",
        "duration_s": 125.0,
        "tasks": [
            {
                "task": "extract_orders.sh",
                "status": "success",
                "attempt": 1,
                "exit_code": 0,
                "error": None,
                "duration_s": 1.25,
            },
            {
                "task": "load_orders_into_the_warehouse_with_a_very_long_name.sql",
                "status": "failed",
                "attempt": 3,
                "exit_code": 1,
                "error": 'relation "orders_staging" does not exist: the schema migration '
                "for the staging area has not run yet, so every attempt fails the same way "
                "and the run cannot finish before someone applies it",
                "duration_s": 0.4,
            },
            {
                "task": "publish.yaml",
                "status": "upstream_failed",
                "attempt": 1,
                "exit_code": None,
                "error": "an input failed",
                "duration_s": None,
            },
        ],
    }
    run.update(overrides)
    return run


def test_status_layout_fits_80_columns() -> None:
    from rich.console import Console

    from dagctl.cli.render import render_status

    buffer = StringIO()
    out = Console(file=buffer, width=80, color_system=None)
    render_status([_run_view(), _run_view(id=41, status="success", tasks=[], dag="short")], out)
    lines = buffer.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), [len(line) for line in lines]
    assert [line.rstrip() for line in lines] == [
        "run 42  nightly_orders_etl_for_the_european_warehouse_region  failed  2m05s",
        "  scheduled by scheduler · logical date 2024-06-01 00:15:00 UTC",
        "    TASK                                     STATUS           TRY     TOOK  EXIT",
        "  ✓ extract_orders.sh                        success            1     1.2s     0",
        "  ✗ load_orders_into_the_warehouse_with_a_…  failed             3     0.4s     1",
        '      relation "orders_staging" does not exist: the schema migration for the',
        "      staging area has not run yet, so every attempt fails the same way and the",
        "      run cannot finish before someone applies it",
        "  ✗ publish.yaml                             upstream_failed    1        -     -",
        "",
        "run 41  short  success  2m05s",
        "  scheduled by scheduler · logical date 2024-06-01 00:15:00 UTC",
        "  no task has started yet",
    ]


def test_colour_follows_the_terminal_and_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagctl.cli.render import console, render_status

    def rendered() -> str:
        out = console()
        with out.capture() as captured:
            render_status([_run_view()], out)
        return captured.get()

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if stdout were a terminal
    assert re.search(r"\x1b\[[0-9;]*31m", rendered()), "failed is red on a terminal"
    monkeypatch.setenv("NO_COLOR", "1")
    assert not re.search(r"\x1b\[[0-9;]*3[0-7]m", rendered())


@pytest.fixture(autouse=True)
def _no_stray_colour_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    yield
