"""Task outputs through the installed CLI, on SQLite and PostgreSQL: a shell task
publishes `key=value` lines, a Python task returns a dict and reads its upstream's,
a command task's argv and env templates read them; `status -o json` and `logs` show
them; bad outputs fail the attempt with a one-line reason; `validate` refuses a
reference to a task that is not upstream."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.acceptance.conftest import Env, tasks_by_name

WORKFLOW = "description: outputs\nretries: 0\n"

EXTRACT_SH = """
#!/bin/bash
# inputs: []
echo "rows=3" >> "$DAGCTL_OUTPUT"
echo "path=/tmp/x y=z" >> "$DAGCTL_OUTPUT"
"""

SUMMARISE_PY = '''
"""
inputs: [extract.sh]
"""
def run(context):
    rows = int(context["outputs"]["extract.sh"]["rows"])
    return {"doubled": rows * 2, "names": ["a", "b"]}
'''

PUBLISH_YAML = """
type: command
inputs: [summarise.py]
command:
  - bash
  - -c
  - 'echo "argv=$1 env=$ROWS all=$DAGCTL_OUTPUTS"'
  - x
  - "{{ outputs['summarise.py'].doubled }}"
worker_config:
  env:
    ROWS: "{{ outputs['extract.sh'].rows }}"
"""


def test_outputs_flow_downstream_and_status_and_logs_show_them(env: Env) -> None:
    env.dag("flow", WORKFLOW, extract__sh=EXTRACT_SH, summarise__py=SUMMARISE_PY, publish__yaml=PUBLISH_YAML)
    run_id = env.run("trigger", "flow").stdout.strip()
    env.schedule("--until-idle")
    (run,) = env.status()
    assert run["status"] == "success", run
    tasks = tasks_by_name(run)
    assert tasks["extract.sh"]["outputs"] == {"rows": "3", "path": "/tmp/x y=z"}
    assert tasks["summarise.py"]["outputs"] == {"doubled": 6, "names": ["a", "b"]}
    assert tasks["publish.yaml"]["outputs"] is None
    log = env.run("logs", run_id, "publish.yaml").stdout
    assert "argv=6 env=3 all=" in log
    upstream = json.loads(log.split("all=", 1)[1].splitlines()[0])
    # Every task it runs after, directly or not.
    assert upstream == {
        "extract.sh": tasks["extract.sh"]["outputs"],
        "summarise.py": tasks["summarise.py"]["outputs"],
    }
    assert 'outputs: {"doubled": 6, "names": ["a", "b"]}' in env.run("logs", run_id).stdout
    assert "outputs: " in env.run("logs", run_id, "summarise.py").stderr
    assert "doubled=6" in env.run("status", "--run", run_id).stdout


def test_bad_or_oversized_outputs_fail_the_attempt_with_the_reason(env: Env) -> None:
    env.dag(
        "bad",
        WORKFLOW,
        big__sh='#!/bin/bash\n# inputs: []\nhead -c 5000 /dev/zero | tr "\\\\0" a >> "$DAGCTL_OUTPUT"\n',
        garbled__sh='#!/bin/bash\n# inputs: []\necho "no equals sign" > "$DAGCTL_OUTPUT"\n',
        notjson__sh='#!/bin/bash\n# inputs: []\necho "{nope" > "$DAGCTL_OUTPUT"\n',
    )
    env.run("trigger", "bad")
    env.schedule("--until-idle", code=None, DAGCTL_OUTPUT_MAX_BYTES="1000")
    (run,) = env.status()
    assert run["status"] == "failed"
    tasks = tasks_by_name(run)
    assert "over the 1,000-byte limit (DAGCTL_OUTPUT_MAX_BYTES)" in tasks["big.sh"]["error"]
    assert "outputs line 1 is not key=value: 'no equals sign'" in tasks["garbled.sh"]["error"]
    assert "outputs look like JSON but are not valid" in tasks["notjson.sh"]["error"]
    assert all(t["outputs"] is None for t in tasks.values())


def test_validate_refuses_outputs_of_a_task_that_is_not_upstream(env: Env) -> None:
    env.dag(
        "refs",
        WORKFLOW,
        a__sh="#!/bin/bash\n# inputs: []\necho rows=1 > $DAGCTL_OUTPUT\n",
        b__sh="#!/bin/bash\n# inputs: []\ntrue\n",
        c__yaml="type: command\ninputs: [b.sh]\ncommand: [echo, \"{{ outputs['a.sh'].rows }}\"]\n",
    )
    result = env.run("validate", code=1)
    assert "c.yaml" in result.stdout
    assert "outputs['a.sh'] names a task that is not upstream of c.yaml" in result.stdout


COUNT_SQL = """
/*
inputs: [extract.sh]
connection: scratch
params:
  rows: "{{ outputs['extract.sh'].rows }}"
*/
CREATE TABLE IF NOT EXISTS seen (rows_text TEXT);
INSERT INTO seen VALUES (:rows);
"""


def test_an_sql_task_binds_an_upstream_output_through_its_own_params(env: Env, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch.db"
    (env.dags / "dagctl.yaml").write_text(f"connections:\n  scratch: sqlite:///{scratch}\n")
    env.dag("sql", WORKFLOW, extract__sh=EXTRACT_SH, count__sql=COUNT_SQL)
    env.run("trigger", "sql")
    env.schedule("--until-idle")
    (run,) = env.status()
    assert run["status"] == "success", run
    with sqlite3.connect(scratch) as connection:
        assert connection.execute("SELECT rows_text FROM seen").fetchall() == [("3",)]


def test_trying_a_dag_in_the_foreground_hands_outputs_down_and_records_them(env: Env) -> None:
    env.dag("flow", WORKFLOW, extract__sh=EXTRACT_SH, summarise__py=SUMMARISE_PY, publish__yaml=PUBLISH_YAML)
    result = env.run("run", "flow", "--record")
    assert "argv=6 env=3" in result.stdout
    (run,) = env.status()
    assert tasks_by_name(run)["summarise.py"]["outputs"] == {"doubled": 6, "names": ["a", "b"]}
    # One task of that run again, by id: it reads what the run's upstream tasks published.
    again = env.run("run", "flow", "publish.yaml", "--run-id", str(run["id"]))
    assert "argv=6 env=3" in again.stdout
    # As in a kubernetes pod: the run described by the environment, outputs included.
    pod = env.run(
        "run",
        "flow",
        "publish.yaml",
        "--run-id",
        "999",
        DAGCTL_RUN_ID="999",
        DAGCTL_DAG="flow",
        DAGCTL_PARAMS="{}",
        DAGCTL_LOGICAL_DATE="2024-06-01T00:00:00+00:00",
        DAGCTL_OUTPUTS='{"extract.sh": {"rows": "5"}, "summarise.py": {"doubled": 10}}',
    )
    assert "argv=10 env=5" in pod.stdout


WAITER = """
import sys
from dagctl import RunResult, trigger_dag
from dagctl.actions.waiting import WaitTimeout

