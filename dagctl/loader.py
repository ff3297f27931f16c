"""DAG folders -> frozen model objects plus every problem found.

The loader never imports or runs user code: `.py` headers are read with `ast`, shell
and SQL headers as text. A broken DAG is reported, never raised, so one bad folder
cannot stop the others from being scheduled.
"""

from __future__ import annotations

import ast
import hashlib
import os
import stat
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dagctl import cron, schemas
from dagctl.errors import UsageError
from dagctl.hints import did_you_mean
from dagctl.model import (
    BUILTIN_TASK_TYPES,
    DEFAULT_MAX_ACTIVE_RUNS,
    DEFAULT_RETRIES,
    DEFAULT_RETRY_BACKOFF,
    DEFAULT_RETRY_DELAY_S,
    ROOT_CONFIG_FILE,
    TASK_EXTENSIONS,
    WORKFLOW_FILE,
    BrokenDag,
    Connection,
    Dag,
    DagTree,
    ParamSpec,
    Problem,
    RootConfig,
    Task,
)
from dagctl.params import build_spec, value_error
from dagctl.yamldoc import YamlDoc, YamlProblem
from dagctl.yamldoc import load as load_yaml

MAX_YAML_BYTES = 1024 * 1024
MAX_SCRIPT_BYTES = 4 * 1024 * 1024
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})
_EXTENSION_OF = {"shell": ".sh", "python": ".py", "sql": ".sql"}


class _Invalid(Exception):
    """Stops loading one file; its problems are already recorded."""


@dataclass
class _Collector:
    """Problems of one DAG (or of the root config), with paths shown relative to the tree."""

    base: Path
    dag: str | None
    problems: list[Problem] = field(default_factory=list)

    def shown(self, path: Path) -> str:
        try:
            text = str(path.relative_to(self.base.parent)) if self.base.parent != path else str(path)
        except ValueError:
            text = str(path)
        return _printable(text)

    def add(
        self,
        path: Path,
        line: int | None,
        message: str,
        hint: str | None = None,
        pointer: str | None = None,
        severity: str = "error",
    ) -> None:
        self.problems.append(
            Problem(
                path=self.shown(path),
                line=line,
                message=message,
                hint=hint,
                pointer=pointer,
                severity="warning" if severity == "warning" else "error",
                dag=self.dag,
            )
        )

    @property
    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)


def _printable(text: str) -> str:
    """A path as text that can be printed and stored: bytes of a file name that are not
    UTF-8 (surrogate escapes in Python) are shown as \\xNN."""
    if text.isascii():
        return text
    try:
        return os.fsencode(text).decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_utf8(name: str) -> bool:
    return _printable(name) == name


# ---------------------------------------------------------------- reading files


def _read_text(path: Path, limit: int, out: _Collector) -> str:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            out.add(path, None, "not a regular file", "replace it with a file")
            raise _Invalid
        if info.st_size > limit:
            out.add(
                path,
                None,
                f"file is {info.st_size:,} bytes, over the {limit:,}-byte limit",
                "split it or move data out of the DAG folder",
            )
            raise _Invalid
        raw = path.read_bytes()
    except OSError as exc:
        out.add(path, None, f"cannot read: {exc.strerror or exc}", "check the file and its permissions")
        raise _Invalid from None
    if b"\x00" in raw:
        out.add(path, None, "binary file, not text", "remove it or give it another extension")
        raise _Invalid
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        out.add(path, line, "not valid UTF-8 text", "save the file as UTF-8")
        raise _Invalid from None


def _parse_yaml(path: Path, text: str, out: _Collector, line_offset: int = 0) -> YamlDoc:
    try:
        return load_yaml(text, line_offset)
    except YamlProblem as exc:
        out.add(path, exc.line, exc.message, exc.hint)
        raise _Invalid from None


def _check_schema(path: Path, doc: YamlDoc, schema_name: str, out: _Collector) -> None:
    for pointer, message, hint in schemas.problems(schema_name, doc.data):
        out.add(path, doc.line_of(pointer), message, hint, pointer)


_KIND_NAMES = {"str": "string", "int": "number", "float": "number", "bool": "boolean", "date": "date"}


