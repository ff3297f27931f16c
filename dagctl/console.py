"""Terminal rendering: the only module that imports rich."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

STATUS_STYLE = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "red",
    "cancelled": "yellow",
    "running": "cyan",
    "queued": "blue",
    "waiting": "magenta",
}


def console() -> Console:
    # rich already honours NO_COLOR and drops colour when stdout is not a terminal.
    return Console(highlight=False)


def _status(value: str) -> str:
    style = STATUS_STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def render_status(runs: Sequence[dict[str, Any]], out: Console | None = None) -> None:
    out = out or console()
    if not runs:
        out.print("no runs yet")
        return
    for run in runs:
        title = (
            f"run {run['id']}  {run['dag']}  {_status(run['status'])}  "
            f"{run['kind']} {run['logical_date'] or ''}  {_duration(run['duration_s'])}"
        )
        table = Table(title=title, title_justify="left", expand=False, box=None, pad_edge=False)
        table.add_column("task", overflow="fold")
        table.add_column("status")
        table.add_column("try", justify="right")
        table.add_column("took", justify="right")
        table.add_column("exit", justify="right")
        table.add_column("error", overflow="fold", max_width=30)
        for task in run["tasks"]:
            table.add_row(
                task["task"],
                _status(task["status"]),
                str(task["attempt"]),
                _duration(task["duration_s"]),
                "-" if task["exit_code"] is None else str(task["exit_code"]),
                task["error"] or "",
            )
        out.print(table)
        out.print()
