"""dagctl.execution (prepare, foreground, taskprocess) with real processes: every task type,
params as data, exit codes, timeouts and process groups, capped and masked output, the guardian."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dagctl.dags.model import Dag
from dagctl.execution.attempt import FAILED, SUCCESS, Outcome
from dagctl.execution.foreground import exit_status, run_foreground
from dagctl.execution.guardian import Guardian
from dagctl.execution.logbuffer import LogBuffer, truncation_marker
from dagctl.execution.prepare import PrepareError, prepare
from dagctl.execution.taskprocess import Exit, Launch, TaskProcess
from tests.integration.taskdags import (
    context,
    group_alive,
    kill_group_quietly,
    make_dag,
    pid_alive,
    wait_until,
)

pytestmark = pytest.mark.timeout(30)


def run(dag: Dag, task: str, params: Mapping[str, Any] | None = None, **kwargs: Any) -> tuple[Outcome, str]:
    out = io.StringIO()
    outcome = run_foreground(dag, dag.tasks[task], context(dag, task, params), out, **kwargs)
    return outcome, out.getvalue()


def drive(proc: TaskProcess, limit: float = 10.0) -> Exit:
    """Poll a TaskProcess to its end the way the manager does, without a selector."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        ended = proc.poll()
        if ended is not None:
            return ended
        time.sleep(0.01)
    raise AssertionError("task did not finish")


# ---------------------------------------------------------------- task types


def test_shell_task_gets_its_context_in_the_environment(tmp_path: Path) -> None:
    script = textwrap.dedent("""\
        echo "dag=$DAGCTL_DAG task=$DAGCTL_TASK run=$DAGCTL_RUN_ID attempt=$DAGCTL_ATTEMPT"
        echo "date=$DAGCTL_LOGICAL_DATE cwd=$PWD region=$region extra=$EXTRA"
        echo "params=$DAGCTL_PARAMS"
    """)
    dag = make_dag(
        tmp_path / "demo", {"show.sh": script}, params={"region": "emea"}, worker_env={"EXTRA": "x"}
    )
    outcome, printed = run(dag, "show.sh")
    assert (outcome.status, outcome.exit_code, outcome.error) == (SUCCESS, 0, None)
    lines = outcome.log.splitlines()
    assert lines[0] == "dag=demo task=show.sh run=42 attempt=1"
    assert lines[1] == f"date=2024-06-01T02:15:00+00:00 cwd={tmp_path / 'demo'} region=emea extra=x"
    assert json.loads(lines[2].removeprefix("params=")) == {"region": "emea"}
    assert printed == outcome.log


def test_shell_task_runs_bash_without_a_shell_string(tmp_path: Path) -> None:
    dag = make_dag(tmp_path / "demo", {"t.sh": "true\n"})
    launch = prepare(dag, dag.tasks["t.sh"], context(dag, "t.sh"))
    assert launch is not None
    assert Path(launch.argv[0]).name == "bash"
    assert launch.argv[1:] == (str(tmp_path / "demo" / "t.sh"),)
    assert launch.cwd == tmp_path / "demo"


def test_command_task_argv_is_not_interpreted(tmp_path: Path) -> None:
    argv = ("printf", "%s|", "$HOME", "a b", "`id`", "*")
    dag = make_dag(tmp_path / "demo", {"cmd.yaml": ""}, command=argv)
    outcome, _ = run(dag, "cmd.yaml")
    assert outcome.status == SUCCESS
    assert outcome.log == "$HOME|a b|`id`|*|"


def test_python_task_gets_a_context_dict_and_imports_siblings(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "helper.py").write_text("GREETING = 'hello from a sibling'\n")
    code = textwrap.dedent("""\
        '''inputs: []'''
        import json, sys
        import helper

        def run(context):
            print(helper.GREETING)
            print(json.dumps(context, sort_keys=True))
            print("sqlalchemy" in sys.modules, "click" in sys.modules, "yaml" in sys.modules)
            return 7  # ignored: only a dict is outputs
    """)
    dag = make_dag(folder, {"job.py": code}, params={"limit": 5, "name": "x"})
    outcome, _ = run(dag, "job.py")
    assert (outcome.status, outcome.exit_code) == (SUCCESS, 0), outcome.log
    greeting, ctx, imports = outcome.log.splitlines()
    assert greeting == "hello from a sibling"
    assert json.loads(ctx) == {
        "attempt": 1,
        "dag": "demo",
        "logical_date": "2024-06-01T02:15:00+00:00",
        "data_interval_start": "2024-06-01T02:15:00+00:00",
        "data_interval_end": "2024-06-01T02:15:00+00:00",
        "ds": "2024-06-01",
        "params": {"limit": 5, "name": "x"},
        "outputs": {},  # no upstream task published any
        "run_id": "42",
        "task": "job.py",
    }
    assert imports == "False False False"


