"""Commands that change what runs: pause, unpause, cancel, retry, db upgrade, db prune.

Each command parses, makes one call into `dagctl.actions`, and renders. Heavy modules
are imported inside the commands so that `dagctl --help` stays instant; errors leave
as DagctlError and become one stderr line in `dagctl.cli.main.main`.
"""

from __future__ import annotations

import click

from dagctl.cli.completion import complete_dag
from dagctl.cli.options import output_option, print_json, settings_of


@click.command()
@click.argument("dag", shell_complete=complete_dag)
@output_option
@click.pass_context
def pause(ctx: click.Context, dag: str, output: str) -> None:
    """Stop creating and starting runs of DAG (running runs finish)."""
    from dagctl.actions import control as control_actions

    result = control_actions.set_paused(settings_of(ctx), dag, True)
    if output == "json":
        print_json(result)
    else:
        click.echo(f"{dag} paused: no new runs are created or started (dagctl unpause {dag} to resume)")


@click.command()
@click.argument("dag", shell_complete=complete_dag)
@output_option
@click.pass_context
def unpause(ctx: click.Context, dag: str, output: str) -> None:
    """Schedule DAG again (missed slots follow its catchup policy)."""
    from dagctl.actions import control as control_actions

    result = control_actions.set_paused(settings_of(ctx), dag, False)
    if output == "json":
        print_json(result)
    else:
        click.echo(f"{dag} unpaused: runs are created and started again")


@click.command()
@click.argument("run_id", metavar="RUN", type=int)
@output_option
@click.pass_context
def cancel(ctx: click.Context, run_id: int, output: str) -> None:
    """Cancel a run and stop its running tasks.

    Queued tasks are cancelled at once; running ones are killed (their whole process
    group) by the scheduler that runs them, within a poll interval."""
    from dagctl.actions import control as control_actions

    result = control_actions.cancel(settings_of(ctx), run_id)
    if output == "json":
        print_json(result)
        return
    message = f"run {run_id} cancelled"
    if result["cancelled_tasks"]:
        message += f"; {', '.join(result['cancelled_tasks'])} will not run"
    if result["stopping_tasks"]:
        message += f"; stopping {', '.join(result['stopping_tasks'])} (its scheduler kills it)"
    click.echo(message)


@click.command()
@click.argument("run_id", metavar="RUN", type=int)
@click.option("--task", help="Retry only this task (and what depends on it).")
@output_option
@click.pass_context
def retry(ctx: click.Context, run_id: int, task: str | None, output: str) -> None:
    """Run the failed tasks of a finished run again.

    Failed, upstream_failed and cancelled tasks and everything downstream of them run
    again in the same run: a task that ran before gets a new attempt."""
    from dagctl.actions import control as control_actions

    result = control_actions.retry(settings_of(ctx), run_id, task)
    if output == "json":
        print_json(result)
        return
    parts = [f"{r['task']} (attempt {r['attempt']})" for r in result["requeued"]]
    message = f"run {run_id} reopened"
    if parts:
        message += f": queued {', '.join(parts)}"
    if result["reset"]:
        message += f"{';' if parts else ':'} {', '.join(result['reset'])} run once their inputs succeed"
    if not parts and not result["reset"]:
        message += ": the scheduler runs its remaining tasks"
    click.echo(message)


@click.group()
def db() -> None:
    """State database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending migrations to the state database."""
    from dagctl.actions import runs
    from dagctl.store.engine import mask_url

    settings = settings_of(ctx)
    revision = runs.upgrade_db(settings)
    click.echo(f"{mask_url(settings.db_url)} is at revision {revision}")


@db.command("prune")
@click.option(
    "--older-than",
    required=True,
    metavar="AGE",
    help="Delete finished runs that ended longer ago (90d, 12h).",
)
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Keep this many of the newest finished runs of each DAG, however old.",
)
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@output_option
@click.pass_context
def db_prune(ctx: click.Context, older_than: str, keep_last: int, dry_run: bool, output: str) -> None:
    """Delete old finished runs with their attempts and logs, and old alert events
    delivered or given up, in short batches; queued and running runs and pending alerts
    are never touched."""
    from dagctl.actions import prune

    result = prune.prune(settings_of(ctx), older_than, keep_last, dry_run)
    if output == "json":
        print_json(result)
        return
    verb = "would delete" if dry_run else "deleted"
    click.echo(
        f"{verb} {result['runs']} run(s), {result['attempts']} attempt(s), {result['log_chunks']} log"
        f" chunk(s): {_size(result['bytes'])}; {result['alerts']} alert event(s)"
    )


def _size(count: int) -> str:
    if count < 1024:
        return f"{count:,} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:,.1f} KB"
    return f"{count / 1024 / 1024:,.1f} MB"
