"""Reading state: list, status (and --watch), logs (and -f), graph, next, why.
Plain functions returning JSON-ready values; the CLI renders them."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagctl import config
from dagctl.actions.common import (
    check_dags_folder,
    load_any,
    load_dag,
    no_run,
    now,
    open_store,
    stale_after_s,
    store_session,
    task_order,
    unknown_dag,
)
from dagctl.actions.following import FOLLOW_INTERVAL_S, secret_params
from dagctl.actions.views import attempt_json, iso, pool_json, run_json
from dagctl.config import Settings
from dagctl.dags import cron
from dagctl.dags.model import BrokenDag, Dag, DagTree
from dagctl.errors import DagNotFound, UsageError
from dagctl.states import FINISHED_RUN_VALUES, NOT_ENDED_TASK_VALUES

if TYPE_CHECKING:
    from dagctl.store import Store


def validate_tree(path: Path, manager: str | None, state_db_url: str | None = None) -> DagTree:
    """Every DAG under `path` with every problem found, plus what `manager` needs and
    where `.sql` tasks without a connection would run in this environment."""
    import os

    from dagctl.dags.checks import check_parameters_provided, check_sql_targets
    from dagctl.dags.loader import problem_base
    from dagctl.dags.tree import load_tree

    tree = load_tree(path)
    base = problem_base(tree.root)
    extra = check_sql_targets(tree.dags.values(), os.environ, state_db_url, base)
    extra.extend(check_parameters_provided(tree.dags.values(), os.environ, base))
    if manager is not None:
        from dagctl.managers import validation_problems

        extra.extend(validation_problems(manager, tree.dags, tree.root))
    return replace(tree, problems=(*tree.problems, *extra)) if extra else tree


def status(settings: Settings, dag_name: str | None, run_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Recent runs, newest first, each with its task attempts (JSON-ready)."""
    from dagctl.store.fast_reads import read_runs

    read = read_runs(settings.db_url, dag_name, run_id, limit)  # no SQLAlchemy: 0.3 s less
    if read is not None:
        runs, attempts = read
    else:
        store = open_store(settings, migrate=False)
        try:
            runs = store.runs(dag_name=dag_name, run_id=run_id, limit=limit)
            attempts = store.task_runs([r["id"] for r in runs])
        finally:
            store.close()
    if run_id is not None and not runs:
        raise UsageError(f"no run {run_id}", "run dagctl status to see recent runs")
    # A DAG whose folder is gone still shows its recorded runs; a name that is neither
    # is a typo, not "no runs yet".
    missing = unknown_dag(settings, dag_name) if dag_name is not None and not runs else None
    if missing is not None:
        raise missing
    by_run: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_run.setdefault(attempt["dag_run_id"], []).append(attempt)
    secrets = secret_params(settings, {run["dag_name"] for run in runs})
    shown = [run_json(run, by_run.get(run["id"], []), secrets[run["dag_name"]]) for run in runs]
    if run_id is not None:
        _nest_child_runs(settings, shown)
    return shown


def _nest_child_runs(settings: Settings, shown: list[dict[str, Any]], depth: int = 5) -> None:
    """`status --run`: each `dag` task carries its child run (and so on down the tree,
    a few levels deep) as `child_run`."""
    tasks = [t for run in shown for t in run["tasks"] if t.get("child_run_id") is not None]
    if not tasks or depth == 0:
        return
    store = open_store(settings, migrate=False)
    try:
        children = [r for t in tasks for r in store.runs(run_id=t["child_run_id"], limit=1)]
        attempts = store.task_runs([r["id"] for r in children])
    finally:
        store.close()
    by_run: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_run.setdefault(attempt["dag_run_id"], []).append(attempt)
    secrets = secret_params(settings, {run["dag_name"] for run in children})
    nested = {r["id"]: run_json(r, by_run.get(r["id"], []), secrets[r["dag_name"]]) for r in children}
    for task in tasks:
        task["child_run"] = nested.get(task["child_run_id"])
    _nest_child_runs(settings, list(nested.values()), depth - 1)


