"""Hostile input through the real CLI (issue 12 items 4, 6, 8; faults F28, F29):
params named after sensitive environment variables, user regular expressions with
catastrophic backtracking, folder names and `-p` values that are not UTF-8."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from dagctl.dags.loader import load_one
from dagctl.dags.model import Dag
from dagctl.dags.params import SENSITIVE_ENV_NAMES
from dagctl.errors import EXIT_USAGE
from dagctl.execution.attempt import TaskContext
from dagctl.execution.prepare import prepare
from tests.faults.conftest import DAGCTL, Harness
from tests.faults.invariants import wait_until

pytestmark = pytest.mark.postgres

# ---------------------------------------------------------------- F29 (item 6)

SENSITIVE = ["BASH_ENV", "LD_PRELOAD", "PATH", "PYTHONPATH", "ENV", "DAGCTL_DAG", "IFS", "PS4"]
REPORT_ENV = """
#!/usr/bin/env bash
echo "ran"
"""


def test_params_named_after_sensitive_variables_are_refused_and_never_executed(harness: Harness) -> None:
    marker = harness.root / "pwned"
    params = "".join(f"  {name}: {{type: string, default: ''}}\n" for name in SENSITIVE)
    harness.dag("sneaky", f"description: d\nparams:\n{params}", show__sh=REPORT_ENV)
    harness.dag("fine", "description: d\nparams:\n  path: {type: string, default: x}\n", show__sh=REPORT_ENV)
    harness.migrate()

    result = harness.run("validate", check=False)
    assert result.returncode == 1
    for line, name in enumerate(SENSITIVE, start=3):
        assert (
            f"sneaky/workflow.yaml:{line}: param {name!r} is named after a sensitive environment"
            f" variable (rename it, e.g. {name.lower()!r}: it could change what the task runs)"
        ) in result.stdout, result.stdout
    assert "fine" not in result.stdout  # a lower-case `path` is an ordinary name

    hostile = f"BASH_ENV=$(touch {marker})"
    for command in (
        ["trigger", "sneaky", "-p", hostile],
        ["run", "sneaky", "show.sh", "-p", hostile],
        ["trigger", "fine", "-p", hostile],  # not declared there: refused as unknown
    ):
        refused = harness.run(*command, check=False)
        assert refused.returncode != 0, (command, refused.stdout)
        assert refused.stderr.startswith("dagctl: error: ") and len(refused.stderr.splitlines()) == 1
    listed = harness.run("list", "-o", "json").stdout
    assert "param 'BASH_ENV' is named after a sensitive environment variable" in listed
    assert not marker.exists()
    assert harness.sql("SELECT count(*) FROM dag_run") == [(0,)]


def test_the_environment_builder_never_lets_a_param_override_a_sensitive_variable(tmp_path: Path) -> None:
    """Should a sensitive param reach an attempt anyway (a run queued before the DAG
    changed, a plug-in), the one environment builder keeps it out of the environment."""
    folder = tmp_path / "dags" / "plain"
    folder.mkdir(parents=True)
    (folder / "workflow.yaml").write_text("description: d\n")
    (folder / "show.sh").write_text('#!/usr/bin/env bash\necho "path=$PATH"\n')
    dag, _ = load_one(tmp_path / "dags", "plain")
    assert isinstance(dag, Dag)
    marker = tmp_path / "pwned"
    hostile = {
        "BASH_ENV": str(tmp_path / "evil.sh"),
        "LD_PRELOAD": "/nonexistent/evil.so",
        "PATH": str(tmp_path),
        "PYTHONSTARTUP": str(tmp_path / "evil.py"),
        "DAGCTL_RUN_ID": "666",
    }
    (tmp_path / "evil.sh").write_text(f"touch {marker}\n")
    context = TaskContext(
        dag="plain", task="show.sh", run_id=7, attempt=1, logical_date=datetime(2024, 1, 1), params=hostile
    )
    launch = prepare(dag, dag.tasks["show.sh"], context)
    assert launch is not None
    for name in ("BASH_ENV", "LD_PRELOAD", "PYTHONSTARTUP"):
        assert launch.env.get(name) == os.environ.get(name), name
    assert launch.env["PATH"] == os.environ["PATH"]
    assert launch.env["DAGCTL_RUN_ID"] == "7"
    assert '"BASH_ENV"' in launch.env["DAGCTL_PARAMS"]  # still data, inside the JSON
    done = subprocess.run(
        launch.argv, env=launch.env, cwd=launch.cwd, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"path={os.environ['PATH']}\n"
    assert not marker.exists()


def test_the_deny_list_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("**Refused param names.**", 1)[1].split("\n\n", 1)[0]
    for name in [*SENSITIVE_ENV_NAMES, "BASH_*", "LD_*", "DYLD_*", "PYTHON*", "DAGCTL_*"]:
        assert f"`{name}`" in section, name


# ---------------------------------------------------------------- F28 (item 4)

EVIL = "^(a+)+$"
EVIL_INPUT = "a" * 40 + "!"  # hours of backtracking for Python's re
RECORD = """
#!/usr/bin/env bash
echo "$DAGCTL_RUN_ID" >> "$FAULT_OUT"
"""


def test_a_catastrophic_pattern_never_stalls_validate_list_trigger_or_the_scheduler(harness: Harness) -> None:
    harness.dag(
        "hostile",
        'description: d\nschedule: "* * * * *"\n'
        f'params:\n  word: {{pattern: "{EVIL}", default: "{EVIL_INPUT}"}}\n',
        run__sh=RECORD,
    )
    harness.dag(
        "tricky", f'description: d\nparams:\n  word: {{pattern: "{EVIL}", default: "aaa"}}\n', run__sh=RECORD
    )
    harness.dag(
        "backref",
        'description: d\nparams:\n  twice: {pattern: "^(a)\\\\1$", default: "aa"}\n',
        run__sh=RECORD,
    )
    harness.dag("good", "description: d\n", run__sh=RECORD)
    harness.migrate()

    began = time.monotonic()
    result = harness.run("validate", check=False, timeout=10)
    assert time.monotonic() - began < 5
    assert result.returncode == 1
    assert (
        f"hostile/workflow.yaml:4: default of param 'word': '{EVIL_INPUT}'"
        f" does not match the pattern '{EVIL}'"
    ) in result.stdout, result.stdout
    assert (
        "backref/workflow.yaml:3: param 'twice': pattern '^(a)\\\\1$' cannot be used:"
        " invalid escape sequence: \\1 (dagctl matches patterns with RE2, in linear time:"
        " no backreferences (\\1), lookahead (?=...) or lookbehind (?<=...); rewrite it without them)"
    ) in result.stdout, result.stdout
    assert result.stderr.count("\n") == 1, result.stderr  # the summary line, no RE2 chatter

    began = time.monotonic()
    listed = json.loads(harness.run("list", "-o", "json", timeout=10).stdout)
    assert time.monotonic() - began < 5
    assert {d["dag"]: d["broken"] for d in listed} == {
        "backref": True,
        "good": False,
        "hostile": True,
        "tricky": False,
    }

    began = time.monotonic()
    refused = harness.run("trigger", "tricky", "-p", f"word={EVIL_INPUT}", check=False, timeout=10)
    assert time.monotonic() - began < 5
    assert refused.returncode == EXIT_USAGE
    assert (
        refused.stderr == f"dagctl: error: param 'word': '{EVIL_INPUT}' does not match the pattern '{EVIL}'\n"
    )

    scheduler = harness.start()
    run_id = int(harness.run("trigger", "good").stdout)
    wait_until(lambda: harness.run_statuses() == {"success": 1}, 15, "the good DAG's run to succeed")
    scheduler.signal(signal.SIGTERM)
    assert scheduler.wait(10) == 0
    assert harness.executions() == [str(run_id)]
    harness.check(triggered=[run_id], all_finished=True)


# ---------------------------------------------------------------- item 8: bytes that are not UTF-8


def test_a_folder_name_that_is_not_utf8_is_reported_alone_and_the_others_run(harness: Harness) -> None:
    bad = os.path.join(os.fsencode(harness.dags), b"caf\xe9")
    os.mkdir(bad)
    Path(os.fsdecode(os.path.join(bad, b"workflow.yaml"))).write_text("description: d\n")
    harness.dag("good", "description: d\n", run__sh=RECORD)
    harness.migrate()

    result = harness.run("validate", check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "dags/caf\\xe9: the folder name is not valid UTF-8 (rename the folder)"
    ], result.stdout
    report = json.loads(harness.run("validate", "-o", "json", check=False).stdout)
    assert (report["dags"], report["broken_dags"], len(report["problems"])) == (1, [], 1)
    listed = json.loads(harness.run("list", "-o", "json").stdout)
    assert [(d["dag"], d["broken"]) for d in listed] == [("good", False)]

    # Shell completion and "did you mean" list DAG names: the folder is none.
    completion = harness.run(COMP_WORDS="dagctl trigger ", COMP_CWORD="2", _DAGCTL_COMPLETE="bash_complete")
    assert completion.stdout.splitlines() == ["plain,good"], completion.stdout

    run_id = int(harness.run("trigger", "good").stdout)
    harness.run("schedule", "--until-idle", "--poll-interval", "0.1")
    assert harness.executions() == [str(run_id)]
    harness.check(triggered=[run_id], all_finished=True)


SQL_TASK = """
/*
connection: scratch
*/
SELECT :word AS word;
"""


def test_a_param_that_is_not_utf8_is_refused_at_trigger_and_never_crashes_a_sql_task(
    harness: Harness,
) -> None:
    (harness.dags / "dagctl.yaml").write_text(
        f"worker_config:\n  env:\n    DAGCTL_FAULT_MARK: {harness.marker}\n"
        f"connections:\n  scratch: sqlite:///{harness.root}/scratch.db\n"
    )
    harness.dag(
        "query", "description: d\nretries: 0\nparams:\n  word: {type: string, default: ok}\n", q__sql=SQL_TASK
    )
    harness.migrate()

    for command in (["trigger", "query"], ["run", "query", "q.sql"]):
        refused = subprocess.run(
            [DAGCTL, *command, "-p", b"word=caf\xe9"],
            env=harness.env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert refused.returncode == EXIT_USAGE, (command, refused.stdout, refused.stderr)
        assert refused.stderr == (
            "dagctl: error: param 'word': is not valid UTF-8 (byte 0xe9 at character 4) (pass UTF-8 text)\n"
        )
    assert harness.sql("SELECT count(*) FROM dag_run") == [(0,)]

    # A run queued before this rule existed (the store takes what it is given): the SQL
    # task fails in one line, never with a traceback.
    [run_id] = harness.trigger_many("query", 1, {"word": "caf\udce9"})
    harness.run("schedule", "--until-idle", "--poll-interval", "0.1")
    log = harness.run("logs", str(run_id), "q.sql").stdout
    assert "Traceback" not in log
    assert log == "param 'word' is not valid UTF-8: no database accepts it\n", log
    assert harness.run_statuses() == {"failed": 1}
    harness.check(triggered=[run_id], all_finished=True)
