"""`dagctl backfill`: one run per schedule slot of a date range, created at once and
run by whichever schedulers are alive; following and cancelling one."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from dagctl.actions.common import load_dag, now, open_store, store_session
from dagctl.actions.views import iso
from dagctl.config import Settings
from dagctl.dags import cron
from dagctl.dags.model import Dag
from dagctl.errors import ParamError, UsageError
from dagctl.states import ACTIVE_RUN_VALUES, RunStatus

# A range this long is a typo (a minutely schedule over years), not a backfill.
MAX_BACKFILL_SLOTS = 100_000
FOLLOW_INTERVAL_S = 0.5
_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    dag: str
    start: str
    end: str
    reprocess: str = "missing"
    max_active_runs: int | None = None
    reverse: bool = False
    dry_run: bool = False
    schedule: str | None = None
    creator: str = "cli"


def _bound(text: str, dag: Dag, *, end: bool) -> datetime:
    """A range bound as naive UTC: a date alone is its whole local day (from midnight,
    or up to the next midnight excluded); a date-time is local wall time, inclusive."""
    tz = cron.zone(dag.timezone)
    raw = text.strip()
    option = "--end" if end else "--start"
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            midnight = datetime(day.year, day.month, day.day) + (timedelta(days=1) if end else timedelta())
            return cron.to_utc(midnight, tz) - (_ONE_MICROSECOND if end else timedelta())
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date", f"write {option} 2024-06-01") from None
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return cron.to_utc(value, tz)


def _schedule(dag: Dag, given: str | None) -> str:
    if given and dag.schedule:
        raise UsageError(
            f"DAG {dag.name!r} has its own schedule {dag.schedule!r}",
            "leave out --schedule; it is for DAGs without one",
        )
    expression = given or dag.schedule
    if not expression:
        raise UsageError(
            f"DAG {dag.name!r} has no schedule, so it has no slots to backfill",
            "pass --schedule CRON, e.g. --schedule '0 0 * * *'",
        )
    problem = cron.check_expression(expression)
    if problem:
        raise UsageError(f"--schedule {expression!r}: {problem}")
    return expression


def backfill(settings: Settings, request: BackfillRequest, given: Mapping[str, Any]) -> dict[str, Any]:
    """Create the backfill's runs (or, with dry_run, say which it would create). Params
    are checked for every slot before anything is written."""
    from dagctl.scheduling.planner import new_runs

    dag = load_dag(settings.dags, request.dag)
    schedule = _schedule(dag, request.schedule)
    start, end = _bound(request.start, dag, end=False), _bound(request.end, dag, end=True)
    if end < start:
        raise UsageError(f"--end {request.end} is before --start {request.start}")
    slots = list(
        cron.slots_between(
            schedule, dag.timezone, start - _ONE_MICROSECOND, end, limit=MAX_BACKFILL_SLOTS + 1
        )
    )
    if len(slots) > MAX_BACKFILL_SLOTS:
        raise UsageError(
            f"the range has over {MAX_BACKFILL_SLOTS:,} slots of {schedule!r}", "backfill a shorter range"
        )
    runs = new_runs(dag, slots, schedule, given)
    failing = next((run for run in runs if run.error), None)
    if failing is not None:
        raise ParamError(f"slot {iso(failing.slot)}: {failing.error}")
    result: dict[str, Any] = {
        "dag": dag.name,
        "schedule": schedule,
        "reprocess": request.reprocess,
        "slots": len(slots),
        "dry_run": request.dry_run,
    }
    if request.dry_run:
        store = open_store(settings, migrate=True)
        try:
            existing = store.slot_statuses(dag.name, start, end) if slots else {}
        finally:
            store.close()
        chosen = [
            s
            for s in slots
            if s not in existing
            or request.reprocess == "all"
            or (request.reprocess == "failed" and existing[s] == RunStatus.FAILED.value)
        ]
        return {**result, "backfill_id": None, "created": len(chosen), "runs": [iso(s) for s in chosen]}
    spec = {
        "dag_name": dag.name,
        "start_slot": start,
        "end_slot": end,
        "reprocess": request.reprocess,
        "max_active_runs": request.max_active_runs or dag.max_active_runs,
        "reverse": request.reverse,
        "schedule": schedule,
        "params": _json(given),
        "creator": request.creator,
    }
    store = open_store(settings, migrate=True)
    try:
        backfill_id, created = store.create_backfill(spec, runs, dag.fingerprint, now())
    finally:
        store.close()
    return {**result, "backfill_id": backfill_id, "created": created}


def _json(values: Mapping[str, Any]) -> str:
    import json

    return json.dumps(dict(values))


def cancel(settings: Settings, backfill_id: int) -> dict[str, Any]:
    with store_session(settings) as store:
        result = store.cancel_backfill(backfill_id, now())
    if result is None:
        raise UsageError(f"no backfill {backfill_id}", "its id is what dagctl backfill printed")
    queued, running = result
    return {"backfill_id": backfill_id, "cancelled_queued_runs": queued, "cancelled_running_runs": running}


def follow(
    settings: Settings,
    backfill_id: int,
    on_update: Callable[[dict[str, Any]], None],
    interval: float = FOLLOW_INTERVAL_S,
) -> dict[str, Any]:
    """Call `on_update` with the backfill's view ({"backfill_id", "dag", "total",
    "counts", "runs": [{"id", "logical_date", "status", "error"}]}) until none of its
    runs is queued or running; return the last view."""
    with store_session(settings) as store:
        while True:
            info = store.backfill_info(backfill_id)
            if info is None:
                raise UsageError(f"no backfill {backfill_id}")
            view = {
                "backfill_id": backfill_id,
                "dag": info["dag_name"],
                "status": info["status"],
                "total": len(info["runs"]),
                "counts": info["counts"],
                "runs": [
                    {
                        "id": r["id"],
                        "logical_date": iso(r["logical_date"]),
                        "status": r["status"],
                        "error": r["error"],
                    }
                    for r in info["runs"]
                ],
            }
            on_update(view)
            if not any(r["status"] in ACTIVE_RUN_VALUES for r in info["runs"]):
                return view
            time.sleep(interval)
