"""W3/W5: time `dagctl validate` on 1,000 DAGs x 5 tasks, and `dagctl --help`.

    .venv/bin/python bench/validate_1000.py [--dags N] [--runs N] [--keep DIR]

The tree is generated into a temporary folder: every DAG has a workflow.yaml with a
schedule, a time zone and typed params, and five tasks (.sh, .py, .sql and two .yaml)
whose inputs form a small diamond, plus one cross-DAG input every tenth DAG.
The dagctl used is the one next to this interpreter (the project's virtualenv).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VALIDATE_TARGET_S = 2.0
HELP_TARGET_S = 0.150
TIMEZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo")

WORKFLOW = """\
description: Generated DAG {i} for the validate benchmark.
schedule: "{minute} {hour} * * *"
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


def generate(root: Path, count: int) -> None:
    for i in range(count):
        dag = root / f"dag_{i:04d}"
        dag.mkdir(parents=True)
        (dag / "workflow.yaml").write_text(
            WORKFLOW.format(i=i, minute=i % 60, hour=(i // 60) % 24, tz=TIMEZONES[i % 4], group=i % 7)
        )
        external = f"dag_{i - 1:04d}:done.yaml" if i % 10 == 9 else ""
        (dag / "extract.sh").write_text(EXTRACT_SH.format(external=external))
        (dag / "transform.py").write_text(TRANSFORM_PY)
        (dag / "load.sql").write_text(LOAD_SQL)
        (dag / "publish.yaml").write_text(PUBLISH_YAML)
        (dag / "done.yaml").write_text(DONE_YAML)


def dagctl() -> str:
    script = Path(sys.executable).with_name("dagctl")
    return str(script) if script.exists() else shutil.which("dagctl") or "dagctl"


def timed(argv: list[str], expect: int = 0) -> tuple[float, float]:
    """Wall time, and CPU time (user + system) of the child: the CPU figure is what is
    left when other processes compete for the two cores."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != expect:
        sys.exit(f"{argv} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def report(name: str, samples: list[tuple[float, float]], target: float) -> None:
    wall = [s[0] for s in samples]
    cpu = [s[1] for s in samples]
    median = statistics.median(wall)
    print(
        f"{name}: wall median {median * 1000:.0f} ms, min {min(wall) * 1000:.0f} ms, "
        f"max {max(wall) * 1000:.0f} ms over {len(samples)} runs; "
        f"CPU median {statistics.median(cpu) * 1000:.0f} ms; "
        f"target {target * 1000:.0f} ms, ratio {median / target:.2f}"
    )
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--help-runs", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="generate into this folder and keep it")
    parser.add_argument("--dagctl", help="the dagctl to time (default: the one next to this Python)")
    args = parser.parse_args()

    exe = args.dagctl or dagctl()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs; {exe}")
    with tempfile.TemporaryDirectory(prefix="dagctl-bench-") as tmp:
        root = args.keep or Path(tmp) / "dags"
        if args.keep and root.exists():
            sys.exit(f"{root} exists; --keep needs a new folder")
        generate(root, args.dags)
        files = sum(1 for _ in root.rglob("*") if _.is_file())
        print(f"generated {args.dags} DAGs x 5 tasks ({files} files) in {root}")
        argv = [exe, "validate", str(root)]
        timed(argv)  # warm the page cache and .pyc files
        report("validate", [timed(argv) for _ in range(args.runs)], VALIDATE_TARGET_S)
    help_argv = [exe, "--help"]
    timed(help_argv)
    report("--help", [timed(help_argv) for _ in range(args.help_runs)], HELP_TARGET_S)


if __name__ == "__main__":
    main()
