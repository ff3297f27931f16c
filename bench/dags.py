"""The DAG folders the workloads run on, generated into a temporary folder."""

from __future__ import annotations

from pathlib import Path

TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")


# With DAGCTL_BENCH_STAMPS set (in the scheduler's environment), each task appends
# "RUN TASK START_EPOCH" to that file with bash builtins only (no process, no output to
# the log), so the harness can time task start -> next task start on the tasks' clock.
STAMP = (
    '[ -z "${DAGCTL_BENCH_STAMPS:-}" ] || '
    'printf \'%s %s %s\\n\' "$DAGCTL_RUN_ID" "$DAGCTL_TASK" "$EPOCHREALTIME" >>"$DAGCTL_BENCH_STAMPS"\n'
)


def _sh(inputs: list[str]) -> str:
    header = f"# inputs: [{', '.join(inputs)}]\n" if inputs else ""
    return f"#!/usr/bin/env bash\n{header}{STAMP}true\n"


def chain(root: Path, name: str, length: int) -> list[str]:
    """`length` shell tasks running `true`, each the input of the next."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "workflow.yaml").write_text(
        f"description: A chain of {length} no-op shell tasks.\nretries: 0\n"
    )
    names = [f"t{i:03d}.sh" for i in range(1, length + 1)]
    for i, task in enumerate(names):
        (folder / task).write_text(_sh([names[i - 1]] if i else []))
    return names


def fan(root: Path, name: str, width: int) -> None:
    """start.sh -> `width` shell tasks -> end.sh, all running `true`."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "workflow.yaml").write_text(f"description: Fan-out 1 -> {width} -> 1.\nretries: 0\n")
    (folder / "start.sh").write_text(_sh([]))
    middle = [f"m{i:03d}.sh" for i in range(1, width + 1)]
    for task in middle:
        (folder / task).write_text(_sh(["start.sh"]))
    (folder / "end.sh").write_text(_sh(middle))


def no_op_fan(root: Path, name: str, tasks: int, max_active_runs: int = 1) -> None:
    """`tasks` no_op tasks: first -> (tasks - 2) in parallel -> last."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "workflow.yaml").write_text(
        f"description: {tasks} no_op tasks.\nretries: 0\nmax_active_runs: {max_active_runs}\n"
    )
    (folder / "first.yaml").write_text("type: no_op\n")
    middle = [f"n{i:03d}.yaml" for i in range(1, tasks - 1)]
    for task in middle:
        (folder / task).write_text("type: no_op\ninputs: [first.yaml]\n")
    (folder / "last.yaml").write_text(f"type: no_op\ninputs: [{', '.join(middle)}]\n")


def cron_no_op(root: Path, count: int, minute: int, hour: int) -> None:
    """`count` DAGs with one no_op task, all due at hour:minute UTC every day."""
    for i in range(count):
        folder = root / f"cron_{i:04d}"
        folder.mkdir(parents=True)
        (folder / "workflow.yaml").write_text(
            f'description: Cron DAG {i}.\nschedule: "{minute} {hour} * * *"\ntimezone: UTC\n'
        )
        (folder / "done.yaml").write_text("type: no_op\n")


# ---------------------------------------------------------------- W3: 1,000 DAGs x 5 tasks
# Every DAG has a workflow.yaml with a schedule, a time zone and typed params, and five
# tasks (.sh, .py, .sql and two .yaml) whose inputs form a small diamond, plus one
# cross-DAG input every tenth DAG (formerly bench/validate_1000.py).

WORKFLOW = """\
description: Generated DAG {i} for the validate benchmark.
schedule: "{minute} {hour} {day} * *"
timezone: {tz}
catchup: latest
retries: 2
retry_delay: 30s
timeout: 1h30m
tags: [bench, group{group}]
params:
  date:
    type: string
    format: date
    default: "2024-06-01"
  limit:
    type: integer
    default: 100
    minimum: 1
  dry_run:
    type: boolean
    default: false
"""

EXTRACT_SH = """\
#!/usr/bin/env bash
# description: Extract rows for the day.
# inputs: [{external}]
# parameters: [date]
# timeout: 5m
set -euo pipefail
echo "extract $date"
"""

TRANSFORM_PY = '''\
"""
description: Transform the extracted rows.
inputs: [extract.sh]
parameters: [date, limit]
retries: 1
timeout: 10m
"""


def run(context):
    return context["params"]["limit"]
'''

LOAD_SQL = """\
/*
description: Load the rows.
inputs: [extract.sh]
parameters: [date]
timeout: 90s
*/
DELETE FROM t WHERE d = :date;
INSERT INTO t SELECT :date;
"""

PUBLISH_YAML = """\
type: command
description: Publish the result.
inputs: [transform.py, load.sql]
parameters: [dry_run]
command: ["echo", "publish"]
timeout: 30s
"""

DONE_YAML = """\
type: no_op
description: Marker task.
inputs: [publish.yaml]
"""


def thousand(root: Path, count: int, day: str = "*") -> None:
    """`count` DAGs x 5 tasks (6 files each), as described above; `day` is the day of
    the month field of their schedules (W12 uses "1": nothing falls due for weeks)."""
    for i in range(count):
        dag = root / f"dag_{i:04d}"
        dag.mkdir(parents=True)
        (dag / "workflow.yaml").write_text(
            WORKFLOW.format(
                i=i, minute=i % 60, hour=(i // 60) % 24, day=day, tz=TIMEZONES[i % 4], group=i % 7
            )
        )
        external = f"dag_{i - 1:04d}:done.yaml" if i % 10 == 9 else ""
        (dag / "extract.sh").write_text(EXTRACT_SH.format(external=external))
        (dag / "transform.py").write_text(TRANSFORM_PY)
        (dag / "load.sql").write_text(LOAD_SQL)
        (dag / "publish.yaml").write_text(PUBLISH_YAML)
        (dag / "done.yaml").write_text(DONE_YAML)
