"""What ends the scheduler's wait between iterations: a task's exit or output, another
process's news (a PostgreSQL NOTIFY; on SQLite, a change of the file's data version,
looked at every 50 ms), a stop signal, or the timeout. Only `Scheduler.run` waits;
`run_once` never does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable, Collection, Iterator
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagctl.store import Store
    from dagctl.store.wakeup import DataVersionWatch, Listener

log = logging.getLogger("dagctl.scheduling.wakeups")


class Wakeups:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._listener: Listener | DataVersionWatch | None = None
        self._pipe: tuple[int, int] | None = None  # (read, write) while armed
        self.stop_signal: int | None = None  # SIGINT or SIGTERM received: stop
        self.hurry = False  # a second one: stop without waiting for running tasks

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """While the loop runs: SIGINT and SIGTERM ask it to stop, and wake its wait
        through a pipe (a handler can do no more safely)."""
        read, write = os.pipe()
        os.set_blocking(read, False)
        os.set_blocking(write, False)
        self._pipe = (read, write)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._pipe = None
            os.close(read)
            os.close(write)
            self.drop_listener()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.hurry = self.hurry or self.stop_signal is not None
        self.stop_signal = signum
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.write(self._pipe[1], b"x")

    def wait(
        self,
        timeout: float,
        task_fds: Callable[[], Collection[int]],
        on_task_output: Callable[[], bool],
    ) -> bool:
        """Sleep until there is something to do; True when another process's news woke
        us. Output of running tasks (kept for their logs) and our own NOTIFYs (sent
        for the others) are taken in without ending the wait: `on_task_output` takes
        the tasks' in and says whether that is worth an iteration."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._ensure_listener()
        wake_fd = None if self._pipe is None else self._pipe[0]
        while True:
            listener, listener_fd = self._listener, None
            if listener is not None:
                try:
                    listener_fd = listener.fileno()  # None: SQLite's, looked at now and then
                except Exception:  # closed under us (the server went away)
                    self.drop_listener()
                    listener = None
            tasks = set(task_fds())
            poller = select.poll()
            for fd in (wake_fd, *tasks, listener_fd):
                if fd is not None:
                    poller.register(fd, select.POLLIN)
            events: list[tuple[int, int]] = []
            wait = max(0.0, deadline - time.monotonic())
            if listener is not None and listener.check_every is not None:
                wait = min(wait, listener.check_every)  # no descriptor: look now and then
            with contextlib.suppress(InterruptedError):
                events = poller.poll(wait * 1000)
            self._drain_pipe()
            foreign = False
            if listener is not None:
                try:
                    foreign = listener.drain()
                except Exception:  # the NOTIFY connection broke: reconnect on the next wait
                    self.drop_listener()
                    return False
            fired = {fd for fd, _ in events}
            if foreign or wake_fd in fired or self.stop_signal is not None or time.monotonic() >= deadline:
                return foreign
            if fired & tasks and on_task_output():
                return False

    def drop_listener(self) -> None:
        """Forget the listener (its connection is broken, or the database is away): the
        next wait opens a new one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()

    def _ensure_listener(self) -> None:
        if self._listener is None:
            try:
                self._listener = self._store.listener()
            except Exception as exc:  # LISTEN is an optimisation; polling still works
                log.debug("LISTEN unavailable: %s", exc)

    def _drain_pipe(self) -> None:
        if self._pipe is None:
            return
        try:
            while os.read(self._pipe[0], 512):
                pass
        except BlockingIOError:
            pass


__all__ = ["Wakeups"]
