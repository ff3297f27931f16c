"""`trigger --wait` hands the follower the DAG it has just loaded: the view it shows is
the one read from the DAG's folder (task order, secret params masked)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from dagctl.actions.common import load_dag
from dagctl.actions.following import follow_run
from dagctl.config import Settings
from dagctl.store import open_store

NOW = datetime(2024, 5, 1, 12, 0)


def test_the_view_from_the_given_dag_is_the_view_from_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "dags" / "etl"
    folder.mkdir(parents=True)
    (folder / "workflow.yaml").write_text(
        "description: d\nparams:\n  token: {type: string, secret: true}\n  n: {type: integer, default: 1}\n"
    )
    (folder / "b.sh").write_text("#!/bin/bash\ntrue\n")
    (folder / "a.sh").write_text("#!/bin/bash\ntrue\n")
    settings = Settings.resolve(dags=tmp_path / "dags", db=f"sqlite:///{tmp_path}/state.db")
    store = open_store(settings.db_url, migrate=True)
    try:
        run_id = store.trigger("etl", {"token": "hunter2", "n": 1}, "cli", NOW, "fp", NOW)
        assert store.cancel_run(run_id, NOW) is not None  # ended: the follower returns at once
    finally:
        store.close()
    dag = load_dag(settings.dags, "etl")
    given: list[dict[str, Any]] = []
    read: list[dict[str, Any]] = []
    assert follow_run(settings, run_id, given.append, dag=dag) == "cancelled"
    assert follow_run(settings, run_id, read.append) == "cancelled"
    assert given == read
    assert given[-1]["params"]["token"] != "hunter2" and given[-1]["params"]["n"] == 1
    assert given[-1]["pending"] == list(dag.tasks)
