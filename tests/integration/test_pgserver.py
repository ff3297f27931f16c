"""The test-suite PostgreSQL server (tests/pgserver.py) and its fixtures."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from tests.pgserver import ENV_URL, PgServer

pytestmark = pytest.mark.postgres


def test_postgres_url_gives_a_fresh_database(postgres_url: str, pg_server: PgServer) -> None:
    with closing(psycopg2.connect(postgres_url)) as conn, conn.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchone() == (1,)
        cur.execute("select current_database()")
        row = cur.fetchone()
        assert row is not None
        assert row[0].startswith("t_")
        assert postgres_url == pg_server.url_for(row[0])
        cur.execute("select count(*) from pg_tables where schemaname = 'public'")
        assert cur.fetchone() == (0,)

        if pg_server.is_external:
            pytest.skip("DAGCTL_TEST_PG_URL is set: server settings are not ours to check")

        cur.execute("show fsync")
        assert cur.fetchone() == ("off",)
        cur.execute("select current_setting('data_directory')")
        row = cur.fetchone()
        assert row is not None
        datadir = Path(row[0])

    assert datadir == pg_server.datadir
    assert datadir.stat().st_uid != 0, "PostgreSQL data directory is owned by root"
    # The postmaster's pid is the first line of postmaster.pid; check its real uid too.
    pid = int((datadir / "postmaster.pid").read_text().splitlines()[0])
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        uid_line = next(ln for ln in status.read_text().splitlines() if ln.startswith("Uid:"))
        assert all(int(uid) != 0 for uid in uid_line.split()[1:]), uid_line


@pytest.mark.skipif(bool(os.environ.get(ENV_URL)), reason=f"{ENV_URL} is set")
def test_private_server_restart_keeps_data_and_port() -> None:
    with PgServer() as pg:
        url = pg.create_database("keep")
        with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cur:
            cur.execute("create table t (x int); insert into t values (42)")
        port = pg.port
        pg.restart()
        pg.stop("immediate")
        pg.start()
        assert pg.port == port
        with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute("select x from t")
            assert cur.fetchone() == (42,)
        pg.drop_database("keep")
        datadir = pg.datadir
    assert not datadir.exists()
