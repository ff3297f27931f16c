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
    """
    global _verbose
    _verbose = verbose
    ctx.obj = Settings.resolve(dags=dags, db=db, verbose=verbose)


@cli.command()
@click.argument("path", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@output_option
@click.pass_context
def validate(ctx: click.Context, path: Path | None, output: str) -> None:
    """Check every DAG under PATH (default: --dags) and report every problem."""
    from dagctl.loader import load_tree

    settings = _settings(ctx)
    tree = load_tree(path or settings.dags)
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


__all__ = ["EXIT_USAGE", "cli", "main"]
