"""The driver-only reads convert the columns SQLAlchemy converts: a DateTime or Boolean
column added to dag_run or task_run must be named in store/driver.py too."""

from __future__ import annotations

from sqlalchemy import Boolean, DateTime

from dagctl.store import driver
from dagctl.store.tables import dag_run, task_run


def test_the_converted_columns_are_the_tables_datetime_and_boolean_columns() -> None:
    for table in (dag_run, task_run):
        times = {c.name for c in table.columns if isinstance(c.type, DateTime)}
        flags = {c.name for c in table.columns if isinstance(c.type, Boolean)}
        assert driver.DATETIME_COLUMNS[table.name] == times, table.name
        assert driver.BOOLEAN_COLUMNS[table.name] == flags, table.name
