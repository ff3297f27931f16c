"""Fan-out through the installed CLI: `for_each` runs one item attempt per item of the
list an upstream task published, each retried on its own, at most `max_parallel` at
once; the task's output is the list of the items' outputs. On PostgreSQL, 1,000 items
under two schedulers end with exactly 1,000 successful item attempts."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dagctl.store.engine import create as create_engine
from tests.acceptance.conftest import Env, tasks_by_name

LIST_SH = """
#!/bin/bash
# inputs: []
echo '{"names": ["a", "b b", {"n": 3}]}' > "$DAGCTL_OUTPUT"
"""

# Item 1 fails on its first attempt only (a marker file in the DAG folder).
WORK_SH = """
#!/bin/bash
# inputs: [list.sh]
# for_each: "{{ outputs['list.sh'].names }}"
# max_parallel: 2
# retries: 1
# retry_delay: 0
if [ "$DAGCTL_ITEM_INDEX" = 1 ] && [ ! -e failed-once ]; then touch failed-once; exit 4; fi
echo "got=$DAGCTL_ITEM" >> "$DAGCTL_OUTPUT"
"""

SUM_PY = '''
"""
inputs: [work.sh]
"""
def run(context):
    return {"got": [r["got"] for r in context["outputs"]["work.sh"]["results"]]}
'''


def test_for_each_runs_each_item_retries_it_alone_and_collects_outputs(env: Env) -> None:
    env.dag("fan", "description: fan\nretries: 0\n", list__sh=LIST_SH, work__sh=WORK_SH, sum__py=SUM_PY)
    run_id = env.run("trigger", "fan").stdout.strip()
    env.schedule("--until-idle", "--concurrency", "4", timeout=60)
    (run,) = env.status()
    assert run["status"] == "success", run
    tasks = tasks_by_name(run)
    assert tasks["work.sh[1]"]["attempt"] == 2  # retried alone
    assert [tasks[f"work.sh[{i}]"]["attempt"] for i in (0, 2)] == [1, 1]
    assert tasks["work.sh"]["outputs"] == {"results": [{"got": "a"}, {"got": "b b"}, {"got": '{"n": 3}'}]}
    assert tasks["sum.py"]["outputs"] == {"got": ["a", "b b", '{"n": 3}']}
    assert "work.sh[2]" in env.run("status", "--run", run_id).stdout


def test_an_item_failing_for_good_fails_the_task(env: Env) -> None:
    env.dag(
        "fan",
        "description: fan\nretries: 0\n",
        list__sh=LIST_SH,
        work__sh=WORK_SH.replace("[ ! -e failed-once ]", "true"),
    )
    env.run("trigger", "fan")
    env.schedule("--until-idle", timeout=60)
    (run,) = env.status()
    tasks = tasks_by_name(run)
    assert (run["status"], tasks["work.sh"]["status"]) == ("failed", "failed")
    assert tasks["work.sh"]["error"].startswith("item 1 of 3 failed (work.sh[1]")
    assert tasks["work.sh[1]"]["attempt"] == 2


def test_validate_checks_for_each(env: Env) -> None:
    env.dag(
        "bad",
        "description: bad\n",
        a__sh="#!/bin/bash\n# inputs: []\n",
        b__sh="#!/bin/bash\n# inputs: []\n# for_each: \"{{ outputs['a.sh'].x }}\"\n",
        c__sh="#!/bin/bash\n# inputs: []\n# max_parallel: 3\n",
    )
    out = env.run("validate", code=1).stdout
    assert "outputs['a.sh'] names a task that is not upstream of b.sh" in out
    assert "max_parallel: is only for a task with for_each" in out


def _max_overlap(items: list[dict[str, Any]]) -> int:
    edges: list[tuple[datetime, int]] = []
    for item in items:
        edges.append((datetime.fromisoformat(item["started_at"]), 1))
        edges.append((datetime.fromisoformat(item["ended_at"]), -1))
    running = most = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):  # an end before a start at the same time
        running += step
        most = max(most, running)
    return most


def test_a_thousand_items_under_two_schedulers_on_postgres(tmp_path: Path, postgres_url: str) -> None:
    env = Env(tmp_path, postgres_url)
    env.dag(
        "fan",
        "description: fan\nretries: 2\nretry_delay: 0\n",
        list__sh='#!/bin/bash\n# inputs: []\necho "{\\"n\\": [$(seq -s, 0 999)]}" > "$DAGCTL_OUTPUT"\n',
        work__sh=(
            "#!/bin/bash\n# inputs: [list.sh]\n"
            "# for_each: \"{{ outputs['list.sh'].n }}\"\n# max_parallel: 8\n"
            'echo "i=$DAGCTL_ITEM" >> "$DAGCTL_OUTPUT"\n'
        ),
    )
    env.run("trigger", "fan")
    began = time.monotonic()
    schedulers = [env.spawn("schedule", "--until-idle", "--concurrency", "8") for _ in range(2)]
    for scheduler in schedulers:
        _, stderr = scheduler.communicate(timeout=240)
        assert scheduler.returncode == 0, stderr
    took = time.monotonic() - began
    (run,) = env.status()
    assert run["status"] == "success", run["tasks"][:3]
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT task_name, status, started_at, ended_at FROM task_run"
                    " WHERE task_name LIKE 'work.sh[%' ORDER BY id"
                )
            ).all()
            outputs = connection.execute(
                sa.text("SELECT outputs FROM task_run WHERE task_name = 'work.sh' AND status = 'success'")
            ).scalar_one()
    finally:
        engine.dispose()
    succeeded = [r for r in rows if r.status == "success"]
    assert len(succeeded) == 1000 and len({r.task_name for r in succeeded}) == 1000
    assert [r["i"] for r in json.loads(outputs)["results"]] == [str(i) for i in range(1000)]
    windows = [{"started_at": r.started_at.isoformat(), "ended_at": r.ended_at.isoformat()} for r in rows]
    assert _max_overlap(windows) <= 8
    print(f"1,000 items, 2 schedulers, max_parallel 8: {took:.1f} s")


def test_dagctl_run_runs_the_items_in_the_foreground(env: Env) -> None:
    env.dag("fan", "description: fan\nretries: 0\n", list__sh=LIST_SH, work__sh=WORK_SH, sum__py=SUM_PY)
    failed = env.run("run", "fan", code=4)  # the failed item's exit code
    assert "work.sh[1]: " in failed.stdout + failed.stderr
    # Item 1 fails only once (its marker file now exists): the whole DAG goes through.
    env.run("run", "fan")