def _mapping_or_problem(path: Path, doc: YamlDoc, what: str, out: _Collector) -> Mapping[str, Any]:
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        kind = _KIND_NAMES.get(type(doc.data).__name__, type(doc.data).__name__)
        out.add(
            path, doc.line_of(""), f"{what} must be a mapping of keys, not a {kind}", "write key: value lines"
        )
        raise _Invalid
    return doc.data


# ---------------------------------------------------------------- task headers


@dataclass(frozen=True, slots=True)
class _Header:
    doc: YamlDoc | None
    line: int


def _shell_header(path: Path, text: str, out: _Collector) -> _Header:
    lines = text.split("\n")
    index = 1 if lines and lines[0].startswith("#!") else 0
    # Blank lines before the header are allowed (as in .sql): a header that silently
    # stopped counting would make a task with inputs a root that runs at once.
    while index < len(lines) - 1 and not lines[index].strip():
        index += 1
    start = index
    block: list[str] = []
    while index < len(lines) and lines[index].startswith("#"):
        body = lines[index][1:]
        block.append(body[1:] if body.startswith(" ") else body)
        index += 1
    if not block:
        return _Header(None, start + 1)
    return _Header(_parse_yaml(path, "\n".join(block), out, line_offset=start), start + 1)


def _sql_header(path: Path, text: str, out: _Collector) -> _Header:
    stripped = text.lstrip()
    if not stripped.startswith("/*"):
        return _Header(None, 1)
    begin = text.index("/*")
    first_line = text.count("\n", 0, begin)
    end = text.find("*/", begin + 2)
    if end == -1:
        out.add(path, first_line + 1, "unterminated /* header", "close the header with */")
        raise _Invalid
    body = textwrap.dedent(text[begin + 2 : end])
    return _Header(_parse_yaml(path, body, out, line_offset=first_line), first_line + 1)


def _python_header(path: Path, text: str, out: _Collector) -> _Header:
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        out.add(path, exc.lineno, f"Python syntax error: {exc.msg}", "fix the syntax")
        raise _Invalid from None
    except (ValueError, RecursionError, MemoryError) as exc:
        out.add(path, None, f"cannot parse Python: {exc}", "fix the file")
        raise _Invalid from None
    if not any(_defines_run(node) for node in tree.body):
        out.add(path, None, "no run(context) function", "define def run(context): at module level")
    first = tree.body[0] if tree.body else None
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        body = textwrap.dedent(first.value.value)
        return _Header(_parse_yaml(path, body, out, line_offset=first.lineno - 1), first.lineno)
    return _Header(None, 1)


def _defines_run(node: ast.stmt) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return node.name == "run"
    if isinstance(node, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == "run" for t in node.targets)
    if isinstance(node, ast.ImportFrom):
        return any((alias.asname or alias.name) == "run" for alias in node.names)
    return False


def _yaml_task_header(path: Path, text: str, out: _Collector) -> _Header:
    return _Header(_parse_yaml(path, text, out), 1)


_HEADER_READERS = {
    ".sh": _shell_header,
    ".sql": _sql_header,
    ".py": _python_header,
    ".yaml": _yaml_task_header,
    ".yml": _yaml_task_header,
}


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string like '90s', '5m', '1h30m', '250ms'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    total = 0.0
    number = ""
    text = str(value).replace(" ", "")
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text.startswith("ms", index) else char
        total += float(number) * units[unit]
        number = ""
        index += len(unit)
    return total


