"""`dagctl list` from the summaries a scheduler stored (no file parsed), and back to
parsing the folder whenever one is not exactly as the scheduler read it."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.acceptance.conftest import Env

NOW = "2024-05-01T10:20:00"
HOURLY = 'description: every hour\nschedule: "0 * * * *"\ntimezone: Europe/Berlin\n'


def _mark_stored(env: Env, dag: str, description: str) -> None:
    """Change what the store says of `dag` (not its files): proves `list` read the store."""
    with sqlite3.connect(env.db_url.split(":///", 1)[1]) as connection:
        (text,) = connection.execute("SELECT summary FROM dag_summary WHERE name = ?", (dag,)).fetchone()
        summary = {**json.loads(text), "description": description}
        connection.execute("UPDATE dag_summary SET summary = ? WHERE name = ?", (json.dumps(summary), dag))


def _stored(env: Env) -> int | None:
    """How many summaries the state database holds (SQLite only; None on PostgreSQL)."""
    if not env.db_url.startswith("sqlite"):
        return None
    with sqlite3.connect(env.db_url.split(":///", 1)[1]) as connection:
        return int(connection.execute("SELECT count(*) FROM dag_summary").fetchone()[0])


def test_list_reads_stored_summaries_until_a_folder_changes(env: Env, tmp_path: Path) -> None:
    env.dag("hourly", HOURLY, noop__yaml="type: no_op\n")
    env.dag("manual", "description: by hand\n", a__sh="#!/bin/bash\ntrue\n")
    env.dag("broken", "description: has a typo\nretrys: 2\n", noop__yaml="type: no_op\n")
    env.run("db", "upgrade")
    parsed = env.json("list", fake_now=NOW)  # nothing stored yet: the files are parsed
    env.run("schedule", "--once", fake_now=NOW)
    assert _stored(env) in (3, None)
    assert env.json("list", fake_now=NOW) == parsed
    if env.db_url.startswith("sqlite"):
        _mark_stored(env, "hourly", "said by the store")
        assert env.json("list", fake_now=NOW)[1]["description"] == "said by the store"
        _mark_stored(env, "hourly", "every hour")
    table = env.run("list", fake_now=NOW).stdout
    assert table.splitlines()[0].split() == ["DAG", "SCHEDULE", "NEXT", "RUN", "LAST", "RUN"]
    assert "broken" in table and "unknown key 'retrys'" in table

    # A folder edited after the scheduler read it: list sees the edit at once.
    (env.dags / "manual" / "workflow.yaml").write_text("description: edited\n")
    listed = {d["dag"]: d for d in env.json("list", fake_now=NOW)}
    assert listed["manual"]["description"] == "edited"
    (env.dags / "added").mkdir()
    (env.dags / "added" / "workflow.yaml").write_text("description: new\n")
    (env.dags / "added" / "x.yaml").write_text("type: no_op\n")
    assert [d["dag"] for d in env.json("list", fake_now=NOW)] == ["added", "broken", "hourly", "manual"]

    # Later than the stored next slot: worked out again, as when parsing.
    later = {d["dag"]: d for d in env.json("list", fake_now="2024-05-01T13:20:00")}
    assert later["hourly"]["next_run"] == "2024-05-01T14:00:00Z"
    before_sync = env.json("list", fake_now=NOW)  # parsed: two folders are not as stored
    env.run("schedule", "--once", fake_now=NOW)
    assert _stored(env) in (4, None)
    assert env.json("list", fake_now=NOW) == before_sync


def test_status_read_with_the_driver_alone_is_what_the_full_path_reads(env: Env) -> None:
    env.dag(
        "pair",
        "description: two tasks, one failing once\nretries: 1\nretry_delay: 0s\n",
        first__sh="#!/bin/bash\necho hello\n",
        second__sh=(
            "#!/bin/bash\n# inputs: [first.sh]\n"
            '[ "$DAGCTL_ATTEMPT" -gt 1 ] || { echo "try again" >&2; exit 3; }\n'
        ),
    )
    env.run("trigger", "pair", fake_now=NOW)
    env.run("trigger", "pair", fake_now=NOW)
    env.schedule("--until-idle", fake_now=NOW)
    fast = env.status()
    assert [len(run["tasks"]) for run in fast] == [2, 2]
    # A query in the URL is one the driver-only path leaves to SQLAlchemy.
    option = "?connect_timeout=10" if env.db_url.startswith("postgres") else "?timeout=30"
    full = json.loads(
        env.run("status", "-o", "json", "--limit", "50", DATABASE_URL=env.db_url + option).stdout
    )
    assert fast == full
    assert env.run("status").stdout == env.run("status", DATABASE_URL=env.db_url + option).stdout


def test_list_names_a_queue_no_live_scheduler_serves(env: Env) -> None:
    config = env.dags / "dagctl.yaml"
    config.write_text(
        (config.read_text() if config.exists() else "") + "queues:\n  k8s: {description: pods}\n"
    )
    env.dag("etl", "description: default queue\n", a__sh="#!/bin/bash\ntrue\n")
    env.run("trigger", "etl")
    notice = "queue default: 1 waiting attempt and no live scheduler serves it"
    scheduler = env.spawn("schedule", "--queue", "k8s", "--poll-interval", "0.1")
    try:
        deadline = time.monotonic() + 20
        while notice not in (table := env.run("list").stdout) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert notice in table  # the stored summaries' path
        assert table.splitlines()[0].split() == ["DAG", "SCHEDULE", "NEXT", "RUN", "LAST", "RUN"]
        assert [d["dag"] for d in env.json("list")] == ["etl"]  # -o json as before
        (env.dags / "etl" / "workflow.yaml").write_text("description: edited\n")  # the parsing path
        assert notice in env.run("list").stdout
    finally:
        scheduler.terminate()
        scheduler.communicate(timeout=30)
    # No scheduler alive at all: no queue is served, and list says nothing of queues.
    assert "queue" not in env.run("list").stdout
