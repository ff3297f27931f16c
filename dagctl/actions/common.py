"""What every action needs: the DAG it names, the state store, the shared clock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dagctl import config
from dagctl.config import Settings
from dagctl.dags import cron
from dagctl.dags.model import BrokenDag, Dag
from dagctl.dags.names import dag_names, may_be_dag
from dagctl.errors import DagctlError, DagNotFound, DatabaseError, UsageError

if TYPE_CHECKING:
    from dagctl.store import Store
    from dagctl.store.records import Presence


def load_dag(dags_root: Path, name: str) -> Dag:
    from dagctl.dags.loader import load_one

    if not dags_root.is_dir():
        raise UsageError(
            f"DAGs folder {str(dags_root)!r} does not exist", "pass --dags PATH or set DAGCTL_DAGS"
        )
    dag, _ = load_one(dags_root, name)
    if dag is None:
        from dagctl.dags.hints import did_you_mean

        raise DagNotFound(
            f"no DAG {name!r} in {dags_root}", did_you_mean(name, dag_names(dags_root)) or "run dagctl list"
        )
    if not isinstance(dag, Dag):
        raise DagctlError(f"DAG {name!r} is broken: {dag.reason}", f"run dagctl validate {dags_root / name}")
    return dag


def check_dags_folder(settings: Settings) -> None:
    if not settings.dags.is_dir():
        raise UsageError(
            f"DAGs folder {str(settings.dags)!r} does not exist", "pass --dags PATH or set DAGCTL_DAGS"
        )


def load_any(settings: Settings, name: str) -> Dag | BrokenDag:
    from dagctl.dags.loader import load_one

    check_dags_folder(settings)
    dag, _ = load_one(settings.dags, name)
    if dag is None:
        from dagctl.dags.hints import did_you_mean

        raise DagNotFound(
            f"no DAG {name!r} in {settings.dags}",
            did_you_mean(name, dag_names(settings.dags)) or "run dagctl list",
        )
    return dag


def unknown_dag(settings: Settings, name: str) -> DagNotFound | None:
    """The error for a DAG name that is no DAG folder, else None (also for a folder
    that exists but is broken: it is known, just not loadable)."""
    if may_be_dag(name) and "/" not in name and (settings.dags / name).is_dir():
        return None
    from dagctl.dags.hints import did_you_mean

    return DagNotFound(
        f"no DAG {name!r} in {settings.dags}",
        did_you_mean(name, dag_names(settings.dags)) or "run dagctl list",
    )


def task_order(settings: Settings, dag_name: str) -> list[str]:
    """The DAG's task names in definition order, or [] when it cannot be loaded now."""
    try:
        dag = load_dag(settings.dags, dag_name)
    except Exception:  # a broken or removed DAG still has runs worth watching
        return []
    return list(dag.tasks)


def open_store(settings: Settings, *, migrate: bool) -> Store:
    """The state store. The embedded default (an SQLite file nobody set up) is created
    and migrated by whichever command uses it first; a database named by DATABASE_URL
    or --db is only migrated by `schedule`, `trigger` and `db upgrade`."""
    from dagctl.store import open_store as _open

    default = settings.db_url == config.default_db_url()
    if not (migrate or default):
        missing = _missing_sqlite_file(settings.db_url)
        if missing is not None:
            # Said before connecting: opening it would leave an empty file behind.
            raise DatabaseError(
                f"the state database {missing} does not exist",
                "run dagctl db upgrade to create it, or check DATABASE_URL / --db",
            )
    return _open(settings.db_url, migrate=migrate or default)


def _missing_sqlite_file(url: str) -> str | None:
    """The path of an SQLite state database URL whose file does not exist, else None."""
    if not url.startswith(("sqlite:///", "sqlite+pysqlite:///")) or "?" in url:
        return None
    path = url.split(":///", 1)[1]
    if not path or path == ":memory:" or Path(path).expanduser().exists():
        return None
    return path


@contextlib.contextmanager
def store_session(settings: Settings) -> Iterator[Store]:
    store = open_store(settings, migrate=False)
    try:
        yield store
    finally:
        store.close()


def now() -> datetime:
    """The scheduler's clock (DAGCTL_FAKE_NOW in tests and demos), so what these
    commands write and compare agrees with what `dagctl schedule` sees."""
    return cron.clock_starting_at(config.tuning().fake_now)()


def stale_after_s() -> float:
    return config.tuning().stale_after_seconds


def presence_notice(dag_name: str, presence: Presence) -> str | None:
    """What to tell someone whose run of `dag_name` would wait for a scheduler that is
    not there; None when a live scheduler has loaded the DAG."""
    if presence.live_schedulers == 0:
        return "no scheduler is alive to start this run: start one with dagctl schedule"
    if presence.live_knowing == 0:
        return (
            f"no live scheduler has loaded DAG {dag_name} ({presence.live_schedulers} alive, none with"
            f" {dag_name} in its --dags folder): the run waits until such a scheduler starts"
        )
    return None


def no_run(run_id: int) -> UsageError:
    return UsageError(f"no run {run_id}", "run dagctl status to see recent runs")
