"""The plain values the store hands out and takes in.

No SQLAlchemy here (nor anywhere this imports): the pure planner builds and reads
these, and `import dagctl.cli` must stay free of SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# ---------------------------------------------------------------- DAG rows


@dataclass(frozen=True, slots=True)
class DagState:
    name: str
    paused: bool
    fingerprint: str | None
    last_slot: datetime | None
    first_seen_at: datetime
    # Since when the DAG is deleted, renamed away or broken (see tables.dag), else None.
    missing_since: datetime | None = None


# ---------------------------------------------------------------- attempts


@dataclass(frozen=True, slots=True)
class ClaimedAttempt:
    task_run_id: int
    dag_run_id: int
    dag_name: str
    task_name: str
    attempt: int
    logical_date: datetime
    params: dict[str, Any]
    # This attempt's number counting only the attempts that count against `retries`
    # (interrupted ones do not): what retry decisions use; `attempt` is its identity.
    tries: int


@dataclass(frozen=True, slots=True)
class FinishedAttempt:
    task_run_id: int
    status: str  # success | failed | cancelled | interrupted
    exit_code: int | None
    error: str | None
    retry_after: float | None  # seconds until the next attempt; None: no more attempts
    log: str = ""
    log_truncated_bytes: int = 0
    ended_at: datetime | None = None  # when its end was noticed; None: when recorded


@dataclass(frozen=True, slots=True)
class LostAttempt:
    task_run_id: int
    dag_run_id: int
    dag_name: str
    task_name: str
    attempt: int


@dataclass(frozen=True, slots=True)
class AdoptResult:
    adopted: list[ClaimedAttempt] = field(default_factory=list)  # now ours: watch them
    ended: list[int] = field(default_factory=list)  # already ended (or unknown): clean up


# ---------------------------------------------------------------- advancing runs


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    id: int
    dag_name: str
    status: str
    logical_date: datetime


@dataclass(frozen=True, slots=True)
class AttemptSnapshot:
    """The latest attempt of one task in one run."""

    task_name: str
    attempt: int
    status: str


@dataclass(frozen=True, slots=True)
class AdvanceSnapshot:
    """What the planner decides an advance from: the DAGs this transaction locked
    ({name: paused}), their active runs, and the latest attempt of each task of the
    running ones ({run id: {task: attempt}})."""

    paused: dict[str, bool] = field(default_factory=dict)
    runs: list[RunSnapshot] = field(default_factory=list)
    attempts: dict[int, dict[str, AttemptSnapshot]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewTaskRun:
    dag_run_id: int
    dag_name: str
    task_name: str
    status: str  # queued, or upstream_failed when an input failed


@dataclass
class AdvancePlan:
    start_runs: list[int] = field(default_factory=list)
    new_task_runs: list[NewTaskRun] = field(default_factory=list)
    finish_runs: list[tuple[int, str]] = field(default_factory=list)  # (run id, final status)
    # Runs to look at again next iteration although nothing will flag them: they wait
    # on another DAG's task, on a queue slot, or on a DAG that failed to load.
    still_dirty: list[int] = field(default_factory=list)


# ---------------------------------------------------------------- run control


@dataclass(frozen=True, slots=True)
class CancelResult:
    previous_status: str  # the run's status before; unchanged when it had already finished
    cancelled: bool
    cancelled_tasks: tuple[str, ...] = ()  # queued or waiting attempts, cancelled at once
    running_tasks: tuple[str, ...] = ()  # stopped by the scheduler that runs them


@dataclass(frozen=True, slots=True)
class RetryResult:
    reopened: bool  # False: the run was not finished any more (or still had running tasks)
    status: str | None = None  # the run's status when it was not reopened
    requeued: tuple[tuple[str, int], ...] = field(default=())  # (task, new attempt)
    reset: tuple[str, ...] = ()  # tasks whose unstarted attempts were removed


__all__ = [
    "AdoptResult",
    "AdvancePlan",
    "AdvanceSnapshot",
    "AttemptSnapshot",
    "CancelResult",
    "ClaimedAttempt",
    "DagState",
    "FinishedAttempt",
    "LostAttempt",
    "NewTaskRun",
    "RetryResult",
    "RunSnapshot",
]
