"""Commands that start work: trigger, run, schedule.

Each command parses, makes one call into `dagctl.actions`, and renders. Heavy modules
are imported inside the commands so that `dagctl --help` stays instant; errors leave
as DagctlError and become one stderr line in `dagctl.cli.main.main`.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from dagctl.cli.completion import complete_dag
from dagctl.cli.options import output_option, param_option, params_from, print_json, settings_of
from dagctl.errors import EXIT_FAILED, EXIT_OK


@click.command()
@click.argument("dag", shell_complete=complete_dag)
@param_option
@click.option(
    "--params-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A JSON object of params; -p values win.",
)
@click.option(
    "--wait", is_flag=True, help="Follow the run and exit with its outcome (0 success, 1 otherwise)."
)
@click.option("--creator", default="cli", show_default=True, help="Recorded as who started the run.")
@click.option(
    "--logical-date",
    metavar="DATE[THH:MM]",
    help="The slot the run is for, in the DAG's time zone (a date alone: its first slot that day);"
    " default now.",
)
@output_option
@click.pass_context
def trigger(
    ctx: click.Context,
    dag: str,
    assignments: tuple[str, ...],
    params_file: Path | None,
    wait: bool,
    creator: str,
    logical_date: str | None,
    output: str,
) -> None:
    """Queue a manual run of DAG and print its run id."""
    from dagctl.actions import runs

    settings = settings_of(ctx)
    when = runs.parse_logical_date(settings, dag, logical_date) if logical_date else None
    run_id = runs.trigger_run(settings, dag, params_from(assignments, params_file), creator, when)
    if output == "json":
        print_json({"run_id": run_id, "dag": dag})
    else:
        click.echo(run_id)
    if wait:
        from dagctl.cli.watch import watch_run

        outcome = watch_run(settings, run_id, plain_to_stderr=True)
        click.echo(f"run {run_id}: {outcome}", err=True)
        ctx.exit(EXIT_OK if outcome == "success" else EXIT_FAILED)


@click.command()
@click.argument("dag")
@click.argument("task")
@param_option
@click.option(
    "--run-id",
    type=int,
    help="Use this run's params and logical date: from DAGCTL_PARAMS and DAGCTL_LOGICAL_DATE when"
    " DAGCTL_RUN_ID and DAGCTL_DAG name this run (as in a kubernetes pod), else from the state database.",
)
@click.option(
    "--attempt",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="The attempt number the task is told (DAGCTL_ATTEMPT).",
)
@click.pass_context
def run(
    ctx: click.Context, dag: str, task: str, assignments: tuple[str, ...], run_id: int | None, attempt: int
) -> None:
    """Execute one TASK of DAG in the foreground; exit with the task's code.

    It records nothing: a kubernetes pod runs exactly this, and its scheduler records the
    outcome from the pod's exit code and log."""
    from dagctl.actions import runs
    from dagctl.dags.params import parse_assignments
    from dagctl.execution.foreground import exit_status

    outcome = runs.run_task(
        settings_of(ctx), dag, task, parse_assignments(assignments), run_id, attempt=attempt
    )
    if outcome.status != "success":
        click.echo(f"dagctl: task {dag}/{task} failed: {outcome.error}", err=True)
        # The task's own code; 128+N when it died from signal N; 1 for other failures.
        ctx.exit(exit_status(outcome))


@click.command()
@click.option(
    "--manager",
    default="worker",
    show_default=True,
    help="Task manager: worker, kubernetes (a pod per task), or a plug-in name.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Task attempts at once (default: the CPU count).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="Seconds between polls when nothing wakes the loop.",
)
@click.option(
    "--grace",
    "grace_seconds",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="On SIGTERM/SIGINT, seconds running tasks get before they are killed.",
)
@click.option("--once", is_flag=True, help="Run one iteration and exit.")
@click.option("--until-idle", is_flag=True, help="Exit 0 once no run is queued or running.")
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve this scheduler's counters (claims, iterations, loop time) at :PORT/metrics.",
)
@click.pass_context
def schedule(
    ctx: click.Context,
    manager: str,
    concurrency: int | None,
    poll_interval: float,
    grace_seconds: float,
    once: bool,
    until_idle: bool,
    metrics_port: int | None,
) -> None:
    """Run the scheduling loop (exit 0 when stopped by a signal, 3 after a long database outage)."""
    import logging

    from dagctl.actions import runs

    settings = settings_of(ctx)
    logging.basicConfig(
        level=logging.DEBUG if settings.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.exit(
        runs.schedule(
            settings,
            manager,
            concurrency=concurrency or os.cpu_count() or 1,
            poll_interval=poll_interval,
            grace_seconds=grace_seconds,
            once=once,
            until_idle=until_idle,
            metrics_port=metrics_port,
        )
    )
