"""What a new user trips on (issue 19): each trap, through the installed `dagctl`."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.acceptance.conftest import Env


@pytest.fixture
def lite(tmp_path: Path) -> Env:
    """An Env on an empty SQLite state database (for what does not depend on the backend)."""
    return Env(tmp_path, f"sqlite:///{tmp_path}/state.db")


# ---------------------------------------------------------------- 2. worker_config merge


def test_worker_config_env_is_merged_key_by_key_at_every_level(lite: Env) -> None:
    (lite.dags / "dagctl.yaml").write_text(
        "worker_config:\n  env: {FROM_ROOT: root, OVERRIDDEN: root, DAG_OVER_ROOT: root}\n"
    )
    lite.dag(
        "merge",
        """
        description: merge
        worker_config:
          env: {DAG_OVER_ROOT: dag, OVERRIDDEN: dag}
        """,
        show__sh="""
        # worker_config:
        #   env: {OVERRIDDEN: task, FROM_TASK: task}
        echo "$FROM_ROOT $DAG_OVER_ROOT $OVERRIDDEN $FROM_TASK"
        """,
    )
    result = lite.run("run", "merge", "show.sh")
    assert result.stdout == "root dag task task\n"


# ---------------------------------------------------------------- 1. SQL headers and targets


def test_sql_header_in_dash_dash_comments_is_read(lite: Env) -> None:
    lite.dag(
        "wh",
        "description: wh\n",
        extract__sh="echo extract\n",
        load__sql="""
        -- Load the day's orders (prose before the header is skipped).
        -- description: load
        -- inputs: [extract.sh]
        -- connection: warehouse
        CREATE TABLE IF NOT EXISTS t (x INTEGER);
        """,
        typo__sql="""
        -- inputs: [extrakt.sh]
        SELECT 1;
        """,
    )
    (lite.dags / "dagctl.yaml").write_text("connections:\n  warehouse: sqlite:///wh.db\n")
    result = lite.run("validate", code=1)
    assert result.stdout == ("dags/wh/typo.sql:1: unknown input 'extrakt.sh' (did you mean 'extract.sh'?)\n")
    (lite.dags / "wh" / "typo.sql").unlink()
    lite.run("validate")
    graph = lite.json("graph", "wh")
    inputs = {t["task"]: t["inputs"] for t in graph["tasks"]}
    assert inputs["load.sql"] == ["extract.sh"]
    lite.run("run", "wh", "load.sql")
    assert (lite.dags / "wh.db").exists()  # the connection named in the `--` header


def _sql_dag_without_connection(env: Env) -> None:
    env.dag("plain_sql", "description: plain\n", load__sql="/*\ninputs: []\n*/\nSELECT 1;\n")


def test_sql_task_without_connection_or_database_url_is_reported_before_it_runs(
    lite: Env, tmp_path: Path
) -> None:
    _sql_dag_without_connection(lite)
    no_db = {"DATABASE_URL": "", "XDG_STATE_HOME": str(tmp_path / "state")}
    result = lite.run("validate", **no_db)
    assert result.stdout == (
        "dags/plain_sql/load.sql:1: warning: load.sql has no connection and DATABASE_URL is not set:"
        " it will fail when it runs (set connection: NAME in its header, a connection named default in"
        " dagctl.yaml, or DATABASE_URL)\n"
    )
    assert lite.error("trigger", "plain_sql", **no_db) == (
        "dagctl: error: plain_sql/load.sql has no connection and DATABASE_URL is not set: it would fail"
        " (set connection: NAME in its header, a connection named default in dagctl.yaml, or DATABASE_URL)"
    )


def test_validate_warns_when_sql_tasks_share_the_state_database(lite: Env) -> None:
    _sql_dag_without_connection(lite)
    result = lite.run("validate")
    assert result.stdout == (
        "dags/plain_sql/load.sql:1: warning: load.sql has no connection: it runs on DATABASE_URL,"
        " dagctl's own state database (give SQL tasks their own database: connection: NAME in the"
        " header, or a connection named default in dagctl.yaml)\n"
    )
    (lite.dags / "dagctl.yaml").write_text("connections:\n  default: sqlite:///user.db\n")
    assert lite.run("validate").stdout == ""
    lite.run("run", "plain_sql", "load.sql")
    assert (lite.dags / "user.db").exists()


# ---------------------------------------------------------------- 3. first use of the default database


def test_first_command_on_a_fresh_install_creates_and_migrates_the_default_database(
    lite: Env, tmp_path: Path
) -> None:
    lite.dag("hello", "description: hello\n", hi__sh="echo hi\n")
    fresh = {"DATABASE_URL": "", "XDG_STATE_HOME": str(tmp_path / "fresh")}
    listed = lite.run("list", **fresh)
    assert listed.stdout.startswith("DAG ") and "hello" in listed.stdout
    assert (tmp_path / "fresh" / "dagctl" / "state.db").stat().st_size > 0
    for first in ("status", "why hello", "logs 1"):
        other = {"DATABASE_URL": "", "XDG_STATE_HOME": str(tmp_path / first.replace(" ", "_"))}
        result = lite.run(*first.split(), code=None, **other)
        assert "not migrated" not in result.stderr, result.stderr
        assert result.returncode in (0, 2), result.stderr  # `logs 1`: no run 1 (a usage error)


def test_a_database_named_by_database_url_still_needs_db_upgrade(lite: Env, tmp_path: Path) -> None:
    assert lite.error("status", code=3) == (
        f"dagctl: error: the state database {tmp_path}/state.db does not exist"
        " (run dagctl db upgrade to create it, or check DATABASE_URL / --db)"
    )
    assert not (tmp_path / "state.db").exists()  # no empty file left behind
    (tmp_path / "state.db").write_bytes(b"")
    line = lite.error("status", code=3)
    assert "is not migrated" in line and "run dagctl db upgrade" in line
    lite.run("db", "upgrade")
    assert lite.status() == []


def test_first_schedule_prints_no_alembic_set_up_lines(lite: Env) -> None:
    lite.dag("hello", "description: hello\n", hi__sh="echo hi\n")
    result = lite.schedule("--until-idle")
    assert "alembic" not in result.stderr, result.stderr
    assert "migrating the state database from empty" in result.stderr


# ---------------------------------------------------------------- 5. unknown DAG names


@pytest.mark.parametrize(
    "command",
    [
        "status etll",
        "status etll --watch",
        "trigger etll",
        "trigger etll --wait",
        "run etll",
        "run etll a.sh",
        "graph etll",
        "next etll",
        "why etll",
        "pause etll",
        "unpause etll",
    ],
)
def test_an_unknown_dag_is_an_error_with_did_you_mean_everywhere(lite: Env, command: str) -> None:
    lite.dag("etl", "description: etl\n", a__sh="echo a\n")
    lite.run("trigger", "etl")  # a database with a run in it, not an empty one
    assert lite.error(*command.split()) == (
        f"dagctl: error: no DAG 'etll' in {lite.dags} (did you mean 'etl'?)"
    )


def test_status_of_a_removed_dag_still_shows_its_runs(lite: Env) -> None:
    folder = lite.dag("gone", "description: gone\n", a__sh="echo a\n")
    lite.run("trigger", "gone")
    (folder / "a.sh").unlink()
    (folder / "workflow.yaml").unlink()
    folder.rmdir()
    assert [r["dag"] for r in lite.status("gone")] == ["gone"]


# ---------------------------------------------------------------- 6. helper files


def test_helper_modules_shared_folders_and_licence_lines_do_not_break_a_dag(lite: Env) -> None:
    lib = lite.dags / "_lib"
    lib.mkdir()
    (lib / "common.sh").write_text("greet() { echo hello; }\n")
    lite.dag(
        "tidy",
        "description: tidy\n",
        helpers__py='''
        """Shared code of this DAG's tasks (no header, no run: a helper module)."""


        def shout(text):
            return text.upper()
        ''',
        report__py='''
        """
        Build the report.

        inputs: [extract.sh]
        """
        import helpers


        def run(context):
            print(helpers.shout("report"))
        ''',
        extract__sh="""
        #!/usr/bin/env bash
        # Copyright 2024 ACME Corp. All rights reserved.
        # inputs: []
        source "$(dirname "$0")/../_lib/common.sh"
        greet
        """,
    )
    result = lite.run("-v", "validate")
    assert result.stdout == (
        f"{lite.dags}/tidy/helpers.py: ignored (a helper module: a .py file is a task when its docstring"
        " is a task header or it defines run(context))\n"
    )
    assert (
        result.stderr
        == "1 DAGs (0 broken), 2 tasks in valid DAGs: 0 errors, 0 warnings, 1 other files ignored\n"
    )
    graph = lite.json("graph", "tidy")
    assert {t["task"]: t["inputs"] for t in graph["tasks"]} == {"extract.sh": [], "report.py": ["extract.sh"]}
    assert lite.run("run", "tidy", "report.py").stdout == "REPORT\n"
    assert lite.run("run", "tidy", "extract.sh").stdout == "hello\n"


# ---------------------------------------------------------------- 4. schedulers and their DAGs folders


def _wait_for_line(process: subprocess.Popen[str], needle: str, timeout: float = 30) -> None:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if needle in line:
            return
    raise AssertionError(f"no {needle!r} from the scheduler")


def test_runs_no_live_scheduler_knows_are_reported_by_why_and_trigger(env: Env, tmp_path: Path) -> None:
    env.dag("mine", "description: mine\n", a__sh="echo a\n")
    other = tmp_path / "other"
    (other / "theirs").mkdir(parents=True)
    (other / "theirs" / "workflow.yaml").write_text("description: theirs\n")
    (other / "theirs" / "b.sh").write_text("echo b\n")
    scheduler = env.spawn("--dags", str(other), "schedule", "--poll-interval", "0.05")
    try:
        _wait_for_line(scheduler, "started")
        # The scheduler has synced its definitions once its first pass is done.
        deadline = time.monotonic() + 30
        while "scheduler" not in env.run("why", "mine").stdout and time.monotonic() < deadline:
            time.sleep(0.1)
        triggered = env.run("trigger", "mine")
        assert triggered.stdout == "1\n"
        assert triggered.stderr == (
            "dagctl: warning: no live scheduler has loaded DAG mine (1 alive, none with mine in its --dags"
            " folder): the run waits until such a scheduler starts\n"
        )
        reasons = env.json("why", "mine")["reasons"]
        assert [r["code"] for r in reasons] == ["unknown_to_schedulers", "queued"]
        assert reasons[1]["message"] == "run 1 is queued: a scheduler that has loaded it starts it"
        waiting = env.spawn("trigger", "mine", "--wait")
        time.sleep(1)
        assert waiting.poll() is None  # it waits, having said why
        waiting.kill()
        _, err = waiting.communicate(timeout=10)
        assert "no live scheduler has loaded DAG mine" in err
        theirs = env.run("--dags", str(other), "trigger", "theirs")
        assert theirs.stderr == ""
    finally:
        scheduler.terminate()
        scheduler.communicate(timeout=30)
    after = env.run("trigger", "mine")
    assert (
        after.stderr
        == "dagctl: warning: no scheduler is alive to start this run: start one with dagctl schedule\n"
    )


# ---------------------------------------------------------------- 8. parameters: checked


def test_parameters_nothing_provides_are_reported(lite: Env) -> None:
    lite.dag(
        "params",
        """
        description: params
        params:
          date: {type: string, default: "2024-06-01"}
        worker_config:
          env: {REGION: emea}
        """,
        typo__sh="# parameters: [dat]\necho $dat\n",
    )
    assert lite.run("validate", code=1).stdout == (
        "dags/params/typo.sh:1: unknown parameter 'dat' (did you mean 'date'?)\n"
    )
    (lite.dags / "params" / "typo.sh").write_text("# parameters: [date, REGION, API_KEY]\necho $API_KEY\n")
    assert lite.run("validate").stdout == (
        "dags/params/typo.sh:1: warning: typo.sh needs parameter 'API_KEY', which is no param of params and"
        " is not set in worker_config.env nor in this environment (declare it under params: in"
        " workflow.yaml, set it in worker_config.env, or export it where the scheduler runs)\n"
    )
    assert lite.run("validate", API_KEY="k").stdout == ""
    triggered = lite.run("trigger", "params")
    assert "dagctl: warning: typo.sh needs parameter 'API_KEY'" in triggered.stderr
    failed = lite.run("run", "params", "typo.sh", code=1)
    assert failed.stderr == "dagctl: task params/typo.sh failed: task needs parameter API_KEY\n"


# ---------------------------------------------------------------- 9. the small ones


def test_triggering_a_paused_dag_warns(lite: Env) -> None:
    lite.dag("quiet", "description: quiet\n", a__sh="echo a\n")
    lite.run("db", "upgrade")
    lite.run("pause", "quiet")
    result = lite.run("trigger", "quiet")
    assert result.stdout == "1\n"
    assert (
        "dagctl: warning: quiet is paused: the run starts once it is unpaused (dagctl unpause quiet)\n"
        in (result.stderr)
    )


def test_why_on_a_broken_dag_does_not_suggest_trigger(lite: Env) -> None:
    lite.dag("bad", "description: bad\nretrys: 1\n", a__sh="echo a\n")
    lite.run("db", "upgrade")
    reasons = lite.json("why", "bad")["reasons"]
    assert [r["code"] for r in reasons] == ["broken", "no_scheduler", "nothing_queued"]
    assert reasons[-1]["message"] == "no run is queued or running (fix bad first: dagctl validate)"
    assert "trigger" not in lite.run("why", "bad").stdout


# ---------------------------------------------------------------- 12. run a whole DAG locally


CHAIN = {
    "a__sh": "echo a\n",
    "b__sh": '# inputs: [a.sh]\necho "b $DAGCTL_TASK greeting=$greeting"\n',
    "c__sh": "# inputs: [b.sh]\necho c; exit 3\n",
    "d__sh": "# inputs: [c.sh]\necho d\n",
    "side__sh": "# inputs: [a.sh]\necho side\n",
}


def test_run_dag_runs_every_task_in_dependency_order_and_stops_at_the_first_failure(
    lite: Env, tmp_path: Path
) -> None:
    lite.dag("chain", "description: chain\nparams:\n  greeting: {type: string, default: hi}\n", **CHAIN)
    result = lite.run("run", "chain", "-p", "greeting=hello", code=3)
    assert result.stdout == "a\nb b.sh greeting=hello\nc\n"
    lines = [line.split(" (")[0] for line in result.stderr.splitlines()]
    assert lines == [
        "[1/5] a.sh: running",
        "[1/5] a.sh: success",
        "[2/5] b.sh: running",
        "[2/5] b.sh: success",
        "[3/5] c.sh: running",
        "[3/5] c.sh: failed",
        "chain: c.sh failed; not run: d.sh, side.sh; nothing recorded",
    ]
    assert not (tmp_path / "state.db").exists()  # nothing recorded, not even a database


def test_run_dag_slices_with_from_and_to(lite: Env) -> None:
    lite.dag("chain", "description: chain\nparams:\n  greeting: {type: string, default: hi}\n", **CHAIN)
    assert lite.run("run", "chain", "--to", "b.sh").stdout == "a\nb b.sh greeting=hi\n"
    assert lite.run("run", "chain", "--from", "b.sh", "--to", "b.sh").stdout == "b b.sh greeting=hi\n"
    assert lite.run("run", "chain", "--from", "c.sh", code=3).stdout == "c\n"
    assert lite.run("run", "chain", "--from", "side.sh").stdout == "side\n"
    assert lite.error("run", "chain", "--from", "b.sh", "--to", "side.sh") == (
        "dagctl: error: side.sh does not depend on b.sh: nothing to run (swap --from and --to?)"
    )
    assert lite.error("run", "chain", "--from", "bb.sh") == (
        "dagctl: error: DAG 'chain' has no task 'bb.sh' (did you mean 'b.sh'?)"
    )
    assert lite.error("run", "chain", "a.sh", "--from", "a.sh") == (
        "dagctl: error: --from and --to run a slice of the DAG, not one TASK (dagctl run chain --from a.sh)"
    )
    assert lite.run("run", "chain", "a.sh").stdout == "a\n"  # `run DAG TASK` keeps its meaning


# ---------------------------------------------------------------- 7. working directory and connections


def test_tasks_get_named_connections_with_passwords_masked_and_run_in_their_folder(lite: Env) -> None:
    (lite.dags / "dagctl.yaml").write_text(
        "connections:\n"
        "  warehouse: sqlite:///wh.db\n"
        "  report_db: postgresql://etl:s3cret-pw@db.internal:5432/reports\n"
        "  later: ${LATER_URL}\n"
    )
    lite.dag(
        "conn",
        "description: conn\n",
        write__py='''
        """
        inputs: []
        """
        import os
        import sqlite3


        def run(context):
            with sqlite3.connect(os.environ["DAGCTL_CONN_WAREHOUSE"].removeprefix("sqlite:///")) as db:
                db.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
                db.execute("INSERT INTO t VALUES (42)")
            print(os.getcwd())
            print(os.environ["DAGCTL_CONN_REPORT_DB"])
            print("later" if "DAGCTL_CONN_LATER" in os.environ else "no later")
        ''',
        read__sql="""
        -- inputs: [write.py]
        -- connection: warehouse
        SELECT x FROM t;
        """,
    )
    result = lite.run("run", "conn")
    assert result.stdout.splitlines()[:3] == [
        str(lite.dags / "conn"),
        "postgresql://etl:***@db.internal:5432/reports",
        "no later",
    ]
    assert "s3cret-pw" not in result.stdout
    assert (lite.dags / "wh.db").exists()
    assert "statement 1: 1 row\n  42\n" in result.stdout  # the SQL task read what the Python task wrote
    later = lite.run("run", "conn", "write.py", LATER_URL="sqlite:///x.db")
    assert later.stdout.splitlines()[2] == "later"


# ---------------------------------------------------------------- 10. kubernetes without a cluster

UNREACHABLE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_kubernetes_scheduler_without_any_cluster_configuration_fails_at_start(
    lite: Env, tmp_path: Path
) -> None:
    pytest.importorskip("kubernetes")
    lite.dag("pods", "description: pods\nworker_config: {kube_image: img}\n", a__sh="echo a\n")
    nowhere = {"KUBECONFIG": "", "HOME": str(tmp_path / "home"), "KUBERNETES_SERVICE_HOST": ""}
    assert lite.error("schedule", "--manager", "kubernetes", "--once", **nowhere) == (
        f"dagctl: error: no Kubernetes cluster configuration: no kubeconfig ({tmp_path}/home/.kube/config"
        " does not exist) and not in a cluster (set KUBECONFIG to your kubeconfig file, or run the"
        " scheduler in a pod of the cluster)"
    )
    missing = {**nowhere, "KUBECONFIG": str(tmp_path / "nope")}
    assert "no kubeconfig (KUBECONFIG=" in lite.error("schedule", "--manager", "kubernetes", **missing)
    # Configured but unreachable: an outage the scheduler rides out.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    result = lite.schedule("--manager", "kubernetes", "--once", **{**nowhere, "KUBECONFIG": str(kubeconfig)})
    assert "(will retry)" in result.stderr


def test_retry_lists_the_tasks_that_run_once_their_inputs_succeed(lite: Env) -> None:
    lite.dag(
        "abc",
        "description: abc\nretries: 0\n",
        a__sh="test -e go\n",
        b__sh="# inputs: [a.sh]\necho b\n",
        c__sh="# inputs: [b.sh]\necho c\n",
    )
    lite.run("trigger", "abc")
    lite.schedule("--until-idle")
    assert [t["status"] for t in lite.status()[0]["tasks"]] == [
        "failed",
        "upstream_failed",
        "upstream_failed",
    ]
    (lite.dags / "abc" / "go").write_text("")
    assert lite.json("retry", "1") == {
        "run_id": 1,
        "dag": "abc",
        "requeued": [{"task": "a.sh", "attempt": 2}],
        "reset": ["b.sh", "c.sh"],
    }
    lite.schedule("--until-idle")
    lite.run("trigger", "abc")
    lite.run("cancel", "2")  # cancelled before any task was created
    assert lite.run("retry", "2").stdout == "run 2 reopened: a.sh, b.sh, c.sh run once their inputs succeed\n"
    lite.schedule("--until-idle")
    assert [r["status"] for r in lite.status()] == ["success", "success"]


def _on_a_terminal(env: Env, *args: str, **extra: str) -> str:
    """What `dagctl ARGS` writes to a terminal (a pseudo-terminal of 100 columns)."""
    import os
    import pty

    from tests.acceptance.conftest import DAGCTL

    main, child = pty.openpty()
    process = subprocess.Popen(
        # Env.environ drops NO_COLOR: the test's own value goes on top.
        [DAGCTL, *args],
        env={**env.environ(), **extra, "COLUMNS": "100"},
        stdout=child,
        stderr=child,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal closed: dagctl ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(timeout=30) == 0
    return b"".join(chunks).decode()


def test_no_color_means_no_escape_sequences_at_all(lite: Env) -> None:
    lite.dag("hello", "description: hello\nschedule: '0 * * * *'\n", hi__sh="echo hi\n")
    lite.run("trigger", "hello")
    assert "\x1b[" in _on_a_terminal(lite, "status")  # styled on a terminal
    for command in ("status", "list", "why hello", "graph hello"):
        assert "\x1b[" not in _on_a_terminal(lite, *command.split(), NO_COLOR="1"), command


def test_trigger_dag_works_as_the_readme_says(lite: Env) -> None:
    import sys

    lite.dag(
        "report", "description: r\nparams:\n  top_n: {type: integer, default: 5}\n", a__sh="echo $top_n\n"
    )
    code = (
        "from dagctl import trigger_dag\n"
        "from dagctl.errors import UsageError\n"
        "print(trigger_dag('report', creator='billing-service', params={'top_n': 3}))\n"
        "try:\n"
        "    trigger_dag('reprot')\n"
        "except UsageError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=lite.environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == f"1\nno DAG 'reprot' in {lite.dags} (did you mean 'report'?)\n"
    (run,) = lite.status()
    assert (run["creator"], run["dag"]) == ("billing-service", "report")


def test_an_invalid_fake_clock_is_a_usage_error(lite: Env) -> None:
    lite.dag("hello", "description: hello\n", hi__sh="echo hi\n")
    for command in ("list", "status", "why hello", "schedule --once"):
        assert lite.error(*command.split(), fake_now="garbage") == (
            "dagctl: error: DAGCTL_FAKE_NOW='garbage' is not an ISO 8601 time (e.g. 2024-03-31T00:30:00Z)"
        )


def test_run_dag_with_record_is_a_manual_run_in_status_logs_and_retry(env: Env) -> None:
    env.dag("chain", "description: chain\nparams:\n  greeting: {type: string, default: hi}\n", **CHAIN)
    result = env.run("run", "chain", "--record", code=3)
    assert result.stderr.splitlines()[-1] == (
        "chain: c.sh failed; not run: d.sh, side.sh; recorded as run 1 (dagctl status --run 1)"
    )
    (run,) = env.status()
    assert (run["id"], run["kind"], run["creator"], run["status"]) == (1, "manual", "dagctl run", "failed")
    assert {t["task"]: (t["status"], t["exit_code"]) for t in run["tasks"]} == {
        "a.sh": ("success", 0),
        "b.sh": ("success", 0),
        "c.sh": ("failed", 3),
        "d.sh": ("upstream_failed", None),
    }
    assert env.run("logs", "1", "c.sh").stdout == "c\n"
    (env.dags / "chain" / "c.sh").write_text("# inputs: [b.sh]\necho c again\n")
    assert env.json("retry", "1")["reset"] == ["d.sh", "side.sh"]
    env.schedule("--until-idle")
    (run,) = env.status()
    assert run["status"] == "success" and len(run["tasks"]) == 5
    assert env.error("run", "chain", "--record", "--to", "b.sh") == (
        "dagctl: error: --record records a whole run: it cannot take --from or --to"
    )
