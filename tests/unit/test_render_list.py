"""`list` without styles is written, without rich, exactly as rich prints it."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from rich.console import Console

from dagctl.cli import listing, render
from dagctl.cli.plaintext import unstyled_width


def _row(name: str, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "dag": name,
        "broken": False,
        "reason": None,
        "schedule": "0 * * * *",
        "timezone": "Europe/Berlin",
        "paused": False,
        "next_run": "2024-05-01T11:00:00Z",
        "next_run_local": "2024-05-01T13:00:00+02:00",
        "next_run_tz": "CEST",
        "last_run": None,
    }
    return {**row, **changes}


ROWS = [
    _row("a"),
    _row("paused_one", paused=True, schedule=None, next_run=None),
    _row(
        "ran",
        timezone="UTC",
        next_run_local="2024-05-01T11:00:00+00:00",
        next_run_tz="UTC",
        last_run={"id": 12, "status": "failed", "logical_date": "2024-05-01T10:00:00Z"},
    ),
    _row("broken_one", broken=True, reason="workflow.yaml:2: unknown key 'retrys' " * 4),
    _row("a_rather_long_dag_name", schedule="*/5 1-3 * * 1-5"),
]
BROKEN_ONLY = [_row("b" * 120, broken=True, reason="x"), _row("c", broken=True, reason=None)]


@pytest.mark.parametrize(
    ("rows", "columns", "plain"),
    [
        (ROWS, 100, True),
        (ROWS, 80, True),
        (ROWS[:1], 100, True),
        (BROKEN_ONLY, 40, True),
        ([], 80, True),
        ([], 30, False),
        (ROWS, 79, False),
        ([*ROWS, _row("x" * 30)], 100, False),
        ([_row("wide", next_run_tz="X" * 80)], 100, False),
        ([_row("ünï")], 100, False),
        ([*ROWS, _row("d", broken=True, reason="needs → here")], 100, False),
    ],
    ids=[
        "mixed",
        "mixed, narrow",
        "one",
        "broken only",
        "none",
        "none, too narrow",
        "too narrow",
        "folded name",
        "too wide",
        "not ascii",
        "broken, not ascii",
    ],
)
def test_the_plain_list_is_what_rich_prints(
    rows: list[dict[str, Any]], columns: int, plain: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    written = io.StringIO()
    taken = listing.write_plain(rows, written)
    printed = io.StringIO()
    monkeypatch.setattr(sys, "stdout", printed)
    render.render_list(rows)  # through render.console(), as `list` does
    monkeypatch.undo()
    # The fast path is taken where it can be, and only there, and then writes what rich does.
    assert (taken, written.getvalue()) == (plain, printed.getvalue() if plain else "")


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [False, True])
@pytest.mark.parametrize(
    "environ",
    [{}, {"NO_COLOR": "1"}, {"COLUMNS": "57"}, {"NO_COLOR": "1", "COLUMNS": "120", "TERM": "dumb"}],
)
def test_the_unstyled_width_is_rich_s_width_where_rich_draws_no_style(
    tty: bool, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "COLUMNS", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    stream = _Stream(tty)
    out = Console(file=stream, highlight=False, color_system=None if "NO_COLOR" in environ else "auto")
    unstyled = not out.is_terminal or out.color_system is None
    width = unstyled_width(stream)
    # None only where rich draws styles, or on a dumb terminal, left to rich.
    assert width == (out.width if unstyled and not (tty and "TERM" in environ) else None)
