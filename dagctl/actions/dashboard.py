"""What the web dashboard and its JSON API show: plain functions returning JSON-ready
values in the `-o json` shapes (views.py), each bounded (paginated, never "every run").

The server keeps one open `Store` and one `TreeCache`; these functions take them so a
page costs queries, not connections or a re-read of every DAG file."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dagctl.actions.common import check_dags_folder, no_run, now, stale_after_s
from dagctl.actions.following import secret_params
from dagctl.actions.inspect import dag_row
from dagctl.actions.views import MASK, iso, run_json, seconds
from dagctl.config import Settings
from dagctl.dags import cron
from dagctl.dags.model import Dag, DagTree
from dagctl.errors import DagNotFound, UsageError
from dagctl.scheduling import diagnose
from dagctl.states import ACTIVE_RUN_VALUES, RunStatus, TaskStatus

if TYPE_CHECKING:
    from dagctl.store import Store

RECENT_MARKS = 20
HISTORY_PAGE = 50
RUN_STATUSES = tuple(s.value for s in RunStatus)
RUN_KINDS = ("scheduled", "manual", "backfill")


class TreeCache:
    """The DAGs folder, loaded at most once per `max_age_s` (the scheduler's reload
    interval): a page never re-reads 1,000 DAG folders."""

    def __init__(self, settings: Settings, max_age_s: float) -> None:
        self.settings = settings
        self.max_age_s = max_age_s
        self._tree: DagTree | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()
        self._next_slots: dict[tuple[str, str], datetime | None] = {}

    def next_slot_after(self, schedule: str, timezone: str, at: datetime) -> datetime | None:
        """`cron.next_slot_after`, remembered until that slot has passed: computing it
        costs about 0.5 ms a DAG, most of a DAGs page."""
        key = (schedule, timezone)
        slot = self._next_slots.get(key)
        if slot is None or slot <= at:
            slot = cron.next_slot_after(schedule, timezone, at)
            if len(self._next_slots) > 100_000:
                self._next_slots.clear()
            self._next_slots[key] = slot
        return slot

    def get(self) -> DagTree:
        with self._lock:
            if self._tree is None or time.monotonic() - self._loaded_at > self.max_age_s:
                from dagctl.dags.tree import load_tree

                check_dags_folder(self.settings)
                self._tree = load_tree(self.settings.dags)
                self._loaded_at = time.monotonic()
            return self._tree


def overview(trees: TreeCache, store: Store, offset: int, limit: int, search: str = "") -> dict[str, Any]:
    """One page of DAGs (valid and broken, by name) with their newest runs as marks."""
    tree = trees.get()
    names = sorted({*tree.dags, *tree.broken})
    if search:
        needle = search.lower()
        names = [n for n in names if needle in n.lower()]
    page = names[offset : offset + limit]
    at = now()
    summaries = store.dag_summaries_of(page)
    marks = store.recent_run_marks(page, RECENT_MARKS)
    rows = []
    for name in page:
        row = dag_row(name, tree, summaries.get(name), at, trees.next_slot_after)
        row["recent_runs"] = [
            {"id": m["id"], "status": m["status"], "logical_date": iso(m["logical_date"])}
            for m in reversed(marks.get(name, []))
        ]
        rows.append(row)
    return {"total": len(names), "offset": offset, "limit": limit, "dags": rows}


def _dag_of(tree: DagTree, name: str) -> Dag | None:
    if name in tree.dags:
        return tree.dags[name]
    if name in tree.broken:
        return None
    from dagctl.dags.hints import did_you_mean

    raise DagNotFound(
        f"no DAG {name!r}", did_you_mean(name, [*tree.dags, *tree.broken]) or "see the DAGs page"
    )


def parse_day(text: str | None, field: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{field} must be a date like 2026-12-02, not {text!r}") from None


def dag_detail(
    settings: Settings,
    store: Store,
    tree: DagTree,
    name: str,
    *,
    status: str | None = None,
    kind: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before_id: int | None = None,
) -> dict[str, Any]:
    """A DAG: its row as on the DAGs page, graph with each task's latest state, params,
    next slots, why it waits, and one page of its run history (filters, cursor)."""
    dag = _dag_of(tree, name)
    if status and status not in RUN_STATUSES:
        raise UsageError(f"status must be one of {', '.join(RUN_STATUSES)}, not {status!r}")
    if kind and kind not in RUN_KINDS:
        raise UsageError(f"kind must be one of {', '.join(RUN_KINDS)}, not {kind!r}")
    at = now()
    row = dag_row(name, tree, store.dag_summaries_of([name]).get(name), at)
    runs = store.run_history(
        name,
        status=status or None,
        kind=kind or None,
        since=parse_day(since, "since"),
        until=parse_day(until, "until"),
        before_id=before_id,
        limit=HISTORY_PAGE + 1,
    )
    more = len(runs) > HISTORY_PAGE
    runs = runs[:HISTORY_PAGE]
    attempts = store.task_runs([r["id"] for r in runs])
    by_run: dict[int, list[dict[str, Any]]] = {}
    for attempt in attempts:
        by_run.setdefault(attempt["dag_run_id"], []).append(attempt)
    secrets = secret_params(settings, [name])[name]
    history = [run_json(r, by_run.get(r["id"], []), secrets) for r in runs]
    latest_states: dict[str, str] = {}
    if history:
        latest_states = {t["task"]: t["status"] for t in history[0]["tasks"]}
    graph = _graph(dag, latest_states) if dag else {"tasks": []}
    next_runs = cron.upcoming(dag, at, 5) if dag and dag.schedule else []
    params = (
        [
            {
                "name": spec.name,
                "type": spec.schema.get("type"),
                "enum": spec.schema.get("enum"),
                "default": MASK if spec.secret else spec.default if spec.has_default else None,
                "required": not spec.has_default,
                "secret": spec.secret,
                "description": spec.description,
            }
            for spec in dag.params.values()
        ]
        if dag
        else []
    )
    return {
        **row,
        "broken_problems": [p.message for p in tree.broken[name].problems] if name in tree.broken else [],
        "graph": graph,
        "params": params,
        "next_slots": next_runs,
        "why": _why(store, name, dag, row["reason"], at),
        "runs": history,
        "next_before_id": runs[-1]["id"] if more and runs else None,
    }


def _graph(dag: Dag, states: Mapping[str, str]) -> dict[str, Any]:
    children = dag.downstream()
    return {
        "tasks": [
            {
                "task": task_name,
                "type": task.type,
                "inputs": list(task.inputs),
                "downstream": list(children.get(task_name, ())),
                "status": states.get(task_name),
            }
            for task_name, task in dag.tasks.items()
        ]
    }


def _why(
    store: Store, name: str, dag: Dag | None, broken_reason: str | None, at: datetime
) -> list[dict[str, str]]:
    next_slot = cron.next_slot_after(dag.schedule, dag.timezone, at) if dag and dag.schedule else None
    snapshot = store.why_snapshot(name, stale_after_s())
    return diagnose.why(name, dag, broken_reason, snapshot, at, store.external_status, next_slot)


def run_detail(settings: Settings, store: Store, tree: DagTree, run_id: int) -> dict[str, Any]:
    """A run in the `status -o json` shape plus every attempt, the graph with each
    task's state, tasks not created yet, a timeline and, while it is not finished,
    why it waits."""
    run, attempts = store.run_with_attempts(run_id)
    if run is None:
        raise no_run(run_id)
    name = run["dag_name"]
    secrets = secret_params(settings, [name])[name]
    view = run_json(run, attempts, secrets)
    dag = tree.dags.get(name)
    order = list(dag.tasks) if dag else []
    seen = {t["task"] for t in view["tasks"]}
    view["pending"] = [task for task in order if task not in seen]
    view["attempts"] = [
        {
            "id": a["id"],
            "task": a["task_name"],
            "attempt": a["attempt"],
            "status": a["status"],
            "exit_code": a["exit_code"],
            "error": a["error"],
            "host": a["host"],
            "queued_at": iso(a["queued_at"]),
            "started_at": iso(a["started_at"]),
            "ended_at": iso(a["ended_at"]),
            "duration_s": seconds(a["started_at"], a["ended_at"]) if a["started_at"] else None,
        }
        for a in attempts
    ]
    view["graph"] = _graph(dag, {t["task"]: t["status"] for t in view["tasks"]}) if dag else {"tasks": []}
    view["timeline"] = _timeline(run, attempts)
    view["why"] = (
        _why(store, name, dag, tree.broken[name].reason if name in tree.broken else None, now())
        if run["status"] in ACTIVE_RUN_VALUES
        else []
    )
    return view


def _timeline(run: Mapping[str, Any], attempts: list[dict[str, Any]]) -> dict[str, Any]:
    """Each attempt's bar as offsets in seconds from the run's creation (a Gantt chart)."""
    origin = run["created_at"]
    bars = []
    for a in attempts:
        start = a["started_at"] or a["queued_at"]
        bars.append(
            {
                "task": a["task_name"],
                "attempt": a["attempt"],
                "status": a["status"],
                "queued_s": round((a["queued_at"] - origin).total_seconds(), 3),
                "start_s": round((start - origin).total_seconds(), 3),
                "end_s": round(((a["ended_at"] or now()) - origin).total_seconds(), 3),
            }
        )
    span = max([b["end_s"] for b in bars] + [0.001])
    return {"span_s": span, "bars": bars}


def log_chunks(store: Store, run_id: int, cursors: Mapping[int, int]) -> dict[str, Any]:
    """New output of a run's attempts after each attempt's cursor (every attempt from
    the start when `cursors` has none of it), and whether anything more can come."""
    run, attempts = store.run_with_attempts(run_id)
    if run is None:
        raise no_run(run_id)
    wanted = {int(a["id"]): cursors.get(int(a["id"]), 0) for a in attempts if a["started_at"] is not None}
    chunks = store.read_logs(wanted)
    names = {int(a["id"]): (a["task_name"], a["attempt"]) for a in attempts}
    ended = run["status"] not in ACTIVE_RUN_VALUES and all(
        a["status"] not in (TaskStatus.RUNNING.value, TaskStatus.QUEUED.value) for a in attempts
    )
    return {
        "run_id": run_id,
        "status": run["status"],
        "ended": ended,
        "chunks": [
            {"attempt_id": i, "task": names[i][0], "attempt": names[i][1], "seq": seq, "text": text}
            for i, seq, text, _ in chunks
        ],
    }


def schedulers(store: Store) -> list[dict[str, Any]]:
    overview_ = store.schedulers_overview(stale_after_s())
    return [
        {
            "id": row["id"],
            "host": row["host"],
            "pid": row["pid"],
            "manager": row["manager"],
            "alive": row["alive"],
            "started_at": iso(row["started_at"]),
            "heartbeat_at": iso(row["heartbeat_at"]),
            "heartbeat_age_s": row["heartbeat_age_s"],
            "stopped_at": iso(row["stopped_at"]),
            "running": row["running"],
        }
        for row in overview_["schedulers"]
    ]


def metrics(store: Store) -> dict[str, Any]:
    snapshot = store.metrics_snapshot(stale_after_s())
    snapshot["alerts"] = store.notification_counts()
    snapshot["pools"] = [(p.name, p.used, p.slots) for p in store.pool_usage()]
    return snapshot


def healthy(store: Store) -> None:
    """Raises DatabaseError when the state database cannot be reached."""
    store.ping()
