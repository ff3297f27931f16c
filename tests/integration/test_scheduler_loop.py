"""The scheduler loop driven by an injected clock, on SQLite and PostgreSQL.

`Scheduler.run_once(now)` is one iteration at an instant the test chooses: the clock
is a plain datetime moved by hand, nothing sleeps, and every assertion is about what
the loop did at the instants that decide it (a cron slot, a retry delay), never about
how long it took. Tasks that run processes run for real (WorkerManager); while one
runs, the test blocks on the manager's descriptors, then iterates again.
"""

from __future__ import annotations

import select
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dagctl.managers.worker import WorkerManager
from dagctl.scheduling.scheduler import Scheduler, SchedulerOptions
from dagctl.store import Store, open_store
from dagctl.store.records import AdvancePlan

T0 = datetime(2024, 5, 1, 10, 20)
HOURLY = """
description: hourly
schedule: "0 * * * *"
catchup: latest
"""
NO_OP = "type: no_op\n"


class Loop:
    """A Scheduler with its Store and a real WorkerManager in this process; `now` is its
    clock, and only the test moves it."""

    def __init__(self, root: Path, db_url: str) -> None:
        self.dags = root / "dags"
        self.dags.mkdir()
        self.now = T0
        self.store = open_store(db_url, migrate=True)
        self.manager = WorkerManager(concurrency=2, kill_grace=0.2)
        # Definitions are read at every iteration: a test's DAGs are there from the first.
        options = SchedulerOptions(concurrency=2, reload_interval=0.0)
        self.scheduler = Scheduler(self.store, self.dags, self.manager, options, clock=lambda: self.now)

    def dag(self, name: str, workflow: str, **tasks: str) -> None:
        folder = self.dags / name
        folder.mkdir()
        (folder / "workflow.yaml").write_text(textwrap.dedent(workflow))
        for filename, body in tasks.items():
            (folder / filename.replace("__", ".")).write_text(textwrap.dedent(body).lstrip())

    def at(self, now: datetime) -> None:
        """One iteration at `now` (the clock stays there)."""
        self.now = now
        assert self.scheduler.run_once(now) is True

    def until(self, done: Callable[[], bool], *, step: timedelta = timedelta(0), limit: int = 200) -> None:
        """Iterate, moving the clock by `step` before each iteration, until `done()`;
        between iterations, block until a running task writes or ends."""
        for _ in range(limit):
            self.at(self.now + step)
            if done():
                return
            if self.manager.running():
                select.select(list(self.manager.wait_fds()), [], [], 1.0)
        raise AssertionError(f"not done after {limit} iterations: {self.store.runs()}")

    def runs(self, dag_name: str) -> list[dict[str, Any]]:
        return sorted(self.store.runs(dag_name), key=lambda r: r["id"])

    def attempts(self, run_id: int) -> dict[tuple[str, int], dict[str, Any]]:
        return {(a["task_name"], a["attempt"]): a for a in self.store.task_runs([run_id])}

    def finished(self, run_id: int) -> bool:
        return self.store.runs(run_id=run_id, limit=1)[0]["status"] not in ("queued", "running")

    def close(self) -> None:
        self.manager.shutdown(0)
        self.store.close()


@pytest.fixture
def loop(tmp_path: Path, db_url: str) -> Iterator[Loop]:
    created = Loop(tmp_path, db_url)
    yield created
    created.close()


def test_a_cron_slot_creates_one_run_at_its_time_and_none_before(loop: Loop) -> None:
    loop.dag("hourly", HOURLY, noop__yaml=NO_OP)
    loop.at(T0)  # first sighting: no runs for slots before it
    loop.at(datetime(2024, 5, 1, 10, 59, 59))
    assert loop.runs("hourly") == []

    slot = datetime(2024, 5, 1, 11, 0)
    loop.at(slot)
    loop.at(slot)  # the same instant again: the slot is taken
    loop.at(slot + timedelta(minutes=30))
    runs = loop.runs("hourly")
    assert [(r["kind"], r["scheduled_slot"], r["logical_date"]) for r in runs] == [("scheduled", slot, slot)]
    assert loop.store.dag_states()["hourly"].last_slot == slot