def list_dags(settings: Settings, notices: list[str] | None = None) -> list[dict[str, Any]]:
    """Every DAG folder, valid or broken, with its schedule, next slot, paused flag and
    newest run. From the summaries the schedulers stored when every folder is still as
    they read it (by its stat stamp), else by parsing the whole tree. `notices`, when
    given, gets a line for each work queue with waiting attempts that no live scheduler
    serves."""
    check_dags_folder(settings)
    at = now()
    stored = _stored_listing(settings, notices is not None)
    if stored is not None:
        described, states, unserved = stored
        if notices is not None:
            notices += unserved_notices(unserved)
        return [row_of(name, described[name], states.get(name), at) for name in sorted(described)]
    from dagctl.dags.summary import summary_of
    from dagctl.dags.tree import load_tree

    tree = load_tree(settings.dags)
    with store_session(settings) as store:
        summaries = store.dag_summaries()
        if notices is not None:
            notices += unserved_notices(store.unserved_queues(stale_after_s()))
    return [
        row_of(name, summary_of(name, tree), summaries.get(name), at)
        for name in sorted({*tree.dags, *tree.broken})
    ]


def unserved_notices(unserved: Mapping[str, int]) -> list[str]:
    return [
        f"queue {name}: {count} waiting attempt{'s' if count != 1 else ''} and no live scheduler serves it"
        f" (start one with dagctl schedule --queue {name})"
        for name, count in sorted(unserved.items())
    ]


def _stored_listing(
    settings: Settings, with_queues: bool = False
) -> tuple[dict[str, Mapping[str, Any]], dict[str, dict[str, Any]], dict[str, int]] | None:
    """The stored summaries of every DAG folder and the DAG rows' state, or None when
    any folder is not exactly as a scheduler last read it (or nothing was stored)."""
    from dagctl.dags.summary import config_stat, dag_dirs_of, folder_stamp, stamp_digest
    from dagctl.store.fast_reads import read_listing

    listing = read_listing(settings.db_url, stale_after_s() if with_queues else None)
    if listing is None or not listing.summaries:
        return None
    dag_dirs, config_root = dag_dirs_of(settings.dags)
    config = config_stat(config_root)
    described: dict[str, Mapping[str, Any]] = {}
    for dag_dir in dag_dirs:
        stored = listing.summaries.get(dag_dir.name)
        if stored is None:
            return None
        try:
            own, files = folder_stamp(dag_dir)
        except OSError:
            return None
        if stamp_digest(config, own, files) != stored[0]:
            return None
        described[dag_dir.name] = stored[1]
    return described, listing.states, listing.unserved


def dag_row(
    name: str,
    tree: DagTree,
    summary: Mapping[str, Any] | None,
    at: datetime,
    next_slot_after: Callable[[str, str, datetime], datetime | None] = cron.next_slot_after,
) -> dict[str, Any]:
    """One DAG as `list -o json` shows it (the dashboard's DAGs page too, which passes a
    cached `next_slot_after`)."""
    from dagctl.dags.summary import summary_of

    return row_of(name, summary_of(name, tree), summary, at, next_slot_after)


def row_of(
    name: str,
    described: Mapping[str, Any],
    summary: Mapping[str, Any] | None,
    at: datetime,
    next_slot_after: Callable[[str, str, datetime], datetime | None] = cron.next_slot_after,
) -> dict[str, Any]:
    """One DAG as `list -o json` shows it, from what its files say (summary.summary_of,
    loaded or stored) and its `dag` row's state (paused, newest run)."""
    from dagctl.dags.summary import stored_next_slot

    summary = summary or {"paused": False, "last_run": None}
    broken = described["reason"] is not None
    schedule, timezone = described["schedule"], described["timezone"]
    known, next_slot = stored_next_slot(described, at)
    if not known:
        next_slot = next_slot_after(schedule, timezone, at) if schedule else None
    local = cron.to_local(next_slot, cron.zone(timezone)) if next_slot else None
    last = summary["last_run"]
    return {
        "dag": name,
        "description": described["description"],
        "broken": broken,
        "reason": described["reason"],
        "schedule": schedule,
        "timezone": timezone,
        "paused": summary["paused"],
        "next_run": iso(next_slot),
        "next_run_local": local.isoformat() if local else None,
        "next_run_tz": local.tzname() if local else None,
        "tasks": described["tasks"],
        "last_run": (
            {
                "id": last["id"],
                "status": last["status"],
                "logical_date": iso(last["logical_date"]),
                "created_at": iso(last["created_at"]),
                "ended_at": iso(last["ended_at"]),
            }
            if last
            else None
        ),
    }


