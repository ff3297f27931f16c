"""WorkerManager with real subprocesses, driven the way the scheduler loop drives it."""

from __future__ import annotations

import selectors
import shutil
import sqlite3
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from dagctl.errors import UsageError
from dagctl.execution.attempt import FAILED, INTERRUPTED, SUCCESS, Attempt, LogChunk, Outcome, TaskContext
from dagctl.execution.logbuffer import truncation_marker
from dagctl.managers import available_managers, get_manager
from dagctl.managers.worker import SHUTDOWN_KILLED, SHUTDOWN_NOT_STARTED, WorkerManager
from tests.integration.taskdags import LOGICAL_DATE, attempt, group_alive, kill_group_quietly, make_dag

pytestmark = pytest.mark.timeout(30)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def manager() -> Iterator[WorkerManager]:
    created = WorkerManager(concurrency=4, kill_grace=0.5)
    yield created
    created.shutdown(0)


def drain(
    manager: WorkerManager, count: int, limit: float = 10.0
) -> tuple[dict[int, Outcome], list[LogChunk]]:
    """Loop like the scheduler until `count` outcomes arrived; also returns the chunks."""
    outcomes: dict[int, Outcome] = {}
    chunks: list[LogChunk] = []
    deadline = time.monotonic() + limit
    with selectors.DefaultSelector() as selector:
        while len(outcomes) < count:
            assert time.monotonic() < deadline, f"only {len(outcomes)} of {count} outcomes"
            result = manager.poll()
            chunks.extend(result.logs)
            for outcome in result.finished:
                assert outcome.task_run_id not in outcomes
                outcomes[outcome.task_run_id] = outcome
            if len(outcomes) >= count:
                break
            for registered in list(selector.get_map()):
                selector.unregister(registered)
            for fd in manager.wait_fds():
                selector.register(fd, selectors.EVENT_READ)
            wakeup = manager.next_wakeup()
            selector.select(1.0 if wakeup is None else min(1.0, wakeup))
    return outcomes, chunks


def test_concurrency_two_runs_ten_tasks_never_more_than_two_at_once(tmp_path: Path) -> None:
    slots = tmp_path / "slots"
    slots.mkdir()
    script = (
        'touch "$SLOTS/$DAGCTL_ATTEMPT"\n'
        "sleep 0.15\n"
        'ls "$SLOTS" | wc -l > "$SLOTS.$DAGCTL_ATTEMPT.seen"\n'
        'rm "$SLOTS/$DAGCTL_ATTEMPT"\n'
    )
    dag = make_dag(tmp_path / "demo", {"work.sh": script}, worker_env={"SLOTS": str(slots)})
    manager = WorkerManager(concurrency=2)
    try:
        for number in range(1, 11):
            manager.launch(attempt(dag, "work.sh", number, number=number))
        assert manager.running() == 10  # 2 started, 8 waiting inside the manager
        assert manager.free_slots() == 0
        assert len(manager.wait_fds()) == 1 + 2 * 2  # self-pipe + pipe and pidfd of each
        outcomes, _ = drain(manager, 10)
    finally:
        manager.shutdown(0)
    assert {o.status for o in outcomes.values()} == {SUCCESS}
    seen = [int((tmp_path / f"slots.{n}.seen").read_text()) for n in range(1, 11)]
    assert max(seen) <= 2
    assert max(seen) == 2  # and the two slots were really used in parallel


def test_a_no_op_completes_at_once_without_a_process(tmp_path: Path) -> None:
    dag = make_dag(tmp_path / "demo", {"done_noop.yaml": "", "busy.sh": "sleep 300\n"})
    manager = WorkerManager(concurrency=1)
    try:
        manager.launch(attempt(dag, "busy.sh", 2))  # the only slot is taken...
        manager.launch(attempt(dag, "done_noop.yaml", 1))  # ...and a no_op needs none
        assert manager.running() == 1
        assert manager.pid_of(1) is None
        assert manager.next_wakeup() == 0
        with selectors.DefaultSelector() as selector:
            for fd in manager.wait_fds():
                selector.register(fd, selectors.EVENT_READ)
            assert selector.select(0)  # the self-pipe wakes the loop at once
        assert manager.poll().finished == [Outcome(1, SUCCESS)]
        assert manager.poll().finished == []
        assert manager.running() == 1
    finally:
        manager.shutdown(0)


