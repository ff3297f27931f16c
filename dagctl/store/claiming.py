"""What every claim statement writes on the attempts it takes and returns of them (the
unpooled claim in attempts.py, the pooled ones in pools.py and pool_slots.py, and
adoption.py's read of the attempts it adopts): one definition, so they cannot drift
apart."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, Float, String, bindparam, func, literal_column, select

from dagctl.states import UNCOUNTED_TASK_VALUES, TaskStatus
from dagctl.store.tables import dag_run, task_run


def lease_until(is_postgres: bool) -> Any:
    """The claimed attempt's lease expiry: on PostgreSQL counted on the database's clock
    (`p_lease_seconds`), on SQLite the single host's (`p_lease_until`)."""
    if is_postgres:
        return func.timezone("utc", func.now()) + func.make_interval(
            0, 0, 0, 0, 0, 0, bindparam("p_lease_seconds", type_=Float)
        )
    return bindparam("p_lease_until", type_=DateTime)


def running_values(is_postgres: bool) -> dict[str, Any]:
    """The columns a claim sets: running, under a lease owned by `p_owner`."""
    return {
        "status": TaskStatus.RUNNING.value,
        "lease_owner": bindparam("p_owner", type_=String),
        "lease_expires_at": lease_until(is_postgres),
        "started_at": bindparam("p_now", type_=DateTime),
        "host": bindparam("p_host", type_=String),
    }


def uncounted_before() -> Any:
    """How many earlier attempts of the same task of the same run do not count against
    `retries` (interrupted ones), as a scalar subquery for the RETURNING clause of an
    UPDATE of task_run."""
    earlier = task_run.alias("earlier")
    # Spelled out: in an UPDATE, SQLite's compiler leaves the updated table's columns
    # unqualified, which inside this subquery would name `earlier`'s own.
    outer: dict[str, Any] = {
        name: literal_column(f"task_run.{name}") for name in ("dag_run_id", "task_name", "attempt")
    }
    return (
        select(func.count())
        .where(
            earlier.c.dag_run_id == outer["dag_run_id"],
            earlier.c.task_name == outer["task_name"],
            earlier.c.attempt < outer["attempt"],
            earlier.c.status.in_(sorted(UNCOUNTED_TASK_VALUES)),
        )
        .scalar_subquery()
    )


def claimed_columns() -> tuple[Any, ...]:
    """What a claim returns of each attempt it took (the RETURNING of its UPDATE)."""
    return (
        task_run.c.id,
        task_run.c.dag_run_id,
        task_run.c.dag_name,
        task_run.c.task_name,
        task_run.c.attempt,
        # The run's date and params in the same round trip.
        _of_run(dag_run.c.logical_date).label("logical_date"),
        _of_run(dag_run.c.params).label("params"),
        _of_run(dag_run.c.data_interval_start).label("data_interval_start"),
        _of_run(dag_run.c.data_interval_end).label("data_interval_end"),
        uncounted_before().label("uncounted"),
        _run_has_outputs().label("run_has_outputs"),
    )


def _run_has_outputs() -> Any:
    """Whether a succeeded attempt of the same run published outputs: a probe of the
    partial index on outputs, so a run whose tasks publish none is not read again."""
    published = task_run.alias("published")
    return (
        select(published.c.id)
        .where(
            published.c.dag_run_id == task_run.c.dag_run_id,
            published.c.outputs.is_not(None),
            published.c.status == TaskStatus.SUCCESS.value,
        )
        .exists()
    )


def _of_run(column: Any) -> Any:
    """A column of the run a task_run row belongs to, as a scalar subquery."""
    return select(column).where(dag_run.c.id == task_run.c.dag_run_id).scalar_subquery()


__all__ = ["claimed_columns", "lease_until", "running_values", "uncounted_before"]
