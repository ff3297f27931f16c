"""A helper process that kills our task process groups if we die, even by `kill -9`,
or if we stall past our leases.

Task processes live in their own sessions, so nothing kills them when the scheduler
(or `dagctl run`) disappears. The guardian is one tiny Python (no site, no dagctl
imports) reading `+PGID` / `-PGID` lines on its stdin. The kernel closes our end of
that pipe however we die; the guardian then sees EOF and SIGKILLs every group still
registered. A normal shutdown closes the pipe the same way, after the manager has
reaped everything, so the set is empty by then.

A scheduler that is stalled rather than dead (SIGSTOP, a frozen VM's scheduler
process, swapping, a long GC pause) keeps the pipe open and renews nothing. So the
scheduler also sends `DEADLINE` lines (`D<seconds on CLOCK_MONOTONIC>`): after each
lease renewal the database confirmed, the instant by which our leases could next run
out, minus a margin. When that instant passes without a newer one, the guardian
SIGKILLs every registered group itself, without waiting for the stalled loop, so the
tasks are dead before any other scheduler may reap their attempts. CLOCK_MONOTONIC
is one clock for every process of the host, so the two processes agree on it.

Limits: a task process that moves itself to another process group or session
(`setsid`, `setpgid`) escapes both the guardian and the timeout kill. A freeze of the
whole host or container (the guardian frozen with the tasks) ends with the guardian
killing them as soon as it runs again, which may be a moment after another scheduler
has started the task again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

# Runs with `python -S -c`: keep it to builtins and the os/signal modules.
GUARDIAN_CODE = """\
import os, select, signal, time
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
groups = set()
deadline = None
buf = b""
def kill_all():
    for pgid in groups:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    groups.clear()
while True:
    if deadline is not None and groups:
        left = deadline - time.monotonic()
        if left <= 0:
            kill_all()
            continue
        try:
            readable, _, _ = select.select([0], [], [], left)
        except InterruptedError:
            continue
        if not readable:
            continue
    try:
        data = os.read(0, 65536)
    except InterruptedError:
        continue
    except OSError:
        data = b""
    if not data:
        break
    buf += data
    *lines, buf = buf.split(b"\\n")
    for line in lines:
        kind = line[:1]
        if kind == b"D":
            try:
                deadline = float(line[1:]) if line[1:] else None
            except ValueError:
                pass
            continue
        try:
            pgid = int(line[1:])
        except ValueError:
            continue
        if kind == b"+":
            groups.add(pgid)
        elif kind == b"-":
            groups.discard(pgid)
kill_all()
"""


class Guardian:
    """One per scheduler process (not per task). Started lazily by the first register().

    Call `register(pgid)` right after starting a task process group, `unregister(pgid)`
    once its leader has been reaped and the group killed, and `close()` at shutdown.
    If the guardian itself dies, the next message starts a new one with the full set.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._groups: set[int] = set()
        self._deadline: float | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def groups(self) -> frozenset[int]:
        return frozenset(self._groups)

    def register(self, pgid: int) -> None:
        self._groups.add(pgid)
        self._send(f"+{pgid}\n")

    def kill_after(self, deadline: float | None) -> None:
        """SIGKILL every registered group once `deadline` (time.monotonic()) has passed,
        unless a later call moves it first; None: never for that reason. The groups
        killed are forgotten by the guardian (not by us: unregister them as usual)."""
        self._deadline = deadline
        if self._groups or self._proc is not None:
            self._send("D\n" if deadline is None else f"D{deadline!r}\n")

    @property
    def deadline(self) -> float | None:
        return self._deadline

    def unregister(self, pgid: int) -> None:
        if pgid in self._groups:
            self._groups.discard(pgid)
            self._send(f"-{pgid}\n")

    def close(self, timeout: float = 2.0) -> None:
        """Close the pipe (the guardian kills whatever is still registered) and reap it."""
        self._closed = True
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _send(self, line: str) -> None:
        if self._closed:
            return
        if self._proc is None or self._proc.poll() is not None:
            self._spawn()  # sends the whole current set, this change included
            return
        assert self._proc.stdin is not None
        try:
            os.write(self._proc.stdin.fileno(), line.encode())
        except BrokenPipeError:
            self._spawn()

    def _spawn(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(OSError):
                if self._proc.stdin is not None:
                    self._proc.stdin.close()
            self._proc.wait()
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-c", GUARDIAN_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            # Its own session: a Ctrl-C or SIGHUP aimed at our terminal does not reach it.
            start_new_session=True,
            bufsize=0,
        )
        lines = [] if self._deadline is None else [f"D{self._deadline!r}\n"]
        lines.extend(f"+{g}\n" for g in sorted(self._groups))
        if lines:
            assert self._proc.stdin is not None
            os.write(self._proc.stdin.fileno(), "".join(lines).encode())
