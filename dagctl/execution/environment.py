"""The ONE place a task attempt's environment is built.

The worker (a subprocess here), `dagctl run` (the same, in the foreground) and the
kubernetes manager (a pod's `env`) all call `task_environment`, so a task sees the
same variables, under the same name rules and size limits, wherever it runs.

Layers, later ones win: the base (the parent's environment but DATABASE_URL for a
local process, nothing for a pod), the configured variables (`worker_config.env`, or
`kube_env` for a pod; templated values rendered for this attempt, see
`render_configured`), one variable per param (none named after a sensitive variable,
see dags/params.py), `DAGCTL_CONN_<NAME>` per connection of dagctl.yaml (its password
masked in the output), then the run variables `DAGCTL_DAG`, `DAGCTL_TASK`,
`DAGCTL_RUN_ID` ("" when there is no run), `DAGCTL_ATTEMPT`, `DAGCTL_LOGICAL_DATE`,
`DAGCTL_DATA_INTERVAL_START`, `DAGCTL_DATA_INTERVAL_END` (`format_logical_date`),
`DAGCTL_DS` (the slot's local date, YYYY-MM-DD), `DAGCTL_PARAMS` (every param as
one JSON object) and, when its upstream tasks published any, `DAGCTL_OUTPUTS` (their
outputs, one JSON object by task name; see execution/outputs.py). `DAGCTL_OUTPUT`, the file a task
writes its own outputs to, is added by `TaskProcess`, which reads it back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from dagctl.dags.model import Dag, Task
from dagctl.dags.params import as_env_value, sensitive_env_name
from dagctl.dags.templating import TemplateError, is_template, render_mapping, run_variables
from dagctl.errors import TaskFailed
from dagctl.execution.attempt import TaskContext
from dagctl.secrets import url_passwords

# Linux refuses a single environment string over 128 KiB (MAX_ARG_STRLEN).
MAX_ENV_STRING_BYTES = 128 * 1024 - 1
# A name every shell, every exec and the Kubernetes API accept as an environment
# variable; a param named otherwise still reaches the task inside DAGCTL_PARAMS.
_PORTABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Not inherited by tasks: the state database is dagctl's (see `inherited`).
STATE_DATABASE_VARIABLE = "DATABASE_URL"
# `${VAR}` and `${VAR:-default}` in a connection URL (expanded strictly in prepare.py).
_URL_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

RUN_VARIABLES = (
    "DAGCTL_DAG",
    "DAGCTL_TASK",
    "DAGCTL_RUN_ID",
    "DAGCTL_ATTEMPT",
    "DAGCTL_LOGICAL_DATE",
    "DAGCTL_DATA_INTERVAL_START",
    "DAGCTL_DATA_INTERVAL_END",
    "DAGCTL_DS",
    "DAGCTL_PARAMS",
    "DAGCTL_OUTPUTS",
    "DAGCTL_ITEM",
    "DAGCTL_ITEM_JSON",
    "DAGCTL_ITEM_INDEX",
)


class PrepareError(TaskFailed):
    """The attempt cannot start (missing parameter, NUL byte, params too big, unknown
    connection...): it fails with this message without a process ever existing."""


@dataclass(frozen=True, slots=True)
class TaskEnvironment:
    variables: dict[str, str]  # the whole environment: base, configured, params, run variables
    secrets: tuple[str, ...]  # values to mask in the task's output


def format_logical_date(value: datetime) -> str:
    """ISO 8601 in UTC with a `+00:00` offset (what `datetime.isoformat()` writes and
    Python 3.10's `fromisoformat` reads back); a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def task_environment(
    dag: Dag,
    task: Task,
    context: TaskContext,
    *,
    base: Mapping[str, str],
    configured: object,
    configured_key: str = "worker_config.env",
    check_parameters: bool = True,
    with_connections: bool = True,
) -> TaskEnvironment:
    """Build the environment of one attempt; raises PrepareError when it cannot be.

    `configured` is the user's mapping of extra variables (`worker_config.env`, or
    `kube_env` for a pod), named `configured_key` in errors. `check_parameters`: fail
    when a task's declared `parameters` are neither params nor variables; a pod skips
    it, as its own `dagctl run` checks them against the pod's environment.
    `with_connections`: add `DAGCTL_CONN_<NAME>`; a pod's spec leaves them out (its
    `dagctl run` adds them, and a URL's password has no place in a pod spec)."""
    env = configured_environment(
        inherited(base), render_configured(dag, configured, context, configured_key), configured_key
    )
    params = {**context.params, **task_params(dag, task, context)}
    missing = [p for p in task.parameters if p not in params and p not in env]
    if missing and check_parameters:
        plural = "s" if len(missing) > 1 else ""
        raise PrepareError(f"task needs parameter{plural} {', '.join(missing)}")
    for name, value in params.items():
        text = as_env_value(value)
        if "\x00" in text:
            raise PrepareError(f"param {name!r} contains a NUL byte")
        # A sensitive name (BASH_ENV, LD_PRELOAD, PATH...) is refused by validate and at
        # trigger; should one come through anyway, it stays inside DAGCTL_PARAMS.
        if _PORTABLE_NAME.match(name) and not sensitive_env_name(name):
            env[name] = text
    params_json = json.dumps(params, ensure_ascii=False, default=str)
    size = len(params_json.encode("utf-8", "surrogatepass"))
    if size > MAX_ENV_STRING_BYTES - len("DAGCTL_PARAMS="):
        raise PrepareError(
            f"params are {size:,} bytes as JSON, over the 128 KiB a process environment"
            " variable can hold (pass paths or URLs to big data)"
        )
    upstream_json = json.dumps(dict(context.outputs), ensure_ascii=False, default=str)
    if len(upstream_json.encode("utf-8", "surrogatepass")) > MAX_ENV_STRING_BYTES - len("DAGCTL_OUTPUTS="):
        raise PrepareError(
            "the outputs of this task's upstream tasks are over the 128 KiB a process"
            " environment variable can hold (publish paths or URLs to big data)"
        )
    dates = context.dates
    # A templated value may read params, so it never feeds a connection's ${VAR}.
    plain = (
        {k: v for k, v in configured.items() if not is_template(v)}
        if isinstance(configured, Mapping)
        else configured
    )
    connections = (
        connection_variables(dag, configured_environment(base, plain, configured_key))
        if with_connections
        else {}
    )
    env.update(connections)
    env.update(
        DAGCTL_DAG=dag.name,
        DAGCTL_TASK=task.name,
        DAGCTL_RUN_ID="" if context.run_id is None else str(context.run_id),
        DAGCTL_ATTEMPT=str(context.attempt),
        DAGCTL_LOGICAL_DATE=format_logical_date(context.logical_date),
        DAGCTL_DATA_INTERVAL_START=format_logical_date(dates.data_interval_start),
        DAGCTL_DATA_INTERVAL_END=format_logical_date(dates.data_interval_end),
        DAGCTL_DS=dates.ds,
        DAGCTL_PARAMS=params_json,
    )
    if context.outputs:
        env["DAGCTL_OUTPUTS"] = upstream_json
    if context.item_index is not None:
        # A string item as it is (a file name); anything else as JSON.
        item = context.item
        env["DAGCTL_ITEM"] = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
        env["DAGCTL_ITEM_JSON"] = json.dumps(item, ensure_ascii=False)  # what context["item"] is read from
        env["DAGCTL_ITEM_INDEX"] = str(context.item_index)
    secrets = [
        *secret_values(dag, context),
        *url_passwords(base.get(STATE_DATABASE_VARIABLE)),
        *(p for url in connections.values() for p in url_passwords(url)),
    ]
    return TaskEnvironment(env, tuple(secrets))


