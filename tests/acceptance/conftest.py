"""The acceptance tests' harness: the installed `dagctl`, run as a subprocess on a DAGs
folder of the test's own and a state database (SQLite and PostgreSQL, see `db_url`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
DAGCTL = str(BIN / "dagctl")


class Env:
    """One DAGs folder and one state database, and a way to run dagctl on them.

    Every command gets DATABASE_URL, DAGCTL_DAGS, a short DAGCTL_RELOAD_SECONDS, no
    NO_COLOR/FORCE_COLOR, and `extra_env` (then the call's own variables) on top of
    this process's environment."""

    def __init__(self, root: Path, db_url: str, **extra_env: str) -> None:
        self.root = root
        self.db_url = db_url
        self.dags = root / "dags"
        self.dags.mkdir()
        self.extra_env = extra_env

    def dag(self, name: str, workflow: str, **tasks: str) -> Path:
        """A DAG folder: `workflow` as its workflow.yaml, and each task file (`load__sh`
        is load.sh); the texts are dedented."""
        folder = self.dags / name
        folder.mkdir()
        (folder / "workflow.yaml").write_text(textwrap.dedent(workflow))
        for filename, body in tasks.items():
            (folder / filename.replace("__", ".")).write_text(textwrap.dedent(body).lstrip())
        return folder

    def environ(self, fake_now: str | None = None, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DATABASE_URL": self.db_url,
            "DAGCTL_DAGS": str(self.dags),
            "DAGCTL_RELOAD_SECONDS": "0.2",
            **self.extra_env,
            **extra,
        }
        env.pop("NO_COLOR", None)
        env.pop("FORCE_COLOR", None)
        if fake_now:
            env["DAGCTL_FAKE_NOW"] = fake_now
        return env

    def run(
        self,
        *args: str,
        fake_now: str | None = None,
        code: int | None = 0,
        timeout: float = 60,
        **extra: str,
    ) -> subprocess.CompletedProcess[str]:
        """Run `dagctl ARGS` to its end; no traceback, and exit code `code` (None: any)."""
        result = subprocess.run(
            [DAGCTL, *args],
            env=self.environ(fake_now, **extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        if code is not None:
            assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
        return result

    def json(self, *args: str, fake_now: str | None = None) -> Any:
        """The `-o json` output of a command that succeeds."""
        return json.loads(self.run(*args, "-o", "json", fake_now=fake_now).stdout)

    def error(self, *args: str, code: int = 2, fake_now: str | None = None, **extra: str) -> str:
        """The one stderr line of a failing command."""
        result = self.run(*args, code=code, fake_now=fake_now, **extra)
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        return lines[0]

    def spawn(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        """Start `dagctl ARGS` in the background, its output piped."""
        return subprocess.Popen(
            [DAGCTL, *args],
            env=self.environ(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def schedule(
        self, *args: str, fake_now: str | None = None, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        """`dagctl schedule --poll-interval 0.05 ARGS`, which must succeed."""
        return self.run("schedule", "--poll-interval", "0.05", *args, fake_now=fake_now, **extra)

    def status(self, *args: str) -> list[dict[str, Any]]:
        """`dagctl status -o json --limit 50 ARGS`: the runs, newest first."""
        runs: list[dict[str, Any]] = json.loads(
            self.run("status", "-o", "json", "--limit", "50", *args).stdout
        )
        return runs


def tasks_by_name(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A run's tasks (of `status -o json`) by task name."""
    return {t["task"]: t for t in run["tasks"]}


@pytest.fixture
def env(tmp_path: Path, db_url: str) -> Env:
    """An Env on an empty state database (dagctl migrates it, as on first use)."""
    return Env(tmp_path, db_url)
