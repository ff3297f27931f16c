"""Alert commands: `dagctl notifications` (the outbox) and `dagctl notify test`."""

from __future__ import annotations

import click

from dagctl.cli.completion import complete_dag
from dagctl.cli.options import output_option, print_json, settings_of


@click.command()
@click.argument("dag", required=False, shell_complete=complete_dag)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10000), help="Events shown.")
@output_option
@click.pass_context
def notifications(ctx: click.Context, dag: str | None, limit: int, output: str) -> None:
    """List recent alert events (of DAG) and their delivery state, newest first."""
    from dagctl.actions import notify as alerts

    events = alerts.list_notifications(settings_of(ctx), dag, limit)
    if output == "json":
        print_json(events)
    else:
        from dagctl.cli.render import render_notifications

        render_notifications(events)


@click.group()
def notify() -> None:
    """Alert channels (declared under channels: in dagctl.yaml)."""


@notify.command("test")
@click.argument("channel")
@click.pass_context
def test_command(ctx: click.Context, channel: str) -> None:
    """Send a sample alert through CHANNEL now; exit 1 with the reason when it fails."""
    from dagctl.actions import notify as alerts

    kind = alerts.test_channel(settings_of(ctx.find_root()), channel)
    click.echo(f"sent a test alert through {channel} ({kind})")
