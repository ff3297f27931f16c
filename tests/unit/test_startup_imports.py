"""What `dagctl trigger` and `trigger --wait` import stays small: each module below
costs every such command milliseconds of a ~150 ms start (BENCHMARKS.md, issue 18)."""

from __future__ import annotations

import json
import subprocess
import sys

# Imported on the trigger path's behalf only where they are used: the store's records
# (dataclasses), logging (the scheduler's log lines), the diagnosis of `why` (with the
# planner), importlib's zip reader, and `subprocess`, which croniter's import would pull
# in to run `file -b python` for platform.architecture().
NOT_ON_THE_TRIGGER_PATH = (
    "sqlalchemy",
    "rich",
    "dagctl.store.records",
    "dagctl.scheduling.planner",
    "logging",
    "importlib.readers",
    "subprocess",
)


def test_the_trigger_path_imports_none_of_the_heavy_modules() -> None:
    code = (
        "import json, platform, sys\n"
        "import dagctl.cli.main, dagctl.cli.watch, dagctl.actions.runs, dagctl.actions.following\n"
        "import dagctl.dags.loader, dagctl.store.fast_trigger, dagctl.store.fast_follow\n"
        "from dagctl.dags import cron, schemas\n"
        "asked = platform.architecture\n"
        "schemas.schema('workflow')\n"
        "assert cron.next_slot_after('0 0 * * *', 'UTC', cron.utcnow()) is not None\n"
        f"heavy = [m for m in {NOT_ON_THE_TRIGGER_PATH!r} if m in sys.modules]\n"
        "print(json.dumps([heavy, platform.architecture is asked]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy, restored = json.loads(result.stdout)
    assert heavy == []
    assert restored  # croniter's import borrows platform.architecture only while it runs
