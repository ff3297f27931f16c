"""Hostile input through the real CLI (issue 12 items 4, 6, 8; faults F28, F29):
params named after sensitive environment variables, user regular expressions with
catastrophic backtracking, folder names and `-p` values that are not UTF-8."""

from __future__ import annotations

import os
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from dagctl.dags.loader import load_one
from dagctl.dags.model import Dag
from dagctl.dags.params import SENSITIVE_ENV_NAMES
from dagctl.execution.attempt import TaskContext
from dagctl.execution.prepare import prepare
from tests.faults.conftest import Harness

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
