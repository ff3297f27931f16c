"""Terminal rendering: the only module that imports rich.

Everything here takes the JSON-ready values the service layer returns, so what a
person sees and what `-o json` prints come from the same data. Layouts are built for
an 80-column terminal: long names are cut with an ellipsis, errors wrap on their own
indented lines. Colour comes from rich, which turns it off when the output is not a
terminal or NO_COLOR is set (`list` is then written without rich: cli/listing.py).
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from dagctl.cli import listing
from dagctl.cli.plaintext import MAX_LAYOUT_WIDTH, STATUS_STYLE, duration, fit, when, wrap_parts

STATUS_ICON = {
    "success": "✓",
    "failed": "✗",
    "upstream_failed": "✗",
    "cancelled": "-",
    "interrupted": "~",
    "skipped": "-",
    "running": "*",
    "queued": "·",
    "waiting": "·",
    "pending": " ",
}
ERROR_LINES = 3  # an error's full text is in `status -o json` and `logs`

# Fixed columns of a task line: "  ✓ " + task + "  " + status + "  " + try + "  " + took + "  " + exit
_STATUS_W, _TRY_W, _TOOK_W, _EXIT_W = 15, 3, 7, 4
_TASK_FIXED = 4 + 2 + _STATUS_W + 2 + _TRY_W + 2 + _TOOK_W + 2 + _EXIT_W


def console(stderr: bool = False) -> Console:
    # rich drops every style when the stream is not a terminal; NO_COLOR (no-color.org)
    # only drops its colours, so bold and dim escapes would stay: no styles at all then.
    plain = bool(os.environ.get("NO_COLOR"))
    return Console(highlight=False, stderr=stderr, color_system=None if plain else "auto")


def _style(status: str) -> str:
    return STATUS_STYLE.get(status, "")


def _width(out: Console) -> int:
    return min(out.width, MAX_LAYOUT_WIDTH)


# ---------------------------------------------------------------- status


def run_block(run: Mapping[str, Any], width: int, pending: Sequence[str] = ()) -> list[Text]:
    """One run as lines: a heading, a details line, the task table, errors indented
    under their task. Every line fits `width` cells."""
    lines: list[Text] = []
    status = run["status"]
    head = Text()
    head.append(f"run {run['id']}", style="bold")
    tail = f"  {status}  {duration(run['duration_s'])}"
    head.append("  " + fit(run["dag"], max(8, width - len(head.plain) - 2 - len(tail))), style="bold")
    head.append("  ")
    head.append(status, style=_style(status))
    head.append(f"  {duration(run['duration_s'])}")
    lines.append(head)
    details = [f"{run['kind']} by {run['creator']}", f"logical date {when(run['logical_date'])}"]
    if run.get("data_interval_start") and run["data_interval_start"] != run["data_interval_end"]:
        details.append(f"interval {when(run['data_interval_start'])} → {when(run['data_interval_end'])}")
    if run.get("backfill_id") is not None:
        details.append(f"backfill {run['backfill_id']}")
    if run.get("params"):
        details.append("params " + " ".join(f"{k}={_param_text(v)}" for k, v in run["params"].items()))
    if run.get("error"):
        details.append(str(run["error"]))
    lines.extend(Text(line, style="dim") for line in wrap_parts(details, width, "  "))
    tasks = list(run["tasks"])
    if not tasks and not pending:
        lines.append(Text("  no task has started yet", style="dim"))
        return lines
    names = [t["task"] for t in tasks] + list(pending)
    task_w = max(4, min(max(len(n) for n in names), width - _TASK_FIXED))
    header = (
        f"    {'TASK':<{task_w}}  {'STATUS':<{_STATUS_W}}  {'TRY':>{_TRY_W}}  "
        f"{'TOOK':>{_TOOK_W}}  {'EXIT':>{_EXIT_W}}"
    )
    lines.append(Text(header, style="dim"))
    for task in tasks:
        lines.append(_task_line(task, task_w))
        lines.extend(_child_run_lines(task, width))
        if task.get("outputs"):
            note = "outputs " + " ".join(f"{k}={_param_text(v)}" for k, v in task["outputs"].items())
            lines.extend(Text(line, style="dim") for line in _error_lines(note, width))
        if _worth_showing(task) and task["error"] != run.get("error"):
            for error_line in _error_lines(str(task["error"]), width):
                lines.append(Text(error_line, style="red" if task["status"] == "failed" else "dim"))
        for earlier in task.get("interrupted", ()):
            note = f"attempt {earlier['attempt']} interrupted (not counted as a retry): {earlier['error']}"
            lines.extend(Text(line, style="yellow") for line in _error_lines(note, width))
    for name in pending:
        line = Text(f"  {STATUS_ICON['pending']} ")
        line.append(f"{fit(name, task_w):<{task_w}}  ")
        line.append("pending", style=_style("pending"))
        lines.append(line)
    return lines


def _child_run_lines(task: Mapping[str, Any], width: int) -> list[Text]:
    """A `dag` task's child run: in full, indented under it, when `status --run` nested
    it; else one line naming it."""
    child = task.get("child_run")
    if child is not None:
        return [Text("      ") + line for line in run_block(child, max(40, width - 6))]
    if task.get("child_run_id") is None:
        return []
    return [
        Text(
            f"      child run {task['child_run_id']} (dagctl status --run {task['child_run_id']})",
            style="dim",
        )
    ]


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _worth_showing(task: Mapping[str, Any]) -> bool:
    """An error line adds something: not for successes, nor when it only repeats the
    exit code or says that an input failed."""
    error = task.get("error")
    if not error or task["status"] in ("success", "running"):
        return False
    return error not in (f"exit code {task['exit_code']}", "an input failed")


def _task_line(task: Mapping[str, Any], task_w: int) -> Text:
    status = task["status"]
    exit_code = "-" if task["exit_code"] is None else str(task["exit_code"])
    line = Text("  ")
    line.append(STATUS_ICON.get(status, "?"), style=_style(status))
    line.append(f" {fit(task['task'], task_w):<{task_w}}  ")
    line.append(f"{status:<{_STATUS_W}}", style=_style(status))
    line.append(
        f"  {task['attempt']:>{_TRY_W}}  {duration(task['duration_s']):>{_TOOK_W}}  {exit_code:>{_EXIT_W}}"
    )
    line.rstrip()
    return line


def _error_lines(error: str, width: int) -> list[str]:
    indent = " " * 6
    flat = " ".join(error.split())
    wrapped = textwrap.wrap(flat, width - len(indent), break_long_words=True) or [""]
    if len(wrapped) > ERROR_LINES:
        wrapped = [
            *wrapped[: ERROR_LINES - 1],
            fit(" ".join(wrapped[ERROR_LINES - 1 :]), width - len(indent)),
        ]
    return [indent + line for line in wrapped]


def render_status(runs: Sequence[Mapping[str, Any]], out: Console | None = None) -> None:
    out = out or console()
    if not runs:
        out.print("no runs yet (start one with dagctl trigger DAG)")
        return
    width = _width(out)
    for index, run in enumerate(runs):
        if index:
            out.print()
        for line in run_block(run, width):
            out.print(line, no_wrap=True, overflow="ellipsis")


# ---------------------------------------------------------------- live views


def _progress(run: Mapping[str, Any], pending: Sequence[str], width: int) -> RenderableType:
    total = len(run["tasks"]) + len(pending)
    done = sum(
        1
        for t in run["tasks"]
        if t["status"] in ("success", "failed", "upstream_failed", "skipped", "cancelled")
    )
    label = Text(f"  {done}/{total} tasks done", style="dim")
    bar = ProgressBar(total=max(total, 1), completed=done, width=max(10, min(40, width - 24)))
    grid = Table.grid(padding=(0, 1))
    grid.add_row(Text("  "), bar, label)
    return grid


class LiveRun:
    """A live view of one run that redraws in place (TTY only)."""

    def __init__(self, out: Console) -> None:
        self.out = out
        self.live = Live(console=out, auto_refresh=False, transient=False)

    def update(self, view: Mapping[str, Any]) -> None:
        width = _width(self.out)
        pending = view.get("pending", ())
        renderables: list[RenderableType] = list(run_block(view, width, pending))
        renderables.append(_progress(view, pending, width))
        self.live.update(Group(*renderables), refresh=True)


@contextmanager
def live_run(out: Console | None = None) -> Iterator[LiveRun]:
    view = LiveRun(out or console())
    with view.live:
        yield view


# ---------------------------------------------------------------- list


def render_list(rows: Sequence[Mapping[str, Any]], out: Console | None = None) -> None:
    """`list` with rich: on a terminal in colour, or when listing.write_plain cannot be
    sure to write it as rich would."""
    out = out or console()
    if not rows:
        out.print(listing.NO_DAGS)
        return
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="dim")
    table.add_column(listing.HEADERS[0], overflow="fold", max_width=listing.MAX_WIDTHS[0])
    table.add_column(listing.HEADERS[1], overflow="ellipsis", no_wrap=True, max_width=listing.MAX_WIDTHS[1])
    table.add_column(listing.HEADERS[2], no_wrap=True)
    table.add_column(listing.HEADERS[3], no_wrap=True)
    broken = [row for row in rows if row["broken"]]
    for row in rows:
        if row["broken"]:
            continue
        if table.row_count:
            table.add_row()  # a blank line between two-line rows
        table.add_row(*(_cell_text(cell) for cell in listing.cells(row)))
    if table.row_count:
        out.print(table)
    width = _width(out)
    for row in broken:
        if table.row_count:
            out.print()
        line = Text(listing.broken_name(row, width), style="bold")
        line.append(listing.BROKEN, style="red")
        out.print(line)
        for reason_line in listing.reason_lines(row, width):
            out.print(Text(reason_line, style="dim"), no_wrap=True, overflow="ellipsis")


def _cell_text(cell: listing.Cell) -> Text:
    style, pieces = cell
    text = Text(style=style)
    for piece, piece_style in pieces:
        text.append(piece, style=piece_style)
    return text


# ---------------------------------------------------------------- insight


def render_tree(dag_name: str, lines: Sequence[tuple[str, str, str]], out: Console | None = None) -> None:
    out = out or console()
    out.print(Text(dag_name, style="bold"))
    for prefix, name, note in lines:
        line = Text(prefix)
        line.append(name)
        if note:
            line.append(f"  ({note})", style="dim")
        out.print(line, no_wrap=True, overflow="ellipsis")


def render_next(info: Mapping[str, Any], out: Console | None = None) -> None:
    out = out or console()
    title = Text(info["dag"], style="bold")
    title.append(f"  {info['schedule']}  ({info['timezone']})", style="dim")
    out.print(title)
    if not info["slots"]:
        out.print("  no upcoming slot: the schedule never fires again")
        return
    width = _width(out)
    for slot in info["slots"]:
        local = datetime.fromisoformat(slot["local"])
        line = Text(f"  {local:%a %Y-%m-%d %H:%M} {slot['tz_abbreviation']:<6}")
        line.append(f"  {when(slot['utc'])[:16]} UTC", style="dim")
        out.print(line, no_wrap=True)
        if slot["note"]:
            for note_line in textwrap.wrap("DST: " + slot["note"], width - 6):
                out.print(Text("      " + note_line, style="yellow"))


_WHY_STYLE = {
    "broken": "red",
    "paused": "yellow",
    "no_scheduler": "red",
    "max_active_runs": "yellow",
    "waiting_on_inputs": "magenta",
    "retry_delay": "magenta",
    "pool_full": "yellow",
    "queued": "blue",
    "running": "cyan",
    "nothing_queued": "dim",
}


def render_why(info: Mapping[str, Any], out: Console | None = None) -> None:
    out = out or console()
    width = _width(out)
    for reason in info["reasons"]:
        wrapped = textwrap.wrap(reason["message"], width - 2) or [""]
        style = _WHY_STYLE.get(reason["code"], "")
        out.print(Text("• " + wrapped[0], style=style))
        for rest in wrapped[1:]:
            out.print(Text("  " + rest, style=style))


# ---------------------------------------------------------------- alerts


def render_notifications(events: Sequence[Mapping[str, Any]], out: Console | None = None) -> None:
    out = out or console()
    if not events:
        out.print("no alert events", highlight=False)
        return
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="dim")
    for column in ("ID", "DAG", "RUN", "EVENT", "STATUS", "ATTEMPTS", "CHANNELS", "CREATED", "LAST ERROR"):
        table.add_column(column)
    for e in events:
        style = {"delivered": "green", "failed": "red"}.get(e["status"], "yellow")
        table.add_row(
            str(e["id"]),
            e["dag"],
            str(e["run_id"] or "-"),
            e["event"],
            Text(e["status"], style=style),
            str(e["attempts"]),
            ",".join(e["channels"]),
            e["created_at"] or "",
            e["last_error"] or "",
        )
    out.print(table)


# ---------------------------------------------------------------- backfill


def render_backfill(result: Mapping[str, Any], out: Console | None = None) -> None:
    """The backfill's id alone on stdout (for scripts), the summary after it; a dry run
    lists the slots that would get a run."""
    out = out or console()
    if result["dry_run"]:
        out.print(
            f"dry run: {result['created']} of {result['slots']} slot(s) of {result['dag']} would get a run"
            f" (--reprocess {result['reprocess']})",
            highlight=False,
        )
        for slot in result["runs"]:
            out.print(f"  {slot}", highlight=False)
        return
    out.print(str(result["backfill_id"]), highlight=False)
    skipped = result["slots"] - result["created"]
    console(stderr=True).print(
        f"backfill {result['backfill_id']} of {result['dag']}: {result['created']} run(s) created,"
        f" {skipped} slot(s) skipped (--reprocess {result['reprocess']})",
        highlight=False,
        soft_wrap=True,
    )


def render_backfill_cancel(result: Mapping[str, Any], out: Console | None = None) -> None:
    (out or console()).print(
        f"backfill {result['backfill_id']} cancelled: {result['cancelled_queued_runs']} queued run(s),"
        f" {result['cancelled_running_runs']} running run(s) stopping",
        highlight=False,
    )


@contextmanager
def backfill_bar() -> Iterator[Any]:
    """A progress bar of a backfill's runs on stderr (a terminal); yields its update."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console(stderr=True),
    ) as progress:
        bar = progress.add_task("backfill", total=None)

        def update(view: Mapping[str, Any]) -> None:
            counts = view["counts"]
            done = view["total"] - counts.get("queued", 0) - counts.get("running", 0)
            failed = counts.get("failed", 0) + counts.get("cancelled", 0)
            label = f"backfill {view['backfill_id']} {view['dag']}"
            if failed:
                label += f" ({failed} failed)"
            progress.update(bar, total=view["total"], completed=done, description=label)

        yield update


