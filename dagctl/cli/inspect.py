"""Commands that read: validate, schema, list, status, logs, graph, next, why, pools.

Each command parses, makes one call into `dagctl.actions`, and renders. Heavy modules
are imported inside the commands so that `dagctl --help` stays instant; errors leave
as DagctlError and become one stderr line in `dagctl.cli.main.main`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from dagctl.cli.completion import complete_dag
from dagctl.cli.options import output_option, print_json, settings_of
from dagctl.cli.watch import watch_run
from dagctl.errors import EXIT_FAILED, EXIT_OK, UsageError


@click.command()
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
    from dagctl.dags.tree import without_gc_pauses

    # The cycle collector off for the whole command: its passes would rescan every DAG
    # loaded (~0.3 s for 10,000) and find nothing. The tree holds no cycles and is freed
    # by reference counting when _validate returns, before the collector is back on.
    with without_gc_pauses():
        failed = _validate(ctx, path, manager, output)
    ctx.exit(EXIT_FAILED if failed else EXIT_OK)


def _validate(ctx: click.Context, path: Path | None, manager: str | None, output: str) -> bool:
    """Check and report; True when there were errors."""
    from dagctl.actions import inspect as reading
    from dagctl.dags.sources import PYTHON_TASK_RULE

    settings = settings_of(ctx)
    tree = reading.validate_tree(path or settings.dags, manager, settings.db_url)
    task_count = sum(len(d.tasks) for d in tree.dags.values())
    dag_count = len(tree.dags) + len(tree.broken)
    errors = tree.errors
    if output == "json":
        print_json(
            {
                "ok": not errors,
                "dags": dag_count,
                "broken_dags": sorted(tree.broken),
                "tasks": task_count,
                "problems": [p.as_json() for p in tree.problems],
            }
        )
    else:
        if tree.problems:  # one write: 10,000 warnings echoed one by one took ~0.2 s
            click.echo("\n".join(problem.render() for problem in tree.problems))
        if settings.verbose:
            for ignored in tree.ignored_files:
                why = f"a helper module: {PYTHON_TASK_RULE}" if ignored.endswith(".py") else "not a task file"
                click.echo(f"{ignored}: ignored ({why})")
        warnings = len(tree.problems) - len(errors)
        summary = (
            f"{dag_count} DAGs ({len(tree.broken)} broken), {task_count} tasks in valid DAGs: "
            f"{len(errors)} errors, {warnings} warnings"
        )
        if tree.ignored_files:
            summary += f", {len(tree.ignored_files)} other files ignored"
        click.echo(summary, err=True)
    return bool(errors)


@click.command()
@click.argument("name", type=click.Choice(["workflow", "task", "config"]), default="workflow")
def schema(name: str) -> None:
    """Print the JSON Schema of workflow.yaml, task headers or dagctl.yaml."""
    from dagctl.dags import schemas

    click.echo(schemas.text(name), nl=False)


@click.command("list")
@output_option
@click.pass_context
def list_command(ctx: click.Context, output: str) -> None:
    """Every DAG with its schedule, next run and last run.

    Next runs are shown in the DAG's time zone and in UTC; broken DAGs are listed with
    the reason."""
    from dagctl.actions import inspect as reading

    if output == "json":
        print_json(reading.list_dags(settings_of(ctx)))
        return
    notices: list[str] = []
    rows = reading.list_dags(settings_of(ctx), notices)
    from dagctl.cli.listing import write_plain

    if not write_plain(rows, sys.stdout):  # piped or NO_COLOR: without importing rich
        from dagctl.cli.render import render_list

        render_list(rows)
    for notice in notices:
        click.echo(notice)


@click.command()
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
    from dagctl.actions import inspect as reading

    settings = settings_of(ctx)
    if watch:
        if output == "json":
            raise UsageError("--watch draws a live view", "use -o json without --watch")

        target = run_id if run_id is not None else reading.latest_run_id(settings, dag)
        outcome = watch_run(settings, target, plain_to_stderr=False)
        ctx.exit(EXIT_OK if outcome == "success" else EXIT_FAILED)
    runs = reading.status(settings, dag, run_id, limit)
    if output == "json":
        print_json(runs)
    else:
        from dagctl.cli.render import render_status

        render_status(runs)


def _header(attempt: Mapping[str, Any]) -> str:
    detail = attempt["status"]
    if attempt.get("exit_code") is not None:
        detail += f", exit {attempt['exit_code']}"
    return f"==> {attempt['task']} attempt {attempt['attempt']} ({detail}) <=="


@click.command()
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
    from dagctl.actions import inspect as reading

    settings = settings_of(ctx)
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

        reading.follow_logs(settings, run_id, task, attempt, write)
        return
    result = reading.logs(settings, run_id, task, attempt)
    if output == "json":
        print_json(result)
        return
    for index, item in enumerate(result["attempts"]):
        if task is None:
            if index:
                sys.stdout.write("\n")
            sys.stdout.write(_header(item) + "\n")
        text = item["log"]
        sys.stdout.write(text if not text or text.endswith("\n") or task is not None else text + "\n")
        if item.get("outputs") is not None:
            # With TASK the log is printed as is (for pipes): its outputs go to stderr.
            line = "outputs: " + json.dumps(item["outputs"], ensure_ascii=False) + "\n"
            (sys.stderr if task is not None else sys.stdout).write(line)
    sys.stdout.flush()


@click.command()
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
    from dagctl.actions import inspect as reading
    from dagctl.dags import graph as drawing

    loaded = reading.graph_of(settings_of(ctx), dag)
    if output == "json":
        print_json(drawing.graph_json(loaded))
    elif fmt == "mermaid":
        click.echo(drawing.graph_mermaid(loaded))
    elif fmt == "dot":
        click.echo(drawing.graph_dot(loaded))
    else:
        from dagctl.cli.render import render_tree

        render_tree(loaded.name, drawing.graph_tree(loaded))


@click.command("next")
@click.argument("dag", shell_complete=complete_dag)
@click.option("-n", "--count", type=click.IntRange(1, 1000), default=5, show_default=True)
@output_option
@click.pass_context
def next_command(ctx: click.Context, dag: str, count: int, output: str) -> None:
    """List the upcoming slots of DAG's schedule, with DST notes.

    Each slot in the DAG's time zone and in UTC; slots on a day the clocks change say
    how the spring gap or autumn fold is handled."""
    from dagctl.actions import inspect as reading

    info = reading.next_slots(settings_of(ctx), dag, count)
    if output == "json":
        print_json(info)
    else:
        from dagctl.cli.render import render_next

        render_next(info)


@click.command()
@click.argument("dag", shell_complete=complete_dag)
@output_option
@click.pass_context
def why(ctx: click.Context, dag: str, output: str) -> None:
    """Explain why DAG is not running.

    Paused, max_active_runs reached, waiting on inputs or a retry delay, no scheduler
    alive, every slot busy, or simply nothing queued."""
    from dagctl.actions import inspect as reading

    info = reading.why(settings_of(ctx), dag)
    if output == "json":
        print_json(info)
    else:
        from dagctl.cli.render import render_why

        render_why(info)


@click.command()
@output_option
@click.pass_context
def pools(ctx: click.Context, output: str) -> None:
    """Pools: slots used and free, what holds them, what waits for them.

    Pools are defined under pools: in dagctl.yaml; shown as the schedulers last synced
    them."""
    from dagctl.actions import inspect as reading

    rows = reading.pools(settings_of(ctx))
    if output == "json":
        print_json(rows)
        return
    from dagctl.cli.render import render_pools

    render_pools(rows)
