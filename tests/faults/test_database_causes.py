"""Read commands name the real cause (issue 12 item 11): a PostgreSQL database or role
that does not exist is reported as such by `status`, `list`, `logs` and `why`, as
`trigger` does, not as a database that needs `dagctl db upgrade`."""

from __future__ import annotations

import subprocess

import pytest

from dagctl.errors import EXIT_DATABASE
from tests.faults.conftest import DAGCTL, Harness

pytestmark = pytest.mark.postgres

COMMANDS = [("status",), ("list",), ("logs", "1"), ("why", "ok"), ("trigger", "ok")]


def _run(harness: Harness, url: str, command: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DAGCTL, *command],
        env=harness.env(DATABASE_URL=url),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_a_missing_database_or_role_is_named_by_every_command(harness: Harness) -> None:
    harness.dag("ok", "description: d\n", noop__yaml="type: no_op\n")
    server, database = harness.db_url.rsplit("/", 1)
    host = server.split("@", 1)[1]
    cases = {
        f"{server}/no_such_db_4f2a": 'database "no_such_db_4f2a" does not exist',
        f"postgresql://no_such_role_4f2a@{host}/{database}": 'role "no_such_role_4f2a" does not exist',
    }
    for url, cause in cases.items():
        for command in COMMANDS:
            result = _run(harness, url, command)
            assert result.returncode == EXIT_DATABASE, (url, command, result.stderr)
            lines = result.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith(
                "dagctl: error: cannot use the state database ("
            ), (
                command,
                result.stderr,
            )
            assert cause in lines[0], (command, lines[0])
            assert "db upgrade" not in lines[0] and "not migrated" not in lines[0], (command, lines[0])


def test_an_empty_database_still_asks_for_db_upgrade(harness: Harness) -> None:
    harness.dag("ok", "description: d\n", noop__yaml="type: no_op\n")
    for command in COMMANDS[:4]:
        result = _run(harness, harness.db_url, command)
        assert result.returncode == EXIT_DATABASE, (command, result.stderr)
        assert "is not migrated (revision none" in result.stderr and "run dagctl db upgrade" in result.stderr
