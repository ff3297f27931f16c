"""`dagctl run DAG TASK`: one attempt here and now, in the foreground.

It shares its execution code (environment, process group, timeout, log capture) with
the worker manager: `prepare` builds the launch, `TaskProcess` runs it. Each task runs
in its own session, so its process group is the unit that timeouts, cancels and the
guardian kill: no child outlives its task.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any, TextIO

from dagctl.dags.model import Dag, Task
from dagctl.execution.attempt import FAILED, SUCCESS, Outcome, TaskContext
from dagctl.execution.guardian import Guardian
from dagctl.execution.prepare import PrepareError, prepare
from dagctl.execution.taskprocess import Exit, TaskProcess


def exit_status(outcome: Outcome) -> int:
    """The process exit code `dagctl run` should return for an outcome: the task's own
    code, 128+N for a death by signal N (the shell convention), 1 for other failures."""
    if outcome.status == SUCCESS:
        return 0
    code = outcome.exit_code
    if code is not None and code > 0:
        return code
    if code is not None and code < 0:
        return 128 - code
    return 1


def run_foreground(
    dag: Dag,
    task: Task,
    context: TaskContext,
    out: TextIO | None = None,
    *,
    task_run_id: int = 0,
    kill_grace: float | None = None,
    log_cap_bytes: int | None = None,
    use_guardian: bool = True,
) -> Outcome:
    """Run one attempt here and now: `dagctl run DAG TASK`.

    Output (masked, uncapped) is written to `out` (default sys.stdout) line by line as
    it arrives. SIGINT/SIGTERM received meanwhile are forwarded to the task's group as
    SIGTERM, then SIGKILL after the grace (a second signal kills at once). Returns the
    Outcome: `log` is the whole capped, masked output, as the worker manager would
    store it. A no_op succeeds at once with exit_code None. Never raises for a task
    failure; see `exit_status` for the process exit code.
    """
    stream = out if out is not None else sys.stdout
    try:
        launch = prepare(dag, task, context)
    except PrepareError as exc:
        return Outcome(task_run_id, FAILED, error=exc.message)
    if launch is None:
        return Outcome(task_run_id, SUCCESS)

    broken: list[bool] = []

    def emit(text: str) -> None:
        # A closed terminal or `| head` must not cost the outcome: stop echoing only.
        if broken:
            return
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            broken.append(True)

    guardian = Guardian() if use_guardian else None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signals: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        signals.append(signum)
        with contextlib.suppress(OSError):
            os.write(wake_w, b"\0")

    previous: dict[signal.Signals, Any] = {}
    try:
        try:
            proc = TaskProcess(
                launch, guardian=guardian, kill_grace=kill_grace, log_cap_bytes=log_cap_bytes, on_text=emit
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            return Outcome(task_run_id, FAILED, error=f"cannot start the task: {exc}")
        with contextlib.suppress(ValueError):  # not the main thread: no forwarding
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        result = _wait_foreground(proc, wake_r, signals)
        return Outcome(
            task_run_id,
            result.status,
            exit_code=result.exit_code,
            error=result.error,
            log=proc.buffer.finish(),
            log_truncated_bytes=proc.buffer.truncated_bytes,
            outputs=result.outputs,
        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)
        if guardian is not None:
            guardian.close()


def _wait_foreground(proc: TaskProcess, wake_r: int, signals: list[int]) -> Exit:
    handled = 0
    with selectors.DefaultSelector() as selector:
        selector.register(wake_r, selectors.EVENT_READ)
        watched: set[int] = set()
        while True:
            while handled < len(signals):
                name = signal.Signals(signals[handled]).name
                if handled == 0:
                    proc.terminate(f"interrupted by {name}")
                else:
                    proc.kill(f"interrupted by {name}")
                handled += 1
            result = proc.poll()
            if result is not None:
                return result
            fds = set(proc.fds())
            for fd in watched - fds:
                selector.unregister(fd)
            for fd in fds - watched:
                selector.register(fd, selectors.EVENT_READ)
            watched = fds
            deadline = proc.next_deadline()
            timeout = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            for key, _ in selector.select(timeout):
                if key.fd == wake_r:
                    with contextlib.suppress(OSError):
                        os.read(wake_r, 512)
