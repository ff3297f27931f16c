"""Checks across a DAG's tasks and across DAGs: unknown inputs, cycles (within a DAG
and across DAGs), unknown connections, the templates of a file, and (given an
environment) where `.sql` tasks without a connection would run. Each problem points at
the header line of
the input that causes it."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dagctl.dags import cron
from dagctl.dags.hints import did_you_mean
from dagctl.dags.model import DEFAULT_QUEUE, ROOT_CONFIG_FILE, Dag, Problem, RootConfig, Task, merge_config
from dagctl.dags.sources import HEADER_READERS, MAX_SCRIPT_BYTES, Collector, Invalid, read_text
from dagctl.dags.templating import check as check_text
from dagctl.dags.templating import is_template
from dagctl.dags.yamldoc import YamlDoc


def header_line(task: Task, pointer: str) -> int:
    """File line of a field of a task's header, e.g. /inputs/1. Only problems need it, so
    the header is read again here instead of keeping every parsed header around."""
    scratch = Collector(base=task.path, dag=None)
    try:
        text = read_text(task.path, MAX_SCRIPT_BYTES, scratch)
        header = HEADER_READERS[task.path.suffix](task.path, text, scratch)
    except (Invalid, KeyError):
        return task.line
    line = header.doc.line_of(pointer) if header.doc is not None else None
    return line or task.line


def input_pointer(task: Task, upstream: str) -> str:
    return f"/inputs/{task.inputs.index(upstream)}" if upstream in task.inputs else "/inputs"


def check_inputs(dag_name: str, tasks: Mapping[str, Task], out: Collector) -> None:
    for task in tasks.values():
        for upstream in task.local_inputs:
            pointer = input_pointer(task, upstream)
            if upstream == task.name:
                out.add(
                    task.path,
                    header_line(task, pointer),
                    f"cycle: {task.name} -> {task.name}",
                    "a task cannot be its own input",
                    pointer,
                )
            elif upstream not in tasks:
                hint = did_you_mean(upstream, tasks) or "name a task file of this DAG, extension included"
                out.add(task.path, header_line(task, pointer), f"unknown input {upstream!r}", hint, pointer)
    for cycle in find_cycles(
        {name: [i for i in t.local_inputs if i in tasks and i != name] for name, t in tasks.items()}
    ):
        # The search follows inputs (downstream to upstream); the message follows the data.
        first = tasks[cycle[0]]
        pointer = input_pointer(first, cycle[1])
        out.add(
            first.path,
            header_line(first, pointer),
            f"cycle: {' -> '.join(reversed(cycle))}",
            "remove one of these inputs",
            pointer,
        )


# `outputs["task.sh"]` / `outputs['task.sh']` in a template: task names hold dots, so
# they are only ever read by subscript.
_OUTPUT_REFERENCE = re.compile(r"""\boutputs\s*\[\s*(["'])(.+?)\1\s*\]""")


def _upstream(tasks: Mapping[str, Task], name: str) -> set[str]:
    seen: set[str] = set()
    todo = list(tasks[name].local_inputs)
    while todo:
        parent = todo.pop()
        if parent not in seen and parent in tasks:
            seen.add(parent)
            todo.extend(tasks[parent].local_inputs)
    return seen


def check_output_references(tasks: Mapping[str, Task], out: Collector) -> None:
    """A task's templates (argv, worker_config.env, params) may read the outputs of the tasks
    it runs after, and of no other: those may not have run yet."""
    for task in tasks.values():
        env = task.worker_config.get("env")
        templated = [(f"/command/{i}", text) for i, text in enumerate(task.command)]
        if isinstance(env, Mapping):
            templated += [(f"/worker_config/env/{k}", v) for k, v in env.items() if isinstance(v, str)]
        templated += [(f"/params/{k}", v) for k, v in task.params.items() if isinstance(v, str)]
        templated += [("/for_each", task.for_each)] if task.for_each else []
        upstream: set[str] | None = None
        for pointer, text in templated:
            if not is_template(text):
                continue
            for match in _OUTPUT_REFERENCE.finditer(text):
                upstream = _upstream(tasks, task.name) if upstream is None else upstream
                if match.group(2) not in upstream:
                    out.add(
                        task.path,
                        header_line(task, pointer),
                        f"outputs[{match.group(1)}{match.group(2)}{match.group(1)}] names a task that is"
                        f" not upstream of {task.name}",
                        f"add {match.group(2)!r} to inputs (directly or through another task)",
                        pointer,
                    )


def check_connections(tasks: Mapping[str, Task], config: RootConfig, out: Collector) -> None:
    for task in tasks.values():
        if task.connection and task.connection not in config.connections:
            hint = did_you_mean(task.connection, config.connections) or (
                f"define it under connections: in {ROOT_CONFIG_FILE}"
            )
            out.add(
                task.path,
                header_line(task, "/connection"),
                f"unknown connection {task.connection!r}",
                hint,
                "/connection",
            )


def check_notify_channels(
    path: Path, doc: YamlDoc, rules: Any, channels: Mapping[str, Any], out: Collector
) -> None:
    """Every channel a `notify:` rule sends to is declared under `channels:` of dagctl.yaml."""
    for i, rule in enumerate(rules if isinstance(rules, list) else ()):
        targets = rule.get("to") if isinstance(rule, dict) else None
        for j, name in enumerate(targets if isinstance(targets, list) else ()):
            if isinstance(name, str) and name not in channels:
                pointer = f"/notify/{i}/to/{j}"
                hint = did_you_mean(name, channels) or f"declare it under channels: in {ROOT_CONFIG_FILE}"
                out.add(path, doc.line_of(pointer), f"unknown channel {name!r}", hint, pointer)


def check_pools(
    workflow: Path,
    doc: YamlDoc | None,
    data: Mapping[str, Any],
    tasks: Mapping[str, Task],
    config: RootConfig,
    out: Collector,
) -> None:
    """Every pool named by the DAG or a task is defined in dagctl.yaml, and one attempt's
    pool_slots fit in it (else the attempt could never start)."""
    dag_pool = data.get("pool") if isinstance(data.get("pool"), str) else None
    raw_slots = data.get("pool_slots")
    dag_slots: int = raw_slots if isinstance(raw_slots, int) else 1

    def check(path: Path, line: int | None, name: str, slots: int, where: str) -> None:
        pool = config.pools.get(name)
        if pool is None:
            hint = did_you_mean(name, config.pools) or f"define it under pools: in {ROOT_CONFIG_FILE}"
            out.add(path, line, f"unknown pool {name!r}", hint, where)
        elif pool.slots and slots > pool.slots:
            fix = f"set pool_slots to at most {pool.slots}, or enlarge the pool in {ROOT_CONFIG_FILE}"
            out.add(
                path, line, f"pool_slots {slots} is more than pool {name!r} has ({pool.slots})", fix, where
            )

    if dag_pool:
        line = doc.line_of("/pool") if doc is not None else None
        check(workflow, line, dag_pool, dag_slots, "/pool")
    for task in tasks.values():
        # Only what the task sets itself: the DAG's own pool was checked above.
        slots = task.pool_slots if task.pool_slots is not None else dag_slots
        if task.pool:
            check(task.path, header_line(task, "/pool"), task.pool, slots, "/pool")
        elif dag_pool and task.pool_slots is not None:
            check(task.path, header_line(task, "/pool_slots"), dag_pool, slots, "/pool_slots")


def check_queues(
    workflow: Path,
    doc: YamlDoc | None,
    data: Mapping[str, Any],
    tasks: Mapping[str, Task],
    config: RootConfig,
    out: Collector,
) -> None:
    """Every queue named by the DAG or a task is `default` or listed in dagctl.yaml: a
    typo would route the task to a queue no scheduler serves."""
    known = [DEFAULT_QUEUE, *config.queues]

    def check(path: Path, line: int | None, name: str) -> None:
        if name not in known:
            hint = did_you_mean(name, known) or f"list it under queues: in {ROOT_CONFIG_FILE}"
            out.add(path, line, f"unknown queue {name!r}", hint, "/queue")

    dag_queue = data.get("queue")
    if isinstance(dag_queue, str) and dag_queue:
        check(workflow, doc.line_of("/queue") if doc is not None else None, dag_queue)
    for task in tasks.values():
        if task.queue:
            check(task.path, header_line(task, "/queue"), task.queue)


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each cycle once, as a path that returns to its start (iterative DFS, no recursion limit)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    cycles: list[list[str]] = []
    for start in graph:
        if colour[start] != white:
            continue
        stack: list[tuple[str, Any]] = [(start, iter(graph[start]))]
        path = [start]
        colour[start] = grey
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = black
                stack.pop()
                path.pop()
            elif colour.get(child, black) == grey:
                cycles.append([*path[path.index(child) :], child])
            elif colour.get(child) == white:
                colour[child] = grey
                stack.append((child, iter(graph[child])))
                path.append(child)
    return cycles


def check_external_inputs(
    dags: Mapping[str, Mapping[str, Task]],
    task_names: Mapping[str, tuple[str, ...]],
    per_dag: dict[str, list[Problem]],
    base: Path,
) -> None:
    # Only DAGs with a cross-DAG input and the DAGs they name can be on a cycle across
    # DAGs; the others are components of the graph of their own, which the search
    # would walk (50,000 tasks in a tree of 10,000 DAGs) to find nothing to report.
    linked: set[str] = set()
    for dag_name, tasks in dags.items():
        for task in tasks.values():
            if any(":" in i for i in task.inputs):
                linked.add(dag_name)
                linked.update(other_dag for other_dag, _ in task.external_inputs)
    if not linked:
        return
    edges: dict[str, list[str]] = {}
    for dag_name, tasks in dags.items():
        if dag_name not in linked:
            continue
        out = Collector(base=base, dag=dag_name)
        for task in tasks.values():
            node = f"{dag_name}:{task.name}"
            edges.setdefault(node, []).extend(f"{dag_name}:{i}" for i in task.local_inputs)
            for other_dag, other_task in task.external_inputs:
                pointer = input_pointer(task, f"{other_dag}:{other_task}")
                if other_dag not in task_names:
                    hint = did_you_mean(other_dag, task_names) or "name an existing DAG folder"
                    out.add(
                        task.path,
                        header_line(task, pointer),
                        f"unknown DAG {other_dag!r} in input {other_dag}:{other_task}",
                        hint,
                        pointer,
                    )
                elif other_task not in task_names[other_dag]:
                    hint = (
                        did_you_mean(other_task, task_names[other_dag]) or f"name a task file of {other_dag}"
                    )
                    out.add(
                        task.path,
                        header_line(task, pointer),
                        f"DAG {other_dag!r} has no task {other_task!r}",
                        hint,
                        pointer,
                    )
                else:
                    edges[node].append(f"{other_dag}:{other_task}")
        per_dag[dag_name].extend(out.problems)
    for cycle in find_cycles({k: [v for v in vs if v in edges] for k, vs in edges.items()}):
        if len({node.split(":", 1)[0] for node in cycle}) < 2:
            continue  # reported within its DAG already
        dag_name, task_name = cycle[0].split(":", 1)
        task = dags[dag_name][task_name]
        upstream_dag, _, upstream_task = cycle[1].partition(":")
        pointer = input_pointer(task, upstream_task if upstream_dag == dag_name else cycle[1])
        out = Collector(base=base, dag=dag_name)
        out.add(
            task.path,
            header_line(task, pointer),
            f"cycle across DAGs: {' -> '.join(reversed(cycle))}",
            "remove one of these inputs",
            pointer,
        )
        per_dag[dag_name].extend(out.problems)


def check_template(
    path: Path, doc: YamlDoc, pointer: str, text: str, out: Collector, *, with_run: bool = True
) -> None:
    problem = check_text(text, with_run=with_run)
    if problem:
        out.add(
            path,
            doc.line_of(pointer),
            f"template {pointer}: {problem}",
            "see the README's run variables and filters",
            pointer,
        )


def check_templates(
    path: Path, doc: YamlDoc, spec: Mapping[str, Any], out: Collector, *, task_header: bool = False
) -> None:
    """The templated values of a workflow.yaml or task header: worker_config.env values,
    a task's own params and command argv elements (param defaults are checked with the
    params)."""
    worker_config = spec.get("worker_config")
    env = worker_config.get("env") if isinstance(worker_config, dict) else None
    if isinstance(env, dict):
        for key, value in env.items():
            if is_template(value):
                check_template(path, doc, f"/worker_config/env/{key}", value, out)
    # A workflow.yaml's params are typed specs, checked with the params.
    task_params = spec.get("params") if task_header else None
    if isinstance(task_params, dict):
        for key, value in task_params.items():
            if is_template(value):
                check_template(path, doc, f"/params/{key}", value, out)
    for_each = spec.get("for_each") if task_header else None
    if isinstance(for_each, str):
        check_template(path, doc, "/for_each", for_each, out)
    command = spec.get("command")
    if isinstance(command, list):
        for index, element in enumerate(command):
            if is_template(element):
                check_template(path, doc, f"/command/{index}", element, out)


DEFAULT_CONNECTION = "default"


def sql_database_url(dag: Dag, task: Task, env: Mapping[str, str]) -> tuple[str, str] | None:
    """Where a `.sql` task without `connection:` runs, as (URL, what names it): the
    `default` connection of dagctl.yaml, else DATABASE_URL from its worker_config.env,
    else from `env`; None when none is set (the attempt would fail)."""
    if DEFAULT_CONNECTION in dag.connections:
        return dag.connections[DEFAULT_CONNECTION].url, f"connection {DEFAULT_CONNECTION!r}"
    configured = dag.worker_config_for(task).get("env")
    if isinstance(configured, Mapping) and configured.get("DATABASE_URL"):
        return str(configured["DATABASE_URL"]), "worker_config.env DATABASE_URL"
    if env.get("DATABASE_URL"):
        return env["DATABASE_URL"], "DATABASE_URL"
    return None


NO_SQL_DATABASE_HINT = (
    "set connection: NAME in its header, a connection named default in dagctl.yaml, or DATABASE_URL"
)
SHARED_STATE_DB_HINT = (
    "give SQL tasks their own database: connection: NAME in the header, or a connection named"
    " default in dagctl.yaml"
)


def check_sql_targets(
    dags: Iterable[Dag], env: Mapping[str, str], state_db_url: str | None, base: Path
) -> list[Problem]:
    """Warnings for `.sql` tasks without `connection:` that have no database to run on
    in this environment, or whose database is dagctl's own state database."""
    from dagctl.config import normalise_db_url

    env = dict(env)  # os.environ encodes and decodes each key looked up: 10,000 DAGs, 0.3 s
    problems: list[Problem] = []
    for dag in dags:
        out = Collector(base=base, dag=dag.name)
        for task in dag.tasks.values():
            if task.type != "sql" or task.connection:
                continue
            target = sql_database_url(dag, task, env)
            if target is None:
                out.add(
                    task.path,
                    task.line,
                    f"{task.name} has no connection and DATABASE_URL is not set: it will fail when it runs",
                    NO_SQL_DATABASE_HINT,
                    "/connection",
                    severity="warning",
                )
            elif state_db_url and target[1] == "DATABASE_URL" and normalise_db_url(target[0]) == state_db_url:
                out.add(
                    task.path,
                    task.line,
                    f"{task.name} has no connection: it runs on DATABASE_URL, dagctl's own state database",
                    SHARED_STATE_DB_HINT,
                    "/connection",
                    severity="warning",
                )
        problems.extend(out.problems)
    return problems


def provided_by_definition(
    dag_params: Mapping[str, Any], worker_config: Mapping[str, Any], name: str
) -> bool:
    """Whether the DAG itself provides what a task's `parameters:` names: a param, a
    variable of its merged worker_config.env, or one of dagctl's run variables."""
    env = worker_config.get("env")
    return name in dag_params or (isinstance(env, Mapping) and name in env) or name.startswith("DAGCTL_")


def check_parameter_names(
    tasks: Mapping[str, Task], params: Mapping[str, Any], worker_config: Mapping[str, Any], out: Collector
) -> None:
    """A `parameters:` entry that is no param but nearly one is a typo: an error, as the
    task would fail at every run for want of it."""
    for task in tasks.values():
        merged = merge_config(worker_config, task.worker_config)
        for index, name in enumerate(task.parameters):
            if provided_by_definition(params, merged, name):
                continue
            hint = did_you_mean(name, params)
            if hint:
                pointer = f"/parameters/{index}"
                out.add(task.path, header_line(task, pointer), f"unknown parameter {name!r}", hint, pointer)


def missing_parameters(dag: Dag, env: Mapping[str, str]) -> list[tuple[Task, str]]:
    """(task, name) for each `parameters:` entry that neither the DAG nor `env` provides."""
    missing = []
    for task in dag.tasks.values():
        merged = None  # the merged worker_config, only when a name needs it
        for name in task.parameters:
            if name in dag.params or name in env:
                continue
            if merged is None:
                merged = dag.worker_config_for(task)
            if not provided_by_definition(dag.params, merged, name):
                missing.append((task, name))
    return missing


MISSING_PARAMETER_HINT = (
    "declare it under params: in workflow.yaml, set it in worker_config.env, or export it where the"
    " scheduler runs"
)


def check_parameters_provided(dags: Iterable[Dag], env: Mapping[str, str], base: Path) -> list[Problem]:
    """Warnings for `parameters:` entries that nothing provides in this environment:
    the task would fail with "task needs parameter ..." unless the scheduler's
    environment sets them."""
    env = dict(env)  # a plain dict: os.environ encodes and decodes each key looked up
    problems: list[Problem] = []
    for dag in dags:
        out = Collector(base=base, dag=dag.name)
        for task, name in missing_parameters(dag, env):
            pointer = f"/parameters/{task.parameters.index(name)}"
            out.add(
                task.path,
                header_line(task, pointer),
                f"{task.name} needs parameter {name!r}, which is no param of {dag.name} and is not set in"
                " worker_config.env nor in this environment",
                MISSING_PARAMETER_HINT,
                pointer,
                severity="warning",
            )
        problems.extend(out.problems)
    return problems


def check_schedule(path: Path, doc: YamlDoc, data: Mapping[str, Any], out: Collector) -> None:
    """A bad cron expression or time zone, or a schedule that never fires."""
    schedule = data.get("schedule")
    if isinstance(schedule, str):
        problem = cron.check_expression(schedule)
        if problem:
            hint = (
                "use 5 fields: minute hour day-of-month month day-of-week"
                if "expected 5" in problem
                else "minute 0-59, hour 0-23, day-of-month 1-31, month 1-12, day-of-week 0-6"
            )
            out.add(path, doc.line_of("/schedule"), problem, hint, "/schedule")
        elif cron.never_fires(schedule):
            out.add(
                path,
                doc.line_of("/schedule"),
                f"schedule {schedule!r} never fires",
                "check the day-of-month and month fields",
                "/schedule",
                severity="warning",
            )
    timezone = data.get("timezone")
    if isinstance(timezone, str) and cron.check_timezone(timezone):
        out.add(
            path,
            doc.line_of("/timezone"),
            f"unknown time zone {timezone!r}",
            timezone_hint(timezone),
            "/timezone",
        )


def timezone_hint(name: str) -> str:
    import zoneinfo

    return did_you_mean(name, zoneinfo.available_timezones()) or "use an IANA name such as Europe/Berlin"
