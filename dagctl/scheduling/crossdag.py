"""Cross-DAG inputs (`other_dag:task.sh`): which run of the other DAG a task waits on,
and for how long.

`input_match` (a task header key) names the rule:
- `same_day` (the default): the latest run of the other DAG whose logical date falls on
  the same local day (in this DAG's time zone) as this run's logical date. A daily
  report at 07:00 waits on the same day's 02:00 load, whatever its exact time.
- `latest`: the latest run of the other DAG at or before this run's logical date
  (an hourly DAG's last hour, say).

`wait_timeout` (a duration): once the run has been running that long and an input of
another DAG is still not done, the task fails with the reason (and `dagctl why` and
`status` show it), instead of waiting for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from dagctl.dags import cron
from dagctl.dags.model import Dag, Task
from dagctl.states import DONE_OK_TASK_VALUES, UNSUCCESSFUL_TASK_VALUES

MATCH_RULES = ("same_day", "latest")
DEFAULT_MATCH = "same_day"

# (other DAG, other task, latest logical date, earliest logical date or None) -> status
ExternalLookup = Callable[..., "str | None"]


def window(dag: Dag, task: Task, logical_date: datetime) -> tuple[datetime, datetime | None]:
    """The logical dates (naive UTC, inclusive) a run of the other DAG may have to count
    for a run at `logical_date`: (latest, earliest or None for no lower bound)."""
    if task.input_match == "latest":
        return logical_date, None
    tz = cron.zone(dag.timezone)
    day = cron.to_local(logical_date, tz).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    start = cron.to_utc(day, tz)
    end = cron.to_utc(day + timedelta(days=1), tz) - timedelta(microseconds=1)
    return end, start


def describe(dag: Dag, task: Task, other_dag: str, logical_date: datetime) -> str:
    """Which run of `other_dag` counts, in words (for `why` and errors)."""
    if task.input_match == "latest":
        return f"a run of {other_dag} at or before {logical_date:%Y-%m-%d %H:%M} UTC"
    day = cron.to_local(logical_date, cron.zone(dag.timezone))
    return f"a run of {other_dag} on {day:%Y-%m-%d} ({dag.timezone})"


def verdict(
    dag: Dag,
    task: Task,
    logical_date: datetime,
    started_at: datetime | None,
    now: datetime | None,
    external_status: ExternalLookup,
) -> tuple[str, str | None]:
    """("ok" | "wait" | "failed" | "timeout", the reason for a timeout) of a task's
    inputs in other DAGs."""
    latest, earliest = window(dag, task, logical_date)
    for other_dag, other_task in task.external_inputs:
        status = (
            external_status(other_dag, other_task, latest)
            if earliest is None
            else external_status(other_dag, other_task, latest, earliest)
        )
        if status in UNSUCCESSFUL_TASK_VALUES:
            return "failed", None
        if status in DONE_OK_TASK_VALUES:
            continue
        waited = (now - started_at).total_seconds() if now and started_at else 0.0
        if task.wait_timeout is not None and waited >= task.wait_timeout:
            state = "has not run" if status is None else f"is {status}"
            return "timeout", (
                f"gave up waiting for {other_dag}:{other_task} after {_duration(task.wait_timeout)}"
                f" (wait_timeout): in {describe(dag, task, other_dag, logical_date)} it {state}"
            )
        return "wait", None
    return "ok", None


def _duration(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"


__all__ = ["DEFAULT_MATCH", "MATCH_RULES", "describe", "verdict", "window"]
