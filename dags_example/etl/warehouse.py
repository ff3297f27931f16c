"""Shared code of this DAG's Python tasks: a helper module, not a task (its docstring
is no task header and it defines no run function).

Connects to the `warehouse` connection of dagctl.yaml, which every task receives as
DAGCTL_CONN_WAREHOUSE (its SQLite path already absolute), so that the Python tasks
use the very file the SQL tasks use, wherever dagctl runs.
"""

import os
import sqlite3

SQLITE_PREFIX = "sqlite:///"


def path() -> str:
    url = os.environ["DAGCTL_CONN_WAREHOUSE"]
    if not url.startswith(SQLITE_PREFIX):
        raise ValueError(f"this example expects an SQLite warehouse, not {url.split(':', 1)[0]}")
    return url[len(SQLITE_PREFIX) :]


def connect() -> sqlite3.Connection:
    return sqlite3.connect(path())
