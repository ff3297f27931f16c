"""The state database misbehaving: restarted and stopped under load (F4), a transient
error inside an iteration (F1), and wrong credentials or addresses (F18)."""

from __future__ import annotations

import collections
import logging
import signal
import socket
import subprocess
import time
from datetime import datetime
from typing import Any

import psycopg2
import pytest
from sqlalchemy import Engine, event

from dagctl.errors import DatabaseError
from tests.faults.conftest import DAGCTL, Harness, InProcess
from tests.faults.invariants import wait_until
from tests.pgserver import PgServer

pytestmark = pytest.mark.postgres

# Holds a lock for as long as any process of the attempt lives: a second execution of
# the same task of the same run while the first still runs is written down as OVERLAP.
GUARDED = """
#!/usr/bin/env bash
exec 9>"$FAULT_DIR/lock-$DAGCTL_RUN_ID-$DAGCTL_TASK"
flock -n 9 || echo "OVERLAP $DAGCTL_RUN_ID $DAGCTL_TASK $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
echo "start $DAGCTL_RUN_ID $DAGCTL_TASK $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
if [ "$DAGCTL_ATTEMPT" = 1 ]; then sleep "$SECS"; fi
echo "end $DAGCTL_RUN_ID $DAGCTL_TASK $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
"""


def successes(harness: Harness) -> int:
    return int(harness.sql("SELECT count(*) FROM task_run WHERE status = 'success'")[0][0])


def test_postgres_restart_then_outage_under_load(harness: Harness, server: PgServer) -> None:
    lease = "3"
    harness.dag(
        "long",
        "description: d\nmax_active_runs: 10\nretries: 5\nretry_delay: 0\n"
        "worker_config: {env: {SECS: '20'}}\n",
        work__sh=GUARDED,
    )
    harness.dag(
        "load",
        "description: d\nmax_active_runs: 30\nretries: 5\nretry_delay: 0\n"
        "worker_config: {env: {SECS: '0.3'}}\n",
        a__sh=GUARDED,
        b__sh=GUARDED.replace("#!/usr/bin/env bash", "#!/usr/bin/env bash\n# inputs: [a.sh]"),
    )
    harness.migrate()
    # A poll interval far longer than the lease: the loop must still wake to renew
    # leases, and new work must come through LISTEN/NOTIFY.
    common = ("--concurrency", "4", "--grace", "1", "--poll-interval", "8")
    survivors = [
        harness.start(*common, DAGCTL_LEASE_SECONDS=lease, DAGCTL_MAX_OUTAGE_SECONDS="60") for _ in range(2)
    ]
    quitter = harness.start(*common, DAGCTL_LEASE_SECONDS=lease, DAGCTL_MAX_OUTAGE_SECONDS="3")
    wait_until(lambda: harness.sql("SELECT count(*) FROM scheduler") == [(3,)], 20, "three schedulers")
    # Nine long attempts over three schedulers of four slots: each holds one at least,
    # and each of those spans the whole outage.
    triggered = harness.trigger_many("long", 9)
    wait_until(
        lambda: (
            harness.sql("SELECT count(*), count(DISTINCT lease_owner) FROM task_run WHERE status = 'running'")
            == [(9, 3)]
        ),
        20,
        "long attempts on every scheduler",
    )
    triggered += harness.trigger_many("load", 20)
    wait_until(lambda: successes(harness) >= 5, 20, "some progress")

    server.restart("fast")
    before = successes(harness)
    wait_until(lambda: successes(harness) >= before + 5, 20, "progress after the restart")

    server.stop("fast")
    stopped = time.monotonic()
    # The one with a 3 s outage limit gives up with the documented code, in bounded time.
    assert quitter.wait(25) == 3, quitter.output()[-3000:]
    quit_after = time.monotonic() - stopped
    assert "state database unreachable for over 3 s: stopping" in quitter.output()
    time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
    assert all(s.alive() for s in survivors)
    server.start()
    restarted = time.monotonic()

    assert harness.wait_runs_finished(40) == {"success": 29}
    # Every long first attempt spanned the outage: stopped by its own scheduler (or its
    # guardian) when its lease could not be renewed, or reaped as lost; then run again
    # as interrupted, not failed.
    assert harness.sql(
        "SELECT count(*) FROM task_run WHERE dag_name = 'long' AND attempt = 1 AND status = 'interrupted'"
        " AND (error LIKE 'stopped: its lease%%' OR error LIKE 'interrupted:%%'"
        " OR error LIKE 'killed by the guardian%%')"
    ) == [(9,)]
    recovered = time.monotonic() - restarted
    # Never alive but wedged: both survivors heartbeat and take new work.
    wait_until(
        lambda: (
            harness.sql(
                "SELECT count(*) FROM scheduler WHERE stopped_at IS NULL "
                "AND heartbeat_at > timezone('utc', now()) - interval '3 seconds'"
            )
            == [(2,)]
        ),
        10,
        "both survivors to heartbeat",
    )
    # LISTEN works again: a new run starts long before the 8 s poll interval.
    run_id = int(harness.run("trigger", "load").stdout)
    triggered.append(run_id)
    wait_until(
        lambda: any(line.startswith(f"start {run_id} ") for line in harness.executions()),
        3,
        "a new run to be noticed through NOTIFY",
        interval=0.05,
    )
    harness.wait_runs_finished(20)
    for scheduler in survivors:
        scheduler.signal(signal.SIGTERM)
    assert [s.wait(20) for s in survivors] == [0, 0]
    overlaps = [line for line in harness.executions() if line.startswith("OVERLAP")]
    assert overlaps == [], overlaps
    harness.check(triggered=triggered, all_finished=True)
    assert recovered < 30
    # Its limit, one retry period (5 s), its grace and its last attempts to record.
    assert quit_after < 3 + 5 + 1 + 6, quit_after


