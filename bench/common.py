"""What every workload shares: the dagctl under test, state databases on both backends,
scheduler processes, reading timings back from the state database, and figures.

The harness reads the state database directly (sqlite3 / psycopg2) to get the times the
scheduler recorded; it never writes to it except for the claim audit of W4.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def dagctl_exe() -> str:
    """The dagctl next to this interpreter (the project's virtualenv), else on PATH."""
    script = Path(sys.executable).with_name("dagctl")
    return str(script) if script.exists() else shutil.which("dagctl") or "dagctl"


# ---------------------------------------------------------------- figures


@dataclass
class Figure:
    """One measured quantity: its samples, its target and the baselines it compares with.

    `higher_is_better` for rates (task runs/s); otherwise smaller is better. Counts that
    are not timings (SQL statements, duplicates) have unit "" or "count"."""

    workload: str
    backend: str
    metric: str
    samples: list[float]
    unit: str  # "s", "ms", "MB", "/s", "count"
    target: float | None = None
    higher_is_better: bool = False
    baselines: dict[str, float] = field(default_factory=dict)  # label -> value, same unit
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def ratio(self) -> float | None:
        if self.target is None or not self.samples:
            return None
        if self.target == 0:
            return None
        return self.median / self.target

    @property
    def ok(self) -> bool | None:
        if self.target is None or not self.samples:
            return None
        return self.median >= self.target if self.higher_is_better else self.median <= self.target

    def as_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "backend": self.backend,
            "metric": self.metric,
            "unit": self.unit,
            "samples": self.samples,
            "median": self.median if self.samples else None,
            "min": min(self.samples) if self.samples else None,
            "max": max(self.samples) if self.samples else None,
            "target": self.target,
            "higher_is_better": self.higher_is_better,
            "ratio_to_target": self.ratio,
            "meets_target": self.ok,
            "baselines": {k: {"value": v, "ratio": self.median / v} for k, v in self.baselines.items()},
            "note": self.note,
        }


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (p95 = percentile(values, 0.95))."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


def fmt(value: float | None, unit: str) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:g}{unit}"