def _load_task(path: Path, out: _Collector, hasher: Any) -> Task | None:
    suffix = path.suffix
    limit = MAX_YAML_BYTES if suffix in (".yaml", ".yml") else MAX_SCRIPT_BYTES
    try:
        text = _read_text(path, limit, out)
        hasher.update(os.fsencode(path.name) + b"\0" + text.encode())
        header = _HEADER_READERS[suffix](path, text, out)
        if header.doc is None:
            spec: Mapping[str, Any] = {}
        else:
            spec = _mapping_or_problem(path, header.doc, "the task header", out)
            if not spec and suffix in (".yaml", ".yml"):
                out.add(path, 1, "empty task file", "add type: no_op or type: command")
                return None
            _check_schema(path, header.doc, "task", out)
    except _Invalid:
        return None

    def line_of(pointer: str) -> int | None:
        return header.doc.line_of(pointer) if header.doc else header.line

    inferred = TASK_EXTENSIONS[suffix]
    task_type = spec.get("type") if isinstance(spec.get("type"), str) else None
    if task_type is None:
        if not inferred:
            out.add(path, line_of(""), "missing type", "add type: no_op or type: command", "/type")
            return None
        task_type = inferred
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
    if task_type == "command" and not spec.get("command"):
        out.add(
            path, line_of(""), "a command task needs command:", 'add command: ["prog", "arg"]', "/command"
        )

    def as_tuple(key: str) -> tuple[str, ...]:
        value = spec.get(key)
        return tuple(str(v) for v in value) if isinstance(value, list) else ()

    def as_mapping(key: str) -> Mapping[str, Any]:
        value = spec.get(key)
        return MappingProxyType(dict(value)) if isinstance(value, dict) else MappingProxyType({})

    retries = spec.get("retries")
    timeout = spec.get("timeout")
    retry_delay = spec.get("retry_delay")
    try:
        return Task(
            name=path.name,
            path=path,
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
            options=as_mapping("options"),
            line=header.line,
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
            path = Path(entry.path)
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


def _load_params(path: Path, doc: YamlDoc, raw: Any, out: _Collector) -> dict[str, ParamSpec]:
    specs: dict[str, ParamSpec] = {}
    if not isinstance(raw, dict):
        return specs
    for name, body in raw.items():
        if not isinstance(body, dict):
            continue
        spec = build_spec(str(name), body)
        specs[spec.name] = spec
        # Other defaults (an unquoted 2024-06-01 is a date to YAML) fail the schema check.
        if spec.has_default and isinstance(spec.default, (str, int, float)):
            problem = value_error(spec, spec.default)
            if problem:
                pointer = f"/params/{name}/default"
                out.add(
                    path,
                    doc.line_of(pointer),
                    f"default of param {name!r}: {problem}",
                    f"make the default {_article(spec.type)} {spec.type}",
                    pointer,
                )
    return specs


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _check_schedule(path: Path, doc: YamlDoc, data: Mapping[str, Any], out: _Collector) -> None:
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
            _timezone_hint(timezone),
            "/timezone",
        )


def _timezone_hint(name: str) -> str:
    import zoneinfo

    return did_you_mean(name, zoneinfo.available_timezones()) or "use an IANA name such as Europe/Berlin"


def _settings(config: RootConfig, data: Mapping[str, Any]) -> dict[str, Any]:
    """DAG keys over root defaults over built-in defaults."""
    merged: dict[str, Any] = {**config.defaults, **{k: v for k, v in data.items() if v is not None}}
    return merged