def test_start_failures_are_outcomes_not_exceptions(tmp_path: Path, manager: WorkerManager) -> None:
    dag = make_dag(
        tmp_path / "demo", {"cmd.yaml": "", "needs.sh": "true\n"}, command=("no-such-command-dagctl", "x")
    )
    needs = make_dag(tmp_path / "other", {"needs.sh": "true\n"}, parameters=("date",))
    manager.launch(attempt(dag, "cmd.yaml", 1))
    manager.launch(attempt(needs, "needs.sh", 2))
    outcomes, _ = drain(manager, 2)
    assert outcomes[1].status == FAILED and outcomes[1].exit_code is None
    assert outcomes[1].error is not None
    assert outcomes[1].error.startswith("cannot start the task: [Errno 2] No such file or directory")
    assert (outcomes[2].status, outcomes[2].error) == (FAILED, "task needs parameter date")
    assert manager.running() == 0


def test_outcomes_carry_exit_codes_and_logs(tmp_path: Path, manager: WorkerManager) -> None:
    dag = make_dag(
        tmp_path / "demo",
        {"ok.sh": "echo hello\n", "bad.sh": "echo oops >&2\nexit 4\n", "hang.sh": "sleep 300\n"},
        timeout=0.3,
    )
    for number, task in enumerate(["ok.sh", "bad.sh", "hang.sh"], 1):
        manager.launch(attempt(dag, task, number))
    outcomes, _ = drain(manager, 3)
    assert outcomes[1] == Outcome(1, SUCCESS, 0, None, "hello\n", 0)
    assert outcomes[2] == Outcome(2, FAILED, 4, "exit code 4", "oops\n", 0)
    assert (outcomes[3].status, outcomes[3].error) == (FAILED, "timed out after 0.3s")


def test_cancel_stops_the_whole_group(tmp_path: Path, manager: WorkerManager) -> None:
    ready = tmp_path / "ready"
    script = f"sleep 300 &\necho up\ntouch {ready}\nsleep 300\n"
    dag = make_dag(tmp_path / "demo", {"long.sh": script})
    manager.launch(attempt(dag, "long.sh", 1))
    pgid = manager.pid_of(1)
    assert pgid is not None
    try:
        # Cancel once the task has surely printed, however loaded the machine is.
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready.exists()
        manager.cancel(1, "cancelled by user")
        manager.cancel(99, "unknown ids are ignored")
        outcomes, _ = drain(manager, 1)
        assert (outcomes[1].status, outcomes[1].error) == (FAILED, "cancelled by user")
        assert outcomes[1].log == "up\n"
        # The group's last members may take a moment to be reaped after the outcome.
        deadline = time.monotonic() + 5
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not group_alive(pgid)
    finally:
        kill_group_quietly(pgid)


def test_log_chunks_follow_a_running_task_without_duplicates(tmp_path: Path) -> None:
    script = "echo one\necho two\nsleep 0.7\necho three\nsleep 0.4\necho four\n"
    dag = make_dag(tmp_path / "demo", {"talk.sh": script})
    manager = WorkerManager(concurrency=1, chunk_interval=0.2)
    try:
        manager.launch(attempt(dag, "talk.sh", 7))
        outcomes, chunks = drain(manager, 1)
    finally:
        manager.shutdown(0)
    assert chunks and chunks[0].text == "one\ntwo\n"
    assert {c.task_run_id for c in chunks} == {7}
    assert "".join(c.text for c in chunks) + outcomes[7].log == "one\ntwo\nthree\nfour\n"


