"""Pure answers for the terminal commands: what a retry clears, how a DAG's graph is
drawn, which slots come next (with DST notes), why nothing is running.

No database, no clock: the service layer reads state and passes it in, so each answer
can be tested from plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dagctl import cron
from dagctl.errors import DagctlError, UsageError
from dagctl.hints import did_you_mean
from dagctl.model import Dag

RETRYABLE = frozenset({"failed", "upstream_failed", "cancelled"})
_DONE_OK = frozenset({"success", "skipped"})
_FINISHED_TASK = frozenset({"success", "failed", "upstream_failed", "skipped", "cancelled"})
# A queued attempt older than this while a scheduler is alive means its slots are busy.
QUEUED_TOO_LONG = timedelta(seconds=5)


def no_run(run_id: int) -> UsageError:
    return UsageError(f"no run {run_id}", "run dagctl status to see recent runs")


# ---------------------------------------------------------------- retry


@dataclass(frozen=True, slots=True)
class RetryPlan:
    requeue: tuple[tuple[str, int], ...]  # (task, new attempt number): tasks that ran before
    reset: tuple[str, ...]  # tasks that never started: recreated once their inputs succeed


def latest_attempts(attempts: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    latest: dict[str, Mapping[str, Any]] = {}
    for attempt in attempts:
        seen = latest.get(attempt["task_name"])
        if seen is None or attempt["attempt"] > seen["attempt"]:
            latest[attempt["task_name"]] = attempt
    return latest


def descendants(dag: Dag, roots: Iterable[str]) -> set[str]:
    children = dag.downstream()
    found: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in found:
            continue
        found.add(name)
        stack.extend(children.get(name, ()))
    return found


def plan_retry(
    dag: Dag, run: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]], only_task: str | None
) -> RetryPlan:
    """Which tasks of a finished run to run again: the failed, upstream_failed and
    cancelled ones (or only `only_task`) and everything downstream of them. A task that
    ran before gets a new attempt; one that never started is reset, so the scheduler
    creates it when its inputs have succeeded."""
    run_id = run["id"]
    if run["status"] in ("queued", "running"):
        raise UsageError(
            f"run {run_id} is {run['status']}", "retry it once it has finished, or cancel it first"
        )
    running = sorted(a["task_name"] for a in attempts if a["status"] == "running")
    if running:
        raise UsageError(
            f"run {run_id} still has running tasks ({', '.join(running)})",
            "wait for their scheduler to stop them, then retry",
        )
    latest = latest_attempts(attempts)
    if only_task is not None:
        if only_task not in dag.tasks:
            raise UsageError(
                f"DAG {dag.name!r} has no task {only_task!r}",
                did_you_mean(only_task, dag.tasks) or f"tasks: {', '.join(dag.tasks)}",
            )
        status = latest[only_task]["status"] if only_task in latest else None
        if status not in RETRYABLE:
            raise UsageError(
                f"task {only_task} of run {run_id} "
                + (f"is {status}" if status else "has not run")
                + ": only failed, upstream_failed or cancelled tasks are retried",
                "retry the whole run without --task",
            )
        for upstream in dag.tasks[only_task].local_inputs:
            upstream_status = latest[upstream]["status"] if upstream in latest else "not run"
            if upstream_status not in _DONE_OK:
                raise UsageError(
                    f"task {only_task} of run {run_id} needs {upstream}, which is {upstream_status}",
                    f"retry --task {upstream}, or the whole run",
                )
        roots = {only_task}
    else:
        roots = {name for name, a in latest.items() if a["status"] in RETRYABLE and name in dag.tasks}
    clear = descendants(dag, roots)
    missing = [name for name in dag.tasks if name not in latest]
    if not clear and not missing:
        raise UsageError(f"run {run_id} has nothing to retry: every task succeeded")
    requeue: list[tuple[str, int]] = []
    reset: list[str] = []
    for name in dag.tasks:  # definition order: stable output
        if name not in clear:
            continue
        rows = [a for a in attempts if a["task_name"] == name]
        if not rows:
            continue  # never created: the scheduler creates it once its inputs succeed
        if all(a["started_at"] is None for a in rows):
            reset.append(name)
            continue
        blocked = [i for i in dag.tasks[name].local_inputs if i in clear]
        if blocked:
            raise DagctlError(
                f"cannot retry {name}: it ran before, but its input {blocked[0]} is being retried too",
                "retry with --task for the earliest failed task",
            )
        requeue.append((name, max(a["attempt"] for a in rows) + 1))
    return RetryPlan(tuple(requeue), tuple(reset))


# ---------------------------------------------------------------- graph


def graph_json(dag: Dag) -> dict[str, Any]:
    children = dag.downstream()
    return {
        "dag": dag.name,
        "tasks": [
            {
                "task": name,
                "type": task.type,
                "inputs": list(task.inputs),
                "downstream": list(children.get(name, ())),
            }
            for name, task in dag.tasks.items()
        ],
    }


def graph_tree(dag: Dag) -> list[tuple[str, str, str]]:
    """The DAG as an indented tree: (prefix, task name, note) per line. A task with several
    inputs appears under each of them, in full under the first, then as a reference."""
    children = dag.downstream()
    lines: list[tuple[str, str, str]] = []
    shown: set[str] = set()

    def note_of(name: str, repeated: bool) -> str:
        task = dag.tasks[name]
        parts = []
        if len(task.local_inputs) > 1:
            parts.append("after " + ", ".join(task.local_inputs))
        if task.external_inputs:
            parts.append("waits on " + ", ".join(f"{d}:{t}" for d, t in task.external_inputs))
        if repeated and children.get(name):
            parts.append("see above")
        return "; ".join(parts)

    def walk(name: str, prefix: str, last: bool, depth: int) -> None:
        branch = "" if depth == 0 else ("└── " if last else "├── ")
        repeated = name in shown
        lines.append((prefix + branch, name, note_of(name, repeated)))
        if repeated:
            return
        shown.add(name)
        kids = children.get(name, ())
        extension = "" if depth == 0 else ("    " if last else "│   ")
        for index, child in enumerate(kids):
            walk(child, prefix + extension, index == len(kids) - 1, depth + 1)

    for root in dag.roots():
        walk(root, "", True, 0)
    return lines


def _dot_id(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(dag: Dag) -> str:
    lines = [f"digraph {_dot_id(dag.name)} {{", "  rankdir=LR;", "  node [shape=box];"]
    externals: set[str] = set()
    for name, task in dag.tasks.items():
        lines.append(f"  {_dot_id(name)};")
        for upstream in task.inputs:
            if ":" in upstream:
                externals.add(upstream)
                lines.append(f"  {_dot_id(upstream)} -> {_dot_id(name)} [style=dashed];")
            else:
                lines.append(f"  {_dot_id(upstream)} -> {_dot_id(name)};")
    lines.extend(f"  {_dot_id(e)} [style=dashed];" for e in sorted(externals))
    lines.append("}")
    return "\n".join(lines)


def graph_mermaid(dag: Dag) -> str:
    ids: dict[str, str] = {}

    def node(name: str) -> str:
        if name not in ids:
            ids[name] = f"n{len(ids)}"
        label = name.replace('"', "#quot;")
        return f'{ids[name]}["{label}"]'

    lines = ["flowchart LR"]
    lines.extend(f"  {node(name)}" for name in dag.tasks)
    externals = sorted({i for task in dag.tasks.values() for i in task.inputs if ":" in i})
    lines.extend(f"  {node(name)}" for name in externals)
    for name, task in dag.tasks.items():
        for upstream in task.inputs:
            arrow = "-.->" if ":" in upstream else "-->"
            lines.append(f"  {ids[upstream]} {arrow} {ids[name]}")
    return "\n".join(lines)


# ---------------------------------------------------------------- upcoming slots


def _iso_utc(value: datetime) -> str:
    return value.isoformat() + "Z"


def dst_note(expression: str, tz_name: str, slot: datetime, previous: datetime) -> str | None:
    """Why this slot's wall-clock time is special, per the rule in dagctl.cron: a time in
    the spring gap runs as many minutes after the gap as it would have been into it; a
    time in the autumn fold runs once, at its first occurrence. Otherwise, whether the
    clocks changed since `previous` (the slot before, or now), which moves the slot in UTC."""
    from croniter import croniter

    tz = cron.zone(tz_name)
    local = cron.to_local(slot, tz)
    wall = local.replace(tzinfo=None)
    if croniter.match(expression, wall):
        if wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset():
            return (
                f"{wall:%H:%M} happens twice on {wall:%Y-%m-%d} (clocks go back): "
                f"runs once, at the first ({local.tzname()})"
            )
    else:
        before = cron.to_local(slot - timedelta(hours=3), tz).utcoffset()
        after = local.utcoffset()
        if before is not None and after is not None and after > before:
            nominal = wall - (after - before)
            if croniter.match(expression, nominal):
                return (
                    f"{nominal:%H:%M} does not exist on {nominal:%Y-%m-%d} (clocks go forward): "
                    f"runs at {wall:%H:%M} {local.tzname()}"
                )
    earlier = cron.to_local(previous, tz)
    if earlier.utcoffset() != local.utcoffset():
        direction = (
            "forward" if (local.utcoffset() or timedelta()) > (earlier.utcoffset() or timedelta()) else "back"
        )
        return f"the clocks went {direction} since the previous slot ({earlier.tzname()} → {local.tzname()})"
    return None


def upcoming(dag: Dag, now: datetime, count: int) -> list[dict[str, Any]]:
    """The next `count` slots after `now` (naive UTC): UTC, local time and a DST note."""
    if not dag.schedule:
        raise UsageError(
            f"DAG {dag.name!r} has no schedule: it runs only when triggered", f"dagctl trigger {dag.name}"
        )
    tz = cron.zone(dag.timezone)
    slots = []
    cursor = now
    for _ in range(count):
        slot = cron.next_slot_after(dag.schedule, dag.timezone, cursor)
        if slot is None:
            break
        local = cron.to_local(slot, tz)
        slots.append(
            {
                "utc": _iso_utc(slot),
                "local": local.isoformat(),
                "tz_abbreviation": local.tzname(),
                "note": dst_note(dag.schedule, dag.timezone, slot, cursor),
            }
        )
        cursor = slot
    return slots


# ---------------------------------------------------------------- why


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


ExternalLookup = Callable[[str, str, datetime], "str | None"]


def why(
    dag_name: str,
    dag: Dag | None,
    broken_reason: str | None,
    snapshot: Mapping[str, Any],
    now: datetime,
    external_status: ExternalLookup,
    next_slot: datetime | None,
) -> list[dict[str, str]]:
    """Reasons, most blocking first, each {"code", "message"}. Codes: broken, paused,
    no_scheduler, max_active_runs, waiting_on_inputs, retry_delay, pool_full, queued,
    running, nothing_queued."""
    reasons: list[dict[str, str]] = []

    def add(code: str, message: str) -> None:
        reasons.append({"code": code, "message": message})

    if broken_reason is not None:
        add("broken", f"{dag_name} is broken and is not scheduled: {broken_reason}")
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
            add("queued", f"run {queued_runs[0]['id']} is queued: the next scheduler pass starts it")
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
        else:
            add(
                "nothing_queued",
                f"no run is queued or running, and {dag_name} has no schedule (dagctl trigger {dag_name})",
            )
        newest = snapshot["newest_run"]
        if newest is not None and newest["status"] in ("failed", "cancelled"):
            reasons[-1]["message"] += (
                f"; its last run, {newest['id']}, {newest['status']} (dagctl retry {newest['id']})"
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
    for name, attempt in latest.items():
        status = attempt["status"]
        if status == "running":
            started = attempt["started_at"]
            took = f", for {_ago((now - started).total_seconds())}" if started else ""
            host = f", on {attempt['host']}" if attempt["host"] else ""
            add("running", f"run {run_id}: {name} is running (attempt {attempt['attempt']}{took}{host})")
        elif status in ("waiting", "queued") and attempt["not_before"] > now:
            add(
                "retry_delay",
                f"run {run_id}: {name} attempt {attempt['attempt']} waits for its retry delay "
                f"until {_utc_text(attempt['not_before'])} "
                f"(in {_ago((attempt['not_before'] - now).total_seconds())})",
            )
        elif status in ("waiting", "queued"):
            queued_for = now - attempt["queued_at"]
            if snapshot["live_schedulers"] and queued_for > QUEUED_TOO_LONG:
                add(
                    "pool_full",
                    f"run {run_id}: {name} has been queued for {_ago(queued_for.total_seconds())}: "
                    f"every scheduler slot is busy ({snapshot['running_attempts']} attempts running, "
                    f"{snapshot['queued_attempts']} queued)",
                )
            else:
                add("queued", f"run {run_id}: {name} is queued for the next free scheduler slot")
    if dag is None:
        return
    for name, task in dag.tasks.items():
        if name in latest or not task.external_inputs:
            continue
        if any(latest.get(i, {}).get("status") not in _DONE_OK for i in task.local_inputs):
            continue
        for other_dag, other_task in task.external_inputs:
            status = external_status(other_dag, other_task, run["logical_date"])
            if status in _DONE_OK:
                continue
            detail = (
                f"not run yet in a run of {other_dag} at or before {_utc_text(run['logical_date'])}"
                if status is None
                else f"it is {status} there"
            )
            add("waiting_on_inputs", f"run {run_id}: {name} waits on {other_dag}:{other_task} ({detail})")
