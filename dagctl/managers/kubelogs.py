"""Tailing a pod's log into the state database while it runs.

The API has no byte offsets for logs, so each read asks for the lines of a window
(`sinceSeconds`: the time since the previous read, plus a margin, measured on one
clock) with their timestamps, and keeps only the lines newer than the last one taken
(lines sharing that very timestamp are counted). What is kept goes through a LogBuffer,
capped and masked as the worker's: `take_new()` while the pod runs, `finish()` when it
has ended, exactly as with a local process.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone

from dagctl.execution.logbuffer import LogBuffer

# Overlap between two reads' windows: lines written while the previous answer was on
# its way, and the API's whole-second rounding; duplicates are dropped by timestamp.
WINDOW_MARGIN_S = 5
TAIL_INTERVAL_S = 2.0  # how often a running pod's new lines are read


def timestamp_ns(text: bytes) -> int | None:
    """An RFC 3339 timestamp as the kubelet writes it (2024-06-01T02:15:00.123456789Z)
    in nanoseconds since the epoch; None when it is not one."""
    try:
        raw = text.decode("ascii")
        whole = datetime.strptime(raw[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except (UnicodeDecodeError, ValueError):
        return None
    rest = raw[19:]
    fraction = ""
    if rest.startswith("."):
        digits = rest[1:].rstrip("Z")
        if not digits.isdigit():
            return None
        fraction = digits[:9]
    elif rest not in ("Z", ""):
        return None
    return int(whole.timestamp()) * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)


class LogTail:
    """One pod's log, read a window at a time; see the module docstring."""

    def __init__(
        self, cap_bytes: int | None, secrets: Iterable[str], wall: Callable[[], float] = time.time
    ) -> None:
        self.buffer = LogBuffer(cap_bytes, secrets)
        self._wall = wall
        self._last_ns: int | None = None
        self._at_last = 0  # lines taken carrying the timestamp _last_ns
        self._read_at: float | None = None
        self._before: float | None = None  # _read_at before the last window(), for rewind()

    def window(self) -> int | None:
        """sinceSeconds for the next read (None: the whole log); call before reading."""
        now = self._wall()
        self._before, self._read_at = self._read_at, now
        if self._before is None:
            return None
        return math.ceil(now - self._before) + WINDOW_MARGIN_S

    def rewind(self) -> None:
        """The read of the last window() failed: the next window starts where it did."""
        self._read_at = self._before

    def feed(self, chunks: Iterable[bytes]) -> None:
        """The body of one read, in chunks: lines of `TIMESTAMP text`."""
        pending = b""
        seen_at_last = 0
        for chunk in chunks:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                seen_at_last = self._line(line + b"\n", seen_at_last)
        if pending:
            self._line(pending, seen_at_last)

    def _line(self, line: bytes, seen_at_last: int) -> int:
        stamp, _, text = line.partition(b" ")
        when = timestamp_ns(stamp)
        if when is None:  # not timestamped (a server that ignores the option): keep it all
            self.buffer.feed(line)
            return seen_at_last
        if self._last_ns is not None and when <= self._last_ns:
            if when < self._last_ns:
                return seen_at_last
            seen_at_last += 1
            if seen_at_last <= self._at_last:
                return seen_at_last  # taken by the previous read
            self._at_last += 1
        else:
            self._last_ns, self._at_last, seen_at_last = when, 1, 1
        self.buffer.feed(text)
        return seen_at_last
