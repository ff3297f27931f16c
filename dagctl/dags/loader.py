"""DAG folders -> frozen model objects plus every problem found.

The loader never imports or runs user code: `.py` headers are read with `ast`, shell
and SQL headers as text. A broken DAG is reported, never raised, so one bad folder
cannot stop the others from being scheduled.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar, cast

from dagctl.dags import checks, composition, sections
from dagctl.dags.hints import did_you_mean
from dagctl.dags.model import (
    BUILTIN_TASK_TYPES,
    DEFAULT_MAX_ACTIVE_RUNS,
    DEFAULT_QUEUE,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_DELAY_S,
    ROOT_CONFIG_FILE,
    TASK_EXTENSIONS,
    WORKFLOW_FILE,
    BrokenDag,
    Connection,
    Dag,
    ParamSpec,
    Problem,
    RootConfig,
    Task,
    merge_config,
)
from dagctl.dags.names import may_be_dag
from dagctl.dags.params import build_spec, declaration_problems
from dagctl.dags.sources import (
    HEADER_READERS,
    MAX_SCRIPT_BYTES,
    Collector,
    Invalid,
    NotATask,
    check_schema,
    is_utf8,
    mapping_or_problem,
    parse_duration,
    parse_yaml,
    read_text,
)
from dagctl.dags.templating import is_template
from dagctl.dags.yamldoc import YamlDoc

MAX_YAML_BYTES = 1024 * 1024
_NO_MAPPING: Mapping[str, Any] = MappingProxyType({})
_EXTENSION_OF = {"shell": ".sh", "python": ".py", "sql": ".sql"}


T = TypeVar("T")
# Values loaded before, by key: at most this many, then forgotten all at once (a tree
# of all-different values is then only not shared).
_SHARED_MAX = 4096
_shared: dict[Hashable, Any] = {}


def shared(value: T, key: Hashable = None) -> T:
    """An equal value loaded before, if any, else this one (`key`: what tells them
    alike; the value itself by default, which suits tuples of text, not numbers: 1, 1.0
    and True are equal). The same tuples of names (inputs, parameters, tags, task files)
    and the same param declarations recur across DAGs: a scheduler keeps each once
    instead of once a DAG or task (~15 MB of 10,000 DAGs), and pickling sends each once
    a chunk from the worker processes. Only for values nothing changes."""
    key = value if key is None else key
    found = _shared.get(key)
    if found is None:
        if len(_shared) >= _SHARED_MAX:
            _shared.clear()
        _shared[key] = found = value
    return cast(T, found)


def _read_only(mapping: dict[str, Any]) -> Mapping[str, Any]:
    # One shared empty mapping for the many DAGs and tasks without one, not one each.
    return MappingProxyType(mapping) if mapping else _NO_MAPPING


def _task_type(
    path: Path, spec: Mapping[str, Any], line_of: Callable[[str], int | None], out: Collector
) -> str | None:
    """The task's type, given or inferred from its extension; None when it has none.
    A type that does not fit the file, or that no plug-in provides, is a problem."""
    suffix = path.suffix
    inferred = TASK_EXTENSIONS[suffix]
    task_type: str | None = spec.get("type") if isinstance(spec.get("type"), str) else None
    if task_type is None:
        if not inferred:
            out.add(path, line_of(""), "missing type", "add type: no_op or type: command", "/type")
            return None
        return inferred
    elif inferred and task_type in BUILTIN_TASK_TYPES and task_type != inferred:
        out.add(
            path,
            line_of("/type"),
            f"type {task_type!r} does not fit a {suffix} file",
            f"remove type, or use type: {inferred}",
            "/type",
        )
    elif not inferred and task_type in ("shell", "python", "sql"):
        out.add(
            path,
            line_of("/type"),
            f"type {task_type!r} needs a script file",
            f"write the task as a {_EXTENSION_OF[task_type]} file",
            "/type",
        )
    elif task_type not in BUILTIN_TASK_TYPES and task_type not in known_task_types():
        hint = did_you_mean(task_type, sorted(BUILTIN_TASK_TYPES | known_task_types()))
        out.add(
            path,
            line_of("/type"),
            f"unknown task type {task_type!r}",
            hint or "use no_op or command, or install the plug-in that provides it",
            "/type",
        )
    return task_type


def _load_task(path: Path, folder: str, out: Collector, hasher: Any) -> Task | None:
    suffix = path.suffix
    limit = MAX_YAML_BYTES if suffix in (".yaml", ".yml") else MAX_SCRIPT_BYTES
    try:
        text = read_text(path, limit, out)
        hasher.update(os.fsencode(path.name) + b"\0" + text.encode())
        header = HEADER_READERS[suffix](path, text, out)
        if header.doc is None:
            spec: Mapping[str, Any] = {}
        else:
            spec = mapping_or_problem(path, header.doc, "the task header", out)
            if not spec and suffix in (".yaml", ".yml"):
                out.add(path, 1, "empty task file", "add type: no_op or type: command")
                return None
            check_schema(path, header.doc, "task", out)
            checks.check_templates(path, header.doc, spec, out, task_header=True)
    except Invalid:
        return None

    def line_of(pointer: str) -> int | None:
        return header.doc.line_of(pointer) if header.doc else header.line

    task_type = _task_type(path, spec, line_of, out)
    if task_type is None:
        return None
    if task_type == "command" and not spec.get("command"):
        out.add(
            path, line_of(""), "a command task needs command:", 'add command: ["prog", "arg"]', "/command"
        )

    def as_tuple(key: str) -> tuple[str, ...]:
        value = spec.get(key)
        return shared(tuple(str(v) for v in value)) if isinstance(value, list) else ()

    def as_mapping(key: str) -> Mapping[str, Any]:
        value = spec.get(key)
        return _read_only(dict(value)) if isinstance(value, dict) else _NO_MAPPING

    composed = composition.task_fields(path, spec, task_type, line_of, out)
    retries = spec.get("retries")
    timeout = spec.get("timeout")
    retry_delay = spec.get("retry_delay")
    try:
        return Task(
            name=path.name,
            folder=folder,
            type=task_type,
            description=str(spec.get("description") or ""),
            inputs=as_tuple("inputs"),
            parameters=as_tuple("parameters"),
            retries=retries if isinstance(retries, int) and not isinstance(retries, bool) else None,
            retry_delay=parse_duration(retry_delay) if retry_delay is not None else None,
            timeout=parse_duration(timeout) if timeout is not None else None,
            connection=str(spec["connection"]) if spec.get("connection") else None,
            command=as_tuple("command"),
            worker_config=as_mapping("worker_config"),
            params=as_mapping("params"),
            options=as_mapping("options"),
            line=header.line,
            pool=str(spec["pool"]) if spec.get("pool") else None,
            pool_slots=int(spec["pool_slots"]) if spec.get("pool_slots") is not None else None,
            queue=str(spec["queue"]) if spec.get("queue") else None,
            **composed,
            priority=int(spec["priority"]) if spec.get("priority") is not None else None,
        )
    except (ValueError, KeyError, TypeError):
        # The schema check already reported the malformed field.
        return None


# ---------------------------------------------------------------- one DAG


_MISSPELT_WORKFLOW_FILE = "workflow.yml"


def _dag_files(dag_dir: Path) -> tuple[list[Path], list[Path]]:
    tasks: list[Path] = []
    ignored: list[Path] = []
    with os.scandir(dag_dir) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(".") or entry.name == WORKFLOW_FILE:
                continue
            path = dag_dir / entry.name  # not Path(entry.path): half the parsing
            if entry.name == _MISSPELT_WORKFLOW_FILE:
                ignored.append(path)  # reported with the missing workflow.yaml
                continue
            # Anything named like a task is one: a FIFO, a folder or a broken symlink called
            # x.sh is reported as unreadable instead of silently dropping the task.
            if path.suffix in TASK_EXTENSIONS:
                tasks.append(path)
            else:
                ignored.append(path)
    return tasks, ignored


def _load_params(path: Path, doc: YamlDoc, raw: Any, out: Collector) -> dict[str, ParamSpec]:
    specs: dict[str, ParamSpec] = {}
    if not isinstance(raw, dict):
        return specs
    for name, body in raw.items():
        if not isinstance(body, dict):
            continue
        spec = build_spec(str(name), body)
        specs[spec.name] = spec
        templated = is_template(spec.default)
        for pointer, message, hint in declaration_problems(spec):
            if templated and pointer.endswith("/default"):
                continue  # rendered when each run is created; its type is checked then
            out.add(path, doc.line_of(pointer), message, hint, pointer)
        if templated:
            checks.check_template(path, doc, f"/params/{name}/default", spec.default, out, with_run=False)
    return specs


def _settings(config: RootConfig, data: Mapping[str, Any]) -> dict[str, Any]:
    """DAG keys over root defaults over built-in defaults."""
    merged: dict[str, Any] = {**config.defaults, **{k: v for k, v in data.items() if v is not None}}
    return merged


def _read_workflow(
    dag_dir: Path, workflow: Path, out: Collector, hasher: Any
) -> tuple[Mapping[str, Any], YamlDoc | None, dict[str, ParamSpec]]:
    """workflow.yaml's data (empty when unusable), its document and its params; every
    problem goes to `out`, and its text into the DAG's fingerprint."""
    data: Mapping[str, Any] = {}
    doc: YamlDoc | None = None
    if not workflow.exists() and not workflow.is_symlink():
        out.add(
            workflow,
            None,
            f"missing {WORKFLOW_FILE}",
            f"rename {_MISSPELT_WORKFLOW_FILE} to {WORKFLOW_FILE}"
            if (dag_dir / _MISSPELT_WORKFLOW_FILE).exists()
            else f"create {WORKFLOW_FILE} with at least a description, or rename the folder"
            f" to _{dag_dir.name} if it is not a DAG (folders starting with _ are not DAGs)",
        )
    else:
        try:
            text = read_text(workflow, MAX_YAML_BYTES, out)
            hasher.update(text.encode())
            doc = parse_yaml(workflow, text, out)
            if doc.data is None:
                out.add(workflow, 1, f"empty {WORKFLOW_FILE}", "add at least description: ...")
                raise Invalid
            data = mapping_or_problem(workflow, doc, WORKFLOW_FILE, out)
            check_schema(workflow, doc, "workflow", out)
            checks.check_schedule(workflow, doc, data, out)
            checks.check_templates(workflow, doc, data, out)
        except Invalid:
            data = {}
    params = _load_params(workflow, doc, data.get("params"), out) if doc else {}
    if doc and isinstance(data.get("schedule"), str):
        for pname, spec in params.items():
            if not spec.has_default:
                pointer = f"/params/{pname}"
                out.add(
                    workflow,
                    doc.line_of(pointer),
                    f"param {pname!r} has no default, so scheduled runs cannot start",
                    "give it a default",
                    pointer,
                )

    return data, doc, params


