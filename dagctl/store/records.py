"""The plain values the store hands out and takes in.

No SQLAlchemy here (nor anywhere this imports): the pure planner builds and reads
these, and `import dagctl.cli` must stay free of SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dagctl.store.liveness import Presence

# ---------------------------------------------------------------- owner ids

# The width of scheduler.id and task_run.lease_owner (tables.py).
OWNER_ID_LENGTH = 64


def owner_id(host: str | None = None, pid: int | None = None, token: str | None = None) -> str:
    """A scheduler's id, `host-pid-token`, never longer than OWNER_ID_LENGTH whatever
    the host name (a pod of a long-named Deployment has 63 characters): a long host
    name keeps its start and its end (a pod's unique suffix), joined by `..`; the random
    token keeps ids unique either way. The full host name is stored in scheduler.host."""
    import os
    import uuid

    host = os.uname().nodename if host is None else host
    tail = f"-{os.getpid() if pid is None else pid}-{token or uuid.uuid4().hex[:8]}"
    room = OWNER_ID_LENGTH - len(tail)
    if len(host) > room:
        keep_end = (room - 2) // 2
        host = host[: room - 2 - keep_end] + ".." + (host[-keep_end:] if keep_end else "")
    return (host + tail)[-OWNER_ID_LENGTH:]


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


@dataclass(frozen=True, slots=True)
class NewRun:
    """One run to create for a slot: its data interval starts at `data_interval_start`
    and ends at the slot; `params` is the JSON of its rendered params. With `error` (a
    param template failed), the run is created failed with it, so the slot is not lost
    silently and `status` says why."""

    slot: datetime
    data_interval_start: datetime
    params: str
    error: str | None = None


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
    data_interval_start: datetime | None = None  # None on runs from before run variables
    data_interval_end: datetime | None = None
    # The outputs of the run's succeeded tasks by task name, read at the claim: the
    # scheduler hands the attempt those of its upstream tasks.
    run_outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The item of an item attempt of a `for_each` task (scheduling/fanout.py).
    item: Any = None
    # Whether any succeeded task of the run published outputs, as the claim saw: when
    # none did, there is nothing to read for `run_outputs` (one statement less a hop).
    run_has_outputs: bool = True


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
    outputs: dict[str, Any] | None = None  # stored only when the attempt is recorded a success


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
    # A backfill's runs count against its own max_active_runs, not the DAG's.
    backfill_id: int | None = None
    backfill_max_active: int | None = None
    backfill_reverse: bool = False
    started_at: datetime | None = None  # when it started running (cross-DAG wait_timeout)


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
    error: str | None = None  # why it failed before it started (a cross-DAG wait_timeout)


@dataclass
class AdvancePlan:
    start_runs: list[int] = field(default_factory=list)
    new_task_runs: list[NewTaskRun] = field(default_factory=list)
    finish_runs: list[tuple[int, str]] = field(default_factory=list)  # (run id, final status)
    # Runs to look at again next iteration although nothing will flag them: they wait
    # on another DAG's task, on a queue slot, or on a DAG that failed to load.
    still_dirty: list[int] = field(default_factory=list)
    # dag -> event -> channels (notify rules): the alert events the runs finished here
    # write to the outbox in the same transaction (store/notifications.py).
    alert_rules: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    def absorb(self, other: AdvancePlan) -> None:
        """Add what `other` decided (its alert rules are the caller's to set)."""
        self.start_runs += other.start_runs
        self.new_task_runs += other.new_task_runs
        self.finish_runs += other.finish_runs
        self.still_dirty += other.still_dirty


# ---------------------------------------------------------------- alerts


@dataclass(frozen=True, slots=True)
class Notification:
    """One alert event of the outbox and its delivery state."""

    id: int
    dag_name: str
    dag_run_id: int | None
    event: str
    channels: tuple[str, ...]
    sent_to: tuple[str, ...]
    status: str  # pending | delivered | failed
    attempts: int
    created_at: datetime
    delivered_at: datetime | None
    last_error: str | None
    task_run_id: int | None = None  # the attempt of a `retry` or `lost` event


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
    "NewRun",
    "NewTaskRun",
    "Notification",
    "Presence",
    "RetryResult",
    "RunSnapshot",
]


# ---------------------------------------------------------------- pools


@dataclass(frozen=True, slots=True)
class PoolHolder:
    """An attempt holding slots of a pool: running under a live lease."""

    dag_name: str
    task_name: str
    dag_run_id: int
    task_run_id: int
    slots: int


@dataclass(frozen=True, slots=True)
class PoolUsage:
    name: str
    slots: int
    description: str
    used: int
    holders: tuple[PoolHolder, ...]
    waiting: int  # ready attempts of its tasks not yet claimed
    oldest_waiting_since: datetime | None


@dataclass(frozen=True, slots=True)
class QueueUsage:
    """One work queue as `dagctl queues` shows it."""

    name: str
    waiting: int  # ready attempts of its tasks not yet claimed
    oldest_waiting_since: datetime | None
    running: int
    served_by: tuple[str, ...]  # "host:pid" of the live schedulers that serve it
    paused: bool = False  # by `dagctl queue pause`
    limit: int | None = None  # `limit:` in dagctl.yaml, as the schedulers last synced it