def inherited(base: Mapping[str, str]) -> dict[str, str]:
    """What a task inherits from the scheduler's environment: all of it but
    DATABASE_URL, the state database's URL and password, which is dagctl's and not the
    task's (an SQL task's default connection is read from it before this point; a task
    that needs a database URL gets one under another name)."""
    return {k: v for k, v in base.items() if k != STATE_DATABASE_VARIABLE}


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_url(url: str, env: Mapping[str, str], where: str) -> str:
    """A connection URL with its `${VAR}` / `${VAR:-default}` taken from `env` (the
    environment before params join it, so that no param can redirect a connection)."""

    def expand(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise PrepareError(f"{where}: environment variable {name} is not set")
            return default
        return value

    from dagctl.config import normalise_db_url

    return normalise_db_url(_VAR.sub(expand, url))


def connection_variable(name: str) -> str:
    """`DAGCTL_CONN_<NAME>`: the connection's name (an identifier, by the schema) upper-cased."""
    return "DAGCTL_CONN_" + name.upper()


def connection_variables(dag: Dag, env: Mapping[str, str]) -> dict[str, str]:
    """`DAGCTL_CONN_<NAME>` = URL for each connection of dagctl.yaml, so that shell and
    Python tasks reach the same databases as SQL tasks (SQLite paths already made
    absolute by the loader). A connection whose `${VAR}` is unset here is left out: only
    a task that uses it can fail for it."""
    variables: dict[str, str] = {}
    for name, connection in dag.connections.items():
        try:
            variables[connection_variable(name)] = expand_url(connection.url, env, f"connection {name!r}")
        except PrepareError:
            continue
    return variables


def attempt_variables(dag: Dag, context: TaskContext) -> dict[str, object]:
    """What the templates of one attempt (env values, argv) may read."""
    return run_variables(
        dag.name,
        context.dates,
        run_id=context.run_id,
        task=context.task,
        attempt=context.attempt,
        params=context.params,
        outputs=context.outputs,
    )


def task_params(dag: Dag, task: Task, context: TaskContext) -> dict[str, Any]:
    """The task's own `params:`, templates rendered for this attempt (they may read the
    outputs of upstream tasks): over the run's params, in the environment, in
    DAGCTL_PARAMS, as SQL bind parameters and in the Python context."""
    if not task.params:
        return {}
    try:
        return render_mapping(task.params, attempt_variables(dag, context), "params")
    except TemplateError as exc:
        raise PrepareError(str(exc)) from None


def render_configured(
    dag: Dag, configured: object, context: TaskContext, configured_key: str = "worker_config.env"
) -> object:
    """The user's configured variables with templated values rendered for this attempt
    (PrepareError naming the key when one cannot be); anything else as it is."""
    if not isinstance(configured, Mapping) or not any(is_template(v) for v in configured.values()):
        return configured
    try:
        return render_mapping(configured, attempt_variables(dag, context), configured_key)
    except TemplateError as exc:
        raise PrepareError(str(exc)) from None


def configured_environment(
    base: Mapping[str, str], configured: object, configured_key: str = "worker_config.env"
) -> dict[str, str]:
    """The base with the user's configured variables over it: the environment before
    any param joins it (what a connection URL's ${VAR} may read, so that no param can
    redirect a connection)."""
    env = dict(base)
    configured = configured or {}
    if not isinstance(configured, Mapping):
        raise PrepareError(f"{configured_key} must be a mapping of NAME: value")
    for key, value in configured.items():
        env[str(key)] = "" if value is None else as_env_value(value)
    return env


def secret_values(dag: Dag, context: TaskContext) -> list[str]:
    """The values of secret params, as given and as they appear inside DAGCTL_PARAMS,
    and the passwords of the DAG's connections (a shell task may well echo one)."""
    values: list[str] = connection_passwords(dag)
    for name in sorted(context.secret_params | dag.secret_params):
        if context.params.get(name) is None:
            continue
        text = as_env_value(context.params[name])
        values.append(text)
        for ascii_only in (False, True):
            escaped = json.dumps(text, ensure_ascii=ascii_only)[1:-1]
            if escaped != text:
                values.append(escaped)
    return values


def connection_passwords(dag: Dag, env: Mapping[str, str] | None = None) -> list[str]:
    """The passwords of the DAG's connection URLs, their ${VAR}s read from `env` (this
    process's environment by default); a URL whose variables are unset has none."""
    env = os.environ if env is None else env

    def expand(match: re.Match[str]) -> str:
        value = env.get(match.group(1))
        return value if value else (match.group(2) or "")

    passwords: list[str] = []
    for connection in dag.connections.values():
        passwords += url_passwords(_URL_VARIABLE.sub(expand, connection.url))
    return passwords