def _build_dag(
    dag_dir: Path,
    folder: str,
    config: RootConfig,
    data: Mapping[str, Any],
    tasks: dict[str, Task],
    params: dict[str, ParamSpec],
    outputs: Mapping[str, tuple[str, str]],
    fingerprint: str,
) -> Dag:
    """The frozen DAG from a workflow.yaml that passed every check."""
    settings = _settings(config, data)
    return Dag(
        name=dag_dir.name,
        folder=folder,
        description=str(data["description"]),
        tasks=MappingProxyType(tasks),
        fingerprint=fingerprint,
        schedule=settings.get("schedule"),
        timezone=str(settings.get("timezone", "UTC")),
        catchup=settings.get("catchup", "latest"),
        max_active_runs=int(settings.get("max_active_runs", DEFAULT_MAX_ACTIVE_RUNS)),
        max_active_tasks=int(data["max_active_tasks"]) if data.get("max_active_tasks") is not None else None,
        # Declared alike in many DAGs (a repr tells the types apart: 1, 1.0 and True).
        params=shared(_read_only(params), key=repr(params)),
        retries=int(settings.get("retries", DEFAULT_RETRIES)),
        retry_delay=parse_duration(settings.get("retry_delay", DEFAULT_RETRY_DELAY_S)),
        retry_backoff=float(settings.get("retry_backoff", DEFAULT_RETRY_BACKOFF)),
        timeout=parse_duration(settings["timeout"]) if settings.get("timeout") is not None else None,
        worker_config=_read_only(merge_config(config.worker_config, data.get("worker_config") or {})),
        tags=shared(tuple(str(t) for t in settings.get("tags") or ())),
        connections=config.connections,
        notify=(*sections.notify_rules(data.get("notify")), *config.notify),
        deadline=parse_duration(data["deadline"]) if data.get("deadline") is not None else None,
        finish_by=str(data["finish_by"]) if data.get("finish_by") else None,
        pool=str(data["pool"]) if data.get("pool") else None,
        pool_slots=int(data.get("pool_slots") or 1),
        queue=str(data.get("queue") or DEFAULT_QUEUE),
        outputs=outputs,
        priority=int(data.get("priority") or 0),
    )


