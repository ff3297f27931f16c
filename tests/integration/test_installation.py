"""The installation id (store/installation.py): random per state database, the same
whatever URL reaches the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

from dagctl.store import open_store


def respelled(url: str) -> str:
    if "127.0.0.1" in url:
        return url.replace("127.0.0.1", "localhost")
    head, _, name = url.rpartition("/")
    return f"{head}/./{name}"


def installation(url: str) -> str:
    store = open_store(url, migrate=True)
    try:
        return store.installation_id()
    finally:
        store.close()


def test_one_id_per_database_whatever_the_url(db_url: str, tmp_path: Path) -> None:
    first = installation(db_url)
    assert re.fullmatch(r"[0-9a-f]{20}", first)
    assert installation(respelled(db_url)) == first
    assert installation(db_url) == first  # stable
    other = installation(f"sqlite:///{tmp_path}/other.db")  # migrated from scratch
    assert re.fullmatch(r"[0-9a-f]{20}", other) and other != first
