"""`dagctl queues`: parse, one call into dagctl.actions.queues, render."""

from __future__ import annotations

import click

from dagctl.cli.options import output_option, print_json, settings_of


@click.command()
@output_option
@click.pass_context
def queues(ctx: click.Context, output: str) -> None:
    """Work queues: attempts waiting and running, and the live schedulers serving each.

    A queue no live scheduler serves (`schedule --queue NAME`) keeps its attempts
    waiting."""
    from dagctl.actions.queues import queues as read_queues

    rows = read_queues(settings_of(ctx))
    if output == "json":
        print_json(rows)
        return
    from dagctl.cli.render import render_queues

    render_queues(rows)