def latest_run_id(settings: Settings, dag_name: str | None) -> int:
    with store_session(settings) as store:
        rows = store.runs(dag_name=dag_name, limit=1)
    if not rows:
        missing = unknown_dag(settings, dag_name) if dag_name is not None else None
        if missing is not None:
            raise missing
        where = f" of DAG {dag_name!r}" if dag_name else ""
        raise UsageError(f"no runs{where} yet", "start one with dagctl trigger DAG")
    return int(rows[0]["id"])


def _pick_attempts(
    run: Mapping[str, Any],
    attempts: Sequence[Mapping[str, Any]],
    task: str | None,
    attempt: int | None,
    *,
    every_attempt_of_task: bool = False,
) -> list[Mapping[str, Any]]:
    if task is None:
        return list(attempts)
    rows = [a for a in attempts if a["task_name"] == task]
    if not rows:
        return []
    if attempt is not None:
        chosen = [a for a in rows if a["attempt"] == attempt]
        if not chosen:
            numbers = ", ".join(str(a["attempt"]) for a in rows)
            raise UsageError(
                f"task {task} of run {run['id']} has no attempt {attempt}", f"its attempts: {numbers}"
            )
        return chosen
    if every_attempt_of_task:
        return rows
    # The latest attempt that ran: while a retry waits, that is the one that failed.
    started = [a for a in rows if a["started_at"] is not None] or rows
    return [max(started, key=lambda a: a["attempt"])]


def _check_task(
    settings: Settings, run: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]], task: str
) -> None:
    """A task that is neither in the run nor in its DAG is a typo: say so at once."""
    if any(a["task_name"] == task for a in attempts):
        return
    from dagctl.dags.hints import did_you_mean

    known = list(dict.fromkeys([*(a["task_name"] for a in attempts), *task_order(settings, run["dag_name"])]))
    if task in known:
        return
    raise UsageError(
        f"run {run['id']} has no task {task!r}",
        did_you_mean(task, known) or (f"its tasks: {', '.join(known)}" if known else None),
    )


def logs(settings: Settings, run_id: int, task: str | None, attempt: int | None) -> dict[str, Any]:
    """The stored output of the run's attempts (all, the latest of TASK, or one)."""
    if attempt is not None and task is None:
        raise UsageError("--attempt needs a TASK", "dagctl logs RUN TASK --attempt N")
    with store_session(settings) as store:
        run, attempts = store.run_with_attempts(run_id)
        if run is None:
            raise no_run(run_id)
        if task is not None:
            _check_task(settings, run, attempts, task)
        chosen = _pick_attempts(run, attempts, task, attempt)
        if task is not None and not chosen:
            raise UsageError(
                f"task {task} of run {run_id} has not started yet",
                f"follow it with dagctl logs {run_id} {task} -f",
            )
        chunks = store.read_logs({int(a["id"]): 0 for a in chosen})
    texts: dict[int, list[str]] = {}
    truncated: dict[int, int] = {}
    for task_run_id, _, text, dropped in chunks:
        texts.setdefault(task_run_id, []).append(text)
        truncated[task_run_id] = truncated.get(task_run_id, 0) + dropped
    return {
        "run_id": run_id,
        "dag": run["dag_name"],
        "attempts": [
            attempt_json(a, "".join(texts.get(a["id"], [])), truncated.get(a["id"], 0)) for a in chosen
        ],
    }


