"""A harness for fault tests: a DAGs folder, a fresh PostgreSQL database, and real
`dagctl` processes started from the installed entry point.

Every task of a harness gets `DAGCTL_FAULT_MARK=<uuid>` in its environment (through
the root `dagctl.yaml`), and nothing else does, so leaked task processes can be found
in /proc. Scheduler output goes to files, never to a pipe nobody reads.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from dagctl.managers.worker import WorkerManager
from dagctl.scheduling.scheduler import Scheduler as InProcessScheduler
from dagctl.scheduling.scheduler import SchedulerOptions
from dagctl.store import open_store
from tests.faults.invariants import check_invariants, query, wait_until
from tests.pgserver import PgServer

DAGCTL = str(Path(sys.executable).parent / "dagctl")


class Scheduler:
    """One `dagctl schedule` process."""

    def __init__(self, popen: subprocess.Popen[bytes], log: Path) -> None:
        self.popen = popen
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)


class Harness:
    def __init__(self, root: Path, db_url: str) -> None:
        self.root = root
        self.db_url = db_url
        self.dags = root / "dags"
        self.dags.mkdir()
        self.marker = f"fault-{uuid.uuid4().hex}"
        (self.dags / "dagctl.yaml").write_text(
            f"worker_config:\n  env:\n    DAGCTL_FAULT_MARK: {self.marker}\n"
        )
        self.out = root / "executions.log"  # tasks append a line here
        self.schedulers: list[Scheduler] = []
        self.base_env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "DAGCTL_DAGS": str(self.dags),
            "DAGCTL_RELOAD_SECONDS": "0.5",
            "DAGCTL_KILL_GRACE": "0.5",
            "FAULT_OUT": str(self.out),
            "FAULT_DIR": str(root),
            "PYTHONUNBUFFERED": "1",
        }
        self.base_env.pop("DAGCTL_FAKE_NOW", None)

    # ------------------------------------------------------------ DAGs

    def dag(self, name: str, workflow: str, **tasks: str) -> Path:
        folder = self.dags / name
        folder.mkdir()
        (folder / "workflow.yaml").write_text(textwrap.dedent(workflow))
        for filename, body in tasks.items():
            path = folder / filename.replace("__", ".")
            path.write_text(textwrap.dedent(body).lstrip())
        return folder

    # ------------------------------------------------------------ processes

    def env(self, **extra: str) -> dict[str, str]:
        return {**self.base_env, **extra}

    def start(self, *args: str, env: dict[str, str] | None = None, **extra: str) -> Scheduler:
        index = len(self.schedulers)
        log = self.root / f"scheduler-{index}.log"
        with log.open("wb") as handle:
            popen = subprocess.Popen(
                [DAGCTL, "schedule", "--poll-interval", "0.5", *args],
                env={**(env or self.base_env), **extra},
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        scheduler = Scheduler(popen, log)
        self.schedulers.append(scheduler)
        return scheduler

    def run(
        self, *args: str, timeout: float = 60, check: bool = True, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [DAGCTL, *args],
            env=self.env(**extra),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def migrate(self) -> None:
        self.run("db", "upgrade")

    def kill_all(self) -> None:
        for scheduler in self.schedulers:
            if scheduler.alive():
                scheduler.signal(signal.SIGKILL)
                scheduler.wait(30)

    # ------------------------------------------------------------ state

    def sql(self, statement: str, args: Any = None) -> list[tuple[Any, ...]]:
        return query(self.db_url, statement, args)

    def trigger_many(self, dag: str, count: int, params: dict[str, Any] | None = None) -> list[int]:
        """Queue `count` manual runs in one go (through the store, like `dagctl trigger`)."""
        from dagctl.dags.cron import utcnow
        from dagctl.store import open_store

        store = open_store(self.db_url, migrate=True)
        try:
            now = utcnow()
            return [store.trigger(dag, params or {}, "fault-test", now, None, now) for _ in range(count)]
        finally:
            store.close()

    def run_statuses(self) -> dict[str, int]:
        return dict(self.sql("SELECT status, count(*) FROM dag_run GROUP BY status"))  # type: ignore[arg-type]

    def wait_runs_finished(self, timeout: float, expected: int | None = None) -> dict[str, int]:
        def done() -> dict[str, int] | None:
            counts = self.run_statuses()
            total = sum(counts.values())
            active = counts.get("queued", 0) + counts.get("running", 0)
            if active == 0 and (expected is None or total == expected):
                return counts
            return None

        return wait_until(done, timeout, "every run to finish", interval=0.2)  # type: ignore[no-any-return]

    def executions(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []

    def check(self, **kwargs: Any) -> dict[str, int]:
        for scheduler in self.schedulers:
            text = scheduler.output()
            assert "Traceback" not in text, text[-4000:]
        return check_invariants(self.db_url, self.dags, self.marker, **kwargs)


class InProcess:
    """A Scheduler with a Store and a WorkerManager in this process, its clock in our hands."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.store = open_store(harness.db_url, migrate=True)
        self.now = datetime(2024, 5, 1, 10, 20)
        self.manager = WorkerManager(concurrency=4, kill_grace=0.2, chunk_interval=0.1)
        options = SchedulerOptions(concurrency=4, reload_interval=0.0, lease_seconds=30)
        self.scheduler = InProcessScheduler(
            self.store, harness.dags, self.manager, options, clock=lambda: self.now
        )

    def run_until_idle(self, timeout: float = 15, guarded: bool = False) -> int:
        """Iterate until nothing is left to do; with `guarded`, as the real loop does
        (a DatabaseError abandons the iteration), returning how many were abandoned."""
        deadline = time.monotonic() + timeout
        abandoned = 0
        while True:
            if guarded:
                abandoned += not self.scheduler.run_once(self.now)
            else:
                self.scheduler.iterate(self.now)
            if self.scheduler.idle():
                return abandoned
            assert time.monotonic() < deadline, self.harness.run_statuses()
            time.sleep(0.02)

    def close(self) -> None:
        self.manager.shutdown(0)
        self.store.close()


@pytest.fixture
def harness(tmp_path: Path, postgres_url: str) -> Iterator[Harness]:
    h = Harness(tmp_path, postgres_url)
    try:
        yield h
    finally:
        h.kill_all()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def wait_all(schedulers: Sequence[Scheduler], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    return [s.wait(max(0.1, deadline - time.monotonic())) for s in schedulers]


@pytest.fixture
def server(pg_server: PgServer) -> Iterator[PgServer]:
    """The suite's PostgreSQL server, for tests that stop or restart it."""
    if pg_server.is_external:
        pytest.skip("needs the PostgreSQL server the tests start (DAGCTL_TEST_PG_URL is set)")
    try:
        yield pg_server
    finally:
        pg_server.start()  # whatever happened, later tests need it