def render_table(figures: Sequence[Figure]) -> str:
    header = [
        "workload",
        "backend",
        "metric",
        "median",
        "min",
        "max",
        "n",
        "target",
        "ratio",
        "ok",
        "vs baseline",
    ]
    rows = [header]
    for f in figures:
        baseline = "; ".join(f"{label}: {f.median / value:.3f}x" for label, value in f.baselines.items())
        ratio = f.ratio
        rows.append(
            [
                f.workload,
                f.backend,
                f.metric,
                fmt(f.median if f.samples else None, f.unit),
                fmt(min(f.samples) if f.samples else None, f.unit),
                fmt(max(f.samples) if f.samples else None, f.unit),
                str(len(f.samples)),
                ("≥ " if f.higher_is_better else "≤ ") + fmt(f.target, f.unit)
                if f.target is not None
                else "-",
                f"{ratio:.2f}" if ratio is not None else "-",
                {True: "yes", False: "NO", None: "-"}[f.ok],
                baseline or "-",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    notes = [f"  {f.workload} {f.backend} {f.metric}: {f.note}" for f in figures if f.note]
    if notes:
        lines.append("")
        lines.append("notes:")
        lines.extend(notes)
    return "\n".join(lines)


# ---------------------------------------------------------------- databases


class Backends:
    """Fresh state databases: SQLite files in a temporary folder, databases on one
    PostgreSQL server started on first use (tests/pgserver.py; DAGCTL_TEST_PG_URL reuses
    a running one)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._pg: Any = None
        self._created: list[str] = []

    def fresh(self, backend: str) -> str:
        name = f"bench_{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            return f"sqlite:///{self.workdir / (name + '.db')}"
        if self._pg is None:
            if str(REPO) not in sys.path:
                sys.path.insert(0, str(REPO))
            from tests.pgserver import start_postgres

            self._pg = start_postgres()
        self._created.append(name)
        return str(self._pg.create_database(name))

    def drop(self, url: str) -> None:
        if url.startswith("postgresql") and self._pg is not None:
            name = url.rsplit("/", 1)[1]
            with contextlib.suppress(Exception):
                self._pg.drop_database(name)
                self._created.remove(name)

    def close(self) -> None:
        if self._pg is not None:
            for name in list(self._created):
                with contextlib.suppress(Exception):
                    self._pg.drop_database(name)
            self._pg.close()
            self._pg = None


class Db:
    """Read-only access to a state database for the measurements."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_postgres = url.startswith("postgres")
        if self.is_postgres:
            import psycopg2

            self._conn: Any = psycopg2.connect(url)
            self._conn.autocommit = True
        else:
            self._conn = sqlite3.connect(url.split("///", 1)[1], timeout=30, isolation_level=None)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.is_postgres:
            sql = sql.replace("?", "%s")
        cursor = self._conn.cursor()
        try:
            cursor.execute(sql, params)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def value(self, sql: str, *params: Any) -> Any:
        found = self.rows(sql, *params)
        return found[0][0] if found else None

    def execute_script(self, sqlite_sql: str, postgres_sql: str) -> None:
        if self.is_postgres:
            with self._conn.cursor() as cursor:
                cursor.execute(postgres_sql)
        else:
            self._conn.executescript(sqlite_sql)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()


def ts(value: Any) -> datetime:
    """A timestamp column as a datetime (SQLite hands back text)."""
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def seconds(start: Any, end: Any) -> float:
    return (ts(end) - ts(start)).total_seconds()


# ---------------------------------------------------------------- running dagctl


def child_env(**extra: str) -> dict[str, str]:
    """The environment of the dagctl processes the harness starts. Python may cache
    compiled modules (.pyc) as an installed package does: a PYTHONDONTWRITEBYTECODE
    inherited from a CI or sandbox environment would make every start compile dagctl's
    sources again and time that instead."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class Env:
    """A DAGs folder and a state database, and dagctl commands run against them."""

    def __init__(self, workdir: Path, db_url: str, exe: str) -> None:
        self.workdir = workdir
        self.dags = workdir / "dags"
        self.dags.mkdir(parents=True, exist_ok=True)
        self.db_url = db_url
        self.exe = exe
        self._procs: list[subprocess.Popen[bytes]] = []
        self.vars = child_env(DATABASE_URL=db_url, DAGCTL_DAGS=str(self.dags))

    def write_dag(self, name: str, workflow: str, tasks: dict[str, str]) -> Path:
        folder = self.dags / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "workflow.yaml").write_text(textwrap.dedent(workflow))
        for filename, body in tasks.items():
            (folder / filename).write_text(body)
        return folder

    def run(
        self, *args: str, check: bool = True, extra: dict[str, str] | None = None, timeout: float = 600
    ) -> tuple[float, subprocess.CompletedProcess[str]]:
        """Run dagctl; return its wall time and the completed process."""
        start = time.perf_counter()
        done = subprocess.run(
            [self.exe, *args],
            env={**self.vars, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if check and done.returncode != 0:
            raise RuntimeError(f"dagctl {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return elapsed, done

    def schedule(
        self, *args: str, extra: dict[str, str] | None = None, log_name: str = ""
    ) -> subprocess.Popen[bytes]:
        """Start `dagctl schedule ARGS` in the background (stopped by stop_all)."""
        log = open(self.workdir / f"schedule{log_name or len(self._procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [self.exe, "schedule", *args],
            env={**self.vars, **(extra or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._procs.append(proc)
        return proc

    def log_of(self, index: int) -> str:
        path = self.workdir / f"schedule{index}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self, timeout: float = 30) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._procs.clear()

    def wait_for(
        self, db: Db, sql: str, expected: int, timeout: float = 120, interval: float = 0.05
    ) -> float:
        """Poll until `sql` returns at least `expected`; return the time it took."""
        start = time.perf_counter()
        while True:
            value = db.value(sql) or 0
            if value >= expected:
                return time.perf_counter() - start
            for n, proc in enumerate(self._procs):
                if proc.poll() is not None and proc.returncode not in (0, None):
                    raise RuntimeError(f"scheduler exited {proc.returncode}:\n{self.log_of(n)[-3000:]}")
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"timed out waiting for {sql!r} >= {expected} (got {value})")
            time.sleep(interval)


@contextlib.contextmanager
def workspace(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"dagctl-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Config:
    reps: int
    small: bool
    backends: tuple[str, ...]
    exe: str
    dbs: Backends
    verbose: bool = False

    def say(self, message: str) -> None:
        print(f"  .. {message}", file=sys.stderr, flush=True)


def rss_mb(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (peak) of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def after_bulk_insert(store: Any) -> None:
    """On PostgreSQL, move the id sequences past rows inserted with explicit ids and
    refresh the planner's statistics, as a real history would have them."""
    if not store.is_postgres:
        return
    with store.engine.begin() as connection:
        for table in ("dag_run", "task_run"):
            connection.exec_driver_sql(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
        connection.exec_driver_sql("ANALYZE")
