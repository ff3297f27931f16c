"""Plain-text pieces of the terminal output, without rich: durations, times, cutting and
wrapping, and the progress lines printed when stdout is not a terminal (`trigger --wait`
prints those from here: importing rich would cost it a tenth of a second)."""

from __future__ import annotations

import builtins
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

MAX_LAYOUT_WIDTH = 100  # wider terminals get the same compact layout
# The rich style each status is drawn in: plain names here, so that the rich-free
# writers (listing.py) agree with render.py on them.
STATUS_STYLE = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "red",
    "cancelled": "yellow",
    "interrupted": "yellow",
    "running": "cyan",
    "queued": "blue",
    "waiting": "magenta",
    "pending": "dim",
    "skipped": "dim",
}
_DUMB_TERMINALS = ("dumb", "unknown")


def unstyled_width(stream: TextIO) -> int | None:
    """The width rich would lay `stream` (stdout) out in when it would draw no style
    there, worked out as rich's Console does, without importing rich; None when it would
    draw styles, or when rich alone can tell (FORCE_COLOR or TTY_COMPATIBLE set, whose
    meaning changed between rich versions; Windows; Jupyter; a dumb terminal).

    No style: not a terminal, or NO_COLOR set (dagctl's console() then asks for no
    colour system). The width: COLUMNS, else the first of stdin, stdout and stderr that
    is a terminal, else 80."""
    environ = os.environ
    if "FORCE_COLOR" in environ or "TTY_COMPATIBLE" in environ or "get_ipython" in vars(builtins):
        return None
    if sys.platform == "win32" or getattr(sys.stdin, "__module__", "").startswith("idlelib"):
        return None
    try:
        terminal = stream.isatty()
    except ValueError:  # closed
        terminal = False
    if terminal and (not environ.get("NO_COLOR") or environ.get("TERM", "").lower() in _DUMB_TERMINALS):
        return None
    columns = environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns)
    for descriptor in (0, 1, 2):
        try:
            return os.get_terminal_size(descriptor).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def when(iso: str | None) -> str:
    """'2024-06-01T00:15:02.123456Z' -> '2024-06-01 00:15:02 UTC'."""
    if not iso:
        return "-"
    return iso.replace("T", " ")[:19] + " UTC"


def fit(text: str, width: int) -> str:
    """Cut to `width` cells with an ellipsis."""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


def wrap_parts(parts: Sequence[str], width: int, indent: str) -> list[str]:
    """Join parts with ' · ', starting a new indented line instead of wrapping a part."""
    lines: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current} · {part}" if current else part
        if current and len(indent) + len(candidate) > width:
            lines.append(indent + current)
            current = part
        else:
            current = candidate
    if current:
        lines.append(indent + current)
    return [fit(line, width) for line in lines]


def progress_lines(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> list[str]:
    """Plain lines for what changed between two views of a run (no TTY)."""
    stamp = datetime.now().strftime("%H:%M:%S")  # local wall time: this is for people
    lines = []
    run_line = None
    if previous is None or previous["status"] != current["status"]:
        run_line = f"{stamp} run {current['id']} {current['dag']}: {current['status']}"
    if run_line and current["status"] in ("queued", "running"):
        lines.append(run_line)
        run_line = None
    before = {t["task"]: (t["status"], t["attempt"]) for t in (previous or {}).get("tasks", ())}
    for task in current["tasks"]:
        if before.get(task["task"]) == (task["status"], task["attempt"]):
            continue
        detail = f"attempt {task['attempt']}"
        if task["status"] not in ("queued", "running", "waiting"):
            detail += f", {duration(task['duration_s'])}"
        if task["exit_code"] is not None:
            detail += f", exit {task['exit_code']}"
        if task["error"] and task["status"] != "success":
            detail += f": {' '.join(str(task['error']).split())}"
        status = "waiting for its retry delay" if task["status"] == "waiting" else task["status"]
        lines.append(f"{stamp} {task['task']}: {status} ({detail})")
    if run_line:
        lines.append(run_line)
    return lines


def backfill_lines(seen: dict[int, str], view: Mapping[str, Any]) -> list[str]:
    """One line per run of the backfill that ended since the last view (no TTY);
    `seen` holds what was already told."""
    lines = []
    for run in view["runs"]:
        if run["status"] in ("queued", "running") or seen.get(run["id"]) == run["status"]:
            continue
        seen[run["id"]] = run["status"]
        error = ""
        if run["error"] and run["status"] != "success":
            error = f": {' '.join(str(run['error']).split())}"
        lines.append(
            f"run {run['id']} {run['logical_date']}: {run['status']}{error} ({len(seen)}/{view['total']})"
        )
    return lines
