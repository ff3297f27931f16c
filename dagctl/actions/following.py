"""Following one run until it ends (`trigger --wait`, `run` views, `status --watch`).

Apart from inspect.py, whose imports (diagnostics, cron) a `trigger --wait` does not
need: this path reads through the driver (store/fast_follow.py) and imports neither
SQLAlchemy nor the scheduling modules when it can."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dagctl.actions.common import no_run, now, presence_notice, stale_after_s, store_session, task_order
from dagctl.actions.views import run_json
from dagctl.config import Settings
from dagctl.states import FINISHED_RUN_VALUES

if TYPE_CHECKING:
    from dagctl.dags.model import Dag
    from dagctl.store.fast_follow import RunFollower
    from dagctl.store.records import Presence

FOLLOW_INTERVAL_S = 0.5
# `trigger --wait` says so when a run stays queued this long with no scheduler alive.
NO_SCHEDULER_NOTICE_AFTER_S = 2.0


def follow_run(
    settings: Settings,
    run_id: int,
    on_update: Callable[[dict[str, Any]], None],
    on_notice: Callable[[str], None] | None = None,
    interval: float = FOLLOW_INTERVAL_S,
    dag: Dag | None = None,
) -> str:
    """Call `on_update` with the run's view (the `status -o json` form of one run plus
    "pending": tasks not created yet) until the run has finished; return its status.
    `dag`: the run's DAG as the caller loaded it (`trigger --wait`), which spares
    reading its folder again for the task order and secret params."""
    from dagctl.store.fast_follow import RunFollower

    # Without SQLAlchemy, woken by the run's changes rather than a sleep, when it can.
    follower = RunFollower.open(settings.db_url)
    if follower is not None:
        try:
            ended = _follow_fast(
                settings, run_id, follower, _RunView(settings, on_update, on_notice, dag), interval
            )
        finally:
            follower.close()
        if ended is not None:
            return ended
    view = _RunView(settings, on_update, on_notice, dag)
    with store_session(settings) as store:
        while True:
            run, attempts = store.run_with_attempts(run_id)
            if run is None:
                raise no_run(run_id)
            if view.show(run, attempts):
                return str(run["status"])
            if view.notice_due(run):
                view.notice(run["dag_name"], store.presence(run["dag_name"], stale_after_s()))
            time.sleep(interval)


def _follow_fast(
    settings: Settings, run_id: int, follower: RunFollower, view: _RunView, interval: float
) -> str | None:
    """follow_run through the driver; None when a read failed (the store takes over)."""
    from dagctl.store.fast_trigger import read_presence

    while True:
        read = follower.read(run_id)
        if read is None:
            return None
        run, attempts = read
        if run is None:
            raise no_run(run_id)
        if view.show(run, attempts):
            return str(run["status"])
        if view.notice_due(run):
            presence = read_presence(settings.db_url, run["dag_name"], stale_after_s(), now())
            if presence is None:
                return None
            view.notice(run["dag_name"], presence)
        follower.wait(interval)


class _RunView:
    """What follow_run shows of one run, and its one notice of a missing scheduler."""

    def __init__(
        self,
        settings: Settings,
        on_update: Callable[[dict[str, Any]], None],
        on_notice: Callable[[str], None] | None,
        dag: Dag | None = None,
    ) -> None:
        self._settings = settings
        self._dag = dag
        self._on_update = on_update
        self._on_notice = on_notice
        self._order: list[str] | None = None
        self._secrets: frozenset[str] | None = None
        self._started = time.monotonic()
        self._noticed = False

    def show(self, run: dict[str, Any], attempts: list[dict[str, Any]]) -> bool:
        """Pass the view on when it changed; True once the run has finished."""
        if self._order is None and self._dag is not None and self._dag.name == run["dag_name"]:
            self._order, self._secrets = list(self._dag.tasks), self._dag.secret_params
        if self._order is None:
            self._order = task_order(self._settings, run["dag_name"])
            self._secrets = secret_params(self._settings, [run["dag_name"]])[run["dag_name"]]
        view = run_json(run, attempts, self._secrets)
        seen = {t["task"] for t in view["tasks"]}
        view["pending"] = [name for name in self._order if name not in seen]
        self._on_update(view)
        return run["status"] in FINISHED_RUN_VALUES

    def notice_due(self, run: Mapping[str, Any]) -> bool:
        return (
            self._on_notice is not None
            and not self._noticed
            and run["status"] == "queued"
            and time.monotonic() - self._started > NO_SCHEDULER_NOTICE_AFTER_S
        )

    def notice(self, dag_name: str, presence: Presence) -> None:
        self._noticed = True
        notice = presence_notice(dag_name, presence)
        if notice and self._on_notice is not None:
            self._on_notice(notice)


def secret_params(settings: Settings, dag_names: Collection[str]) -> dict[str, frozenset[str] | None]:
    """The secret param names of each DAG, from its workflow.yaml alone (params are
    declared nowhere else; loading whole DAGs would cost `status` milliseconds per DAG
    shown); None for one that cannot be read now (its runs' params are then shown fully
    masked)."""
    return {name: _secret_names(settings.dags / name / "workflow.yaml") for name in dag_names}


def _secret_names(path: Path) -> frozenset[str] | None:
    from dagctl.dags import yamldoc

    try:
        if path.stat().st_size > 1024 * 1024:
            return None
        params = yamldoc.load(path.read_text(encoding="utf-8")).data.get("params") or {}
    except Exception:  # unreadable, not YAML, not a mapping: mask everything
        return None
    if not isinstance(params, dict):
        return None
    return frozenset(str(k) for k, v in params.items() if isinstance(v, dict) and v.get("secret"))
