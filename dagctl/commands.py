"""What the terminal commands do: list, status --watch, logs, pause, cancel, retry,
graph, next and why. Plain functions that read or change state through named store
operations and return JSON-ready values; the CLI renders them (service.py holds the
scheduling commands and the Python API).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dagctl import cron, insight
from dagctl.completion import dag_names
from dagctl.config import Settings
from dagctl.errors import DagNotFound, UsageError
from dagctl.model import BrokenDag, Dag
from dagctl.service import _iso, _run_json, load_dag, open_store

if TYPE_CHECKING:
    from dagctl.store import Store

FINISHED_RUN = frozenset({"success", "failed", "cancelled"})
_NOT_ENDED_TASK = frozenset({"queued", "waiting", "running"})
FOLLOW_INTERVAL_S = 0.5
# `trigger --wait` says so when a run stays queued this long with no scheduler alive.
NO_SCHEDULER_NOTICE_AFTER_S = 2.0
DEFAULT_LEASE_S = 30.0


def _now() -> datetime:
    """The scheduler's clock (DAGCTL_FAKE_NOW in tests and demos), so what these
    commands write and compare agrees with what `dagctl schedule` sees."""
    return cron.clock_from_env()()


def stale_after_s() -> float:
    """A scheduler is alive while its heartbeat (renewed every lease/3) is younger than
    three lease periods."""
    return 3 * float(os.environ.get("DAGCTL_LEASE_SECONDS") or DEFAULT_LEASE_S)


@contextlib.contextmanager
def _store(settings: Settings) -> Iterator[Store]:
    store = open_store(settings, migrate=False)
    try:
        yield store
    finally:
        store.close()


def _check_dags_folder(settings: Settings) -> None:
    if not settings.dags.is_dir():
        raise UsageError(
            f"DAGs folder {str(settings.dags)!r} does not exist", "pass --dags PATH or set DAGCTL_DAGS"
        )


def _load_any(settings: Settings, name: str) -> Dag | BrokenDag:
    from dagctl.loader import load_one

    _check_dags_folder(settings)
    dag, _ = load_one(settings.dags, name)
    if dag is None:
        from dagctl.hints import did_you_mean

        raise DagNotFound(
            f"no DAG {name!r} in {settings.dags}",
            did_you_mean(name, dag_names(settings.dags)) or "run dagctl list",
        )
    return dag


def _task_order(settings: Settings, dag_name: str) -> list[str]:
    """The DAG's task names in definition order, or [] when it cannot be loaded now."""
    try:
        dag = load_dag(settings.dags, dag_name)
    except Exception:  # a broken or removed DAG still has runs worth watching
        return []
    return list(dag.tasks)


# ---------------------------------------------------------------- list


def list_dags(settings: Settings) -> list[dict[str, Any]]:
    """Every DAG folder, valid or broken, with its schedule, next slot, paused flag and
    newest run."""
    from dagctl.loader import load_tree

    _check_dags_folder(settings)
    tree = load_tree(settings.dags)
    now = _now()
    with _store(settings) as store:
        summaries = store.dag_summaries()
    rows = []
    for name in sorted({*tree.dags, *tree.broken}):
        summary = summaries.get(name) or {"paused": False, "last_run": None}
        dag = tree.dags.get(name)
        broken = tree.broken.get(name)
        next_slot = cron.next_slot_after(dag.schedule, dag.timezone, now) if dag and dag.schedule else None
        local = cron.to_local(next_slot, cron.zone(dag.timezone)) if dag and next_slot else None
        last = summary["last_run"]
        rows.append(
            {
                "dag": name,
                "description": dag.description if dag else None,
                "broken": broken is not None,
                "reason": broken.reason if broken else None,
                "schedule": dag.schedule if dag else None,
                "timezone": dag.timezone if dag else None,
                "paused": summary["paused"],
                "next_run": _iso(next_slot),
                "next_run_local": local.isoformat() if local else None,
                "next_run_tz": local.tzname() if local else None,
                "tasks": len(dag.tasks) if dag else None,
                "last_run": (
                    {
                        "id": last["id"],
                        "status": last["status"],
                        "logical_date": _iso(last["logical_date"]),
                        "created_at": _iso(last["created_at"]),
                        "ended_at": _iso(last["ended_at"]),
                    }
                    if last
                    else None
                ),
            }
        )
    return rows


# ---------------------------------------------------------------- watching a run


def latest_run_id(settings: Settings, dag_name: str | None) -> int:
    with _store(settings) as store:
        rows = store.runs(dag_name=dag_name, limit=1)
    if not rows:
        where = f" of DAG {dag_name!r}" if dag_name else ""
        raise UsageError(f"no runs{where} yet", "start one with dagctl trigger DAG")
    return int(rows[0]["id"])


