"""DAGs that run DAGs, through the installed CLI on SQLite and PostgreSQL: a `dag` task
starts a child run with templated params at `--concurrency 1` (no deadlock: it holds
no slot while it waits) and reads the child's declared outputs; a failed child fails
the parent task naming the child run and its failed task; `retry` makes a new child
run; `cancel` reaches the child; `validate` refuses unknown child DAGs and cycles."""

from __future__ import annotations

import time

from tests.acceptance.conftest import Env, tasks_by_name

CHILD = """
description: child
retries: 0
params:
  table: {type: string}
  fail: {type: boolean, default: false}
outputs:
  rows: count.sh.rows
"""

COUNT_SH = """
#!/bin/bash
# inputs: []
# parameters: [table, fail]
if [ "$fail" = "true" ]; then echo "table $table is locked" >&2; exit 3; fi
echo "rows=${#table}" >> "$DAGCTL_OUTPUT"
"""

PARENT = "description: parent\nretries: 0\n"

PICK_SH = """
#!/bin/bash
# inputs: []
echo "table=customers" >> "$DAGCTL_OUTPUT"
"""

RUN_CHILD = """
type: dag
dag: child
inputs: [pick.sh]
params:
  table: "{{ outputs['pick.sh'].table }}"
  fail: {fail}
"""

REPORT = """
type: command
inputs: [run_child.yaml]
command: [bash, -c, 'echo "rows=$1"', x, "{{ outputs['run_child.yaml'].rows }}"]
"""


def _dags(env: Env, *, fail: bool) -> None:
    env.dag("child", CHILD, count__sh=COUNT_SH)
    env.dag(
        "parent",
        PARENT,
        pick__sh=PICK_SH,
        run_child__yaml=RUN_CHILD.replace("{fail}", "true" if fail else "false"),
        report__yaml=REPORT,
    )


def test_parent_runs_child_with_params_at_concurrency_1_and_reads_its_outputs(env: Env) -> None:
    _dags(env, fail=False)
    run_id = env.run("trigger", "parent").stdout.strip()
    env.schedule("--until-idle", "--concurrency", "1", timeout=60)
    runs = {r["id"]: r for r in env.status()}
    parent = runs[int(run_id)]
    assert parent["status"] == "success", parent
    task = tasks_by_name(parent)["run_child.yaml"]
    child = runs[task["child_run_id"]]
    assert (child["dag"], child["kind"], child["parent_run_id"]) == ("child", "child", int(run_id))
    assert child["params"] == {"table": "customers", "fail": False}
    assert child["logical_date"] == parent["logical_date"]
    assert task["outputs"] == {"rows": "9", "run_id": child["id"]}
    assert task["host"] is None  # no worker ran it
    assert "rows=9" in env.run("logs", run_id, "report.yaml").stdout
    tree = env.run("status", "--run", run_id).stdout
    assert f"run {child['id']}  child" in tree and "child by run" in tree


def test_failed_child_fails_the_parent_task_and_retry_makes_a_new_child_run(env: Env) -> None:
    _dags(env, fail=True)
    run_id = env.run("trigger", "parent").stdout.strip()
    env.schedule("--until-idle", "--concurrency", "1", timeout=60)
    runs = {r["id"]: r for r in env.status()}
    parent = runs[int(run_id)]
    assert parent["status"] == "failed"
    task = tasks_by_name(parent)["run_child.yaml"]
    first_child = task["child_run_id"]
    assert task["status"] == "failed"
    assert task["error"].startswith(f"child run {first_child} (child) failed: task count.sh failed")
    assert tasks_by_name(parent)["report.yaml"]["status"] == "upstream_failed"
    # The child's own failure is fixed; retrying the parent task makes a new child run.
    (env.dags / "parent" / "run_child.yaml").write_text(RUN_CHILD.replace("{fail}", "false"))
    env.run("retry", run_id, "--task", "run_child.yaml")
    env.schedule("--until-idle", "--concurrency", "1", timeout=60)
    runs = {r["id"]: r for r in env.status()}
    task = tasks_by_name(runs[int(run_id)])["run_child.yaml"]
    assert (runs[int(run_id)]["status"], task["attempt"]) == ("success", 2)
    assert task["child_run_id"] not in (None, first_child)
    assert runs[task["child_run_id"]]["status"] == "success"


def test_cancelling_the_parent_cancels_the_child(env: Env) -> None:
    env.dag("child", "description: child\nretries: 0\n", sleep__sh="#!/bin/bash\n# inputs: []\nsleep 30\n")
    env.dag("parent", PARENT, run_child__yaml="type: dag\ndag: child\ninputs: []\n")
    run_id = env.run("trigger", "parent").stdout.strip()
    scheduler = env.spawn("schedule", "--poll-interval", "0.05")
    try:
        deadline = time.monotonic() + 30
        child_id = None
        while child_id is None and time.monotonic() < deadline:
            runs = {r["id"]: r for r in env.status()}
            tasks = tasks_by_name(runs[int(run_id)])
            child_id = tasks.get("run_child.yaml", {}).get("child_run_id")
            started = child_id is not None and tasks_by_name(runs[child_id]).get("sleep.sh")
            if not started:
                child_id = None
                time.sleep(0.1)
        assert child_id is not None, "the child run never started its task"
        env.run("cancel", run_id)
        runs = {r["id"]: r for r in env.status()}
        assert runs[int(run_id)]["status"] == "cancelled"
        assert runs[child_id]["status"] == "cancelled"
        assert tasks_by_name(runs[int(run_id)])["run_child.yaml"]["status"] == "cancelled"
        while time.monotonic() < deadline:  # its scheduler stops the child's running task
            child = {r["id"]: r for r in env.status()}[child_id]
            if tasks_by_name(child)["sleep.sh"]["status"] == "cancelled":
                break
            time.sleep(0.1)
        assert tasks_by_name(child)["sleep.sh"]["status"] == "cancelled"
    finally:
        scheduler.terminate()
        scheduler.communicate(timeout=30)


def test_validate_refuses_unknown_child_dags_and_cycles(env: Env) -> None:
    env.dag("a", PARENT, go__yaml="type: dag\ndag: b\ninputs: []\n")
    env.dag("b", PARENT, go__yaml="type: dag\ndag: a\ninputs: []\n")
    env.dag("c", PARENT, go__yaml="type: dag\ndag: nope\ninputs: []\n", no__yaml="type: dag\ninputs: []\n")
    env.dag("d", "description: d\noutputs:\n  rows: missing.sh.rows\n", x__sh="#!/bin/bash\n# inputs: []\n")
    out = env.run("validate", code=1).stdout
    assert "DAGs run each other in a cycle: a -> b -> a" in out
    assert "unknown DAG 'nope' in dag:" in out
    assert "a dag task needs dag:" in out
    assert "output 'rows': 'missing.sh.rows' names no task of this DAG" in out
