"""Cross-DAG inputs through the installed CLI: by default a task waits on the other
DAG's run of the same local day (not an older one); `wait_timeout` ends the wait with
a failure whose reason `status` and `why` show; `input_match: latest` takes the
latest run at or before."""

from __future__ import annotations

import time

from tests.acceptance.conftest import Env, tasks_by_name

LOAD = "description: load\nretries: 0\n"
DONE_SH = "#!/bin/bash\n# inputs: []\necho loaded\n"
REPORT = "description: report\nretries: 0\n"


def _report_task(match: str = "") -> str:
    extra = f"# input_match: {match}\n" if match else ""
    return f"#!/bin/bash\n# inputs: [load:done.sh]\n# wait_timeout: 1s\n{extra}echo reported\n"


def test_the_same_days_run_counts_and_the_wait_times_out_with_the_reason(env: Env) -> None:
    env.dag("load", LOAD, done__sh=DONE_SH)
    env.dag("report", REPORT, report__sh=_report_task())
    # Yesterday's load succeeded; today's report does not take it.
    env.run("trigger", "load", "--logical-date", "2026-03-01T02:00")
    first = env.run("trigger", "report", "--logical-date", "2026-03-02T07:00").stdout.strip()
    env.schedule("--until-idle", timeout=60)
    runs = {r["id"]: r for r in env.status()}
    task = tasks_by_name(runs[int(first)])["report.sh"]
    assert (runs[int(first)]["status"], task["status"]) == ("failed", "failed")
    assert task["error"] == (
        "gave up waiting for load:done.sh after 1s (wait_timeout):"
        " in a run of load on 2026-03-02 (UTC) it has not run"
    )
    why = " ".join(env.run("why", "report").stdout.split())  # unwrapped
    assert f"its last run, {first}, failed: report.sh: gave up waiting for load:done.sh" in why
    # The same day's load, at another time of day, counts.
    env.run("trigger", "load", "--logical-date", "2026-03-02T02:00")
    second = env.run("trigger", "report", "--logical-date", "2026-03-02T07:00").stdout.strip()
    env.schedule("--until-idle", timeout=60)
    assert {r["id"]: r for r in env.status()}[int(second)]["status"] == "success"


def test_latest_takes_an_older_run_and_why_names_the_rule_while_waiting(env: Env) -> None:
    env.dag("load", LOAD, done__sh=DONE_SH)
    env.dag("report", REPORT, report__sh=_report_task("latest"))
    env.run("trigger", "load", "--logical-date", "2026-03-01T02:00")
    run_id = env.run("trigger", "report", "--logical-date", "2026-03-02T07:00").stdout.strip()
    env.schedule("--until-idle", timeout=60)
    assert {r["id"]: r for r in env.status()}[int(run_id)]["status"] == "success"
    # Waiting (no load run at all before this one): `why` says on what, and until when.
    (env.dags / "report" / "report.sh").write_text(_report_task().replace("1s", "1h"))
    waiting = env.run("trigger", "report", "--logical-date", "2026-02-01T07:00").stdout.strip()
    scheduler = env.spawn("schedule", "--poll-interval", "0.05")
    try:
        deadline = time.monotonic() + 20
        why = ""
        while "waits on load:done.sh" not in why and time.monotonic() < deadline:
            time.sleep(0.2)
            why = " ".join(env.run("why", "report", code=None).stdout.split())  # unwrapped
        assert (
            f"run {waiting}: report.sh waits on load:done.sh (not run yet in a run of load on"
            " 2026-02-01 (UTC); it fails 60m after the run started (wait_timeout))"
        ) in why
    finally:
        scheduler.terminate()
        scheduler.communicate(timeout=30)
