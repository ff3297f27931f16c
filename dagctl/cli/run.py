"""Commands that start work: trigger, run, schedule.

Each command parses, makes one call into `dagctl.actions`, and renders. Heavy modules
are imported inside the commands so that `dagctl --help` stays instant; errors leave
as DagctlError and become one stderr line in `dagctl.cli.main.main`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from dagctl.cli.completion import complete_dag
from dagctl.cli.options import output_option, param_option, params_from, print_json, settings_of
from dagctl.config import Settings
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
    run_id, notices, loaded = runs.trigger_with_notices(
        settings, dag, params_from(assignments, params_file), creator, logical_date
    )
    if output == "json":
        print_json({"run_id": run_id, "dag": dag})
    else:
        click.echo(run_id)
    for notice in notices:
        click.echo(f"dagctl: warning: {notice}", err=True)
    if wait:
        from dagctl.cli.watch import watch_run

        outcome = watch_run(settings, run_id, plain_to_stderr=True, noticed=bool(notices), dag=loaded)
        click.echo(f"run {run_id}: {outcome}", err=True)
        ctx.exit(EXIT_OK if outcome == "success" else EXIT_FAILED)


@click.command()
@click.argument("dag", shell_complete=complete_dag)
@click.argument("task", required=False)
@param_option
@click.option(
    "--run-id",
    type=int,
    help="With TASK: use this run's params and logical date: from DAGCTL_PARAMS and"
    " DAGCTL_LOGICAL_DATE when DAGCTL_RUN_ID and DAGCTL_DAG name this run (as in a kubernetes pod),"
    " else from the state database.",
)
@click.option(
    "--attempt",
    type=click.IntRange(min=1),
    default=None,
    help="With TASK: the attempt number the task is told (DAGCTL_ATTEMPT, default 1).",
)
@click.option(
    "--from", "first", metavar="TASK", help="Without TASK: start at this task (and what depends on it)."
)
@click.option("--to", "last", metavar="TASK", help="Without TASK: end at this task (and what it depends on).")
@click.option(
    "--record",
    is_flag=True,
    help="Without TASK: record the run once it has ended, as a manual run (dagctl status, logs, retry).",
)
@click.pass_context
def run(
    ctx: click.Context,
    dag: str,
    task: str | None,
    assignments: tuple[str, ...],
    run_id: int | None,
    attempt: int | None,
    first: str | None,
    last: str | None,
    record: bool,
) -> None:
    """Run DAG's tasks (or one TASK) here, in the foreground.

    \b
    Without TASK: every task in dependency order, one at a time, stopping at the first
    failure with its exit code (--from/--to: a slice). It records nothing, unless
    --record: then the ended run is recorded as a manual run.
    With TASK: that task alone; exit with its code. A kubernetes pod runs exactly this,
    and its scheduler records the outcome from the pod's exit code and log."""
    from dagctl.dags.params import parse_assignments
    from dagctl.errors import UsageError
    from dagctl.execution.foreground import exit_status

    settings = settings_of(ctx)
    given = parse_assignments(assignments)
    if task is None:
        if run_id is not None or attempt is not None:
            raise UsageError("--run-id and --attempt need a TASK", f"dagctl run {dag} TASK --run-id N")
        ctx.exit(_run_whole_dag(settings, dag, given, first, last, record))
    if first is not None or last is not None:
        raise UsageError(
            "--from and --to run a slice of the DAG, not one TASK", f"dagctl run {dag} --from {task}"
        )
    if record:
        raise UsageError(
            "--record records a run of the whole DAG, not of one TASK", f"dagctl run {dag} --record"
        )
    from dagctl.actions import runs

    outcome = runs.run_task(settings, dag, task, given, run_id, attempt=attempt or 1)
    if outcome.status != "success":
        click.echo(f"dagctl: task {dag}/{task} failed: {outcome.error}", err=True)
        # The task's own code; 128+N when it died from signal N; 1 for other failures.
        ctx.exit(exit_status(outcome))


def _run_whole_dag(
    settings: Settings, dag: str, given: dict[str, Any], first: str | None, last: str | None, record: bool
) -> int:
    """`dagctl run DAG`: task output on stdout as it comes, one line per task start and
    end on stderr; the exit code of the first failed task (0 when all succeed)."""
    from dagctl.actions.dagrun import TaskRun, run_dag
    from dagctl.execution.foreground import exit_status

    def started(name: str, index: int, total: int) -> None:
        click.echo(f"[{index}/{total}] {name}: running", err=True)

    def ended(ran: TaskRun, index: int, total: int) -> None:
        outcome = ran.outcome
        detail = f"{ran.seconds:.1f}s" + (
            f", exit {outcome.exit_code}" if outcome.exit_code is not None else ""
        )
        if outcome.status == "success":
            click.echo(f"[{index}/{total}] {ran.task}: success ({detail})", err=True)
        else:
            error = f": {outcome.error}" if outcome.error else ""
            click.echo(f"[{index}/{total}] {ran.task}: failed ({detail}){error}", err=True)

    result = run_dag(
        settings, dag, given, first=first, last=last, record=record, on_start=started, on_end=ended
    )
    recorded = (
        "nothing recorded"
        if result.run_id is None
        else f"recorded as run {result.run_id} (dagctl status --run {result.run_id})"
    )
    failed = result.failed
    if failed is None:
        click.echo(f"{result.dag}: {len(result.ran)} tasks succeeded; {recorded}", err=True)
        return 0
    not_run = f"; not run: {', '.join(result.not_run)}" if result.not_run else ""
    click.echo(f"{result.dag}: {failed.task} failed{not_run}; {recorded}", err=True)
    return exit_status(failed.outcome)


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
@click.option(
    "--queue",
    "queues",
    multiple=True,
    metavar="NAME",
    help="Claim only the tasks of this work queue (repeatable; default: default).",
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
    queues: tuple[str, ...],
    once: bool,
    until_idle: bool,
    metrics_port: int | None,
) -> None:
    """Run the scheduling loop (exit 0 when stopped by a signal, 3 after a long database outage)."""
    import logging

    from dagctl.actions import runs
    from dagctl.secrets import MaskingFormatter

    settings = settings_of(ctx)
    handler = logging.StreamHandler()
    handler.setFormatter(MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if settings.verbose else logging.INFO, handlers=[handler])
    if not settings.verbose:
        # Alembic logs a dozen set-up lines per migration; dagctl logs the one that matters.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    ctx.exit(
        runs.schedule(
            settings,
            manager,
            concurrency=concurrency or os.cpu_count() or 1,
            poll_interval=poll_interval,
            grace_seconds=grace_seconds,
            queues=tuple(dict.fromkeys(queues)) or None,
            once=once,
            until_idle=until_idle,
            metrics_port=metrics_port,
        )
    )
