"""One task attempt as a manager sees it: what it is told (TaskContext, Attempt) and
what it hands back (Outcome, LogChunk, PollResult). Plain values, shared by the
worker, `dagctl run` and the kubernetes manager."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dagctl.dags.model import Dag, Task
from dagctl.dags.templating import RunDates

# Attempt outcomes a manager may report.
SUCCESS = "success"
FAILED = "failed"
# Stopped for a reason of the scheduler's, not the task's (its shutdown, its leases not
# renewed in time): the attempt is run again without counting against `retries`.
INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class TaskContext:
    """Everything a task attempt is told about its run. Also what `run(context)` receives."""

    dag: str
    task: str
    run_id: int | None
    attempt: int
    logical_date: datetime
    params: Mapping[str, Any]
    secret_params: frozenset[str] = frozenset()
    # The run's data interval (naive UTC; None: the logical date) and the DAG's time
    # zone, which tells the slot's local date (`ds`).
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    timezone: str = "UTC"
    # The outputs of the tasks upstream of this one in its run, by task name.
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # An item attempt of a `for_each` task: its index in the list and its item.
    item_index: int | None = None
    item: Any = None

    @property
    def dates(self) -> RunDates:
        return RunDates(
            self.logical_date,
            self.data_interval_start or self.logical_date,
            self.data_interval_end or self.logical_date,
            self.timezone,
        )

    def as_dict(self) -> dict[str, Any]:
        dates = self.dates
        return {
            "dag": self.dag,
            "task": self.task,
            "run_id": self.run_id,
            "attempt": self.attempt,
            "logical_date": self.logical_date.isoformat(),
            "data_interval_start": dates.data_interval_start.isoformat(),
            "data_interval_end": dates.data_interval_end.isoformat(),
            "ds": dates.ds,
            "params": dict(self.params),
            "outputs": {name: dict(values) for name, values in self.outputs.items()},
            **({"item": self.item, "item_index": self.item_index} if self.item_index is not None else {}),
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    """A claimed task attempt, handed to a manager to execute."""

    task_run_id: int
    dag: Dag
    task: Task
    context: TaskContext


@dataclass(frozen=True, slots=True)
class Outcome:
    """How an attempt ended. `log` is the captured output not yet handed over."""

    task_run_id: int
    status: str  # SUCCESS, FAILED or INTERRUPTED
    exit_code: int | None = None
    error: str | None = None
    log: str = ""
    log_truncated_bytes: int = 0
    outputs: dict[str, Any] | None = None  # a successful attempt's, see execution/outputs.py


@dataclass(slots=True)
class LogChunk:
    task_run_id: int
    text: str


@dataclass(slots=True)
class PollResult:
    finished: list[Outcome] = field(default_factory=list)
    logs: list[LogChunk] = field(default_factory=list)