def follow_run(
    settings: Settings,
    run_id: int,
    on_update: Callable[[dict[str, Any]], None],
    on_notice: Callable[[str], None] | None = None,
    interval: float = FOLLOW_INTERVAL_S,
) -> str:
    """Call `on_update` with the run's view (the `status -o json` form of one run plus
    "pending": tasks not created yet) until the run has finished; return its status."""
    order: list[str] | None = None
    started = time.monotonic()
    noticed = False
    with _store(settings) as store:
        while True:
            run, attempts = store.run_with_attempts(run_id)
            if run is None:
                raise insight.no_run(run_id)
            if order is None:
                order = _task_order(settings, run["dag_name"])
            view = _run_json(run, attempts)
            seen = {t["task"] for t in view["tasks"]}
            view["pending"] = [name for name in order if name not in seen]
            on_update(view)
            if run["status"] in FINISHED_RUN:
                return str(run["status"])
            if (
                on_notice is not None
                and not noticed
                and run["status"] == "queued"
                and time.monotonic() - started > NO_SCHEDULER_NOTICE_AFTER_S
            ):
                noticed = True
                if store.live_schedulers(stale_after_s()) == 0:
                    on_notice("no scheduler is alive to start this run: start one with dagctl schedule")
            time.sleep(interval)


# ---------------------------------------------------------------- logs


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
    from dagctl.hints import did_you_mean

    known = list(
        dict.fromkeys([*(a["task_name"] for a in attempts), *_task_order(settings, run["dag_name"])])
    )
    if task in known:
        return
    raise UsageError(
        f"run {run['id']} has no task {task!r}",
        did_you_mean(task, known) or (f"its tasks: {', '.join(known)}" if known else None),
    )


def _attempt_json(attempt: Mapping[str, Any], text: str, truncated: int) -> dict[str, Any]:
    return {
        "task": attempt["task_name"],
        "attempt": attempt["attempt"],
        "status": attempt["status"],
        "exit_code": attempt["exit_code"],
        "error": attempt["error"],
        "started_at": _iso(attempt["started_at"]),
        "ended_at": _iso(attempt["ended_at"]),
        "log": text,
        "truncated_bytes": truncated,
    }


def logs(settings: Settings, run_id: int, task: str | None, attempt: int | None) -> dict[str, Any]:
    """The stored output of the run's attempts (all, the latest of TASK, or one)."""
    if attempt is not None and task is None:
        raise UsageError("--attempt needs a TASK", "dagctl logs RUN TASK --attempt N")
    with _store(settings) as store:
        run, attempts = store.run_with_attempts(run_id)
        if run is None:
            raise insight.no_run(run_id)
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
            _attempt_json(a, "".join(texts.get(a["id"], [])), truncated.get(a["id"], 0)) for a in chosen
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
    with _store(settings) as store:
        while True:
            run, attempts = store.run_with_attempts(run_id)
            if run is None:
                raise insight.no_run(run_id)
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
    if any(a["status"] in _NOT_ENDED_TASK for a in chosen):
        return False
    if task is not None and chosen:
        return True  # the latest attempt ended and no retry was queued with it
    return run["status"] in FINISHED_RUN


# ---------------------------------------------------------------- control


def set_paused(settings: Settings, dag_name: str, paused: bool) -> dict[str, Any]:
    _load_any(settings, dag_name)  # a broken DAG may be paused too; a missing one not
    with _store(settings) as store:
        store.set_paused(dag_name, paused, _now())
    return {"dag": dag_name, "paused": paused}


def cancel(settings: Settings, run_id: int) -> dict[str, Any]:
    with _store(settings) as store:
        result = store.cancel_run(run_id, _now())
    if result is None:
        raise insight.no_run(run_id)
    if not result.cancelled:
        raise UsageError(f"run {run_id} has already finished ({result.previous_status}): nothing to cancel")
    return {
        "run_id": run_id,
        "status": "cancelled",
        "cancelled_tasks": list(result.cancelled_tasks),
        "stopping_tasks": list(result.running_tasks),
    }


def retry(settings: Settings, run_id: int, task: str | None) -> dict[str, Any]:
    with _store(settings) as store:
        run, attempts = store.run_with_attempts(run_id)
        if run is None:
            raise insight.no_run(run_id)
        dag = load_dag(settings.dags, run["dag_name"])
        plan = insight.plan_retry(dag, run, attempts, task)
        result = store.retry_run(run_id, plan.requeue, plan.reset, _now())
    if not result.reopened:
        raise UsageError(
            f"run {run_id} changed meanwhile (it is {result.status})", f"check dagctl status --run {run_id}"
        )
    return {
        "run_id": run_id,
        "dag": run["dag_name"],
        "requeued": [{"task": name, "attempt": number} for name, number in plan.requeue],
        "reset": list(plan.reset),
    }


# ---------------------------------------------------------------- insight


def graph(settings: Settings, dag_name: str) -> Dag:
    return load_dag(settings.dags, dag_name)


def next_slots(settings: Settings, dag_name: str, count: int) -> dict[str, Any]:
    dag = load_dag(settings.dags, dag_name)
    slots = insight.upcoming(dag, _now(), count)
    return {"dag": dag.name, "schedule": dag.schedule, "timezone": dag.timezone, "slots": slots}


def why(settings: Settings, dag_name: str) -> dict[str, Any]:
    loaded = _load_any(settings, dag_name)
    dag = loaded if isinstance(loaded, Dag) else None
    broken_reason = loaded.reason if isinstance(loaded, BrokenDag) else None
    now = _now()
    next_slot = cron.next_slot_after(dag.schedule, dag.timezone, now) if dag and dag.schedule else None
    with _store(settings) as store:
        snapshot = store.why_snapshot(dag_name, stale_after_s())
        reasons = insight.why(dag_name, dag, broken_reason, snapshot, now, store.external_status, next_slot)
    return {"dag": dag_name, "reasons": reasons}
