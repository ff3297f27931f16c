"""`dagctl list` as people read it: each DAG's cells with their styles, drawn by rich on a
terminal, and written line for line without rich when they would carry no style.

Piped or under NO_COLOR the output has no styles, and the table is plain columns: this
module writes it exactly as rich would lay it out (tests/unit/test_render_list.py
compares the two), without importing rich (30 ms) nor doing its per-cell layout work
(half a second for 1,000 DAGs). Whatever it cannot be sure of (a cell rich would fold
or cut, text that is not plain ASCII, a table wider than the output) goes to rich.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import chain
from typing import Any, TextIO

from dagctl.cli.plaintext import MAX_LAYOUT_WIDTH, STATUS_STYLE, fit, unstyled_width, when

HEADERS = ("DAG", "SCHEDULE", "NEXT RUN", "LAST RUN")
MAX_WIDTHS = (22, 18, None, None)
NO_DAGS = "no DAGs (put one folder per DAG under --dags, with a workflow.yaml)"
BROKEN = "  broken"

# A cell: the style of all its text, then its pieces, each with a style of its own.
Piece = tuple[str, str]
Cell = tuple[str, tuple[Piece, ...]]


def cells(row: Mapping[str, Any]) -> tuple[Cell, Cell, Cell, Cell]:
    """The four cells of a valid DAG's row (a name or a date may take a second line)."""
    name: Cell = ("bold", ((row["dag"], ""), *((("\npaused", "yellow"),) if row["paused"] else ())))
    if row["schedule"]:
        schedule: Cell = ("", ((row["schedule"], ""), ("\n" + row["timezone"], "dim")))
    else:
        schedule = ("dim", (("manual", ""),))
    if row["next_run"]:
        local = datetime.fromisoformat(row["next_run_local"])
        next_run: Cell = ("", ((f"{local:%Y-%m-%d %H:%M} {row['next_run_tz']}", ""),))
        if local.utcoffset():
            next_run = ("", (*next_run[1], (f"\n{when(row['next_run'])[:16]} UTC", "dim")))
    else:
        next_run = ("dim", (("-", ""),))
    last = row["last_run"]
    if last:
        last_run: Cell = (
            "",
            (
                (f"#{last['id']} ", ""),
                (last["status"], STATUS_STYLE.get(last["status"], "")),
                (f"\n{when(last['logical_date'])[:16]}", "dim"),
            ),
        )
    else:
        last_run = ("dim", (("never", ""),))
    return name, schedule, next_run, last_run


def broken_name(row: Mapping[str, Any], width: int) -> str:
    return fit(row["dag"], width - len(BROKEN))


def reason_lines(row: Mapping[str, Any], width: int) -> list[str]:
    return ["  " + line for line in textwrap.wrap(row["reason"] or "", width - 2)]


def write_plain(rows: Sequence[Mapping[str, Any]], stream: TextIO) -> bool:
    """Write what render.render_list would print to `stream` (stdout) when it draws no
    style there; False, having written nothing, when rich must draw it."""
    width = unstyled_width(stream)
    if width is None:
        return False
    if not rows:
        if len(NO_DAGS) > width:
            return False
        text = NO_DAGS + "\n"
    else:
        valid = [cells(row) for row in rows if not row["broken"]]
        table = _plain_table(valid, width) if valid else ""
        broken = _plain_broken([row for row in rows if row["broken"]], width, bool(valid))
        if table is None or broken is None:
            return False
        text = table + broken
    stream.write(text)
    stream.flush()
    return True


def _plain_table(rows: Sequence[tuple[Cell, ...]], width: int) -> str | None:
    """The table as rich lays it out without styles (no box, two spaces between columns,
    every cell padded to its column's width, a blank line between rows), or None when
    rich would fold or cut a cell, the table is wider than `width`, or a cell is not
    plain ASCII (whose width needs rich)."""
    texts = [["".join([text for text, _ in pieces]) for _, pieces in row] for row in rows]
    everything = "".join(["".join(row) for row in texts]).replace("\n", "")
    if not (everything.isascii() and everything.isprintable()):
        return None
    lines_of = [[text.split("\n") for text in row] for row in texts]
    widths = [
        max(len(header), *map(len, chain.from_iterable(column)))
        for header, column in zip(HEADERS, zip(*lines_of, strict=True), strict=True)
    ]
    for column_width, limit in zip(widths, MAX_WIDTHS, strict=True):
        if limit is not None and column_width > limit:
            return None
    total = sum(widths) + 2 * (len(widths) - 1)
    if total > width:
        return None
    line_format = "  ".join(f"{{:<{w}}}" for w in widths) + "\n"
    pieces = [line_format.format(*HEADERS)]
    blank = " " * total + "\n"
    for index, row in enumerate(lines_of):
        if index:
            pieces.append(blank)
        height = max(map(len, row))
        padded = [lines + [""] * (height - len(lines)) for lines in row]
        pieces.extend(line_format.format(*line) for line in zip(*padded, strict=True))
    return "".join(pieces)


def _plain_broken(rows: Sequence[Mapping[str, Any]], width: int, after_table: bool) -> str | None:
    """The broken DAGs under the table, each its name then its reason wrapped; None when
    a line is not plain ASCII (bar the ellipsis of a cut name) or the layout is too
    narrow for them."""
    layout = min(width, MAX_LAYOUT_WIDTH)
    if rows and layout <= len(BROKEN) + 1:
        return None
    lines: list[str] = []
    for row in rows:
        name = row["dag"]
        reasons = reason_lines(row, layout)
        if not all(line.isascii() and line.isprintable() for line in (name, *reasons)):
            return None
        if after_table:
            lines.append("")
        lines.append(broken_name(row, layout) + BROKEN)
        lines.extend(reasons)
    return "".join(line + "\n" for line in lines)
