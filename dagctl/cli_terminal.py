"""The inspection and run-control commands: list, status, logs, pause, unpause, cancel,
retry, graph, next, why. Registered on the `cli` group by cli.py; the same rules hold:
parse, make one call (dagctl.commands), render (dagctl.console). Heavy modules are
imported inside the commands so that `dagctl --help` stays instant; errors leave as
DagctlError and become one stderr line in cli.main().
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import click

from dagctl.cli import _print_json, _settings, cli, output_option
from dagctl.completion import complete_dag
from dagctl.config import Settings
from dagctl.errors import EXIT_FAILED, EXIT_OK, UsageError


def watch_run(settings: Settings, run_id: int, *, plain_to_stderr: bool) -> str:
    """Follow a run until it ends and return its status: a live view redrawn in place
    when stdout is a terminal, else one plain line per change (on stderr when stdout
    carries something else, as with `trigger --wait`)."""
    from dagctl import commands

    if sys.stdout.isatty():
        from dagctl.console import console, live_run

        out = console()
        with live_run(out) as live:
            return commands.follow_run(
                settings, run_id, live.update, on_notice=lambda m: out.print(f"[yellow]{m}[/]")
            )
    from dagctl.console import progress_lines

    previous: dict[str, Any] | None = None

    def show(view: dict[str, Any]) -> None:
        nonlocal previous
        for line in progress_lines(previous, view):
            click.echo(line, err=plain_to_stderr)
        previous = view

    return commands.follow_run(
        settings, run_id, show, on_notice=lambda m: click.echo(f"dagctl: {m}", err=True)
    )


@cli.command("list")
@output_option
@click.pass_context
def list_command(ctx: click.Context, output: str) -> None:
    """Every DAG with its schedule, next run and last run.

    Next runs are shown in the DAG's time zone and in UTC; broken DAGs are listed with
    the reason."""
    from dagctl import commands

    rows = commands.list_dags(_settings(ctx))
    if output == "json":
        _print_json(rows)
        return
    from dagctl.console import render_list

    render_list(rows)


@cli.command()
@click.argument("dag", required=False, shell_complete=complete_dag)
@click.option("--run", "run_id", type=int, help="Show one run.")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True, help="How many runs.")
@click.option(
    "--watch",
    is_flag=True,
    help="Follow one run (--run, else the newest) live until it ends; exit 0 if it succeeded, 1 if not.",
)
@output_option
@click.pass_context
def status(
    ctx: click.Context, dag: str | None, run_id: int | None, limit: int, watch: bool, output: str
) -> None:
    """Show recent runs and the state of their tasks.

    Each task's latest attempt with its status, attempt number, duration and exit code;
    errors under their task."""
    from dagctl import service

    settings = _settings(ctx)
    if watch:
        if output == "json":
            raise UsageError("--watch draws a live view", "use -o json without --watch")
        from dagctl import commands

        target = run_id if run_id is not None else commands.latest_run_id(settings, dag)
        outcome = watch_run(settings, target, plain_to_stderr=False)
        ctx.exit(EXIT_OK if outcome == "success" else EXIT_FAILED)
    runs = service.status(settings, dag, run_id, limit)
    if output == "json":
        _print_json(runs)
    else:
        from dagctl.console import render_status

        render_status(runs)


def _header(attempt: Mapping[str, Any]) -> str:
    detail = attempt["status"]
    if attempt.get("exit_code") is not None:
        detail += f", exit {attempt['exit_code']}"
    return f"==> {attempt['task']} attempt {attempt['attempt']} ({detail}) <=="


@cli.command()
@click.argument("run_id", metavar="RUN", type=int)
@click.argument("task", required=False)
@click.option("--attempt", type=click.IntRange(min=1), help="This attempt of TASK (default: the latest).")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the task or run ends.")
@output_option
@click.pass_context
def logs(
    ctx: click.Context, run_id: int, task: str | None, attempt: int | None, follow: bool, output: str
) -> None:
    """Print the captured output of a run's tasks.

    Read from the state database, so it works from any host. With TASK, its latest
    attempt only (or --attempt N), printed as is."""
    from dagctl import commands

    settings = _settings(ctx)
    if follow:
        if output == "json":
            raise UsageError("-f prints output as it arrives", "use -o json without -f")
        current: list[int] = []

        def write(item: Mapping[str, Any], text: str) -> None:
            if task is None and current != [item["id"]]:
                sys.stdout.write(f"==> {item['task_name']} attempt {item['attempt']} <==\n")
                current[:] = [item["id"]]
            sys.stdout.write(text)
            sys.stdout.flush()

        commands.follow_logs(settings, run_id, task, attempt, write)
        return
    result = commands.logs(settings, run_id, task, attempt)
    if output == "json":
        _print_json(result)
        return
    for index, item in enumerate(result["attempts"]):
        if task is None:
            if index:
                sys.stdout.write("\n")
            sys.stdout.write(_header(item) + "\n")
        text = item["log"]
        sys.stdout.write(text if not text or text.endswith("\n") or task is not None else text + "\n")
    sys.stdout.flush()


@cli.command()
@click.argument("dag", shell_complete=complete_dag)
@output_option
@click.pass_context
def pause(ctx: click.Context, dag: str, output: str) -> None:
    """Stop creating and starting runs of DAG (running runs finish)."""
    from dagctl import commands

    result = commands.set_paused(_settings(ctx), dag, True)
    if output == "json":
        _print_json(result)
    else:
        click.echo(f"{dag} paused: no new runs are created or started (dagctl unpause {dag} to resume)")


@cli.command()
@click.argument("dag", shell_complete=complete_dag)
@output_option
@click.pass_context
def unpause(ctx: click.Context, dag: str, output: str) -> None:
    """Schedule DAG again (missed slots follow its catchup policy)."""
    from dagctl import commands

    result = commands.set_paused(_settings(ctx), dag, False)
    if output == "json":
        _print_json(result)
    else:
        click.echo(f"{dag} unpaused: runs are created and started again")


@cli.command()
@click.argument("run_id", metavar="RUN", type=int)
@output_option
@click.pass_context
def cancel(ctx: click.Context, run_id: int, output: str) -> None:
    """Cancel a run and stop its running tasks.

    Queued tasks are cancelled at once; running ones are killed (their whole process
    group) by the scheduler that runs them, within a poll interval."""
    from dagctl import commands

    result = commands.cancel(_settings(ctx), run_id)
    if output == "json":
        _print_json(result)
        return
    message = f"run {run_id} cancelled"
    if result["cancelled_tasks"]:
        message += f"; {', '.join(result['cancelled_tasks'])} will not run"
    if result["stopping_tasks"]:
        message += f"; stopping {', '.join(result['stopping_tasks'])} (its scheduler kills it)"
    click.echo(message)


@cli.command()
@click.argument("run_id", metavar="RUN", type=int)
@click.option("--task", help="Retry only this task (and what depends on it).")
@output_option
@click.pass_context
def retry(ctx: click.Context, run_id: int, task: str | None, output: str) -> None:
    """Run the failed tasks of a finished run again.

    Failed, upstream_failed and cancelled tasks and everything downstream of them run
    again in the same run: a task that ran before gets a new attempt."""
    from dagctl import commands

    result = commands.retry(_settings(ctx), run_id, task)
    if output == "json":
        _print_json(result)
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


@cli.command()
@click.argument("dag", shell_complete=complete_dag)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tree", "mermaid", "dot"]),
    default="tree",
    show_default=True,
    help="A tree for the terminal, or Mermaid / Graphviz source.",
)
@output_option
@click.pass_context
def graph(ctx: click.Context, dag: str, fmt: str, output: str) -> None:
    """Draw DAG's tasks and their inputs as a tree, Mermaid or DOT."""
    from dagctl import commands, insight

    loaded = commands.graph(_settings(ctx), dag)
    if output == "json":
        _print_json(insight.graph_json(loaded))
    elif fmt == "mermaid":
        click.echo(insight.graph_mermaid(loaded))
    elif fmt == "dot":
        click.echo(insight.graph_dot(loaded))
    else:
        from dagctl.console import render_tree

        render_tree(loaded.name, insight.graph_tree(loaded))


@cli.command("next")
@click.argument("dag", shell_complete=complete_dag)
@click.option("-n", "--count", type=click.IntRange(1, 1000), default=5, show_default=True)
@output_option
@click.pass_context
def next_command(ctx: click.Context, dag: str, count: int, output: str) -> None:
    """List the upcoming slots of DAG's schedule, with DST notes.

    Each slot in the DAG's time zone and in UTC; slots on a day the clocks change say
    how the spring gap or autumn fold is handled."""
    from dagctl import commands

    info = commands.next_slots(_settings(ctx), dag, count)
    if output == "json":
        _print_json(info)
    else:
        from dagctl.console import render_next

        render_next(info)


@cli.command()
@click.argument("dag", shell_complete=complete_dag)
@output_option
@click.pass_context
def why(ctx: click.Context, dag: str, output: str) -> None:
    """Explain why DAG is not running.

    Paused, max_active_runs reached, waiting on inputs or a retry delay, no scheduler
    alive, every slot busy, or simply nothing queued."""
    from dagctl import commands

    info = commands.why(_settings(ctx), dag)
    if output == "json":
        _print_json(info)
    else:
        from dagctl.console import render_why

        render_why(info)