def load_dag(
    dag_dir: Path,
    config: RootConfig,
    base: Path,
) -> LoadResult:
    """One DAG folder. Returns the DAG (or why it is broken), its problems, the tasks that
    loaded and the names of all task files (kept even when the DAG is broken, so other DAGs'
    cross-DAG inputs can be checked), and the ignored files."""
    name = dag_dir.name
    out = Collector(base=base, dag=name)
    try:
        task_paths, ignored = _dag_files(dag_dir)
    except OSError as exc:
        out.add(dag_dir, None, f"cannot list the DAG folder: {exc.strerror or exc}")
        problems = tuple(out.problems)
        return BrokenDag(name, dag_dir, problems), problems, {}, (), ()
    for path in [p for p in task_paths if not is_utf8(p.name)]:
        # Task names end up in the state database and in every message: they must be text.
        out.add(path, None, "the file name is not valid UTF-8", "rename the file")
        task_paths.remove(path)
    hasher = hashlib.sha256()
    folder = str(dag_dir)  # one string shared by the DAG and its tasks
    workflow = dag_dir / WORKFLOW_FILE
    data, doc, params = _read_workflow(dag_dir, workflow, out, hasher)
    tasks: dict[str, Task] = {}
    for path in list(task_paths):
        try:
            task = _load_task(path, folder, out, hasher)
        except NotATask:
            task_paths.remove(path)
            ignored.append(path)
            continue
        if task is not None:
            tasks[task.name] = task
    task_names = shared(tuple(p.name for p in task_paths))
    if not task_paths:
        out.add(
            dag_dir,
            None,
            "the DAG has no tasks",
            "add a task file (.sh, .py, .sql or .yaml) next to workflow.yaml",
        )
    checks.check_inputs(name, tasks, out)
    checks.check_output_references(tasks, out)
    outputs = composition.declared_outputs(workflow, doc, data.get("outputs"), tasks, out)
    checks.check_connections(tasks, config, out)
    if doc is not None:
        checks.check_notify_channels(workflow, doc, data.get("notify"), config.channels, out)
    checks.check_pools(workflow, doc, data, tasks, config, out)
    checks.check_queues(workflow, doc, data, tasks, config, out)
    dag_config = data.get("worker_config")  # anything else than a mapping is a schema error
    checks.check_parameter_names(
        tasks,
        params,
        merge_config(config.worker_config, dag_config if isinstance(dag_config, dict) else {}),
        out,
    )

    if out.has_errors or doc is None:
        problems = tuple(out.problems)
        return BrokenDag(name, dag_dir, problems), problems, tasks, task_names, tuple(ignored)
    dag = _build_dag(dag_dir, folder, config, data, tasks, params, outputs, hasher.hexdigest()[:16])
    # The DAG's own mapping of its tasks, not the dict under it: a scheduler keeps both
    # (the result, for the next assembly), and they would cross from the worker
    # processes as two copies.
    return dag, tuple(out.problems), dag.tasks, task_names, tuple(ignored)


