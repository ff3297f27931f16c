"""`dagctl why`: pure explanations of why a DAG is not running, from a snapshot.

No database, no clock: the caller reads state and passes it in, so each answer can be
tested from plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from dagctl.dags import cron
from dagctl.dags.model import Dag, Task
from dagctl.scheduling import crossdag
from dagctl.scheduling.fanout import mapped_task
from dagctl.scheduling.planner import latest_attempts
from dagctl.states import DONE_OK_TASK_VALUES, NOT_ENDED_TASK_VALUES, UNCOUNTED_TASK_VALUES

# A queued attempt older than this while a scheduler is alive means its slots are busy.
QUEUED_TOO_LONG = timedelta(seconds=5)


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _utc_text(value: datetime) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC"


ExternalLookup = Callable[..., "str | None"]  # see crossdag.py


def why(
    dag_name: str,
    dag: Dag | None,
    broken_reason: str | None,
    snapshot: Mapping[str, Any],
    now: datetime,
    external_status: ExternalLookup,
    next_slot: datetime | None,
    orphan_grace_s: float = 0.0,
) -> list[dict[str, str]]:
    """Reasons, most blocking first, each {"code", "message"}. Codes: missing, broken,
    paused, no_scheduler, unknown_to_schedulers, max_active_runs, waiting_on_inputs,
    retry_delay, pool_full, max_active_tasks, queue_limit, queued, interrupted, running, nothing_queued."""
    reasons: list[dict[str, str]] = []

    def add(code: str, message: str) -> None:
        reasons.append({"code": code, "message": message})

    missing_since = snapshot.get("missing_since")
    fails_at = ""
    if missing_since is not None and any(r["status"] in ("queued", "running") for r in snapshot["runs"]):
        deadline = missing_since + timedelta(seconds=orphan_grace_s)
        fails_at = (
            f"; its active runs end failed at {_utc_text(deadline)} if it is still so "
            "(DAGCTL_ORPHAN_GRACE_SECONDS after it was found so)"
        )
    if dag is None and broken_reason is None:
        add(
            "missing",
            f"{dag_name} is not in the DAGs folder (deleted or renamed): no run is created or started"
            + fails_at,
        )
    if broken_reason is not None:
        add("broken", f"{dag_name} is broken and is not scheduled: {broken_reason}{fails_at}")
    if snapshot["paused"]:
        add("paused", f"{dag_name} is paused: no run is created or started (dagctl unpause {dag_name})")
    if snapshot["live_schedulers"] == 0:
        last, stopped = snapshot["last_heartbeat"], snapshot["last_stopped"]
        if last is None:
            since = "none has run on this database yet"
        elif stopped is not None:
            since = f"the last one stopped {_ago((snapshot['db_now'] - stopped).total_seconds())} ago"
        else:
            since = f"the last heartbeat was {_ago((snapshot['db_now'] - last).total_seconds())} ago"
        add("no_scheduler", f"no scheduler is alive ({since}): start one with dagctl schedule")
    unknown = snapshot["live_schedulers"] > 0 and snapshot.get("live_knowing") == 0
    if unknown:
        add(
            "unknown_to_schedulers",
            f"no live scheduler has loaded {dag_name}: {snapshot['live_schedulers']} alive, none with"
            f" {dag_name} in its --dags folder (start one with dagctl --dags FOLDER schedule)",
        )
    runs = snapshot["runs"]
    by_run: dict[int, list[Mapping[str, Any]]] = {}
    for attempt in snapshot["attempts"]:
        by_run.setdefault(attempt["dag_run_id"], []).append(attempt)
    running_runs = [r for r in runs if r["status"] == "running"]
    queued_runs = [r for r in runs if r["status"] == "queued"]
    if queued_runs and dag is not None and not snapshot["paused"]:
        if len(running_runs) >= dag.max_active_runs:
            waiting = ", ".join(str(r["id"]) for r in queued_runs)
            active = ", ".join(str(r["id"]) for r in running_runs)
            add(
                "max_active_runs",
                f"max_active_runs is {dag.max_active_runs} and run {active} is running: "
                f"run {waiting} waits for it to finish",
            )
        else:
            waits = "a scheduler that has loaded it" if unknown else "the next scheduler pass"
            add("queued", f"run {queued_runs[0]['id']} is queued: {waits} starts it")
    for run in running_runs:
        _why_run(run, dag, by_run.get(run["id"], []), snapshot, now, external_status, add)
    if not runs:
        if dag is not None and dag.schedule and next_slot is not None:
            local = cron.to_local(next_slot, cron.zone(dag.timezone))
            when = f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({_utc_text(next_slot)})"
            if snapshot["paused"]:
                add("nothing_queued", f"no run is queued or running; the next slot would be {when}")
            else:
                add("nothing_queued", f"no run is queued or running; the next scheduled run is at {when}")
        elif broken_reason is not None:
            add("nothing_queued", f"no run is queued or running (fix {dag_name} first: dagctl validate)")
        else:
            add(
                "nothing_queued",
                f"no run is queued or running, and {dag_name} has no schedule (dagctl trigger {dag_name})",
            )
        newest = snapshot["newest_run"]
        if newest is not None and newest["status"] in ("failed", "cancelled"):
            detail = f": {newest['error']}" if newest.get("error") else ""
            reasons[-1]["message"] += (
                f"; its last run, {newest['id']}, {newest['status']}{detail} (dagctl retry {newest['id']})"
            )
    return reasons


def _why_run(
    run: Mapping[str, Any],
    dag: Dag | None,
    attempts: Sequence[Mapping[str, Any]],
    snapshot: Mapping[str, Any],
    now: datetime,
    external_status: ExternalLookup,
    add: Callable[[str, str], None],
) -> None:
    run_id = run["id"]
    latest = latest_attempts(attempts)
    for earlier in attempts:
        after = latest.get(earlier["task_name"])
        if (
            earlier["status"] in UNCOUNTED_TASK_VALUES
            and after is not None
            and after["attempt"] == earlier["attempt"] + 1
            and after["status"] in NOT_ENDED_TASK_VALUES
        ):
            add(
                "interrupted",
                f"run {run_id}: {earlier['task_name']} attempt {earlier['attempt']} was interrupted "
                f"({earlier['error']}); attempt {after['attempt']} runs it again, "
                "not counted against retries",
            )
    for name, attempt in latest.items():
        status = attempt["status"]
        if status == "running":
            started = attempt["started_at"]
            took = f", for {_ago((now - started).total_seconds())}" if started else ""
            host = f", on {attempt['host']}" if attempt["host"] else ""
            if attempt.get("child_run_id"):  # a dag task (scheduling/children.py)
                host = f", waiting for its child run {attempt['child_run_id']}: dagctl why on its DAG"
            elif attempt.get("map_items"):  # a for_each task (scheduling/fanout.py)
                host = ", its items run as their own attempts"
            add("running", f"run {run_id}: {name} is running (attempt {attempt['attempt']}{took}{host})")
        elif status in ("waiting", "queued") and attempt["not_before"] > now:
            add(
                "retry_delay",
                f"run {run_id}: {name} attempt {attempt['attempt']} waits for its retry delay "
                f"until {_utc_text(attempt['not_before'])} "
                f"(in {_ago((attempt['not_before'] - now).total_seconds())})",
            )
        elif status in ("waiting", "queued"):
            code, message = _why_queued(dag, name, attempt, snapshot, now)
            add(code, f"run {run_id}: {name} {message}")
    if dag is None:
        return
    for name, task in dag.tasks.items():
        if name in latest or not task.external_inputs:
            continue
        if any(latest.get(i, {}).get("status") not in DONE_OK_TASK_VALUES for i in task.local_inputs):
            continue
        latest_date, earliest = crossdag.window(dag, task, run["logical_date"])
        for other_dag, other_task in task.external_inputs:
            if earliest is None:
                status = external_status(other_dag, other_task, latest_date)
            else:
                status = external_status(other_dag, other_task, latest_date, earliest)
            if status in DONE_OK_TASK_VALUES:
                continue
            wanted = crossdag.describe(dag, task, other_dag, run["logical_date"])
            detail = f"not run yet in {wanted}" if status is None else f"it is {status} in {wanted}"
            if task.wait_timeout is not None:
                detail += f"; it fails {_ago(task.wait_timeout)} after the run started (wait_timeout)"
            add("waiting_on_inputs", f"run {run_id}: {name} waits on {other_dag}:{other_task} ({detail})")


def _why_queued(
    dag: Dag | None, name: str, attempt: Mapping[str, Any], snapshot: Mapping[str, Any], now: datetime
) -> tuple[str, str]:
    """Why a ready attempt is not running yet: its pool, its DAG's max_active_tasks, its
    queue's limit, every scheduler slot busy, or the next free slot."""
    queued_for = now - attempt["queued_at"]
    full = _full_pool(dag, name, snapshot)
    capped = dag.max_active_tasks if dag is not None else None
    task = _task_named(dag, name)
    queue = dag.queue_for(task) if dag is not None and task is not None else None
    queue_cap, queue_running = snapshot.get("queue_limits", {}).get(queue, (None, 0))
    if full:
        return "pool_full", f"is waiting for {full}"
    if capped is not None and snapshot.get("dag_running_attempts", 0) >= capped:
        running = snapshot["dag_running_attempts"]
        return "max_active_tasks", f"is waiting for max_active_tasks ({running}/{capped} running)"
    if queue_cap is not None and queue_running >= queue_cap:
        return "queue_limit", f"is waiting for queue {queue}'s limit ({queue_running}/{queue_cap} running)"
    if snapshot["live_schedulers"] and queued_for > QUEUED_TOO_LONG:
        return "pool_full", (
            f"has been queued for {_ago(queued_for.total_seconds())}: "
            f"every scheduler slot is busy ({snapshot['running_attempts']} attempts running, "
            f"{snapshot['queued_attempts']} queued)"
        )
    return "queued", "is queued for the next free scheduler slot"


