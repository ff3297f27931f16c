"""`dagctl backfill`: parse, one call into `dagctl.actions.backfill`, render."""

from __future__ import annotations

import sys
from typing import Any

import click

from dagctl.cli.completion import complete_dag
from dagctl.cli.options import output_option, param_option, print_json, settings_of
from dagctl.errors import EXIT_FAILED, EXIT_OK, UsageError


@click.command()
@click.argument("dag", required=False, shell_complete=complete_dag)
@click.option("--start", metavar="DATE[THH:MM]", help="First day (or instant) of the range, DAG time zone.")
@click.option("--end", metavar="DATE[THH:MM]", help="Last day (or instant) of the range, included.")
@click.option(
    "--reprocess",
    type=click.Choice(["missing", "failed", "all"]),
    default="missing",
    show_default=True,
    help="missing: only slots without a run; failed: also slots whose latest run failed; all: every slot.",
)
@click.option(
    "--max-active-runs",
    type=click.IntRange(min=1),
    default=None,
    help="Backfill runs at once (default: the DAG's max_active_runs); counted apart from scheduled runs.",
)
@click.option("--reverse", is_flag=True, help="Start the newest slots first.")
@click.option("--dry-run", is_flag=True, help="Print the slots that would get a run; create nothing.")
@click.option("--wait", is_flag=True, help="Follow the runs; exit 0 if all succeeded, 1 otherwise.")
@click.option("--schedule", "schedule", metavar="CRON", help="Slots for a DAG without a schedule.")
@click.option("--cancel", "cancel_id", type=int, metavar="ID", help="Cancel backfill ID instead.")
@click.option("--creator", default="cli", show_default=True, help="Recorded as who started the runs.")
@param_option
@output_option
@click.pass_context
def backfill(
    ctx: click.Context,
    dag: str | None,
    start: str | None,
    end: str | None,
    reprocess: str,
    max_active_runs: int | None,
    reverse: bool,
    dry_run: bool,
    wait: bool,
    schedule: str | None,
    cancel_id: int | None,
    creator: str,
    assignments: tuple[str, ...],
    output: str,
) -> None:
    """Create one run of DAG per schedule slot from --start to --end, and print the
    backfill's id; any running scheduler runs them."""
    from dagctl.actions import backfill as actions
    from dagctl.cli import render
    from dagctl.dags.params import parse_assignments

    settings = settings_of(ctx)
    if cancel_id is not None:
        result = actions.cancel(settings, cancel_id)
        print_json(result) if output == "json" else render.render_backfill_cancel(result)
        return
    if not dag or not start or not end:
        raise UsageError(
            "backfill needs DAG, --start and --end",
            "e.g. dagctl backfill etl --start 2024-06-01 --end 2024-06-30",
        )
    request = actions.BackfillRequest(
        dag, start, end, reprocess, max_active_runs, reverse, dry_run, schedule, creator
    )
    result = actions.backfill(settings, request, parse_assignments(assignments))
    print_json(result) if output == "json" else render.render_backfill(result)
    if wait and not dry_run:
        final = _follow(settings, int(result["backfill_id"]))
        failed = final["total"] - final["counts"].get("success", 0)
        click.echo(
            f"backfill {result['backfill_id']}: {final['counts'].get('success', 0)} succeeded, {failed} not",
            err=True,
        )
        ctx.exit(EXIT_OK if failed == 0 else EXIT_FAILED)


def _follow(settings: Any, backfill_id: int) -> dict[str, Any]:
    """A progress bar on a terminal; one line per run that ends otherwise (on stderr:
    stdout carries the backfill's id)."""
    from dagctl.actions import backfill as actions
    from dagctl.cli import plaintext, render

    if sys.stderr.isatty():
        with render.backfill_bar() as update:
            return actions.follow(settings, backfill_id, update)
    seen: dict[int, str] = {}

    def show(view: dict[str, Any]) -> None:
        for line in plaintext.backfill_lines(seen, view):
            click.echo(line, err=True)

    return actions.follow(settings, backfill_id, show)
