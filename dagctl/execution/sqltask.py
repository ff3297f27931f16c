"""`python -m dagctl.execution.sqltask PATH`: run an SQL task file in one transaction.

The connection URL comes from `DAGCTL_SQL_URL` (set by the runner; never on the
command line, where `ps` would show its password), the params from `DAGCTL_PARAMS`.
Every statement runs as `sqlalchemy.text()` with the params it names (`:date`) as
bind parameters: values are never pasted into SQL. A `:name` inside a string literal
is still read as a parameter (a SQLAlchemy rule); write `\\:name` there.

Output: one line per statement (`statement 2: 14 rows`) and up to 20 rows of each
result. On error: one line on stderr naming the statement, exit 1; nothing is
committed. Dict-valued params are bound as JSON text; other values as they are.

The run variables are bind parameters too, and win over a param of the same name:
`:ds` (YYYY-MM-DD), `:logical_date`, `:data_interval_start`, `:data_interval_end`
(ISO 8601 text in UTC, which PostgreSQL casts to timestamptz and SQLite compares as
text), `:run_id` (text), `:dag`, `:task` and `:attempt`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

MAX_ROWS_SHOWN = 20


def strip_header(text: str) -> str:
    """The SQL after the leading `/* ... */` task header, if any."""
    stripped = text.lstrip()
    if not stripped.startswith("/*"):
        return text
    end = stripped.find("*/")
    return "" if end == -1 else stripped[end + 2 :]


def split_statements(text: str) -> list[str]:
    import sqlparse

    statements = []
    for statement in sqlparse.split(strip_header(text)):
        # A statement that is only comments would be an error on some drivers.
        if sqlparse.format(statement, strip_comments=True).strip().strip(";").strip():
            statements.append(statement.strip())
    return statements


_RUN_VARIABLES = {
    "ds": "DAGCTL_DS",
    "logical_date": "DAGCTL_LOGICAL_DATE",
    "data_interval_start": "DAGCTL_DATA_INTERVAL_START",
    "data_interval_end": "DAGCTL_DATA_INTERVAL_END",
    "run_id": "DAGCTL_RUN_ID",
    "dag": "DAGCTL_DAG",
    "task": "DAGCTL_TASK",
    "attempt": "DAGCTL_ATTEMPT",
}


def run_variables(environ: Any) -> dict[str, Any]:
    """The run variables the environment carries, by bind-parameter name."""
    values: dict[str, Any] = {name: environ[var] for name, var in _RUN_VARIABLES.items() if var in environ}
    if "attempt" in values:
        try:
            values["attempt"] = int(values["attempt"])
        except ValueError:
            del values["attempt"]
    return values


def _bind_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict) else value


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dagctl.execution.sqltask PATH", file=sys.stderr)
        return 2
    url = os.environ.get("DAGCTL_SQL_URL")
    if not url:
        print("DAGCTL_SQL_URL is not set", file=sys.stderr)
        return 2
    try:
        with open(args[0], encoding="utf-8") as handle:
            statements = split_statements(handle.read())
    except OSError as exc:
        print(f"cannot read {args[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    params = json.loads(os.environ.get("DAGCTL_PARAMS") or "{}")
    for name, value in params.items():
        # Refused at trigger; a run queued before that rule still fails in one line.
        if isinstance(value, str) and not _is_utf8(value):
            print(f"param {name!r} is not valid UTF-8: no database accepts it", file=sys.stderr)
            return 1
    params = {**params, **run_variables(os.environ)}
    if not statements:
        print("no statements")
        return 0

    from sqlalchemy import create_engine, event, make_url, text
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        parsed = make_url(url)
        if parsed.drivername == "postgresql":
            # SQLAlchemy 2.1 picks psycopg 3 for a bare postgresql://; dagctl ships psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        engine = create_engine(parsed)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        print(f"bad connection URL: {_one_line(str(exc))}", file=sys.stderr)
        return 1
    if engine.dialect.name == "sqlite":
        # pysqlite opens transactions lazily and commits DDL on its own; take over
        # BEGIN so the whole file, CREATE TABLE included, is one transaction.
        @event.listens_for(engine, "connect")
        def _no_implicit_transactions(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN")

    phase = "cannot connect"
    try:
        with engine.begin() as connection:
            for number, statement in enumerate(statements, 1):
                phase = f"statement {number} failed"
                clause = text(statement)
                names = clause._bindparams.keys()
                values = {name: _bind_value(params[name]) for name in names if name in params}
                result = connection.execute(clause, values)
                if result.returns_rows:
                    shown, count = [], 0
                    for row in result:
                        count += 1
                        if count <= MAX_ROWS_SHOWN:
                            shown.append(row)
                    print(f"statement {number}: {count} row{'' if count == 1 else 's'}")
                    for row in shown:
                        print("  " + " | ".join("NULL" if v is None else str(v) for v in row))
                    if count > MAX_ROWS_SHOWN:
                        print(f"  ... {count - MAX_ROWS_SHOWN} more")
                elif result.rowcount is not None and result.rowcount >= 0:
                    rows = result.rowcount
                    print(f"statement {number}: {rows} row{'' if rows == 1 else 's'}")
                else:
                    print(f"statement {number}: done")
            phase = "commit failed"
    except SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None)
        # Without a driver error, SQLAlchemy's own text has the SQL and a URL after line 1.
        detail = str(orig) if orig is not None else str(exc).split("\n", 1)[0]
        print(f"{phase}: {_one_line(detail)}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"committed {len(statements)} statement{'' if len(statements) == 1 else 's'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
