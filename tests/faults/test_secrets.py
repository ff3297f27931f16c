"""Secrets never leak (F20, issue 12 item 5): the state database's password, the
connections' passwords and every declared secret param, however short, are masked in
stored logs, `dagctl logs`, `dagctl run`'s output and errors; tasks do not inherit
DATABASE_URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults.conftest import Harness

pytestmark = pytest.mark.postgres

STATE_PASSWORD = "St4te-pw@9f1c"  # '@' is percent-encoded in the URL
STATE_PASSWORD_IN_URL = "St4te-pw%409f1c"
CONNECTION_PASSWORD = "C0nn-pw-27be"
SHORT_SECRET = "Zq"
ONE_CHARACTER_SECRET = "µ"

LEAKY_TASK = """
#!/usr/bin/env bash
echo "inherited=${DATABASE_URL:-none}"
echo "configured=$STATE_COPY"
echo "read-from-a-file=$(cat "$FAULT_DIR/state-password")"
echo "connection=$(cat "$FAULT_DIR/connection-password")"
echo "pin=$pin tiny=$tiny"
echo "params=$DAGCTL_PARAMS"
"""


def _password_url(harness: Harness) -> str:
    # The test server trusts its users, so any password is accepted (and ignored).
    scheme, rest = harness.db_url.split("://", 1)
    user, host = rest.split("@", 1)
    return f"{scheme}://{user}:{STATE_PASSWORD_IN_URL}@{host}"


def _leaky_dag(harness: Harness, state_url: str) -> None:
    (harness.dags / "dagctl.yaml").write_text(
        "worker_config:\n"
        "  env:\n"
        f"    DAGCTL_FAULT_MARK: {harness.marker}\n"
        "connections:\n"
        f"  warehouse: postgresql://etl:{CONNECTION_PASSWORD}@127.0.0.1:1/warehouse\n"
    )
    (harness.root / "state-password").write_text(STATE_PASSWORD)
    (harness.root / "connection-password").write_text(CONNECTION_PASSWORD)
    harness.dag(
        "leaky",
        f"""
        description: prints every secret it can find
        params:
          pin: {{type: string, default: "{SHORT_SECRET}", secret: true}}
          tiny: {{type: string, default: "{ONE_CHARACTER_SECRET}", secret: true}}
        worker_config:
          env: {{STATE_COPY: "{state_url}"}}
        """,
        leak__sh=LEAKY_TASK,
    )


SECRETS = (STATE_PASSWORD, STATE_PASSWORD_IN_URL, CONNECTION_PASSWORD, SHORT_SECRET, ONE_CHARACTER_SECRET)


def _assert_nothing_leaks(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, (secret, text)


def test_every_known_password_and_secret_is_masked_in_logs_and_output(harness: Harness) -> None:
    state_url = _password_url(harness)
    _leaky_dag(harness, state_url)
    harness.run("db", "upgrade", DATABASE_URL=state_url)
    run_id = int(harness.run("trigger", "leaky", DATABASE_URL=state_url).stdout)
    scheduled = harness.run(
        "-v", "schedule", "--until-idle", "--poll-interval", "0.1", DATABASE_URL=state_url
    )
    _assert_nothing_leaks(scheduled.stdout + scheduled.stderr)

    logs = harness.run("logs", str(run_id), "leak.sh", DATABASE_URL=state_url).stdout
    _assert_nothing_leaks(logs)
    lines = logs.splitlines()
    # Tasks do not inherit the state database's URL; one given on purpose is masked.
    assert "inherited=none" in lines
    assert f"configured={state_url.replace(STATE_PASSWORD_IN_URL, '***')}" in lines
    assert "read-from-a-file=***" in lines
    assert "connection=***" in lines
    assert "pin=*** tiny=***" in lines
    params_line = next(line for line in lines if line.startswith("params="))
    assert json.loads(params_line.removeprefix("params=")) == {"pin": "***", "tiny": "***"}

    stored = harness.sql("SELECT string_agg(text, '') FROM task_log")[0][0]
    _assert_nothing_leaks(stored)
    for command in (("logs", str(run_id), "-o", "json"), ("status", "-o", "json"), ("why", "leaky")):
        result = harness.run(*command, DATABASE_URL=state_url)
        _assert_nothing_leaks(result.stdout + result.stderr)

    # A log an older dagctl stored unmasked is masked on the way out.
    harness.sql("UPDATE task_log SET text = text || %s", (f"old={STATE_PASSWORD}\n",))
    assert "old=***" in harness.run("logs", str(run_id), "leak.sh", DATABASE_URL=state_url).stdout

    # `dagctl run` prints the task's output as it comes: masked the same way.
    foreground = harness.run("run", "leaky", "leak.sh", DATABASE_URL=state_url)
    _assert_nothing_leaks(foreground.stdout + foreground.stderr)
    assert "inherited=none" in foreground.stdout and "read-from-a-file=***" in foreground.stdout
    harness.check(triggered=[run_id], all_finished=True)


def test_errors_never_print_the_state_database_password(harness: Harness, tmp_path: Path) -> None:
    state_url = _password_url(harness)
    harness.dag("ok", "description: d\n", noop__yaml="type: no_op\n")
    harness.run("db", "upgrade", DATABASE_URL=state_url)
    for command in (("logs", "999"), ("status", "--run", "999"), ("why", "nope"), ("trigger", "nope")):
        result = harness.run(*command, DATABASE_URL=state_url, check=False)
        assert result.returncode != 0 and result.stderr.startswith("dagctl: error: "), result.stderr
        _assert_nothing_leaks(result.stdout + result.stderr)