def load_dag(
    dag_dir: Path,
    config: RootConfig,
    base: Path,
) -> tuple[Dag | BrokenDag, list[Problem], Mapping[str, Task], tuple[str, ...], list[Path]]:
    """One DAG folder. Returns the DAG (or why it is broken), its problems, the tasks that
    loaded and the names of all task files (kept even when the DAG is broken, so other DAGs'
    cross-DAG inputs can be checked), and the ignored files."""
    name = dag_dir.name
    out = _Collector(base=base, dag=name)
    workflow = dag_dir / WORKFLOW_FILE
    try:
        task_paths, ignored = _dag_files(dag_dir)
    except OSError as exc:
        out.add(dag_dir, None, f"cannot list the DAG folder: {exc.strerror or exc}")
        return BrokenDag(name, dag_dir, tuple(out.problems)), out.problems, {}, (), []
    for path in [p for p in task_paths if not _is_utf8(p.name)]:
        # Task names end up in the state database and in every message: they must be text.
        out.add(path, None, "the file name is not valid UTF-8", "rename the file")
        task_paths.remove(path)
    task_names = tuple(p.name for p in task_paths)
    hasher = hashlib.sha256()
    data: Mapping[str, Any] = {}
    doc: YamlDoc | None = None
    if not workflow.exists() and not workflow.is_symlink():
        out.add(
            workflow,
            None,
            f"missing {WORKFLOW_FILE}",
            f"rename {_MISSPELT_WORKFLOW_FILE} to {WORKFLOW_FILE}"
            if (dag_dir / _MISSPELT_WORKFLOW_FILE).exists()
            else f"create {WORKFLOW_FILE} with at least a description",
        )
    else:
        try:
            text = _read_text(workflow, MAX_YAML_BYTES, out)
            hasher.update(text.encode())
            doc = _parse_yaml(workflow, text, out)
            if doc.data is None:
                out.add(workflow, 1, f"empty {WORKFLOW_FILE}", "add at least description: ...")
                raise _Invalid
            data = _mapping_or_problem(workflow, doc, WORKFLOW_FILE, out)
            _check_schema(workflow, doc, "workflow", out)
            _check_schedule(workflow, doc, data, out)
        except _Invalid:
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

    tasks: dict[str, Task] = {}
    for path in task_paths:
        task = _load_task(path, out, hasher)
        if task is not None:
            tasks[task.name] = task
    if not task_paths:
        out.add(
            dag_dir,
            None,
            "the DAG has no tasks",
            "add a task file (.sh, .py, .sql or .yaml) next to workflow.yaml",
        )
    _check_inputs(name, tasks, out)
    _check_connections(tasks, config, out)

    if out.has_errors or doc is None:
        return BrokenDag(name, dag_dir, tuple(out.problems)), out.problems, tasks, task_names, ignored
    settings = _settings(config, data)
    dag = Dag(
        name=name,
        path=dag_dir,
        description=str(data["description"]),
        tasks=MappingProxyType(tasks),
        fingerprint=hasher.hexdigest()[:16],
        schedule=settings.get("schedule"),
        timezone=str(settings.get("timezone", "UTC")),
        catchup=settings.get("catchup", "latest"),
        max_active_runs=int(settings.get("max_active_runs", DEFAULT_MAX_ACTIVE_RUNS)),
        params=MappingProxyType(params),
        retries=int(settings.get("retries", DEFAULT_RETRIES)),
        retry_delay=parse_duration(settings.get("retry_delay", DEFAULT_RETRY_DELAY_S)),
        retry_backoff=float(settings.get("retry_backoff", DEFAULT_RETRY_BACKOFF)),
        timeout=parse_duration(settings["timeout"]) if settings.get("timeout") is not None else None,
        worker_config=MappingProxyType({**config.worker_config, **(data.get("worker_config") or {})}),
        tags=tuple(str(t) for t in settings.get("tags") or ()),
        connections=config.connections,
    )
    return dag, out.problems, tasks, task_names, ignored


def _header_line(task: Task, pointer: str) -> int:
    """File line of a field of a task's header, e.g. /inputs/1. Only problems need it, so
    the header is read again here instead of keeping every parsed header around."""
    scratch = _Collector(base=task.path, dag=None)
    try:
        text = _read_text(task.path, MAX_SCRIPT_BYTES, scratch)
        header = _HEADER_READERS[task.path.suffix](task.path, text, scratch)
    except (_Invalid, KeyError):
        return task.line
    line = header.doc.line_of(pointer) if header.doc is not None else None
    return line or task.line


def _input_pointer(task: Task, upstream: str) -> str:
    return f"/inputs/{task.inputs.index(upstream)}" if upstream in task.inputs else "/inputs"


def _check_inputs(dag_name: str, tasks: Mapping[str, Task], out: _Collector) -> None:
    for task in tasks.values():
        for upstream in task.local_inputs:
            pointer = _input_pointer(task, upstream)
            if upstream == task.name:
                out.add(
                    task.path,
                    _header_line(task, pointer),
                    f"cycle: {task.name} -> {task.name}",
                    "a task cannot be its own input",
                    pointer,
                )
            elif upstream not in tasks:
                hint = did_you_mean(upstream, tasks) or "name a task file of this DAG, extension included"
                out.add(task.path, _header_line(task, pointer), f"unknown input {upstream!r}", hint, pointer)
    for cycle in _find_cycles(
        {name: [i for i in t.local_inputs if i in tasks and i != name] for name, t in tasks.items()}
    ):
        # The search follows inputs (downstream to upstream); the message follows the data.
        first = tasks[cycle[0]]
        pointer = _input_pointer(first, cycle[1])
        out.add(
            first.path,
            _header_line(first, pointer),
            f"cycle: {' -> '.join(reversed(cycle))}",
            "remove one of these inputs",
            pointer,
        )


