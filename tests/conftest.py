"""Shared pytest fixtures."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg2
import pytest

from tests.pgserver import PgServer, start_postgres

# --- PostgreSQL ---------------------------------------------------------------
# One throwaway server per test session (or the one in DAGCTL_TEST_PG_URL, see
# tests/pgserver.py), and a fresh database on it for every test that asks.


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a new, empty database, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    try:
        yield url
    finally:
        # drop_database terminates leftover connections first; anything still
        # failing (e.g. a reconnect racing the drop) only leaks a database on a
        # throwaway server.
        with contextlib.suppress(psycopg2.Error):
            pg_server.drop_database(name)


# --- end PostgreSQL -----------------------------------------------------------


# --- state databases ----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh, empty state database on each backend dagctl supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    url: str = request.getfixturevalue("postgres_url")
    return url
