"""The web tests' set-up: a DAGs folder with a few DAGs that wait on files (so a test
decides when a task ends, without sleeps), a state database, and a real `dagctl serve`
on loopback when a test needs one."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.acceptance.conftest import DAGCTL, Env

TOKEN = "test-token-0123456789abcdef"


def make_dags(env: Env) -> None:
    gate = env.root / "gates"
    gate.mkdir(exist_ok=True)
    env.dag(
        "etl",
        """\
        description: Extract then load
        schedule: "0 6 * * *"
        timezone: Europe/Paris
        retries: 0
        params:
          limit: {type: integer, default: 10}
          api_key: {type: string, default: "s3cr3t-default", secret: true}
        """,
        extract__sh=f"""\
        #!/bin/bash
        # inputs: []
        echo "extracting $limit"
        while [ ! -e {gate}/etl-go ] && [ ! -e {gate}/all-go ]; do sleep 0.05; done
        echo "extracted"
        """,
        load__sh="""\
        #!/bin/bash
        # inputs: [extract.sh]
        echo loading
        """,
    )
    env.dag(
        "flaky",
        """\
        description: Fails until its gate file exists
        retries: 0
        """,
        step__sh=f"""\
        #!/bin/bash
        # inputs: []
        echo trying
        [ -e {gate}/flaky-ok ] || {{ echo "not yet" >&2; exit 3; }}
        """,
    )
    env.dag(
        "slow",
        """\
        description: Runs until cancelled
        retries: 0
        """,
        wait__sh="""\
        #!/bin/bash
        # inputs: []
        echo waiting
        sleep 60
        """,
    )
    (env.dags / "broken").mkdir()
    (env.dags / "broken" / "workflow.yaml").write_text("description: [unclosed\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def served(env: Env, *args: str, **extra: str) -> Iterator[str]:
    """A real `dagctl serve` on a free loopback port; yields its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [DAGCTL, "serve", "--port", str(port), *args],
        env=env.environ(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    prefix = next((args[i + 1] for i, a in enumerate(args) if a == "--base-path"), "")
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}{prefix}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "dagctl serve did not answer within 20 s"
            time.sleep(0.05)
        yield base + prefix
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        assert "Traceback" not in stderr, stderr


@pytest.fixture
def web_env(tmp_path: Path, migrated_db_url: str) -> Env:
    env = Env(tmp_path, migrated_db_url)
    make_dags(env)
    return env


@pytest.fixture
def sqlite_env(tmp_path: Path) -> Env:
    env = Env(tmp_path, f"sqlite:///{tmp_path / 'state.db'}")
    make_dags(env)
    env.run("db", "upgrade")
    return env
