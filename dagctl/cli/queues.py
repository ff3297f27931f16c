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


@click.group()
def queue() -> None:
    """Pause or unpause a work queue (dagctl queues lists them)."""


@queue.command("pause")
@click.argument("name")
@output_option
@click.pass_context
def pause_queue(ctx: click.Context, name: str, output: str) -> None:
    """Stop every scheduler claiming the attempts of queue NAME (running ones finish)."""
    _set_paused(ctx, name, True, output)


@queue.command("unpause")
@click.argument("name")
@output_option
@click.pass_context
def unpause_queue(ctx: click.Context, name: str, output: str) -> None:
    """Let schedulers serving queue NAME claim its attempts again."""
    _set_paused(ctx, name, False, output)


def _set_paused(ctx: click.Context, name: str, paused: bool, output: str) -> None:
    from dagctl.actions.queues import set_queue_paused

    result = set_queue_paused(settings_of(ctx), name, paused)
    if output == "json":
        print_json(result)
    elif paused:
        click.echo(f"queue {name} paused: no scheduler claims its attempts (dagctl queue unpause {name})")
    else:
        click.echo(f"queue {name} unpaused")
