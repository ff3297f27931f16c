"""The worker manager: task attempts as local subprocesses, watched without blocking.

The scheduler loop drives it:

    manager = WorkerManager(concurrency=4)
    manager.launch(attempt)                  # returns at once, never raises for task errors
    ready = select(manager.wait_fds(), timeout=min(poll_interval, manager.next_wakeup() or inf))
    result = manager.poll()                  # -> PollResult(finished=[Outcome], logs=[LogChunk])
    ...
    result = manager.shutdown(grace_seconds) # at SIGINT/SIGTERM: the last outcomes

Logs: for one attempt, the `LogChunk.text`s returned by successive poll() calls,
followed by its `Outcome.log`, are its complete stored log, in order, each piece of
output exactly once; append them in that order. Chunks are only emitted for attempts
running for a second or more (then at most once a second), so a short task's whole
log arrives in its Outcome, and a finished attempt never gets a chunk: the rest of
its output is in `Outcome.log`. The total is capped (see `dagctl.execution.logbuffer.LogBuffer`):
`Outcome.log_truncated_bytes` counts the bytes dropped from the middle, where the log
holds the line `[dagctl: N bytes of output truncated]`. Secrets are masked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import selectors
import signal
import subprocess
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from types import FrameType
from typing import Any

from dagctl.execution.attempt import FAILED, INTERRUPTED, SUCCESS, Attempt, LogChunk, Outcome, PollResult
from dagctl.execution.guardian import Guardian
from dagctl.execution.prepare import PrepareError, prepare
from dagctl.execution.taskprocess import DRAIN_TIMEOUT_S, Exit, TaskProcess

CHUNK_INTERVAL_S = 1.0
SHUTDOWN_KILLED = "killed at scheduler shutdown"
SHUTDOWN_NOT_STARTED = "not started: the scheduler shut down"
LEASE_KILLED = "killed by the guardian: its scheduler did not renew the lease in time"


@cache
def _pidfd_supported() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


@dataclass(slots=True)
class _Running:
    proc: TaskProcess
    next_chunk_at: float


class WorkerManager:
    """Runs attempts as subprocesses of this process, `concurrency` at a time.

    Attempts launched beyond `concurrency` wait inside the manager (FIFO) and start as
    slots free up, so the limit holds even if the caller over-launches; `running()`
    counts them too. Claim at most `free_slots()` attempts per iteration.

    Outcome fields: `status` SUCCESS/FAILED, or INTERRUPTED for attempts stopped at
    shutdown and those the guardian killed past `kill_after()`; `exit_code` the process's exit status
    (negative -N when it died from signal N, None when no process ran: no_op, start
    failures, cancelled before starting); `error` None on success, else "exit code N",
    "killed by signal SIGKILL", "timed out after Ns", "task needs parameter X",
    "cannot start the task: [Errno 2] No such file or directory: 'cmd'", the cancel
    reason, or "killed at scheduler shutdown"; `log` the output not yet handed over as
    chunks; `log_truncated_bytes` the bytes dropped by the cap.
    """

    name = "worker"

    def __init__(
        self,
        concurrency: int | None = None,
        *,
        kill_grace: float | None = None,
        log_cap_bytes: int | None = None,
        chunk_interval: float = CHUNK_INTERVAL_S,
        use_guardian: bool = True,
    ) -> None:
        self.concurrency = max(1, concurrency or os.cpu_count() or 1)
        self.kill_grace = kill_grace
        self.log_cap_bytes = log_cap_bytes
        self.chunk_interval = chunk_interval
        self._running: dict[int, _Running] = {}
        self._waiting: deque[Attempt] = deque()
        self._done: list[Outcome] = []
        self._guardian = Guardian() if use_guardian else None
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._closed = False
        self._old_sigchld: Any = None
        self._sigchld_installed = False
        if not _pidfd_supported():
            # Without pidfds a leader's exit makes no descriptor readable (its pipe may
            # reach EOF just before it becomes waitable); a SIGCHLD handler writing to
            # our self-pipe fills the gap. Only the main thread may install one; other
            # threads fall back on next_wakeup()'s short polling.
            with contextlib.suppress(ValueError):
                self._old_sigchld = signal.signal(signal.SIGCHLD, self._on_sigchld)
                self._sigchld_installed = True

    # ------------------------------------------------------------ Manager protocol

    def launch(self, attempt: Attempt) -> None:
        """Start the attempt (or queue it when all slots are busy) and return at once.

        A no_op (which never takes a slot), an attempt that cannot be prepared and a
        process that cannot start all end immediately: their Outcome comes from the next
        poll(), and wait_fds() is readable until then. Raises only for caller bugs:
        ValueError for an id already in flight, RuntimeError after shutdown()."""
        key = attempt.task_run_id
        if self._closed:
            raise RuntimeError("the worker manager has been shut down")
        if key in self._running or any(a.task_run_id == key for a in self._waiting):
            raise ValueError(f"task run {key} is already launched")
        if attempt.task.type == "no_op":
            self._finish_now(Outcome(key, SUCCESS))
        elif len(self._running) >= self.concurrency:
            self._waiting.append(attempt)
        else:
            self._start(attempt)

    def poll(self) -> PollResult:
        """Never blocks. Returns the Outcomes of attempts that ended since the last call
        and LogChunks of new output of attempts still running."""
        result = PollResult()
        if self._closed:
            return result
        self._drain_wake()
        now = time.monotonic()
        for key, run in list(self._running.items()):
            ended = run.proc.poll(now)
            if ended is not None:
                del self._running[key]
                result.finished.append(self._outcome(key, run.proc, ended))
            elif now >= run.next_chunk_at:
                run.next_chunk_at = now + self.chunk_interval
                text = run.proc.buffer.take_new()
                if text:
                    result.logs.append(LogChunk(key, text))
        while self._waiting and len(self._running) < self.concurrency:
            self._start(self._waiting.popleft())
        result.finished.extend(self._done)
        self._done.clear()
        return result

    def running(self) -> int:
        """Attempts started and not yet reported, plus those waiting for a slot. A no_op
        or an attempt that failed to start does not count: it has already ended."""
        return len(self._running) + len(self._waiting)

    def wait_fds(self) -> Sequence[int]:
        """Our self-pipe plus each running attempt's output pipe and pidfd. There are
        two per attempt: with many slots use `selectors`, not select.select (FD_SETSIZE)."""
        if self._closed:
            return []
        fds = [self._wake_r]
        for run in self._running.values():
            fds.extend(run.proc.fds())
        return fds

    def cancel(self, task_run_id: int, reason: str) -> None:
        """SIGTERM the attempt's process group, SIGKILL after the grace; its Outcome
        (FAILED, error=reason) comes from poll(). Unknown ids are ignored."""
        run = self._running.get(task_run_id)
        if run is not None:
            run.proc.terminate(reason)
            return
        for attempt in self._waiting:
            if attempt.task_run_id == task_run_id:
                self._waiting.remove(attempt)
                self._finish_now(Outcome(task_run_id, FAILED, error=reason))
                return

    def shutdown(self, grace_seconds: float) -> PollResult:
        """Stop: attempts still waiting for a slot end INTERRUPTED as not started; running
        ones get `grace_seconds` to finish (their output is still read), then their
        groups are SIGKILLed and they end INTERRUPTED with "killed at scheduler
        shutdown" (run again, not counted as a failure). Returns every outcome not yet
        reported (no chunks: remaining output is in Outcome.log). The manager is closed
        afterwards: poll() returns nothing, launch() raises."""
        result = PollResult()
        if self._closed:
            return result
        for attempt in self._waiting:
            result.finished.append(Outcome(attempt.task_run_id, INTERRUPTED, error=SHUTDOWN_NOT_STARTED))
        self._waiting.clear()
        self._wait_all(time.monotonic() + max(0.0, grace_seconds), result)
        for run in self._running.values():
            run.proc.kill(SHUTDOWN_KILLED)
        killed = PollResult()
        self._wait_all(time.monotonic() + DRAIN_TIMEOUT_S + 1.0, killed)
        for key, run in self._running.items():
            # Unkillable for now (uninterruptible sleep): report it; the guardian's
            # final SIGKILL below gets another go at the group.
            run.proc.close()
            killed.finished.append(self._outcome(key, run.proc, Exit(FAILED, None, SHUTDOWN_KILLED)))
        result.finished.extend(
            dataclasses.replace(o, status=INTERRUPTED) if o.error == SHUTDOWN_KILLED else o
            for o in killed.finished
        )
        self._running.clear()
        result.finished.extend(self._done)
        self._done.clear()
        self._close()
        return result

    # ------------------------------------------------------------ extras for the loop

    def free_slots(self) -> int:
        return max(0, self.concurrency - self.running())

    def next_wakeup(self) -> float | None:
        """Seconds until poll() must run even if no fd becomes readable (a timeout, a
        kill after the grace, a log chunk due); None when only fds matter."""
        now = time.monotonic()
        times = []
        for run in self._running.values():
            deadline = run.proc.next_deadline()
            if deadline is not None:
                times.append(deadline)
            if run.proc.buffer.has_new:
                times.append(run.next_chunk_at)
        if self._done:
            times.append(now)
        return max(0.0, min(times) - now) if times else None

    def kill_after(self, deadline: float | None) -> None:
        """Have the guardian (a separate process, alive while we are stalled) SIGKILL every
        running attempt once `deadline` (time.monotonic()) passes without a later call.
        The scheduler calls this after each lease renewal the database confirmed."""
        if self._guardian is not None:
            self._guardian.kill_after(deadline)

    def pid_of(self, task_run_id: int) -> int | None:
        """The pid (= process group id) of a running attempt, for the task_run row."""
        run = self._running.get(task_run_id)
        return run.proc.pid if run is not None else None

    # ------------------------------------------------------------ internals

    def _start(self, attempt: Attempt) -> None:
        key = attempt.task_run_id
        try:
            launch = prepare(attempt.dag, attempt.task, attempt.context)
        except PrepareError as exc:
            self._finish_now(Outcome(key, FAILED, error=exc.message))
            return
        if launch is None:
            self._finish_now(Outcome(key, SUCCESS))
            return
        try:
            proc = TaskProcess(
                launch, guardian=self._guardian, kill_grace=self.kill_grace, log_cap_bytes=self.log_cap_bytes
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            self._finish_now(Outcome(key, FAILED, error=f"cannot start the task: {exc}"))
            return
        self._running[key] = _Running(proc, proc.started + self.chunk_interval)

    def _outcome(self, key: int, proc: TaskProcess, ended: Exit) -> Outcome:
        status, error = ended.status, ended.error
        deadline = self._guardian.deadline if self._guardian is not None else None
        if (
            ended.exit_code == -signal.SIGKILL
            and deadline is not None
            and time.monotonic() >= deadline
            and ended.error != SHUTDOWN_KILLED
        ):
            # Past the deadline the guardian kills the group: the task did not fail.
            status, error = INTERRUPTED, LEASE_KILLED
        return Outcome(
            key,
            status,
            exit_code=ended.exit_code,
            error=error,
            log=proc.buffer.finish(),
            log_truncated_bytes=proc.buffer.truncated_bytes,
            outputs=ended.outputs if status == SUCCESS else None,
        )

    def _wait_all(self, deadline: float, result: PollResult) -> None:
        with selectors.DefaultSelector() as selector:
            while self._running:
                now = time.monotonic()
                for key, run in list(self._running.items()):
                    ended = run.proc.poll(now)
                    if ended is not None:
                        del self._running[key]
                        result.finished.append(self._outcome(key, run.proc, ended))
                if not self._running or now >= deadline:
                    return
                for registered in list(selector.get_map()):
                    selector.unregister(registered)
                for fd in self.wait_fds():
                    selector.register(fd, selectors.EVENT_READ)
                wakeup = self.next_wakeup()
                timeout = deadline - now if wakeup is None else min(deadline - now, wakeup)
                selector.select(max(0.0, min(timeout, 0.5)))
                self._drain_wake()

    def _finish_now(self, outcome: Outcome) -> None:
        self._done.append(outcome)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            os.write(self._wake_w, b"\0")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _on_sigchld(self, signum: int, frame: FrameType | None) -> None:
        self._wake()
        if callable(self._old_sigchld):
            self._old_sigchld(signum, frame)

    def _close(self) -> None:
        self._closed = True
        if self._guardian is not None:
            self._guardian.close()
        if self._sigchld_installed:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGCHLD, self._old_sigchld or signal.SIG_DFL)
            self._sigchld_installed = False
        os.close(self._wake_r)
        os.close(self._wake_w)