def content_fingerprint(dag_dir: Path) -> str:
    """A valid DAG's fingerprint (as load_dag computes it) from its files' bytes alone,
    without parsing them: what the periodic full check of a watched tree compares."""
    hasher = hashlib.sha256()
    hasher.update((dag_dir / WORKFLOW_FILE).read_bytes())
    task_paths, _ = _dag_files(dag_dir)
    for path in task_paths:
        if is_utf8(path.name):
            hasher.update(os.fsencode(path.name) + b"\0" + path.read_bytes())
    return hasher.hexdigest()[:16]


# ---------------------------------------------------------------- the tree


def load_root_config(root: Path, base: Path) -> tuple[RootConfig, list[Problem]]:
    path = root / ROOT_CONFIG_FILE
    out = Collector(base=base, dag=None)
    if not path.exists():
        return RootConfig(), []
    try:
        text = read_text(path, MAX_YAML_BYTES, out)
        doc = parse_yaml(path, text, out)
        data = mapping_or_problem(path, doc, ROOT_CONFIG_FILE, out)
        check_schema(path, doc, "config", out)
        checks.check_templates(path, doc, data, out)
        if isinstance(data.get("defaults"), dict):
            checks.check_schedule(path, doc, data["defaults"], out)
        checks.check_notify_channels(path, doc, data.get("notify"), data.get("channels") or {}, out)
    except Invalid:
        return RootConfig(path=path), out.problems
    if out.has_errors:
        return RootConfig(path=path), out.problems
    connections = {}
    for name, value in (data.get("connections") or {}).items():
        url = value["url"] if isinstance(value, dict) else str(value)
        connections[name] = Connection(name=name, url=_anchor_sqlite_path(url, root))
    return (
        RootConfig(
            path=path,
            defaults=MappingProxyType(dict(data.get("defaults") or {})),
            worker_config=MappingProxyType(dict(data.get("worker_config") or {})),
            connections=MappingProxyType(connections),
            retention=sections.retention(data.get("retention")),
            channels=MappingProxyType(dict(data.get("channels") or {})),
            notify=sections.notify_rules(data.get("notify")),
            pools=MappingProxyType(sections.pools(data.get("pools"))),
            queues=MappingProxyType(sections.queues(data.get("queues"))),
            queue_limits=MappingProxyType(sections.queue_limits(data.get("queues"))),
        ),
        out.problems,
    )