def test_catchup_latest_after_a_jump_creates_one_run_for_the_latest_slot(loop: Loop) -> None:
    loop.dag("hourly", HOURLY, noop__yaml=NO_OP)
    loop.at(T0)
    loop.at(datetime(2024, 5, 1, 17, 5))  # seven slots passed since 11:00
    loop.at(datetime(2024, 5, 1, 17, 50))  # none since 17:00
    latest = datetime(2024, 5, 1, 17, 0)
    assert [r["scheduled_slot"] for r in loop.runs("hourly")] == [latest]
    assert loop.store.dag_states()["hourly"].last_slot == latest


def test_a_run_of_no_op_tasks_advances_to_success_across_iterations(loop: Loop) -> None:
    loop.dag(
        "chain",
        "description: three no_op tasks in a row\n",
        a__yaml=NO_OP,
        b__yaml="type: no_op\ninputs: [a.yaml]\n",
        c__yaml="type: no_op\ninputs: [b.yaml]\n",
    )
    run_id = loop.store.trigger("chain", {}, "test", T0, None, T0)
    loop.at(T0)
    # One iteration starts the run and its first task only: the next task waits for
    # that one's end to be recorded, in a later iteration.
    assert loop.runs("chain")[0]["status"] == "running"
    assert set(loop.attempts(run_id)) == {("a.yaml", 1)}
    assert not loop.scheduler.idle()

    loop.until(lambda: loop.finished(run_id), step=timedelta(seconds=1), limit=10)
    assert loop.runs("chain")[0]["status"] == "success"
    attempts = loop.attempts(run_id)
    assert {key: a["status"] for key, a in attempts.items()} == {
        ("a.yaml", 1): "success",
        ("b.yaml", 1): "success",
        ("c.yaml", 1): "success",
    }
    # Each started in a later iteration than its input: later on the injected clock.
    started = [attempts[(name, 1)]["started_at"] for name in ("a.yaml", "b.yaml", "c.yaml")]
    assert started == sorted(started) and len(set(started)) == 3
    assert loop.scheduler.idle()


def test_a_failed_task_is_retried_only_once_its_retry_delay_has_passed(loop: Loop) -> None:
    loop.dag(
        "flaky",
        """
        description: fails once
        retries: 1
        retry_delay: 300
    """,
        flaky__sh="""
        #!/usr/bin/env bash
        [ "$DAGCTL_ATTEMPT" -ge 2 ] || { echo "not yet" >&2; exit 3; }
        echo ok
    """,
    )
    run_id = loop.store.trigger("flaky", {}, "test", T0, None, T0)
    # The clock stands still while the first attempt runs and fails.
    loop.until(lambda: ("flaky.sh", 2) in loop.attempts(run_id))
    attempts = loop.attempts(run_id)
    assert (attempts[("flaky.sh", 1)]["status"], attempts[("flaky.sh", 1)]["exit_code"]) == ("failed", 3)
    retry = attempts[("flaky.sh", 2)]
    due = T0 + timedelta(seconds=300)
    assert (retry["status"], retry["not_before"]) == ("waiting", due)

    loop.at(due - timedelta(seconds=1))
    assert loop.attempts(run_id)[("flaky.sh", 2)]["status"] == "waiting"
    assert loop.manager.running() == 0

    loop.at(due)
    retry = loop.attempts(run_id)[("flaky.sh", 2)]
    assert retry["status"] in ("running", "success")
    assert retry["started_at"] == due

    loop.until(lambda: loop.finished(run_id))
    assert loop.runs("flaky")[0]["status"] == "success"
    assert loop.attempts(run_id)[("flaky.sh", 2)]["status"] == "success"


def test_the_two_halves_of_an_advance_run_inside_one_transaction_only(db_url: str) -> None:
    # Alone, each would commit at once and drop the locks the plan was made under.
    store: Store = open_store(db_url, migrate=True)
    try:
        with pytest.raises(RuntimeError, match=r"inside Store\.transaction\(\)"):
            store.lock_flagged_runs()
        with pytest.raises(RuntimeError, match=r"inside Store\.transaction\(\)"):
            store.apply_advance(AdvancePlan(), T0)
    finally:
        store.close()
