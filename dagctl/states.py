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
    # Stopped by its own scheduler's shutdown, by the guardian when its lease was not
    # renewed in time, or reaped as lost: run again as a new attempt, not counted
    # against `retries`.
    INTERRUPTED = "interrupted"

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
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.SUCCESS, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.INTERRUPTED}
    ),
    TaskStatus.SUCCESS: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.UPSTREAM_FAILED: frozenset(),
    TaskStatus.SKIPPED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
    TaskStatus.INTERRUPTED: frozenset(),
}

# Every status set dagctl decides by lives here. The enum sets compare with enum
# members; the `*_VALUES` twins hold the plain strings that rows and JSON carry (a
# str-Enum member hashes by its name, so "success" is not found in a set of members).
ACTIVE_RUN = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
FINISHED_RUN = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.CANCELLED})
FINISHED_TASK = frozenset(
    {
        TaskStatus.SUCCESS,
        TaskStatus.FAILED,
        TaskStatus.UPSTREAM_FAILED,
        TaskStatus.SKIPPED,
        TaskStatus.CANCELLED,
    }
)
NOT_ENDED_TASK = frozenset({TaskStatus.WAITING, TaskStatus.QUEUED, TaskStatus.RUNNING})
CLAIMABLE_TASK = frozenset({TaskStatus.QUEUED, TaskStatus.WAITING})
# A task in one of these lets its downstream tasks start.
DONE_OK_TASK = frozenset({TaskStatus.SUCCESS, TaskStatus.SKIPPED})
# A task ended in one of these: its downstream tasks are upstream_failed, and
# `dagctl retry` runs it again.
UNSUCCESSFUL_TASK = frozenset({TaskStatus.FAILED, TaskStatus.UPSTREAM_FAILED, TaskStatus.CANCELLED})
# An attempt that ended in one of these may be followed by another: a failed one while
# retries are left, an interrupted one always. An interrupted attempt is never the
# task's latest (its successor is queued in the same transaction), and does not count
# against `retries` (UNCOUNTED_TASK).
RERUN_TASK = frozenset({TaskStatus.FAILED, TaskStatus.INTERRUPTED})
UNCOUNTED_TASK = frozenset({TaskStatus.INTERRUPTED})


def values(statuses: frozenset[RunStatus] | frozenset[TaskStatus]) -> frozenset[str]:
    return frozenset(s.value for s in statuses)


ACTIVE_RUN_VALUES = values(ACTIVE_RUN)
FINISHED_RUN_VALUES = values(FINISHED_RUN)
FINISHED_TASK_VALUES = values(FINISHED_TASK)
NOT_ENDED_TASK_VALUES = values(NOT_ENDED_TASK)
DONE_OK_TASK_VALUES = values(DONE_OK_TASK)
UNSUCCESSFUL_TASK_VALUES = values(UNSUCCESSFUL_TASK)
RERUN_TASK_VALUES = values(RERUN_TASK)
UNCOUNTED_TASK_VALUES = values(UNCOUNTED_TASK)


def run_sources(target: RunStatus) -> list[str]:
    """States a run may move to `target` from."""
    return sorted(s.value for s, targets in RUN_TRANSITIONS.items() if target in targets)


def task_sources(target: TaskStatus) -> list[str]:
    return sorted(s.value for s, targets in TASK_TRANSITIONS.items() if target in targets)
