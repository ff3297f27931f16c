"""The command line's root: the `dagctl` group, its global options, and `main()`, the one
place an error becomes one stderr line.

Nothing heavy is imported here so that `dagctl --help` stays instant: the commands
live in run.py, inspect.py and control.py and import what they use when they run.
"""

from __future__ import annotations

import atexit
import os
import sys
from pathlib import Path
from typing import NoReturn

import click

from dagctl import __version__
from dagctl.cli import backfill, control, inspect, notify, queues, run, serve
from dagctl.config import DEFAULT_DB_HELP, Settings, settings_epilog, tuning
from dagctl.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, DagctlError
from dagctl.secrets import mask

_verbose = False


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=settings_epilog(),
)
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
    tuning()  # an invalid DAGCTL_* value is a usage error before any work starts


def main() -> NoReturn:
    try:
        result = cli.main(prog_name="dagctl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("dagctl: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        _exit(exc.exit_code)
    except DagctlError as exc:
        if _verbose:
            import traceback

            click.echo(mask(traceback.format_exc()), err=True, nl=False)
        click.echo(f"dagctl: error: {mask(str(exc))}", err=True)
        _exit(exc.exit_code)
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

            click.echo(mask(traceback.format_exc()), err=True, nl=False)
        click.echo(
            f"dagctl: internal error: {type(exc).__name__}: {mask(str(exc))} (rerun with -v for details)",
            err=True,
        )
        sys.exit(EXIT_FAILED)
    _exit(result if isinstance(result, int) else EXIT_OK)


def _exit(code: int) -> NoReturn:
    """Exit with `code`; at once, once the output is flushed, when the interpreter's
    teardown would only free memory: no other thread to wait for, no atexit hook to run
    (logging, multiprocessing and temporary folders register one), no SQLAlchemy engine
    whose pooled connections it would close (the driver-only paths close their own).
    Tearing down the few hundred modules a `trigger` imports takes ~20 ms, a tenth of
    the command (issue 18)."""
    threading = sys.modules.get("threading")
    hooks = getattr(atexit, "_ncallbacks", None)  # CPython's count of atexit hooks
    if (
        (threading is None or threading.active_count() == 1)
        and hooks is not None
        and hooks() == 0
        and "sqlalchemy" not in sys.modules
    ):
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            sys.exit(code)  # the usual teardown reports it, as it always has
        os._exit(code)
    sys.exit(code)


for command in (
    run.trigger,
    run.run,
    run.schedule,
    backfill.backfill,
    inspect.validate,
    inspect.schema,
    inspect.list_command,
    inspect.status,
    inspect.logs,
    inspect.graph,
    inspect.next_command,
    inspect.why,
    notify.notifications,
    notify.notify,
    inspect.pools,
    queues.queues,
    queues.queue,
    control.pause,
    control.unpause,
    control.cancel,
    control.retry,
    control.db,
    serve.serve,
):
    cli.add_command(command)
