"""`max_active_tasks` through the installed CLI: the DAG's second task waits while the
first runs, and `why` says so."""

from __future__ import annotations

from tests.acceptance.conftest import Env
from tests.acceptance.test_pools_cli import HOLD, wait_for


def test_why_names_a_full_max_active_tasks(env: Env) -> None:
    (env.dags / "dagctl.yaml").write_text(
        "worker_config:\n  env:\n    RELEASE: " + str(env.root / "release") + "\n"
    )
    env.dag("etl", "description: d\nmax_active_tasks: 1\n", a__sh=HOLD, b__sh=HOLD)
    run_id = int(env.run("trigger", "etl").stdout.split()[-1])
    scheduler = env.spawn("schedule", "--poll-interval", "0.1", "--concurrency", "4", "--until-idle")
    try:

        def capped() -> list[str]:
            reasons = env.json("why", "etl")["reasons"]
            return [r["message"] for r in reasons if r["code"] == "max_active_tasks"]

        [message] = wait_for(capped, 20, "the DAG to be at its max_active_tasks")
        assert message.startswith(f"run {run_id}: ")
        assert message.endswith("is waiting for max_active_tasks (1/1 running)")
        running = [t for t in env.status("etl")[0]["tasks"] if t["status"] == "running"]
        assert len(running) == 1
    finally:
        (env.root / "release").touch()
        _, err = scheduler.communicate(timeout=30)
    assert scheduler.returncode == 0, err
    assert [r["status"] for r in env.status("etl")] == ["success"]
