"""The migrations reach exactly the declared schema, on every backend, and are safe to race."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from dagctl.store import Store
from dagctl.store.engine import HEAD_REVISION, current_revision
from dagctl.store.tables import metadata


def test_upgrade_head_equals_the_table_definitions(db_url: str) -> None:
    store = Store(db_url)
    try:
        assert current_revision(store.engine) is None
        assert store.upgrade() == HEAD_REVISION
        with store.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
        assert current_revision(store.engine) == HEAD_REVISION
        assert store.upgrade() == HEAD_REVISION  # idempotent
    finally:
        store.close()


def test_three_processes_migrating_at_once_migrate_once(db_url: str) -> None:
    code = (
        "import sys; from dagctl.store import open_store; "
        "s = open_store(sys.argv[1], migrate=True); s.close(); print('ok')"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    results = [p.communicate(timeout=60) for p in processes]
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
        assert out.strip() == "ok"
    store = Store(db_url)
    try:
        assert current_revision(store.engine) == HEAD_REVISION
    finally:
        store.close()