def test_a_flood_of_output_is_capped(tmp_path: Path) -> None:
    cap = 32 * 1024
    script = "head -c 5000000 /dev/urandom | base64\necho THE-END\n"
    dag = make_dag(tmp_path / "demo", {"flood.sh": script})
    manager = WorkerManager(concurrency=1, log_cap_bytes=cap)
    tracemalloc.start()
    try:
        manager.launch(attempt(dag, "flood.sh", 1))
        outcomes, chunks = drain(manager, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        manager.shutdown(0)
    assert peak < 1024 * 1024  # 6.7 MB went through; memory stayed flat
    outcome = outcomes[1]
    stored = "".join(c.text for c in chunks) + outcome.log
    assert outcome.status == SUCCESS
    assert outcome.log_truncated_bytes > 6_000_000
    assert len(stored) <= cap + len(truncation_marker(outcome.log_truncated_bytes)) + 1
    assert truncation_marker(outcome.log_truncated_bytes) in stored
    assert stored.endswith("THE-END\n")


def test_shutdown_waits_then_kills(tmp_path: Path) -> None:
    dag = make_dag(
        tmp_path / "demo",
        {"quick.sh": "sleep 0.2\necho finished\n", "slow.sh": "sleep 300 &\nsleep 300\n"},
    )
    manager = WorkerManager(concurrency=2)
    manager.launch(attempt(dag, "quick.sh", 1))
    manager.launch(attempt(dag, "slow.sh", 2))
    manager.launch(attempt(dag, "quick.sh", 3))  # waits for a slot, never starts
    pgid = manager.pid_of(2)
    assert pgid is not None
    try:
        started = time.monotonic()
        result = manager.shutdown(1.0)
        assert 1.0 <= time.monotonic() - started < 4
        outcomes = {o.task_run_id: o for o in result.finished}
        assert (outcomes[1].status, outcomes[1].log) == (SUCCESS, "finished\n")
        # interrupted, not failed: run again without counting against retries
        assert (outcomes[2].status, outcomes[2].error) == (INTERRUPTED, SHUTDOWN_KILLED)
        assert (outcomes[3].status, outcomes[3].error) == (INTERRUPTED, SHUTDOWN_NOT_STARTED)
        assert not group_alive(pgid)
        assert manager.poll().finished == [] and manager.wait_fds() == []
        with pytest.raises(RuntimeError):
            manager.launch(attempt(dag, "quick.sh", 4))
    finally:
        kill_group_quietly(pgid)


def test_the_example_etl_dag_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagctl.dags.params import resolve
    from dagctl.dags.tree import load_tree

    shutil.copytree(REPO / "dags_example", tmp_path / "dags", ignore=shutil.ignore_patterns("*.db"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    dag = load_tree(tmp_path / "dags").dags["etl"]
    params = resolve(dag.name, dag.params, {"date": "2024-06-03"})
    manager = WorkerManager(concurrency=2)
    done: set[str] = set()
    ids = {name: number for number, name in enumerate(dag.tasks, 1)}
    names = {number: name for name, number in ids.items()}
    launched: set[str] = set()
    try:
        while len(done) < len(dag.tasks):
            for name, task in dag.tasks.items():
                if name not in launched and set(task.local_inputs) <= done:
                    context = TaskContext(dag.name, name, 5, 1, LOGICAL_DATE, params, dag.secret_params)
                    manager.launch(Attempt(ids[name], dag, task, context))
                    launched.add(name)
            outcomes, _ = drain(manager, 1)
            for number, outcome in outcomes.items():
                assert outcome.status == SUCCESS, (names[number], outcome)
                done.add(names[number])
    finally:
        manager.shutdown(0)
    with sqlite3.connect(tmp_path / "dags" / "warehouse.db") as conn:
        query = "SELECT SUM(order_count) FROM daily_sales_summary WHERE order_date = ?"
        assert conn.execute(query, ["2024-06-03"]).fetchone() == (12,)


def test_get_manager_finds_the_worker_and_explains_unknown_names() -> None:
    manager = get_manager("worker", 3)
    try:
        assert isinstance(manager, WorkerManager)
        assert manager.concurrency == 3
    finally:
        manager.shutdown(0)
    assert available_managers()[0] == "worker"
    with pytest.raises(UsageError) as error:
        get_manager("wroker", None)
    assert str(error.value) == (
        "unknown manager 'wroker' (did you mean 'worker'? available managers: worker, kubernetes)"
    )


def test_get_manager_loads_plug_ins_by_entry_point_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import dagctl.plugins

    class Custom:
        name = "custom"

        def __init__(self, concurrency: int | None) -> None:
            self.concurrency = concurrency

    monkeypatch.setattr(dagctl.plugins, "manager_names", lambda: frozenset({"custom"}))
    monkeypatch.setattr(dagctl.plugins, "load_manager", lambda name: Custom)
    manager = get_manager("custom", 5)
    assert isinstance(manager, Custom) and manager.concurrency == 5
    assert available_managers() == ["worker", "kubernetes", "custom"]
    with pytest.raises(UsageError, match="did you mean 'custom'"):
        get_manager("custm", None)