def _check_connections(tasks: Mapping[str, Task], config: RootConfig, out: _Collector) -> None:
    for task in tasks.values():
        if task.connection and task.connection not in config.connections:
            hint = did_you_mean(task.connection, config.connections) or (
                f"define it under connections: in {ROOT_CONFIG_FILE}"
            )
            out.add(
                task.path,
                _header_line(task, "/connection"),
                f"unknown connection {task.connection!r}",
                hint,
                "/connection",
            )


def _find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
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


# ---------------------------------------------------------------- the tree


def load_root_config(root: Path, base: Path) -> tuple[RootConfig, list[Problem]]:
    path = root / ROOT_CONFIG_FILE
    out = _Collector(base=base, dag=None)
    if not path.exists():
        return RootConfig(), []
    try:
        text = _read_text(path, MAX_YAML_BYTES, out)
        doc = _parse_yaml(path, text, out)
        data = _mapping_or_problem(path, doc, ROOT_CONFIG_FILE, out)
        _check_schema(path, doc, "config", out)
        if isinstance(data.get("defaults"), dict):
            _check_schedule(path, doc, data["defaults"], out)
    except _Invalid:
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


def _is_dag_dir(path: Path) -> bool:
    return (path / WORKFLOW_FILE).exists()


def known_task_types() -> frozenset[str]:
    from dagctl.plugins import task_type_names

    return task_type_names()


_LoadResult = tuple[
    "Dag | BrokenDag", list[Problem], Mapping[str, Task], tuple[str, ...], list[Path]
]


def _signature(path: Path) -> tuple[tuple[str, int, int], ...]:
    """What changes when any file of a DAG folder changes: names, sizes, mtimes."""
    entries = []
    with os.scandir(path) as listing:
        for entry in listing:
            try:
                info = entry.stat()
            except OSError:
                entries.append((entry.name, -1, -1))
                continue
            entries.append((entry.name, info.st_mtime_ns, info.st_size))
    return tuple(sorted(entries))