def _anchor_sqlite_path(url: str, root: Path) -> str:
    """Relative SQLite paths are relative to the DAGs folder, not to wherever dagctl runs."""
    prefix = "sqlite:///"
    if (
        url.startswith(prefix)
        and not url.startswith(prefix + "/")
        and url[len(prefix) :] not in ("", ":memory:")
    ):
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url


def known_task_types() -> frozenset[str]:
    from dagctl.plugins import task_type_names

    return task_type_names()


# The DAG (or why it is broken), its problems, the tasks that loaded, the names of all
# its task files and its ignored files. A scheduler keeps one for each DAG (tuples: an
# empty one is no object of its own).
LoadResult = tuple[
    "Dag | BrokenDag", tuple[Problem, ...], Mapping[str, Task], tuple[str, ...], tuple[Path, ...]
]


def load_one(root: Path | str, name: str) -> tuple[Dag | BrokenDag | None, RootConfig]:
    """One DAG by name, without reading the others (what `trigger` and `run` need)."""
    root = Path(root)
    dag_dir = root / name
    if not may_be_dag(name) or "/" in name or not dag_dir.is_dir():
        return None, RootConfig()
    config, problems = load_root_config(root, root)
    result, *_ = load_dag(dag_dir, config, root)
    if isinstance(result, Dag) and any(p.severity == "error" for p in problems):
        return BrokenDag(name, dag_dir, tuple(problems)), config
    return result, config


def problem_base(root: Path) -> Path:
    """What problem paths are shown relative to (the parent of this folder)."""
    return root if not (root / WORKFLOW_FILE).exists() else root.parent
