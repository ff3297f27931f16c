"""The resolved DAG model: frozen values, no I/O.

The loader turns files into these objects; everything downstream (planner, scheduler,
runner, CLI) reads them and never touches YAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

TASK_EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {".sh": "shell", ".py": "python", ".sql": "sql", ".yaml": "", ".yml": ""}
)
BUILTIN_TASK_TYPES = frozenset({"shell", "python", "sql", "command", "no_op", "dag"})
WORKFLOW_FILE = "workflow.yaml"
ROOT_CONFIG_FILE = "dagctl.yaml"
DEFAULT_QUEUE = "default"

CatchupPolicy = Literal["latest", "none", "all"]
Severity = Literal["error", "warning"]

DEFAULT_RETRIES = 2
DEFAULT_RETRY_DELAY_S = 10.0
DEFAULT_RETRY_BACKOFF = 1.0
MAX_RETRY_DELAY_S = 6 * 3600.0
DEFAULT_TIMEOUT_S: float | None = None
DEFAULT_MAX_ACTIVE_RUNS = 1
DEFAULT_MAX_PARALLEL = 8

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Problem:
    """One mistake in the DAG tree, located as precisely as we can."""

    path: str
    line: int | None
    message: str
    hint: str | None = None
    pointer: str | None = None  # JSON pointer of the offending field, e.g. /params/limit/default
    severity: Severity = "error"
    dag: str | None = None

    def render(self) -> str:
        location = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{location}: {self.message}"
        if self.severity == "warning":
            text = f"{location}: warning: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "line": self.line,
            "severity": self.severity,
            "dag": self.dag,
            "field": self.pointer,
            "message": self.message,
            "hint": self.hint,
        }


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    schema: Mapping[str, Any]  # the JSON-Schema subset written by the user, minus our own keys
    has_default: bool
    default: Any
    secret: bool = False
    description: str = ""

    @property
    def type(self) -> str:
        return str(self.schema.get("type", "string"))


@dataclass(frozen=True, slots=True)
class Task:
    name: str  # the file name, extension included
    # Its DAG's folder as text, the very string the Dag holds: the task file is `path`,
    # built on demand. A Path a task cost five times the memory of a string (its parts
    # are a list of strings), and 10,000 DAGs hold 50,000 tasks.
    folder: str
    type: str
    description: str = ""
    inputs: tuple[str, ...] = ()  # same-DAG task names, or "other_dag:task"
    parameters: tuple[str, ...] = ()
    retries: int | None = None
    retry_delay: float | None = None
    timeout: float | None = None
    connection: str | None = None
    command: tuple[str, ...] = ()
    worker_config: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    # This task's own params (`params:` of its header), over the run's, rendered per attempt.
    params: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    options: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    line: int = 1
    pool: str | None = None  # over the DAG's
    pool_slots: int | None = None
    queue: str | None = None  # over the DAG's  # where the header starts, for messages
    priority: int | None = None  # over the DAG's
    # `type: dag`: the DAG it runs as a child run, and whether it waits for it to finish.
    child_dag: str | None = None
    wait: bool = True
    # `for_each`: a template rendering to a JSON list; one item attempt per item, at
    # most `max_parallel` at once (scheduling/fanout.py).
    for_each: str | None = None
    max_parallel: int = DEFAULT_MAX_PARALLEL
    # Inputs of other DAGs (scheduling/crossdag.py): which of their runs counts, and how
    # long (seconds after the run started) to wait before failing.
    input_match: str = "same_day"
    wait_timeout: float | None = None

    @property
    def path(self) -> Path:
        return Path(self.folder, self.name)

    @property
    def unheld(self) -> bool:
        """Its own attempt is run by the advance step, never claimed: a `dag` task's
        (it waits for its child run) and a `for_each` task's (for its items)."""
        return self.type == "dag" or self.for_each is not None

    @property
    def local_inputs(self) -> tuple[str, ...]:
        return tuple(i for i in self.inputs if ":" not in i)

    @property
    def external_inputs(self) -> tuple[tuple[str, str], ...]:
        return tuple((dag, task) for dag, _, task in (i.partition(":") for i in self.inputs if ":" in i))


@dataclass(frozen=True, slots=True)
class Connection:
    name: str
    url: str


@dataclass(frozen=True, slots=True)
class NotifyRule:
    """One `notify:` entry: which events go to which channels (dagctl/notify/)."""

    events: tuple[str, ...]
    to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pool:
    """`pools:` of dagctl.yaml: at most `slots` slots held at once by running attempts."""

    name: str
    slots: int
    description: str = ""


@dataclass(frozen=True, slots=True)
class RootConfig:
    path: Path | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    worker_config: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    connections: Mapping[str, Connection] = field(default_factory=lambda: _EMPTY)
    retention: Retention | None = None
    # `channels:` as written (`${ENV}` references unresolved) and the default rules.
    channels: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)
    notify: tuple[NotifyRule, ...] = ()
    pools: Mapping[str, Pool] = field(default_factory=lambda: _EMPTY)
    queues: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # name -> description
    queue_limits: Mapping[str, int] = field(default_factory=lambda: _EMPTY)  # `limit:` of queues


@dataclass(frozen=True, slots=True)
class Retention:
    """`retention:` of dagctl.yaml: what the scheduler prunes, at most hourly."""

    older_than_s: float
    keep_last: int = 0