def render_pools(rows: Sequence[Mapping[str, Any]], out: Console | None = None) -> None:
    out = out or console()
    if not rows:
        out.print("no pools (define them under pools: in dagctl.yaml; a scheduler syncs them)")
        return
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="dim")
    for column in ("POOL", "USED", "FREE", "WAITING", "OLDEST WAIT", "RUNNING"):
        table.add_column(column, overflow="fold")
    for row in rows:
        running = ", ".join(f"{r['dag']}/{r['task']} run {r['run_id']}" for r in row["running"][:3])
        if len(row["running"]) > 3:
            running += f", and {len(row['running']) - 3} more"
        wait = row["oldest_wait_seconds"]
        table.add_row(
            Text(row["pool"], style="bold"),
            f"{row['used']}/{row['slots']}",
            str(row["free"]),
            str(row["waiting"]),
            "-" if wait is None else f"{wait:.0f}s",
            running or "-",
        )
    out.print(table)


def render_queues(rows: Sequence[Mapping[str, Any]], out: Console | None = None) -> None:
    out = out or console()
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="dim")
    for column in ("QUEUE", "WAITING", "OLDEST WAIT", "RUNNING", "SERVED BY", "STATE"):
        table.add_column(column, overflow="fold")
    for row in rows:
        wait = row["oldest_wait_seconds"]
        served = ", ".join(row["served_by"])
        table.add_row(
            Text(row["queue"], style="bold"),
            str(row["waiting"]),
            "-" if wait is None else f"{wait:.0f}s",
            str(row["running"]) if row.get("limit") is None else f"{row['running']}/{row['limit']}",
            served if served else Text("no live scheduler", style="red" if row["waiting"] else "dim"),
            Text("paused", style="yellow") if row["paused"] else Text("active", style="dim"),
        )
    out.print(table)