# ---------------------------------------------------------------- F1, in process

_TABLES = {
    "dag": "name",
    "dag_run": "id",
    "task_run": "id",
    "task_log": "task_run_id, seq",
    "scheduler": "id",
}


def _snapshot(connection: Any) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the state, read on `connection` (autocommit: what is committed)."""
    rows = {}
    with connection.cursor() as cursor:
        for table, order in _TABLES.items():
            cursor.execute(f"SELECT * FROM {table} ORDER BY {order}")
            rows[table] = cursor.fetchall()
    return rows


class FailOnStatement:
    """A `before_cursor_execute` hook raising OperationalError on the k-th statement, and
    a `begin` hook remembering the database as it was when each transaction began."""

    def __init__(self, db_url: str, k: int, disconnect: bool) -> None:
        self.k, self.disconnect = k, disconnect
        self.reader = psycopg2.connect(db_url)
        self.reader.autocommit = True
        self.count = 0
        self.fired: str | None = None
        self.before_failing_tx: dict[str, list[tuple[object, ...]]] | None = None
        self._at_begin: dict[str, list[tuple[object, ...]]] | None = None

    def begin(self, connection: object) -> None:
        if self.fired is None:
            self._at_begin = _snapshot(self.reader)

    def before_cursor_execute(self, conn: object, cursor: object, statement: str, *args: object) -> None:
        self.count += 1
        if self.count == self.k and self.fired is None:
            self.fired = statement
            self.before_failing_tx = self._at_begin
            message = (
                "server closed the connection unexpectedly" if self.disconnect else "injected transient error"
            )
            raise psycopg2.OperationalError(message)

    def install(self, engine: Engine) -> None:
        event.listen(engine, "begin", self.begin)
        event.listen(engine, "before_cursor_execute", self.before_cursor_execute)

    def remove(self, engine: Engine) -> None:
        event.remove(engine, "begin", self.begin)
        event.remove(engine, "before_cursor_execute", self.before_cursor_execute)

    def unchanged_since_the_failing_transaction_began(self) -> bool:
        return self.before_failing_tx == _snapshot(self.reader)


def _reset(harness: Harness) -> None:
    harness.sql("TRUNCATE dag, dag_run, task_run, task_log, scheduler RESTART IDENTITY CASCADE")
    harness.out.unlink(missing_ok=True)


def _one_pass_with_failure(harness: Harness, k: int, disconnect: bool) -> str | None:
    """Fresh state and scheduler; an iteration at 11:00:30 (one scheduled slot due, two
    manual runs queued) failing at its k-th statement; then iterations until all is done.
    Returns the failed statement, or None when the iteration ran fewer than k."""
    _reset(harness)
    proc = InProcess(harness)
    try:
        proc.scheduler.iterate(proc.now)  # first sighting of the DAGs
        harness.trigger_many("manual", 2)
        proc.now = datetime(2024, 5, 1, 11, 0, 30)
        hook = FailOnStatement(harness.db_url, k, disconnect)
        hook.install(proc.store.engine)
        raised = False
        try:
            proc.scheduler.iterate(proc.now)
        except DatabaseError:  # nothing else may leave an iteration
            raised = True
        finally:
            hook.remove(proc.store.engine)
        assert raised == (hook.fired is not None), k
        if raised:
            # Nothing of the failed transaction is in the database.
            assert hook.unchanged_since_the_failing_transaction_began(), (k, hook.fired)
        hook.reader.close()
        proc.run_until_idle()
        # Then everything is done, each task exactly once.
        assert harness.run_statuses() == {"success": 3}, k
        executions = collections.Counter(tuple(line.split()[:2]) for line in harness.executions())
        assert len(executions) == 4 and set(executions.values()) == {1}, (k, executions)
        harness.check(all_finished=True)
        return hook.fired
    finally:
        proc.close()


RECORD = """
#!/usr/bin/env bash
echo "$DAGCTL_RUN_ID $DAGCTL_TASK $DAGCTL_ATTEMPT" >> "$FAULT_OUT"
"""


def test_transient_error_mid_iteration_abandons_it_whole(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in harness.env().items():
        monkeypatch.setenv(name, value)
    harness.dag(
        "hourly",
        'description: d\nschedule: "0 * * * *"\nretry_delay: 0\n',
        a__sh=RECORD,
        b__sh=RECORD.replace("bash\n", "bash\n# inputs: [a.sh]\n", 1),
    )
    harness.dag("manual", "description: d\nmax_active_runs: 5\n", only__sh=RECORD)
    harness.migrate()
    fired = []
    for k in range(1, 200):
        statement = _one_pass_with_failure(harness, k, disconnect=k % 2 == 0)
        if statement is None:
            break
        fired.append(statement.split()[0])
    assert len(fired) >= 10
    assert {"SELECT", "INSERT", "UPDATE"} <= set(fired)


def test_a_failed_iteration_is_one_warning_and_the_next_succeeds(
    harness: Harness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in harness.env().items():
        monkeypatch.setenv(name, value)
    harness.dag("manual", "description: d\nmax_active_runs: 5\n", only__sh=RECORD)
    harness.migrate()
    harness.trigger_many("manual", 3)
    proc = InProcess(harness)
    try:
        hook = FailOnStatement(harness.db_url, 4, disconnect=True)
        hook.install(proc.store.engine)
        with caplog.at_level(logging.INFO, logger="dagctl"):
            assert proc.scheduler.run_once(proc.now) is False
        hook.remove(proc.store.engine)
        problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(problems) == 1 and problems[0].exc_info is None, problems
        assert "iteration abandoned, will retry" in problems[0].getMessage()
        assert proc.scheduler.run_once(proc.now) is True
        proc.run_until_idle()
    finally:
        proc.close()
    assert len(harness.executions()) == 3
    harness.check(all_finished=True)


# ---------------------------------------------------------------- F18

PASSWORD = "Sw0rdfish-7f3a9c"
WRONG = "Wr0ng-Guess-51d2e"


@pytest.fixture
def password_role(server: PgServer) -> str:
    """A role that must give its password (the test server trusts everyone else)."""
    hba = server.datadir / "pg_hba.conf"
    line = "host all dagctl_pw 127.0.0.1/32 scram-sha-256\n"
    text = hba.read_text()
    if line not in text:
        hba.write_text(line + text)
    connection = server.connect()
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = 'dagctl_pw'")
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE ROLE dagctl_pw LOGIN SUPERUSER PASSWORD '{PASSWORD}'")
            cursor.execute("SELECT pg_reload_conf()")
    finally:
        connection.close()
    return "dagctl_pw"


def test_bad_credentials_and_addresses_fail_fast_with_one_line_and_no_password(
    harness: Harness, server: PgServer, password_role: str
) -> None:
    harness.dag("ok", "description: d\n", noop__yaml="type: no_op\n")
    database = harness.db_url.rsplit("/", 1)[1]
    port = server.port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nothing listens there once closed
    cases = {
        "wrong password": (f"postgresql://{password_role}:{WRONG}@127.0.0.1:{port}/{database}", WRONG),
        "closed port": (f"postgresql://someone:{WRONG}@127.0.0.1:{closed_port}/{database}", WRONG),
        "unknown host": (f"postgresql://someone:{WRONG}@no-such-host.invalid:5432/db", WRONG),
        "port not a number": (f"postgresql://someone:{WRONG}@127.0.0.1:notaport/db", WRONG),
        "unclosed bracket": (f"postgresql://someone:{WRONG}@[::1/db", WRONG),
        "no scheme": (f"someone:{WRONG}@127.0.0.1/db", WRONG),
        "unsupported": (f"mysql://someone:{WRONG}@127.0.0.1/db", WRONG),
    }
    commands = [("schedule", "--once"), ("trigger", "ok"), ("status",), ("db", "upgrade")]
    for name, (url, secret) in cases.items():
        for command in commands if name == "wrong password" else commands[:1]:
            began = time.monotonic()
            result = subprocess.run(
                [DAGCTL, *command],
                env=harness.env(DATABASE_URL=url),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            took = time.monotonic() - began
            out, err = result.stdout, result.stderr
            assert result.returncode == 3, (name, command, err)
            assert took < 5, (name, command, took)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("dagctl: error: "), (name, command, err)
            assert secret not in out + err, (name, command)
            if name in ("wrong password", "closed port"):
                assert f"host=127.0.0.1 port={port if name == 'wrong password' else closed_port}" in err
                assert f"db={database}" in err
            if name == "wrong password":
                assert f"user={password_role}" in err and "password authentication failed" in err

    # The right password works, and is never printed, not even with -v.
    right = f"postgresql://{password_role}:{PASSWORD}@127.0.0.1:{port}/{database}"
    for args in (("-v", "schedule", "--once"), ("trigger", "ok"), ("-v", "status"), ("db", "upgrade")):
        result = harness.run(*args, DATABASE_URL=right)
        assert PASSWORD not in result.stdout + result.stderr, args
    # A wrong password for a database that exists and is migrated: the same one line.
    result = harness.run("trigger", "ok", DATABASE_URL=right.replace(PASSWORD, WRONG), check=False)
    assert result.returncode == 3 and WRONG not in result.stderr
    harness.check(all_finished=False)
