"""Shared pytest fixtures."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from tests.pgserver import PgServer, start_postgres

# --- PostgreSQL ---------------------------------------------------------------
# One throwaway server per test session (or the one in DAGCTL_TEST_PG_URL, see
# tests/pgserver.py), and a fresh database on it for every test that asks: empty
# (postgres_url), or migrated (migrated_postgres_url), cloned with CREATE DATABASE
# ... TEMPLATE from a database that dagctl's migrations ran on once per session.


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_postgres()
    try:
        yield server
    finally:
        server.close()


def _throwaway_database(pg_server: PgServer, template: str | None = None) -> Iterator[str]:
    """Create a database (a copy of `template`, else empty), yield its URL, drop it."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name, template=template)
    try:
        yield url
    finally:
        # drop_database terminates leftover connections first; anything still
        # failing (e.g. a reconnect racing the drop) only leaks a database on a
        # throwaway server.
        with contextlib.suppress(psycopg2.Error):
            pg_server.drop_database(name)


@pytest.fixture
def postgres_url(pg_server: PgServer) -> Iterator[str]:
    """URL of a new, empty database, dropped after the test."""
    yield from _throwaway_database(pg_server)


@pytest.fixture(scope="session")
def migrated_template(pg_server: PgServer) -> Iterator[str]:
    """Name of a database migrated to the head revision once per session, by dagctl's
    own migrations: the template that `migrated_postgres_url` clones. Nobody may stay
    connected to it (CREATE DATABASE ... TEMPLATE refuses then), so connections to it
    are switched off once it is migrated."""
    from dagctl.store import open_store

    name = f"tmpl_{uuid.uuid4().hex[:12]}"
    open_store(pg_server.create_database(name), migrate=True).close()
    pg_server.allow_connections(name, False)
    try:
        yield name
    finally:
        with contextlib.suppress(psycopg2.Error):
            pg_server.drop_database(name)


@pytest.fixture
def migrated_postgres_url(pg_server: PgServer, migrated_template: str) -> Iterator[str]:
    """URL of a new database already migrated to the head revision (a copy of the
    session's template: no migration runs), dropped after the test."""
    yield from _throwaway_database(pg_server, template=migrated_template)


# --- end PostgreSQL -----------------------------------------------------------


# --- state databases ----------------------------------------------------------
# db_url: empty, on SQLite and PostgreSQL; migrated_db_url: the same, migrated.


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """A fresh, empty state database on each backend dagctl supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state.db"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite state database migrated to the head revision once per session."""
    from dagctl.store import open_store

    path = tmp_path_factory.mktemp("template") / "state.db"
    open_store(f"sqlite:///{path}", migrate=True).close()
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def migrated_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh state database already migrated to the head revision, on each backend:
    a copy of the session's template, so no migration runs per test. Tests of the
    migrations themselves, of `db upgrade` or of "not migrated" errors want `db_url`."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("migrated_sqlite_template")
        path = tmp_path / "state.db"
        with (
            contextlib.closing(sqlite3.connect(template)) as source,
            contextlib.closing(sqlite3.connect(path)) as target,
        ):
            source.backup(target)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("migrated_postgres_url")
    return url