result = trigger_dag(sys.argv[1], creator="api", wait=True, timeout=60)
assert isinstance(result, RunResult)
print(result.status, result.failed_tasks, result.outputs, result.error)
try:
    trigger_dag("slow", wait=True, timeout=0.5)
except WaitTimeout as exc:
    print("timeout:", exc)
"""


def test_trigger_dag_with_wait_returns_the_final_status_and_the_outputs(env: Env) -> None:
    env.dag("flow", WORKFLOW, extract__sh=EXTRACT_SH, summarise__py=SUMMARISE_PY)
    env.dag("broken", WORKFLOW, fails__sh="#!/bin/bash\n# inputs: []\nexit 3\n")
    env.dag("slow", WORKFLOW, sleeps__sh="#!/bin/bash\n# inputs: []\nsleep 10\n")
    scheduler = env.spawn("schedule", "--poll-interval", "0.05", "--grace", "0")
    try:
        for dag, expected in (
            (
                "flow",
                "success () {'extract.sh': {'rows': '3', 'path': '/tmp/x y=z'}, "
                "'summarise.py': {'doubled': 6, 'names': ['a', 'b']}} None",
            ),
            ("broken", "failed ('fails.sh',) {}"),
        ):
            done = subprocess.run(
                [sys.executable, "-c", WAITER, dag],
                env=env.environ(),
                capture_output=True,
                text=True,
                timeout=90,
            )
            assert done.returncode == 0, done.stderr
            first, second = done.stdout.splitlines()
            assert first.startswith(expected), first
            assert second.startswith("timeout: run ") and "did not finish within 0.5s (still " in second
    finally:
        scheduler.terminate()
        scheduler.communicate(timeout=30)
