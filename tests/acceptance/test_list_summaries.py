"""`dagctl list` from the summaries a scheduler stored (no file parsed), and back to
parsing the folder whenever one is not exactly as the scheduler read it."""

from __future__ import annotations

import json
import sqlite3
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
