"""The command line: parse, make one call, render.

Nothing heavy is imported at module level so that `dagctl --help` stays instant;
each command imports what it uses. Errors become one stderr line at exactly one
place, `main()`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from dagctl import __version__
from dagctl.completion import complete_dag
from dagctl.config import DEFAULT_DB_HELP, Settings
from dagctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, DagctlError

_verbose = False

output_option = click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Output format; the JSON form is stable (see README).",
)


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.find_object(Settings)
    assert settings is not None
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--dags",
    "dags",
    envvar="DAGCTL_DAGS",
    default="dags",
    show_default=True,
    help="DAGs folder (env DAGCTL_DAGS).",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--db",
    "db",
    envvar="DATABASE_URL",
    default=None,
    help=f"State database URL (env DATABASE_URL). Default: {DEFAULT_DB_HELP}.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs and tracebacks.")
@click.version_option(__version__, "--version", prog_name="dagctl")
@click.pass_context
def cli(ctx: click.Context, dags: Path, db: str | None, verbose: bool) -> None:
    """dagctl: schedule and run DAGs written as plain files.

    \b
    Exit codes: 0 ok, 1 a run, task or validation failed, 2 usage error,
    3 state database unreachable or not migrated.

    \b
    Shell completion of commands and DAG names (bash; zsh_source, fish_source too):
      eval "$(_DAGCTL_COMPLETE=bash_source dagctl)"
    """
    global _verbose
    _verbose = verbose
    ctx.obj = Settings.resolve(dags=dags, db=db, verbose=verbose)


@cli.command()
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--manager",
    default=None,
    help="Also check what this task manager needs (kubernetes: a kube_image for every task).",
)
@output_option
@click.pass_context
def validate(ctx: click.Context, path: Path | None, manager: str | None, output: str) -> None:
    """Check every DAG under PATH (default: --dags) and report every problem."""
    from dagctl.loader import load_tree

    settings = _settings(ctx)
    tree = load_tree(path or settings.dags)
    if manager is not None:
        from dataclasses import replace

        from dagctl.managers import validation_problems

        extra = validation_problems(manager, tree.dags, tree.root)
        tree = replace(tree, problems=(*tree.problems, *extra))
    task_count = sum(len(d.tasks) for d in tree.dags.values())
    dag_count = len(tree.dags) + len(tree.broken)
    errors = tree.errors
    if output == "json":
        _print_json(
            {
                "ok": not errors,
                "dags": dag_count,
                "broken_dags": sorted(tree.broken),
                "tasks": task_count,
                "problems": [p.as_json() for p in tree.problems],
            }
        )
    else:
        for problem in tree.problems:
            click.echo(problem.render())
        if settings.verbose:
            for ignored in tree.ignored_files:
                click.echo(f"{ignored}: ignored (not a task file)")
        warnings = len(tree.problems) - len(errors)
        summary = (
            f"{dag_count} DAGs ({len(tree.broken)} broken), {task_count} tasks in valid DAGs: "
            f"{len(errors)} errors, {warnings} warnings"
        )
        if tree.ignored_files:
            summary += f", {len(tree.ignored_files)} other files ignored"
        click.echo(summary, err=True)
    ctx.exit(EXIT_FAILED if errors else EXIT_OK)


@cli.command()
@click.argument("name", type=click.Choice(["workflow", "task", "config"]), default="workflow")
def schema(name: str) -> None:
    """Print the JSON Schema of workflow.yaml, task headers or dagctl.yaml."""
    from dagctl import schemas

    click.echo(schemas.text(name), nl=False)


def _params_from(assignments: tuple[str, ...], params_file: Path | None) -> dict[str, Any]:
    from dagctl.errors import ParamError
    from dagctl.params import parse_assignments

    given: dict[str, Any] = {}
    if params_file is not None:
        try:
            loaded = json.loads(params_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ParamError(f"cannot read params file {params_file}: {exc}", "give a JSON object") from None
        if not isinstance(loaded, dict):
            raise ParamError(f"params file {params_file} must hold a JSON object")
        given.update(loaded)
    given.update(parse_assignments(assignments))
    return given


param_option = click.option(
    "-p",
    "--param",
    "assignments",
    multiple=True,
    metavar="NAME=VALUE",
    help="A param value; repeat for more. Split on the first '='.",
)


@cli.command()
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
@output_option
@click.pass_context
def trigger(
    ctx: click.Context,
    dag: str,
    assignments: tuple[str, ...],
    params_file: Path | None,
    wait: bool,
    creator: str,
    output: str,
) -> None:
    """Queue a manual run of DAG and print its run id."""
    from dagctl import service

    settings = _settings(ctx)
    run_id = service.trigger_run(settings, dag, _params_from(assignments, params_file), creator)
    if output == "json":
        _print_json({"run_id": run_id, "dag": dag})
    else:
        click.echo(run_id)
    if wait:
        from dagctl.cli_terminal import watch_run

        outcome = watch_run(settings, run_id, plain_to_stderr=True)
        click.echo(f"run {run_id}: {outcome}", err=True)
        ctx.exit(EXIT_OK if outcome == "success" else EXIT_FAILED)


@cli.command()
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
    from dagctl import service
    from dagctl.params import parse_assignments
    from dagctl.runner import exit_status

    outcome = service.run_task(
        _settings(ctx), dag, task, parse_assignments(assignments), run_id, attempt=attempt
    )
    if outcome.status != "success":
        click.echo(f"dagctl: task {dag}/{task} failed: {outcome.error}", err=True)
        # The task's own code; 128+N when it died from signal N; 1 for other failures.
        ctx.exit(exit_status(outcome))


@cli.command()
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
@click.pass_context
def schedule(
    ctx: click.Context,
    manager: str,
    concurrency: int | None,
    poll_interval: float,
    grace_seconds: float,
    once: bool,
    until_idle: bool,
) -> None:
    """Run the scheduling loop (exit 0 when stopped by a signal, 3 after a long database outage)."""
    import logging

    from dagctl import service

    settings = _settings(ctx)
    logging.basicConfig(
        level=logging.DEBUG if settings.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.exit(
        service.schedule(
            settings,
            manager,
            concurrency=concurrency or os.cpu_count() or 1,
            poll_interval=poll_interval,
            grace_seconds=grace_seconds,
            once=once,
            until_idle=until_idle,
        )
    )


@cli.group()
def db() -> None:
    """State database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply pending migrations to the state database."""
    from dagctl import service
    from dagctl.store.engine import mask_url

    settings = _settings(ctx)
    revision = service.upgrade_db(settings)
    click.echo(f"{mask_url(settings.db_url)} is at revision {revision}")


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def main() -> NoReturn:
    try:
        result = cli.main(prog_name="dagctl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("dagctl: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DagctlError as exc:
        if _verbose:
            import traceback

            traceback.print_exc()
        click.echo(f"dagctl: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("dagctl: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # Output piped into `head` and the reader went away: not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_OK)
    except Exception as exc:  # the one place an unexpected error is turned into a line
        if _verbose:
            import traceback

            traceback.print_exc()
        click.echo(
            f"dagctl: internal error: {type(exc).__name__}: {exc} (rerun with -v for details)", err=True
        )
        sys.exit(EXIT_FAILED)
    sys.exit(result if isinstance(result, int) else EXIT_OK)


# The inspection and run-control commands live in their own module; importing it
# registers them on `cli` (it needs the helpers above, hence the import at the end).
from dagctl import cli_terminal  # noqa: E402

__all__ = ["EXIT_USAGE", "cli", "cli_terminal", "main"]
