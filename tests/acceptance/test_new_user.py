"""What a new user trips on (issue 19): each trap, through the installed `dagctl`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.acceptance.conftest import Env


@pytest.fixture
def lite(tmp_path: Path) -> Env:
    """An Env on an empty SQLite state database (for what does not depend on the backend)."""
    return Env(tmp_path, f"sqlite:///{tmp_path}/state.db")


# ---------------------------------------------------------------- 2. worker_config merge


def test_worker_config_env_is_merged_key_by_key_at_every_level(lite: Env) -> None:
    (lite.dags / "dagctl.yaml").write_text(
        "worker_config:\n  env: {FROM_ROOT: root, OVERRIDDEN: root, DAG_OVER_ROOT: root}\n"
    )
    lite.dag(
        "merge",
        """
        description: merge
        worker_config:
          env: {DAG_OVER_ROOT: dag, OVERRIDDEN: dag}
        """,
        show__sh="""
        # worker_config:
        #   env: {OVERRIDDEN: task, FROM_TASK: task}
        echo "$FROM_ROOT $DAG_OVER_ROOT $OVERRIDDEN $FROM_TASK"
        """,
    )
    result = lite.run("run", "merge", "show.sh")
    assert result.stdout == "root dag task task\n"