def test_python_task_exception_and_system_exit(tmp_path: Path) -> None:
    dag = make_dag(
        tmp_path / "demo",
        {
            "boom.py": "def run(context):\n    raise ValueError('no rates for today')\n",
            "leave.py": "import sys\ndef run(context):\n    sys.exit(3)\n",
        },
    )
    outcome, _ = run(dag, "boom.py")
    assert (outcome.status, outcome.exit_code, outcome.error) == (FAILED, 1, "exit code 1")
    assert "Traceback" in outcome.log
    assert "ValueError: no rates for today" in outcome.log
    assert "pytask.py" not in outcome.log
    outcome, _ = run(dag, "leave.py")
    assert (outcome.status, outcome.exit_code) == (FAILED, 3)


SQL = """\
/*
description: load one value
connection: warehouse
*/
CREATE TABLE IF NOT EXISTS t (day TEXT, note TEXT);
-- only a comment;
DELETE FROM t WHERE day = :day;
INSERT INTO t (day, note) VALUES (:day, :note);
SELECT day, note FROM t WHERE day = :day;
"""


def test_sql_task_binds_params_in_one_transaction(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.db"
    note = "it's; DROP TABLE t; -- :day"
    dag = make_dag(
        tmp_path / "demo",
        {"load.sql": SQL},
        params={"day": "2024-06-01", "note": note, "unused": "x"},
        connections={"warehouse": f"sqlite:///{db}"},
        connection="warehouse",
    )
    outcome, _ = run(dag, "load.sql")
    assert outcome.status == SUCCESS, outcome.log
    assert outcome.log.splitlines() == [
        "statement 1: done",
        "statement 2: 0 rows",
        "statement 3: 1 row",
        "statement 4: 1 row",
        f"  2024-06-01 | {note}",
        "committed 4 statements",
    ]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT day, note FROM t").fetchall() == [("2024-06-01", note)]


def test_sql_task_failure_rolls_back_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "w.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    sql = "CREATE TABLE fresh (x INTEGER);\nINSERT INTO fresh VALUES (:v);\nINSERT INTO missing VALUES (1);\n"
    dag = make_dag(tmp_path / "demo", {"bad.sql": sql}, params={"v": "1"})
    outcome, _ = run(dag, "bad.sql")
    assert (outcome.status, outcome.exit_code) == (FAILED, 1)
    assert "statement 3 failed: no such table: missing" in outcome.log
    with sqlite3.connect(db) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert tables == []  # the CREATE TABLE was rolled back too


@pytest.mark.postgres
def test_sql_task_on_postgres_is_one_transaction(tmp_path: Path, postgres_url: str) -> None:
    import psycopg2

    sql = (
        "CREATE TABLE t (day date, note text);\n"
        "INSERT INTO t VALUES (CAST(:day AS date), :note);\n"
        "SELECT note, day::text FROM t;\n"
    )
    dag = make_dag(
        tmp_path / "demo",
        {"ok.sql": sql, "bad.sql": "CREATE TABLE u (x int);\nSELECT 1/0;\n"},
        params={"day": "2024-06-01", "note": "'); DROP TABLE t; --"},
        connections={"pg": postgres_url},
        connection="pg",
    )
    outcome, _ = run(dag, "ok.sql")
    assert outcome.status == SUCCESS, outcome.log
    assert "  '); DROP TABLE t; -- | 2024-06-01" in outcome.log.splitlines()
    outcome, _ = run(dag, "bad.sql")
    assert (outcome.status, outcome.exit_code) == (FAILED, 1)
    assert "statement 2 failed: division by zero" in outcome.log
    conn = psycopg2.connect(postgres_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT to_regclass('u') IS NULL, (SELECT count(*) FROM t)")
            assert cur.fetchone() == (True, 1)
    finally:
        conn.close()


def test_sql_url_travels_in_the_environment_with_variables_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WH_HOST", "db.example.com")
    monkeypatch.delenv("WH_PORT", raising=False)
    dag = make_dag(
        tmp_path / "demo",
        {"q.sql": "SELECT 1;"},
        connections={
            "wh": "postgres://etl:s3cret@${WH_HOST}:${WH_PORT:-5432}/dw",
            "bad": "sqlite:///${NOPE}",
        },
        connection="wh",
        params={"pw": "s3cret"},
    )
    launch = prepare(dag, dag.tasks["q.sql"], context(dag, "q.sql"))
    assert launch is not None
    assert launch.env["DAGCTL_SQL_URL"] == "postgresql://etl:s3cret@db.example.com:5432/dw"
    assert not any("s3cret" in arg for arg in launch.argv)
    assert "s3cret" in launch.secrets  # the password is masked in the task's output
    broken = make_dag(tmp_path / "other", {"q.sql": "SELECT 1;"}, connections={"bad": "sqlite:///${NOPE}"})
    task = broken.tasks["q.sql"]
    with pytest.raises(PrepareError, match="environment variable NOPE is not set"):
        prepare(broken, dataclasses.replace(task, connection="bad"), context(broken, "q.sql"))


def test_no_op_starts_no_process(tmp_path: Path) -> None:
    dag = make_dag(tmp_path / "demo", {"done_noop.yaml": ""})
    assert prepare(dag, dag.tasks["done_noop.yaml"], context(dag, "done_noop.yaml")) is None
    outcome, printed = run(dag, "done_noop.yaml")
    assert (outcome.status, outcome.exit_code, outcome.log, printed) == (SUCCESS, None, "", "")
    assert exit_status(outcome) == 0


def test_plug_in_task_types_build_an_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dagctl.plugins

    def factory(dag: Dag, task: Any, context: Any) -> list[str]:
        return ["printf", "%s ran with %s", task.name, context.params["x"]]

    def broken(dag: Dag, task: Any, context: Any) -> list[str]:
        raise RuntimeError("no cluster configured")

    plugins = {"echoer": factory, "broken": broken}
    monkeypatch.setattr(dagctl.plugins, "load_task_type", lambda name: plugins[name])
    folder = tmp_path / "demo"
    dag = make_dag(folder, {"job.yaml": ""}, params={"x": "$(id)"})
    task = dataclasses.replace(dag.tasks["job.yaml"], type="echoer")
    outcome = run_foreground(dag, task, context(dag, "job.yaml"), io.StringIO())
    assert (outcome.status, outcome.log) == (SUCCESS, "job.yaml ran with $(id)")
    with pytest.raises(PrepareError, match="task type 'broken' failed to build the command: no cluster"):
        prepare(dag, dataclasses.replace(task, type="broken"), context(dag, "job.yaml"))
    with pytest.raises(PrepareError, match="unknown task type 'missing'"):
        prepare(dag, dataclasses.replace(task, type="missing"), context(dag, "job.yaml"))


# ---------------------------------------------------------------- params are data


PAYLOADS = {
    "p_equals": "a=b=c",
    "p_quotes": "it's \"quoted\" 'twice'",
    "p_subst": "$(touch {marker})",
    "p_backticks": "`touch {marker}`",
    "p_semicolon": "x; touch {marker} #",
    "p_newlines": "line one\nline two\n\nend",
    "p_unicode": "grüße ✓ 東京 🎉",
    "p_dash": "--help",
    "p_dash_n": "-n",
    "p_glob": "* ~ $HOME ${{PATH}}",
}


def test_params_reach_a_shell_task_verbatim_and_are_never_executed(tmp_path: Path) -> None:
    marker = Path("/tmp") / f"pwned-{uuid.uuid4().hex}"
    values = {name: value.format(marker=marker) for name, value in PAYLOADS.items()}
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    script = "".join(f'printf \'%s\' "${name}" > "$OUT_DIR/{name}"\n' for name in values)
    dag = make_dag(
        tmp_path / "demo", {"echo.sh": script}, params=values, worker_env={"OUT_DIR": str(out_dir)}
    )
    outcome, _ = run(dag, "echo.sh")
    assert outcome.status == SUCCESS, outcome.log
    for name, value in values.items():
        assert (out_dir / name).read_bytes() == value.encode(), name
    assert not marker.exists()


def test_big_params_arrive_whole_or_fail_clearly(tmp_path: Path) -> None:
    big = "é" * 30_000  # 60 KB of UTF-8, under the per-param limit
    dag = make_dag(tmp_path / "demo", {"size.sh": 'printf %s "$big" | wc -c\n'}, params={"big": big})
    outcome, _ = run(dag, "size.sh")
    assert (outcome.status, outcome.log.strip()) == (SUCCESS, "60000")
    # Each param fits, but all of them as one DAGCTL_PARAMS string cannot.
    values = {f"p{n}": "x" * 60_000 for n in range(3)}
    many = make_dag(tmp_path / "many", {"size.sh": "true\n"}, params=values)
    outcome, _ = run(many, "size.sh")
    assert outcome.status == FAILED and outcome.exit_code is None
    assert outcome.error is not None and "over the 128 KiB a process environment variable" in outcome.error


def test_a_declared_parameter_that_is_missing_fails_before_starting(tmp_path: Path) -> None:
    witness = tmp_path / "ran"
    dag = make_dag(tmp_path / "demo", {"t.sh": f"touch {witness}\n"}, parameters=("date", "HOME"))
    outcome, _ = run(dag, "t.sh")
    assert (outcome.status, outcome.exit_code, outcome.error) == (FAILED, None, "task needs parameter date")
    assert not witness.exists()
    outcome, _ = run(dag, "t.sh", {"date": "2024-06-01"})  # HOME comes from the environment
    assert outcome.status == SUCCESS


# ---------------------------------------------------------------- exits, signals, groups


def test_exit_codes(tmp_path: Path) -> None:
    dag = make_dag(tmp_path / "demo", {"three.sh": "echo failing\nexit 3\n", "ok.sh": "exit 0\n"})
    outcome, _ = run(dag, "three.sh")
    assert (outcome.status, outcome.exit_code, outcome.error) == (FAILED, 3, "exit code 3")
    assert exit_status(outcome) == 3
    assert run(dag, "ok.sh")[0].status == SUCCESS


def test_a_task_killed_by_a_signal_records_the_signal(tmp_path: Path) -> None:
    dag = make_dag(tmp_path / "demo", {"die.sh": "kill -KILL $$\n"})
    outcome, _ = run(dag, "die.sh")
    assert (outcome.status, outcome.exit_code, outcome.error) == (FAILED, -9, "killed by signal SIGKILL")
    assert exit_status(outcome) == 137


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    dag = make_dag(tmp_path / "demo", {"hang.sh": f"sleep 300 & echo $! > {pids}\nsleep 300\n"}, timeout=0.5)
    launch = prepare(dag, dag.tasks["hang.sh"], context(dag, "hang.sh"))
    assert launch is not None and launch.timeout == 0.5
    proc = TaskProcess(launch, kill_grace=2)
    try:
        started = time.monotonic()
        ended = drive(proc)
        assert ended == Exit(FAILED, -15, "timed out after 0.5s")
        assert 0.5 <= time.monotonic() - started < 3
        assert wait_until(lambda: not group_alive(proc.pgid), 2)
        assert not pid_alive(int(pids.read_text()))
    finally:
        kill_group_quietly(proc.pgid)


def test_a_background_child_does_not_outlive_a_successful_task(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    dag = make_dag(tmp_path / "demo", {"bg.sh": f"sleep 300 & echo $! > {pids}\necho done\nexit 0\n"})
    launch = prepare(dag, dag.tasks["bg.sh"], context(dag, "bg.sh"))
    assert launch is not None
    proc = TaskProcess(launch)
    try:
        started = time.monotonic()
        ended = drive(proc)
        # The child held the pipe open: the task still ends at once, and the child dies.
        assert ended == Exit(SUCCESS, 0, None)
        assert time.monotonic() - started < 2
        assert proc.buffer.finish() == "done\n"
        assert wait_until(lambda: not group_alive(proc.pgid), 2)
        assert not pid_alive(int(pids.read_text()))
    finally:
        kill_group_quietly(proc.pgid)


def test_a_task_ignoring_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    dag = make_dag(tmp_path / "demo", {"stubborn.sh": "trap '' TERM\necho ready\nsleep 300\n"}, timeout=0.3)
    launch = prepare(dag, dag.tasks["stubborn.sh"], context(dag, "stubborn.sh"))
    assert launch is not None
    proc = TaskProcess(launch, kill_grace=0.5)
    try:
        started = time.monotonic()
        ended = drive(proc)
        elapsed = time.monotonic() - started
        assert ended == Exit(FAILED, -9, "timed out after 0.3s")
        assert 0.8 <= elapsed < 3
        assert wait_until(lambda: not group_alive(proc.pgid), 2)
    finally:
        kill_group_quietly(proc.pgid)


def test_run_foreground_forwards_sigterm_to_the_task(tmp_path: Path) -> None:
    dag = make_dag(tmp_path / "demo", {"long.sh": "echo started\nsleep 300\n"})
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    try:
        outcome, printed = run(dag, "long.sh", kill_grace=1)
    finally:
        timer.cancel()
    assert (outcome.status, outcome.error) == (FAILED, "interrupted by SIGTERM")
    assert printed == "started\n"
    assert time.monotonic() - started < 3
    assert signal.getsignal(signal.SIGTERM) is before


def test_run_foreground_streams_output_as_it_arrives(tmp_path: Path) -> None:
    class Recorder(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[tuple[float, str]] = []

        def write(self, text: str) -> int:
            self.times.append((time.monotonic(), text))
            return super().write(text)

    dag = make_dag(tmp_path / "demo", {"slow.sh": "echo first\nsleep 0.6\necho second\n"})
    out = Recorder()
    outcome = run_foreground(dag, dag.tasks["slow.sh"], context(dag, "slow.sh"), out)
    assert outcome.status == SUCCESS
    assert [text for _, text in out.times] == ["first\n", "second\n"]
    assert out.times[1][0] - out.times[0][0] >= 0.5


def test_a_command_that_does_not_exist_fails_without_raising(tmp_path: Path) -> None:
    dag = make_dag(tmp_path / "demo", {"cmd.yaml": ""}, command=("no-such-command-dagctl",))
    outcome, _ = run(dag, "cmd.yaml")
    assert outcome.status == FAILED
    assert outcome.error is not None and "No such file or directory" in outcome.error


# ---------------------------------------------------------------- output: cap and secrets


def test_a_flood_of_output_is_capped_with_a_marker(tmp_path: Path) -> None:
    cap = 64 * 1024
    script = "echo FIRST-LINE\nhead -c 5000000 /dev/zero | tr '\\0' 'x'\necho\necho LAST-LINE\n"
    dag = make_dag(tmp_path / "demo", {"flood.sh": script})
    outcome, printed = run(dag, "flood.sh", log_cap_bytes=cap)
    assert outcome.status == SUCCESS
    total = len("FIRST-LINE\n") + 5_000_000 + len("\nLAST-LINE\n")
    marker = truncation_marker(outcome.log_truncated_bytes)
    assert outcome.log_truncated_bytes == total - cap
    assert len(outcome.log) <= cap + len(marker) + 1
    assert outcome.log.startswith("FIRST-LINE\nxxx")
    assert outcome.log.endswith("xxx\nLAST-LINE\n")
    assert "\n" + marker in outcome.log
    assert len(printed) == total  # the terminal gets everything; only storage is capped


def test_secrets_are_masked_in_output_and_log(tmp_path: Path) -> None:
    script = 'echo "token=$api_token"\necho "json=$DAGCTL_PARAMS"\necho "short=$pin"\n'
    dag = make_dag(
        tmp_path / "demo",
        {"leak.sh": script},
        params={"api_token": 'tok-"42"-secret', "pin": "ab", "user": "alice"},
        secrets=frozenset({"api_token", "pin"}),
    )
    outcome, printed = run(dag, "leak.sh")
    assert outcome.status == SUCCESS
    assert "tok-" not in outcome.log and "tok-" not in printed
    assert outcome.log.splitlines()[0] == "token=***"
    assert '"api_token": "***"' in outcome.log
    assert '"user": "alice"' in outcome.log
    assert "short=***" in outcome.log  # every declared secret, however short (issue 12)
    assert printed == outcome.log


def test_log_buffer_decodes_and_masks_across_chunk_boundaries() -> None:
    buffer = LogBuffer(cap_bytes=1024, secrets=["hunter2-secret"])
    data = "naïve ✓ hunter2-secret end\nsecond line\npartial".encode()
    for index in range(len(data)):  # one byte at a time: splits every character and secret
        buffer.feed(data[index : index + 1])
    first = buffer.take_new()
    assert first == "naïve ✓ *** end\nsecond line\n"
    assert buffer.finish() == "partial"
    assert buffer.finish() == ""


def test_log_buffer_chunks_and_final_text_never_overlap() -> None:
    buffer = LogBuffer(cap_bytes=100)
    taken = []
    for number in range(40):
        buffer.feed(f"line {number:02d}\n".encode())
        taken.append(buffer.take_new())
    final = buffer.finish()
    # Head: the first 50 bytes (six lines and "li"); ring: the last 50 ("3\n" and six lines).
    assert "".join(taken) == "".join(f"line {n:02d}\n" for n in range(6))
    assert buffer.truncated_bytes == 40 * 8 - 100
    tail = "3\n" + "".join(f"line {n:02d}\n" for n in range(34, 40))
    assert final == "li\n" + truncation_marker(220) + tail


# ---------------------------------------------------------------- the guardian


GUARDED_CHILD = """
import sys, time
from pathlib import Path
from dagctl.execution.guardian import Guardian
from dagctl.execution.taskprocess import Launch, TaskProcess

guardian = Guardian()
launch = Launch(argv=("bash", "-c", "sleep 300 & echo $!; sleep 300"), env={"PATH": "/usr/bin:/bin"},
                cwd=Path("/"), timeout=None)
proc = TaskProcess(launch, guardian=guardian)
while not proc.buffer.has_new:
    proc.read_output()
    time.sleep(0.01)
print(proc.pgid, proc.buffer.take_new().strip(), guardian.pid, flush=True)
time.sleep(300)
"""


def test_the_guardian_kills_task_groups_when_their_owner_is_killed() -> None:
    owner = subprocess.Popen([sys.executable, "-c", GUARDED_CHILD], stdout=subprocess.PIPE, text=True)
    pgid = grandchild = guardian_pid = 0
    try:
        assert owner.stdout is not None
        pgid, grandchild, guardian_pid = (int(v) for v in owner.stdout.readline().split())
        assert group_alive(pgid) and pid_alive(grandchild) and pid_alive(guardian_pid)
        owner.kill()  # SIGKILL: no clean-up code of the owner runs
        owner.wait()
        assert wait_until(lambda: not group_alive(pgid), 2)
        assert not pid_alive(grandchild)
        assert wait_until(lambda: not pid_alive(guardian_pid), 2)
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
        if pgid:
            kill_group_quietly(pgid)


def test_the_guardian_survives_its_own_death_and_closes_cleanly(tmp_path: Path) -> None:
    guardian = Guardian()
    launch = Launch(("sleep", "300"), dict(os.environ), tmp_path, None)
    proc = TaskProcess(launch, guardian=guardian)
    try:
        first = guardian.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)  # ignores TERM, so KILL it
        assert wait_until(lambda: not pid_alive(first), 2)
        guardian.register(999_999_999)  # any message respawns it with the whole set
        assert guardian.pid not in (None, first)
        guardian.unregister(999_999_999)
        assert guardian.groups == {proc.pgid}
        guardian.close()  # still registered: the close kills it
        assert wait_until(lambda: not group_alive(proc.pgid), 2)
        assert drive(proc) == Exit(FAILED, -9, "killed by signal SIGKILL")
    finally:
        kill_group_quietly(proc.pgid)
        proc.poll()
        guardian.close()


def test_a_templated_env_value_is_rendered_but_never_feeds_a_connection_url(tmp_path: Path) -> None:
    dag = make_dag(
        tmp_path / "demo",
        {"q.sql": "SELECT 1\n"},
        params={"target": "sqlite:////tmp/elsewhere.db"},
        connections={"wh": "${WH:-sqlite:///" + str(tmp_path / "wh.db") + "}"},
        worker_env={"WH": "{{ params.target }}", "STAMP": "{{ ds_nodash }}-{{ task }}-{{ attempt }}"},
        connection="wh",
    )
    launch = prepare(
        dag, dag.tasks["q.sql"], context(dag, "q.sql", {"target": "sqlite:////tmp/elsewhere.db"})
    )
    assert launch is not None
    assert launch.env["DAGCTL_SQL_URL"] == f"sqlite:///{tmp_path / 'wh.db'}"
    assert launch.env["WH"] == "sqlite:////tmp/elsewhere.db"  # the task itself sees it
    assert launch.env["STAMP"] == "20240601-q.sql-1"


def test_a_template_that_fails_at_start_fails_the_attempt_with_the_key(tmp_path: Path) -> None:
    dag = make_dag(tmp_path / "demo", {"a.sh": "#!/bin/bash\ntrue\n"}, worker_env={"X": "{{ params.nope }}"})
    with pytest.raises(PrepareError, match=r"worker_config\.env X: 'dict object' has no attribute 'nope'"):
        prepare(dag, dag.tasks["a.sh"], context(dag, "a.sh", {}))
