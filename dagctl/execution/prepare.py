"""What to start for one task attempt: argv, environment, working folder, timeout.

Processes start from argv lists, never a shell string; params travel as environment
variables (built in `environment.py`), bind parameters (SQL) or the Python context.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

from dagctl.dags.model import Dag, Task
from dagctl.dags.templating import TemplateError, is_template, render_argv
from dagctl.execution.attempt import TaskContext
from dagctl.execution.environment import (
    PrepareError,
    attempt_variables,
    configured_environment,
    expand_url,
    task_environment,
)
from dagctl.execution.taskprocess import Launch
from dagctl.secrets import url_passwords

__all__ = ["PrepareError", "prepare"]


@cache
def _bash() -> str | None:
    return shutil.which("bash")


def prepare(dag: Dag, task: Task, context: TaskContext) -> Launch | None:
    """The argv, environment, cwd and timeout of one attempt; None for `no_op`.

    Raises PrepareError when the attempt must fail before starting. The environment is
    built by `dagctl.execution.environment.task_environment` over this process's own.

    Plug-in task types (entry point group `dagctl.task_types`) are loaded by name and
    called as `factory(dag, task, context) -> list[str]`; the list is the argv, run
    with the same environment, cwd, process group and timeout as built-in types.
    """
    if task.type == "no_op":
        return None
    if task.type == "dag":
        # The scheduler's advance step runs it (scheduling/children.py); no process does.
        raise PrepareError(
            f"{task.name} is a dag task: it runs {task.child_dag} as a child run under"
            f" dagctl schedule; run that DAG with dagctl trigger {task.child_dag} instead"
        )
    configured = dag.worker_config_for(task).get("env")
    # Before params join the environment: a param must not be able to redirect the
    # connection (a param named DATABASE_URL, or one named after a ${VAR} in the URL).
    sql_url = ""
    if task.type == "sql":
        # Nor a template: it may read params, so its values never reach a ${VAR}.
        plain = (
            {k: v for k, v in configured.items() if not is_template(v)}
            if isinstance(configured, Mapping)
            else configured
        )
        sql_url = _sql_url(dag, task, configured_environment(os.environ, plain))
    built = task_environment(dag, task, context, base=os.environ, configured=configured)
    env = built.variables
    secrets = list(built.secrets)
    # The loader may hold paths relative to where dagctl started; the task runs elsewhere.
    script = os.path.abspath(task.path)
    cwd = os.path.abspath(dag.path)
    env["PWD"] = cwd  # the inherited value names our directory, not the task's
    argv: Sequence[str]
    if task.type == "shell":
        bash = _bash()
        if bash is None:
            raise PrepareError("bash not found on PATH")
        argv = [bash, script]
    elif task.type == "command":
        if not task.command:
            raise PrepareError("a command task needs command:")
        try:
            argv = render_argv(task.command, attempt_variables(dag, context))
        except TemplateError as exc:
            raise PrepareError(str(exc)) from None
    elif task.type == "python":
        argv = [sys.executable, "-m", "dagctl.execution.pytask", script]
    elif task.type == "sql":
        env["DAGCTL_SQL_URL"] = sql_url
        secrets += url_passwords(sql_url)
        argv = [sys.executable, "-m", "dagctl.execution.sqltask", script]
    else:
        argv = _plugin_argv(dag, task, context)
    return Launch(
        argv=tuple(argv),
        env=env,
        cwd=Path(cwd),
        timeout=dag.timeout_for(task) or None,
        secrets=tuple(secrets),
    )


def _sql_url(dag: Dag, task: Task, env: Mapping[str, str]) -> str:
    if task.connection:
        connection = dag.connections.get(task.connection)
        if connection is None:
            known = ", ".join(sorted(dag.connections)) or "none"
            raise PrepareError(f"unknown connection {task.connection!r} (defined: {known})")
        url, where = connection.url, f"connection {task.connection!r}"
    else:
        from dagctl.dags.checks import NO_SQL_DATABASE_HINT, sql_database_url

        # `env` already holds worker_config.env over the process environment.
        target = sql_database_url(dag, task, {k: v for k, v in env.items() if k == "DATABASE_URL"})
        if target is None:
            raise PrepareError(f"SQL task without a connection and no DATABASE_URL ({NO_SQL_DATABASE_HINT})")
        url, where = target

    return expand_url(url, env, where)


def _plugin_argv(dag: Dag, task: Task, context: TaskContext) -> list[str]:
    from dagctl.plugins import load_task_type

    try:
        factory = load_task_type(task.type)
    except KeyError:
        raise PrepareError(f"unknown task type {task.type!r} (is its plug-in installed?)") from None
    except Exception as exc:
        raise PrepareError(f"cannot load task type {task.type!r}: {exc}") from exc
    try:
        argv = factory(dag, task, context)
    except Exception as exc:
        raise PrepareError(f"task type {task.type!r} failed to build the command: {exc}") from exc
    if not isinstance(argv, (list, tuple)) or not argv or not all(isinstance(a, str) for a in argv):
        raise PrepareError(f"task type {task.type!r} must return a non-empty list of strings")
    return list(argv)