@dataclass(frozen=True, slots=True)
class Dag:
    name: str
    folder: str  # the DAG folder's path as text (see Task.folder); `path` builds a Path
    description: str
    tasks: Mapping[str, Task]
    fingerprint: str
    schedule: str | None = None
    timezone: str = "UTC"
    catchup: CatchupPolicy = "latest"
    max_active_runs: int = DEFAULT_MAX_ACTIVE_RUNS
    # At most this many of its attempts running at once, across every scheduler (None: no limit).
    max_active_tasks: int | None = None
    params: Mapping[str, ParamSpec] = field(default_factory=lambda: _EMPTY)
    retries: int = DEFAULT_RETRIES
    retry_delay: float = DEFAULT_RETRY_DELAY_S
    retry_backoff: float = DEFAULT_RETRY_BACKOFF
    timeout: float | None = DEFAULT_TIMEOUT_S
    worker_config: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    tags: tuple[str, ...] = ()
    connections: Mapping[str, Connection] = field(default_factory=lambda: _EMPTY)
    # The DAG's own `notify:` rules, then dagctl.yaml's.
    notify: tuple[NotifyRule, ...] = ()
    deadline: float | None = None  # seconds after the slot by which a run must have finished
    finish_by: str | None = None  # "HH:MM" local time by which a run must have finished
    pool: str | None = None
    pool_slots: int = 1
    queue: str = DEFAULT_QUEUE
    # `outputs:` of workflow.yaml: what a parent's `dag` task gets from a child run of
    # this DAG, name -> (task, key of that task's outputs).
    outputs: Mapping[str, tuple[str, str]] = field(default_factory=lambda: _EMPTY)
    priority: int = 0  # claim order: higher first, then the oldest

    @property
    def path(self) -> Path:
        return Path(self.folder)

    def queue_for(self, task: Task) -> str:
        return task.queue or self.queue

    def priority_for(self, task: Task) -> int:
        return self.priority if task.priority is None else task.priority

    def pool_for(self, task: Task) -> tuple[str, int] | None:
        """The pool an attempt of `task` holds while it runs, and how many slots: the
        task's `pool:` wins over the DAG's; `pool_slots` likewise."""
        name = task.pool or self.pool
        if name is None:
            return None
        return name, task.pool_slots if task.pool_slots is not None else self.pool_slots

    def retries_for(self, task: Task) -> int:
        return self.retries if task.retries is None else task.retries

    def timeout_for(self, task: Task) -> float | None:
        return self.timeout if task.timeout is None else task.timeout

    def retry_delay_for(self, task: Task, failed_attempt: int) -> float:
        """Delay before the attempt after `failed_attempt` (1-based), with exponential backoff."""
        base = self.retry_delay if task.retry_delay is None else task.retry_delay
        delay = base * self.retry_backoff ** max(0, failed_attempt - 1)
        return float(min(delay, MAX_RETRY_DELAY_S))

    def worker_config_for(self, task: Task) -> Mapping[str, Any]:
        """Root config, then DAG, then task: later levels win key by key, inside maps
        (`env`, `kube_env`, ...) too."""
        return MappingProxyType(merge_config(self.worker_config, task.worker_config))

    def roots(self) -> tuple[str, ...]:
        return tuple(name for name, task in self.tasks.items() if not task.local_inputs)

    def downstream(self) -> Mapping[str, tuple[str, ...]]:
        children: dict[str, list[str]] = {name: [] for name in self.tasks}
        for name, task in self.tasks.items():
            for parent in task.local_inputs:
                children.setdefault(parent, []).append(name)
        return {name: tuple(kids) for name, kids in children.items()}

    def upstream_of(self, name: str) -> frozenset[str]:
        """Every task of this DAG that `name` runs after, directly or not."""
        seen: set[str] = set()
        todo = list(self.tasks[name].local_inputs) if name in self.tasks else []
        while todo:
            parent = todo.pop()
            if parent not in seen and parent in self.tasks:
                seen.add(parent)
                todo.extend(self.tasks[parent].local_inputs)
        return frozenset(seen)

    @property
    def secret_params(self) -> frozenset[str]:
        return frozenset(name for name, spec in self.params.items() if spec.secret)


def merge_config(lower: Mapping[str, Any], upper: Mapping[str, Any]) -> dict[str, Any]:
    """`upper` over `lower`, key by key at every level: a map in both (`env`) is merged,
    not replaced; any other value (a list, a string) in `upper` replaces the lower one."""
    merged = dict(lower)
    for key, value in upper.items():
        below = merged.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            merged[key] = merge_config(below, value)
        else:
            merged[key] = value
    return merged


@dataclass(frozen=True, slots=True)
class BrokenDag:
    name: str
    path: Path
    problems: tuple[Problem, ...]

    @property
    def reason(self) -> str:
        first = next((p for p in self.problems if p.severity == "error"), self.problems[0])
        return first.render()


@dataclass(frozen=True, slots=True)
class DagTree:
    root: Path
    config: RootConfig
    dags: Mapping[str, Dag]
    broken: Mapping[str, BrokenDag]
    problems: tuple[Problem, ...]
    ignored_files: tuple[str, ...] = ()

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")