def follow_logs(
    settings: Settings,
    run_id: int,
    task: str | None,
    attempt: int | None,
    write: Callable[[Mapping[str, Any], str], None],
    interval: float = FOLLOW_INTERVAL_S,
) -> str:
    """Call `write(attempt, text)` with each new piece of output, in order per attempt,
    until what is followed has ended: one attempt, every attempt of TASK (retries
    included), or the whole run. Returns the run's status at the end."""
    if attempt is not None and task is None:
        raise UsageError("--attempt needs a TASK", "dagctl logs RUN TASK --attempt N")
    cursors: dict[int, int] = {}
    checked = False
    with store_session(settings) as store:
        while True:
            run, attempts = store.run_with_attempts(run_id)
            if run is None:
                raise no_run(run_id)
            if task is not None and not checked:
                _check_task(settings, run, attempts, task)
                checked = True
            chosen = _pick_attempts(run, attempts, task, attempt, every_attempt_of_task=True)
            for item in chosen:
                cursors.setdefault(int(item["id"]), 0)
            by_id = {int(a["id"]): a for a in chosen}
            for task_run_id, seq, text, _ in store.read_logs(cursors):
                cursors[task_run_id] = seq
                write(by_id[task_run_id], text)
            # The status was read before the logs, and an attempt's last output is
            # stored with its end: once ended here, everything has been printed.
            if _followed_ended(run, chosen, task, attempt):
                return str(run["status"])
            time.sleep(interval)


def _followed_ended(
    run: Mapping[str, Any], chosen: Sequence[Mapping[str, Any]], task: str | None, attempt: int | None
) -> bool:
    if any(a["status"] in NOT_ENDED_TASK_VALUES for a in chosen):
        return False
    if task is not None and chosen:
        return True  # the latest attempt ended and no retry was queued with it
    return run["status"] in FINISHED_RUN_VALUES


def graph_of(settings: Settings, dag_name: str) -> Dag:
    return load_dag(settings.dags, dag_name)


def next_slots(settings: Settings, dag_name: str, count: int) -> dict[str, Any]:
    dag = load_dag(settings.dags, dag_name)
    slots = cron.upcoming(dag, now(), count)
    return {"dag": dag.name, "schedule": dag.schedule, "timezone": dag.timezone, "slots": slots}


def why(settings: Settings, dag_name: str) -> dict[str, Any]:
    from dagctl.scheduling import diagnose  # with the planner and records: ~10 ms of list's start

    not_found: DagNotFound | None = None
    try:
        loaded: Dag | BrokenDag | None = load_any(settings, dag_name)
    except DagNotFound as exc:  # deleted or renamed: its runs may still be in the database
        loaded, not_found = None, exc
    dag = loaded if isinstance(loaded, Dag) else None
    broken_reason = loaded.reason if isinstance(loaded, BrokenDag) else None
    at = now()
    next_slot = cron.next_slot_after(dag.schedule, dag.timezone, at) if dag and dag.schedule else None
    with store_session(settings) as store:
        snapshot = store.why_snapshot(dag_name, stale_after_s())
        if not_found is not None and not snapshot["known"]:
            raise not_found
        snapshot["live_knowing"] = store.presence(dag_name, stale_after_s()).live_knowing
        if dag is not None and any(dag.pool_for(t) for t in dag.tasks.values()):
            snapshot["pools"] = {usage.name: usage for usage in store.pool_usage()}
        if dag is not None and dag.max_active_tasks is not None:
            snapshot["dag_running_attempts"] = store.dag_running_attempts(dag_name)
        if snapshot["queued_attempts"]:
            snapshot["queue_limits"] = store.queue_limits()
        grace = config.tuning().orphan_grace_seconds
        reasons = diagnose.why(
            dag_name, dag, broken_reason, snapshot, at, store.external_status, next_slot, grace
        )
        if snapshot["queued_attempts"]:
            usage = store.queue_usage(stale_after_s())
            served = {q.name: q.served_by for q in usage}
            paused = frozenset(q.name for q in usage if q.paused)
            reasons += diagnose.unserved_queues(
                dag, snapshot["attempts"], served, snapshot["live_schedulers"], paused
            )
    from dagctl.actions.notify import failing_alerts

    return {"dag": dag_name, "reasons": [*reasons, *failing_alerts(settings, dag_name)]}


def pools(settings: Settings) -> list[dict[str, Any]]:
    """Every pool as the schedulers last synced it from dagctl.yaml: slots used and
    free, the attempts holding them, the attempts waiting for them."""
    with store_session(settings) as store:
        return pools_in(store)


def pools_in(store: Store) -> list[dict[str, Any]]:
    """`pools` on an open store (the web dashboard keeps one)."""
    usage = store.pool_usage()
    at = now()
    return [pool_json(item, at) for item in usage]