class DagCache:
    """Reloads only the DAG folders whose files changed since the last load; a changed
    dagctl.yaml reloads everything. This keeps a scheduler's periodic sync cheap."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._results: dict[Path, tuple[Any, _LoadResult]] = {}

    def load(self) -> DagTree:
        return load_tree(self.root, cache=self._results)


def load_one(root: Path | str, name: str) -> tuple[Dag | BrokenDag | None, RootConfig]:
    """One DAG by name, without reading the others (what `trigger` and `run` need)."""
    root = Path(root)
    dag_dir = root / name
    if name.startswith(".") or "/" in name or not dag_dir.is_dir():
        return None, RootConfig()
    config, problems = load_root_config(root, root)
    result, *_ = load_dag(dag_dir, config, root)
    if isinstance(result, Dag) and any(p.severity == "error" for p in problems):
        return BrokenDag(name, dag_dir, tuple(problems)), config
    return result, config


def load_tree(root: Path | str, cache: dict[Path, tuple[Any, _LoadResult]] | None = None) -> DagTree:
    """Every DAG under `root` (or `root` itself when it is one DAG folder)."""
    root = Path(root)
    if _is_dag_dir(root):
        dag_dirs = [root]
        config_root = root.parent
    else:
        config_root = root
        dag_dirs = []
        try:
            listing = os.scandir(root)
        except OSError as exc:
            raise UsageError(
                f"cannot read the DAGs folder {str(root)!r}: {exc.strerror or exc}",
                "pass --dags PATH or set DAGCTL_DAGS",
            ) from None
        with listing as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                if entry.name.startswith(".") or entry.name in _SKIPPED_DIRS:
                    continue
                try:
                    if entry.is_dir():
                        dag_dirs.append(Path(entry.path))
                except OSError:
                    continue
    base = root if not _is_dag_dir(root) else root.parent
    config, problems = load_root_config(config_root, base)
    for dag_dir in [d for d in dag_dirs if not _is_utf8(d.name)]:
        # A DAG name is a key in the state database and in every message: it must be text.
        dag_dirs.remove(dag_dir)
        _Collector(base=base, dag=None, problems=problems).add(
            dag_dir, None, "the folder name is not valid UTF-8", "rename the folder"
        )
    config_broken = any(p.severity == "error" for p in problems)

    dags: dict[str, Dag] = {}
    broken: dict[str, BrokenDag] = {}
    task_names: dict[str, tuple[str, ...]] = {}
    loaded_tasks: dict[str, Mapping[str, Task]] = {}
    ignored: list[str] = []
    per_dag: dict[str, list[Problem]] = {}
    config_signature = _signature(config_root) if cache is not None and config.path else None
    for dag_dir in dag_dirs:
        if cache is not None:
            try:
                key = (config_signature, config.path and config.path.stat().st_mtime_ns, _signature(dag_dir))
            except OSError:
                key = None
            cached = cache.get(dag_dir)
            if key is not None and cached is not None and cached[0] == key:
                loaded = cached[1]
            else:
                loaded = load_dag(dag_dir, config, base)
                cache[dag_dir] = (key, loaded)
        else:
            loaded = load_dag(dag_dir, config, base)
        result, dag_problems, tasks, names, skipped = loaded
        per_dag[dag_dir.name] = list(dag_problems)
        loaded_tasks[dag_dir.name] = tasks
        task_names[dag_dir.name] = names
        ignored.extend(_printable(str(p)) for p in skipped)
        if isinstance(result, Dag):
            dags[result.name] = result
        else:
            broken[result.name] = result
    _check_external_inputs(loaded_tasks, task_names, per_dag, base)

    for name in list(dags):
        reasons = list(per_dag[name])
        if config_broken:
            reasons.append(
                Problem(
                    path=ROOT_CONFIG_FILE,
                    line=None,
                    dag=name,
                    message=f"{ROOT_CONFIG_FILE} has errors",
                    hint="fix it first: every DAG depends on it",
                )
            )
        if any(p.severity == "error" for p in reasons):
            broken[name] = BrokenDag(name, dags.pop(name).path, tuple(reasons))
    for dag_problems in per_dag.values():
        problems.extend(dag_problems)
    return DagTree(
        root=root,
        config=config,
        dags=MappingProxyType(dags),
        broken=MappingProxyType(broken),
        problems=tuple(problems),
        ignored_files=tuple(ignored),
    )


def _check_external_inputs(
    dags: Mapping[str, Mapping[str, Task]],
    task_names: Mapping[str, tuple[str, ...]],
    per_dag: dict[str, list[Problem]],
    base: Path,
) -> None:
    edges: dict[str, list[str]] = {}
    for dag_name, tasks in dags.items():
        out = _Collector(base=base, dag=dag_name)
        for task in tasks.values():
            node = f"{dag_name}:{task.name}"
            edges.setdefault(node, []).extend(f"{dag_name}:{i}" for i in task.local_inputs)
            for other_dag, other_task in task.external_inputs:
                pointer = _input_pointer(task, f"{other_dag}:{other_task}")
                if other_dag not in task_names:
                    hint = did_you_mean(other_dag, task_names) or "name an existing DAG folder"
                    out.add(
                        task.path,
                        _header_line(task, pointer),
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
                        _header_line(task, pointer),
                        f"DAG {other_dag!r} has no task {other_task!r}",
                        hint,
                        pointer,
                    )
                else:
                    edges[node].append(f"{other_dag}:{other_task}")
        per_dag[dag_name].extend(out.problems)
    if not any(task.external_inputs for tasks in dags.values() for task in tasks.values()):
        return
    for cycle in _find_cycles({k: [v for v in vs if v in edges] for k, vs in edges.items()}):
        if len({node.split(":", 1)[0] for node in cycle}) < 2:
            continue  # reported within its DAG already
        dag_name, task_name = cycle[0].split(":", 1)
        task = dags[dag_name][task_name]
        upstream_dag, _, upstream_task = cycle[1].partition(":")
        pointer = _input_pointer(task, upstream_task if upstream_dag == dag_name else cycle[1])
        out = _Collector(base=base, dag=dag_name)
        out.add(
            task.path,
            _header_line(task, pointer),
            f"cycle across DAGs: {' -> '.join(reversed(cycle))}",
            "remove one of these inputs",
            pointer,
        )
        per_dag[dag_name].extend(out.problems)
