"""Fixtures of the integration tests: the state store on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from dagctl.store import Store, open_store

if TYPE_CHECKING:
    from tests.k8s_fake_api import FakeClock, FakeKubeApi


@pytest.fixture
def db_url(migrated_db_url: str) -> str:
    """Here, the database of the `store` fixture: migrated already (a copy of the
    session's template), on SQLite and PostgreSQL. Tests that need an empty database
    ask for `postgres_url` or make their own SQLite file; the migration tests live in
    tests/migration, where `db_url` is empty."""
    return migrated_db_url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A Store on `db_url`, closed after the test."""
    opened = open_store(db_url, migrate=True)
    yield opened
    opened.close()


# The kubernetes manager's tests: a fake API server, and a clock it can share.


@pytest.fixture
def api() -> Iterator[FakeKubeApi]:
    from tests.k8s_fake_api import FakeKubeApi

    server = FakeKubeApi()
    server.start()
    yield server
    server.close()


@pytest.fixture
def clock(api: FakeKubeApi) -> FakeClock:
    """The fake API's clock; pass it on: `make_manager(..., clock=clock, sleep=clock.sleep)`."""
    from tests.k8s_fake_api import FakeClock

    api.clock = FakeClock()
    return api.clock


@pytest.fixture
def kubeconfig(api: FakeKubeApi, tmp_path: Path) -> str:
    return str(api.write_kubeconfig(tmp_path / "kubeconfig"))
