"""Pools end to end through the installed CLI: validate, schedule, pools, why."""

from __future__ import annotations

import time
from typing import Any

from tests.acceptance.conftest import Env

HOLD = """
#!/usr/bin/env bash
while [ ! -e "$RELEASE" ]; do sleep 0.05; done
"""


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_full_pool_is_shown_by_pools_and_why(env: Env) -> None:
    (env.dags / "dagctl.yaml").write_text(
        "pools:\n  warehouse:\n    slots: 1\n    description: the warehouse\n"
        "worker_config:\n  env:\n    RELEASE: " + str(env.root / "release") + "\n"
    )
    env.dag("etl", "description: d\nmax_active_runs: 2\npool: warehouse\n", hold__sh=HOLD)
    first = int(env.run("trigger", "etl").stdout.split()[-1])
    env.run("trigger", "etl")
    scheduler = env.spawn("schedule", "--poll-interval", "0.1", "--until-idle")
    try:
        [pool] = wait_for(lambda: [p for p in env.json("pools") if p["used"] == 1], 20, "the pool to fill")
        assert pool["slots"] == 1 and pool["free"] == 0 and pool["description"] == "the warehouse"
        assert pool["running"] == [{"dag": "etl", "task": "hold.sh", "run_id": first, "slots": 1}]
        assert pool["waiting"] == 1
        reasons = env.json("why", "etl")["reasons"]
        full = [r["message"] for r in reasons if r["code"] == "pool_full"]
        assert full == [
            f"run {first + 1}: hold.sh is waiting for pool warehouse (1/1 used by etl/hold.sh run {first})"
        ]
        table = env.run("pools").stdout
        assert "warehouse" in table and "1/1" in table
    finally:
        (env.root / "release").touch()
        _, err = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, err
    assert [r["status"] for r in env.status("etl")] == ["success", "success"]
    assert env.json("pools")[0]["used"] == 0


def test_validate_names_an_unknown_pool(env: Env) -> None:
    (env.dags / "dagctl.yaml").write_text("pools:\n  warehouse: 4\n")
    env.dag("etl", "description: d\npool: warehose\n", a__sh="echo\n")
    result = env.run("validate", code=1)
    assert (
        "etl/workflow.yaml:2: unknown pool 'warehose' (did you mean 'warehouse'?)"
        in result.stdout + result.stderr
    )
