"""Plain-text rendering that needs no rich: the lines `trigger --wait` prints when
stdout is not a terminal (importing rich would cost it a tenth of a second).
render.py re-exports these."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


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
