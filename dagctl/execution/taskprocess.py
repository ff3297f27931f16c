"""A task attempt's process: its own session and process group, its output pipe,
its deadlines, and how it is stopped.

Start a `Launch` (argv, env, cwd, timeout) with `TaskProcess`, then call `poll()`
when one of `fds()` is readable or `next_deadline()` has passed. Nothing here
blocks for longer than reading what is already in a pipe.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagctl.execution.attempt import FAILED, SUCCESS
from dagctl.execution.guardian import Guardian
from dagctl.execution.logbuffer import LogBuffer
from dagctl.execution.outputs import OUTPUT_VARIABLE, OutputError, collect, discard, new_output_file

# After the leader exits and its group is killed, the pipe reaches EOF at once unless
# a process that left the group still holds it; stop waiting for that one after this.
DRAIN_TIMEOUT_S = 2.0
# Output read from one task per poll, so a flooding task cannot hold the loop.
READ_BUDGET_BYTES = 1024 * 1024


def default_kill_grace() -> float:
    """`DAGCTL_KILL_GRACE` seconds (see dagctl.config)."""
    from dagctl.config import tuning

    return tuning().kill_grace_seconds


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything needed to start one attempt's process."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    timeout: float | None  # seconds; None = no limit
    secrets: tuple[str, ...] = ()  # values to mask in the captured output


@dataclass(frozen=True, slots=True)
class Exit:
    """How a task process ended.

    status: SUCCESS or FAILED. exit_code: the leader's exit status; negative (-N) when
    it died from signal N; None if it could not be observed. error: None on success,
    else "exit code N", "killed by signal SIGKILL", "timed out after Ns" or the reason
    given to terminate()/kill()."""

    status: str
    exit_code: int | None
    error: str | None
    outputs: dict[str, Any] | None = None  # what a successful task wrote to $DAGCTL_OUTPUT


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}".rstrip("0")


class TaskProcess:
    """One running attempt: its process group, its output pipe and its deadlines.

    Start it (the constructor runs Popen and may raise OSError, e.g. command not found),
    then call `poll()` whenever one of `fds()` is readable or `next_deadline()` has
    passed; `poll()` returns None while running and an `Exit` once: the leader has
    been reaped, its whole group SIGKILLed (so `sleep 300 &` does not outlive the task)
    and the pipe drained. `buffer` holds the captured output.
    """

    def __init__(
        self,
        launch: Launch,
        *,
        guardian: Guardian | None = None,
        kill_grace: float | None = None,
        log_cap_bytes: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> None:
        self.launch = launch
        self.kill_grace = default_kill_grace() if kill_grace is None else max(0.0, kill_grace)
        self.buffer = LogBuffer(log_cap_bytes, launch.secrets, on_text)
        self.started = time.monotonic()
        self.deadline = self.started + launch.timeout if launch.timeout else None
        # Every attempt gets a fresh, empty file: a retry never sees an earlier try's outputs.
        self._output_path: str | None = new_output_file()
        try:
            self._popen = subprocess.Popen(
                launch.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                cwd=launch.cwd,
                env={**launch.env, OUTPUT_VARIABLE: self._output_path},
                start_new_session=True,
                bufsize=0,
            )
        except BaseException:
            discard(self._output_path)
            raise
        self.pid = self.pgid = self._popen.pid
        self._guardian = guardian
        assert self._popen.stdout is not None
        self._pipe: int | None = self._popen.stdout.fileno()
        self._pidfd: int | None = None
        try:
            if guardian is not None:
                guardian.register(self.pgid)
            os.set_blocking(self._pipe, False)
        except BaseException:
            # Out of descriptors or the like: a task nobody watches must not keep running.
            _killpg(self.pgid, signal.SIGKILL)
            self._popen.wait()
            self._popen.stdout.close()
            discard(self._output_path)
            raise
        with contextlib.suppress(AttributeError, OSError):
            # Readable when the leader exits: wakes a select() without any SIGCHLD handler.
            self._pidfd = os.pidfd_open(self.pid)
        self._returncode: int | None = None
        self._lost = False
        self._reaped_at: float | None = None
        self._kill_at: float | None = None
        self._reason: str | None = None
        self._result: Exit | None = None

    @property
    def finished(self) -> bool:
        return self._result is not None

    def fds(self) -> list[int]:
        """Descriptors to wait on: the output pipe and, if available, a pidfd."""
        return [fd for fd in (self._pipe, self._pidfd) if fd is not None]

    def next_deadline(self) -> float | None:
        """The monotonic time by which poll() must run again, whatever the fds say."""
        times = [self._kill_at]
        if self._reason is None:
            times.append(self.deadline)
        if self._reaped_at is not None and self._pipe is not None:
            times.append(self._reaped_at + DRAIN_TIMEOUT_S)
        if self._pidfd is None and self._reaped_at is None:
            times.append(time.monotonic() + 0.05)  # no pidfd: notice the exit by polling
        return min((t for t in times if t is not None), default=None)

    def terminate(self, reason: str, now: float | None = None) -> None:
        """SIGTERM the group now and SIGKILL it after the grace period; the attempt
        fails with `reason` (the first reason given wins)."""
        if self._reaped_at is not None or self._reason is not None:
            return
        now = time.monotonic() if now is None else now
        self._reason = reason
        if self.kill_grace <= 0:
            self.kill(reason)
            return
        _killpg(self.pgid, signal.SIGTERM)
        _killpg(self.pgid, signal.SIGCONT)  # a stopped task would never see the SIGTERM
        self._kill_at = now + self.kill_grace

    def kill(self, reason: str) -> None:
        """SIGKILL the group at once; the attempt fails with `reason` unless it already
        has one."""
        if self._reason is None:
            self._reason = reason
        if self._reaped_at is None:
            _killpg(self.pgid, signal.SIGKILL)
        self._kill_at = None

    def poll(self, now: float | None = None) -> Exit | None:
        if self._result is not None:
            return self._result
        now = time.monotonic() if now is None else now
        self._check_leader(now)
        self.read_output()
        if self._reaped_at is None:
            if self.deadline is not None and self._reason is None and now >= self.deadline:
                self.terminate(f"timed out after {_seconds(self.launch.timeout or 0)}s", now)
            if self._kill_at is not None and now >= self._kill_at:
                self.kill(self._reason or "killed")
            return None
        if self._pipe is not None:
            if self._reaped_at is not None and now < self._reaped_at + DRAIN_TIMEOUT_S:
                return None
            self._close_pipe()
        self._result = self._with_outputs(self._exit())
        return self._result

    def read_output(self, budget: int = READ_BUDGET_BYTES) -> None:
        while self._pipe is not None and budget > 0:
            try:
                data = os.read(self._pipe, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_pipe()
                return
            self.buffer.feed(data)
            budget -= len(data)

    def close(self) -> None:
        """Release the descriptors; for a process that cannot be waited for any more."""
        self._close_pipe()
        self._close_pidfd()
        path, self._output_path = self._output_path, None
        discard(path)

    def _check_leader(self, now: float) -> None:
        if self._reaped_at is not None:
            return
        try:
            # WNOWAIT: look without reaping. While the leader is an unreaped zombie its
            # pid, which is also the group id, cannot be reused, so killing the group
            # cannot hit an unrelated process.
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            # Reaped behind our back (someone called waitpid(-1)): the status is lost, and
            # the group id may already name someone else's group, so do not signal it.
            self._lost = True
        else:
            if info is None:
                return
            _killpg(self.pgid, signal.SIGKILL)
            self._returncode = self._popen.wait()
        self._reaped_at = now
        self._kill_at = None
        self._close_pidfd()
        if self._guardian is not None:
            self._guardian.unregister(self.pgid)

    def _exit(self) -> Exit:
        code = self._returncode
        if self._reason is not None:
            return Exit(FAILED, code, self._reason)
        if self._lost:
            return Exit(FAILED, None, "exit status lost: the process was reaped elsewhere")
        if code == 0:
            return Exit(SUCCESS, 0, None)
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return Exit(FAILED, code, f"killed by signal {name}")
        return Exit(FAILED, code, f"exit code {code}")

    def _with_outputs(self, ended: Exit) -> Exit:
        """A successful exit carries the task's outputs; outputs that cannot be stored
        fail the attempt (its downstream would read nothing or garbage)."""
        path, self._output_path = self._output_path, None
        if path is None or ended.status != SUCCESS:
            discard(path)
            return ended
        try:
            return Exit(SUCCESS, ended.exit_code, None, collect(path))
        except OutputError as exc:
            return Exit(FAILED, ended.exit_code, str(exc))
        finally:
            discard(path)

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            self._pipe = None
            assert self._popen.stdout is not None
            self._popen.stdout.close()

    def _close_pidfd(self) -> None:
        if self._pidfd is not None:
            fd, self._pidfd = self._pidfd, None
            os.close(fd)
