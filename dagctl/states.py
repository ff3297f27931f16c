"""Run and task-attempt states, and the one table of transitions allowed between them.

Every status update in the store is written as `... WHERE status IN (allowed sources)`,
so a transition the table does not allow simply matches no row.
"""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


class TaskStatus(str, Enum):
    WAITING = "waiting"  # a retry attempt whose delay has not passed yet
    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    UPSTREAM_FAILED = "upstream_failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED}),
    # `dagctl retry` reopens a finished run.
    RunStatus.SUCCESS: frozenset({RunStatus.RUNNING}),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.CANCELLED: frozenset({RunStatus.RUNNING}),
}

TASK_TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.WAITING: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED}),
    TaskStatus.QUEUED: frozenset({TaskStatus.RUNNING, TaskStatus.CANCELLED}),
    TaskStatus.RUNNING: frozenset({TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED}),
    TaskStatus.SUCCESS: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.UPSTREAM_FAILED: frozenset(),
    TaskStatus.SKIPPED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}

ACTIVE_RUN = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
FINISHED_TASK = frozenset(
    {
        TaskStatus.SUCCESS,
        TaskStatus.FAILED,
        TaskStatus.UPSTREAM_FAILED,
        TaskStatus.SKIPPED,
        TaskStatus.CANCELLED,
    }
)
CLAIMABLE_TASK = frozenset({TaskStatus.QUEUED, TaskStatus.WAITING})


def run_sources(target: RunStatus) -> list[str]:
    """States a run may move to `target` from."""
    return sorted(s.value for s, targets in RUN_TRANSITIONS.items() if target in targets)


def task_sources(target: TaskStatus) -> list[str]:
    return sorted(s.value for s, targets in TASK_TRANSITIONS.items() if target in targets)
