"""Fixtures of the integration tests: the state store on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dagctl.store import Store, open_store


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
