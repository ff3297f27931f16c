"""A queue's `limit:` through the installed CLI: `queues` shows it, and `why` names
what for_each items (`gpu.sh[1]`) wait for, their task's queue limit or pool."""

from __future__ import annotations

from tests.acceptance.conftest import Env
from tests.acceptance.test_pools_cli import HOLD, wait_for


def test_queues_and_why_name_a_full_queue_and_pool_for_item_attempts(env: Env) -> None:
    (env.dags / "dagctl.yaml").write_text(
        "queues:\n  gpu:\n    limit: 1\n    description: one GPU\npools:\n  one: 1\n"
        "worker_config:\n  env:\n    RELEASE: " + str(env.root / "release") + "\n"
    )
    items = "#!/usr/bin/env bash\n# inputs: []\n# for_each: [1, 2]\n"
    env.dag(
        "fan",
        "description: d\n",
        gpu__sh=items + "# queue: gpu\n" + HOLD,
        pooled__sh=items + "# pool: one\n" + HOLD,
    )
    run_id = int(env.run("trigger", "fan").stdout.split()[-1])
    scheduler = env.spawn(
        "schedule",
        "--poll-interval",
        "0.1",
        "--concurrency",
        "8",
        "--queue",
        "gpu",
        "--queue",
        "default",
        "--until-idle",
    )
    try:

        def waiting() -> dict[str, str]:
            reasons = env.json("why", "fan")["reasons"]
            found = {r["code"]: r["message"] for r in reasons if r["code"] in ("queue_limit", "pool_full")}
            return found if len(found) == 2 else {}

        found = wait_for(waiting, 20, "an item of each task to wait")
        assert (
            found["queue_limit"] == f"run {run_id}: gpu.sh[1] is waiting for queue gpu's limit (1/1 running)"
        )
        assert found["pool_full"] == (
            f"run {run_id}: pooled.sh[1] is waiting for pool one (1/1 used by fan/pooled.sh[0] run {run_id})"
        )
        gpu = next(q for q in env.json("queues") if q["queue"] == "gpu")
        assert (gpu["limit"], gpu["running"], gpu["waiting"]) == (1, 1, 1)
        row = next(line for line in env.run("queues").stdout.splitlines() if line.startswith("gpu"))
        assert row.split()[:4] == ["gpu", "1", row.split()[2], "1/1"]
    finally:
        (env.root / "release").touch()
        _, err = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, err
    assert [r["status"] for r in env.status("fan")] == ["success"]
