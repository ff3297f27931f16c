"""`list`'s table without styles is written line for line as rich lays it out."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from dagctl.cli import render


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


taken: list[bool] = []
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
    _row("broken_one", broken=True, reason="workflow.yaml:2: unknown key 'retrys'"),
    _row("a_rather_long_dag_name", schedule="*/5 1-3 * * 1-5"),
]


def _printed(rows: list[dict[str, Any]], plain: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    if not plain:
        monkeypatch.setattr(render, "_plain_table", lambda out, rows: False)
    else:
        real = render._plain_table

        def spy(out: Console, cells: Any) -> bool:
            taken.append(real(out, cells))
            return taken[-1]

        monkeypatch.setattr(render, "_plain_table", spy)
    out = Console(file=io.StringIO(), width=100, highlight=False)
    render.render_list(rows, out)
    monkeypatch.undo()
    value: str = out.file.getvalue()  # type: ignore[attr-defined]
    return value


@pytest.mark.parametrize(
    "rows",
    [ROWS, ROWS[:1], [*ROWS, _row("x" * 30)], [_row("wide", next_run_tz="X" * 80)], [_row("ünï")]],
    ids=["mixed", "one", "folded name", "too wide", "not ascii"],
)
def test_the_plain_table_is_what_rich_prints(
    rows: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    taken.clear()
    assert _printed(rows, True, monkeypatch) == _printed(rows, False, monkeypatch)
    # The fast path is taken where it can be, and only there.
    assert taken == [request.node.callspec.id in ("mixed", "one")]
