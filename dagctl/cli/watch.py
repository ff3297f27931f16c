"""Following one run: a live view redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from dagctl.config import Settings

if TYPE_CHECKING:
    from dagctl.dags.model import Dag


def watch_run(
    settings: Settings, run_id: int, *, plain_to_stderr: bool, noticed: bool = False, dag: Dag | None = None
) -> str:
    """Follow a run until it ends and return its status: a live view redrawn in place
    when stdout is a terminal, else one plain line per change (on stderr when stdout
    carries something else, as with `trigger --wait`). `noticed`: the caller already
    said why the run may not start, so the follower does not say it again. `dag`: the
    run's DAG, when the caller has just loaded it."""
    from dagctl.actions import following

    if sys.stdout.isatty():
        from dagctl.cli.render import console, live_run

        out = console()
        with live_run(out) as live:
            return following.follow_run(
                settings,
                run_id,
                live.update,
                on_notice=None if noticed else lambda m: out.print(f"[yellow]{m}[/]"),
                dag=dag,
            )
    from dagctl.cli.plaintext import progress_lines

    previous: dict[str, Any] | None = None

    def show(view: dict[str, Any]) -> None:
        nonlocal previous
        for line in progress_lines(previous, view):
            click.echo(line, err=plain_to_stderr)
        previous = view

    return following.follow_run(
        settings,
        run_id,
        show,
        on_notice=None if noticed else lambda m: click.echo(f"dagctl: {m}", err=True),
        dag=dag,
    )
