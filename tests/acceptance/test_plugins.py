"""Plug-ins as their authors ship them: a tiny package declaring a manager and a task
type through entry points, built and pip-installed (into a folder on PYTHONPATH), then
used by the installed `dagctl` through `--manager myplugin` and a `.yaml` task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dagctl.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DAGCTL = str(Path(sys.executable).parent / "dagctl")

PYPROJECT = """
[build-system]
requires = ["setuptools>=61", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = "dagctl-myplugin"
version = "0.1"
dependencies = []

[project.entry-points."dagctl.managers"]
myplugin = "dagctl_myplugin:MyManager"

[project.entry-points."dagctl.task_types"]
shout = "dagctl_myplugin:shout"
"""

MODULE = '''
"""A manager that is the worker manager with a trace, and a task type that shouts."""

import os
import sys

from dagctl.managers.worker import WorkerManager


class MyManager(WorkerManager):
    name = "myplugin"

    def launch(self, attempt):
        with open(os.environ["PLUGIN_TRACE"], "a") as trace:
            trace.write(f"launch {attempt.task.name} attempt {attempt.context.attempt}\\n")
        super().launch(attempt)


def shout(dag, task, context):
    text = task.options["text"]
    return [sys.executable, "-c", "import sys; print(sys.argv[1].upper(), sys.argv[2])", text, context.dag]
'''


def install_plugin(source: Path, target: Path) -> None:
    base = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--target",
        str(target),
        str(source),
    ]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # Offline first, with this environment's setuptools; an isolated build needs an index.
    done = subprocess.run(
        [*base, "--no-build-isolation", "--no-index"], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        done = subprocess.run(base, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr


def test_a_plugin_manager_and_task_type_run_a_dag(tmp_path: Path) -> None:
    source = tmp_path / "plugin"
    (source / "dagctl_myplugin").mkdir(parents=True)
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "dagctl_myplugin" / "__init__.py").write_text(MODULE)
    target = tmp_path / "site"
    install_plugin(source, target)
    assert (target / "dagctl_myplugin-0.1.dist-info" / "entry_points.txt").is_file()

    dags = tmp_path / "dags"
    (dags / "loud").mkdir(parents=True)
    (dags / "loud" / "workflow.yaml").write_text("description: uses a plug-in\n")
    (dags / "loud" / "greet.yaml").write_text("type: shout\noptions: {text: hello from a plug-in}\n")
    (dags / "loud" / "after.sh").write_text(
        textwrap.dedent(
            """\
            #!/usr/bin/env bash
            # inputs: [greet.yaml]
            echo after
            """
        )
    )
    db_url = f"sqlite:///{tmp_path}/state.db"
    trace = tmp_path / "trace"
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "DAGCTL_DAGS": str(dags),
        "DATABASE_URL": db_url,
        "PLUGIN_TRACE": str(trace),
    }

    def dagctl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DAGCTL, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    assert dagctl("validate").returncode == 0  # the type is known through its entry point
    run_id = int(dagctl("trigger", "loud").stdout)
    done = dagctl("schedule", "--manager", "myplugin", "--until-idle", "--poll-interval", "0.05")
    assert done.returncode == 0, done.stderr
    assert "manager=myplugin" in done.stderr

    (run,) = json.loads(dagctl("status", "-o", "json").stdout)
    assert run["id"] == run_id and run["status"] == "success"
    assert {t["task"]: t["status"] for t in run["tasks"]} == {"greet.yaml": "success", "after.sh": "success"}
    assert trace.read_text() == "launch greet.yaml attempt 1\nlaunch after.sh attempt 1\n"
    store = open_store(db_url, migrate=False)
    try:
        (greet,) = [a for a in store.task_runs([run_id]) if a["task_name"] == "greet.yaml"]
        assert "".join(text for _, text, _ in store.read_log(greet["id"])) == "HELLO FROM A PLUG-IN loud\n"
    finally:
        store.close()

    typo = dagctl("schedule", "--manager", "myplugn", "--once")
    assert typo.returncode == 2
    assert "unknown manager 'myplugn'" in typo.stderr and "myplugin" in typo.stderr
    without = subprocess.run(
        [DAGCTL, "validate"], env={**env, "PYTHONPATH": ""}, capture_output=True, text=True, timeout=60
    )
    assert without.returncode == 1 and "unknown task type 'shout'" in without.stdout
