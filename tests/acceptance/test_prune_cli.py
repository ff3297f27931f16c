"""`dagctl db prune` and `retention:` in dagctl.yaml, through the installed CLI, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json

from dagctl.store import open_store
from tests.acceptance.conftest import Env
from tests.integration.test_prune import _history


def test_db_prune_reports_then_deletes_and_leaves_active_runs(env: Env) -> None:
    env.run("db", "upgrade")
    store = open_store(env.db_url, migrate=False)
    try:
        made = _history(store)
    finally:
        store.close()
    dry = json.loads(env.run("db", "prune", "--older-than", "90d", "--dry-run", "-o", "json").stdout)
    assert (dry["dry_run"], dry["runs"], dry["attempts"], dry["log_chunks"]) == (True, 7, 14, 28)
    text = env.run("db", "prune", "--older-than", "90d", "--keep-last", "0").stdout
    assert text.startswith("deleted 7 run(s), 14 attempt(s), 28 log chunk(s): ")
    left = {r["id"]: r["status"] for r in env.status()}
    assert left == {made["recent"][0]: "success", made["queued"]: "queued", made["running"]: "running"}
    assert env.error("db", "prune", "--older-than", "soon") == (
        "dagctl: error: --older-than 'soon' is not a duration (write e.g. --older-than 90d or 12h)"
    )


def test_the_scheduler_applies_retention_from_dagctl_yaml(env: Env) -> None:
    (env.dags / "dagctl.yaml").write_text("retention: {older_than: 90d, keep_lastt: 2}\n")
    env.dag("a", "description: a\n", noop__yaml="type: no_op\n")
    problems = env.run("validate", code=1).stdout
    assert "dags/dagctl.yaml:1: retention: unknown key 'keep_lastt' (did you mean 'keep_last'?)" in problems
    (env.dags / "dagctl.yaml").write_text("retention: {older_than: 90d, keep_last: 1}\n")
    env.run("db", "upgrade")
    store = open_store(env.db_url, migrate=False)
    try:
        made = _history(store)
    finally:
        store.close()
    env.schedule("--once")
    left = {r["id"] for r in env.status()}
    # a keeps its newest finished run (the recent one), b its newest old one.
    assert left == {made["recent"][0], made["queued"], made["running"], made["old_b"][-1]}