def _task_named(dag: Dag | None, name: str) -> Task | None:
    """The task of an attempt named `name`: the for_each task for an item (`t.sh[3]`),
    whose pool, queue and priority its items take."""
    if dag is None:
        return None
    mapped = mapped_task(dag, name)
    return mapped[0] if mapped is not None else dag.tasks.get(name)


def _full_pool(dag: Dag | None, task_name: str, snapshot: Mapping[str, Any]) -> str | None:
    """'pool warehouse (4/4 used by etl/load.sql run 12, ...)' when the task's pool has
    no room for one more attempt of it, else None."""
    task = _task_named(dag, task_name)
    taken = dag.pool_for(task) if dag is not None and task is not None else None
    usage = snapshot.get("pools", {}).get(taken[0]) if taken else None
    if taken is None or usage is None or usage.used + taken[1] <= usage.slots:
        return None
    holders = [f"{h.dag_name}/{h.task_name} run {h.dag_run_id}" for h in usage.holders[:3]]
    more = ", ..." if len(usage.holders) > 3 else ""
    by = f" used by {', '.join(holders)}{more}" if holders else ""
    return f"pool {usage.name} ({usage.used}/{usage.slots}{by})"


def unserved_queues(
    dag: Dag | None,
    attempts: Sequence[Mapping[str, Any]],
    served: Mapping[str, Sequence[str]],
    live: int,
    paused: frozenset[str] = frozenset(),
) -> list[dict[str, str]]:
    """`queue_paused` and `queue_unserved` reasons: queued attempts of the DAG whose work
    queue is paused (`dagctl queue pause`) or that no live scheduler serves (`schedule
    --queue NAME`); they wait until it is unpaused or served. Unserved says nothing when
    no scheduler is alive at all (`no_scheduler` says so)."""
    if dag is None:
        return []
    waiting: dict[str, list[str]] = {}
    for attempt in attempts:
        task = _task_named(dag, attempt["task_name"])
        if attempt["status"] == "queued" and task is not None:
            queue = dag.queue_for(task)
            stuck = queue in paused or (live > 0 and not served.get(queue))
            if stuck and task.name not in waiting.get(queue, []):
                waiting.setdefault(queue, []).append(task.name)
    return [
        {
            "code": "queue_paused",
            "message": f"queue {queue} is paused, so {', '.join(tasks)} wait (dagctl queue unpause {queue})",
        }
        if queue in paused
        else {
            "code": "queue_unserved",
            "message": f"queue {queue}: no live scheduler serves it, so {', '.join(tasks)} wait"
            f" (start one with dagctl schedule --queue {queue})",
        }
        for queue, tasks in sorted(waiting.items())
    ]
