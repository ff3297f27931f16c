"""dagctl: a workflow scheduler for directories of YAML DAG files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "trigger_dag"]

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime


def trigger_dag(
    dag: str,
    *,
    creator: str = "python",
    params: Mapping[str, Any] | None = None,
    dags: str | None = None,
    db: str | None = None,
    logical_date: datetime | None = None,
) -> int:
    """Queue a manual run of `dag` and return its run id.

    Params are validated against the DAG's typed params before anything is written.
    `logical_date` (naive UTC, or aware): the slot the run is for; default now.
    """
    from dagctl.actions.runs import trigger

    if logical_date is not None and logical_date.tzinfo is not None:
        from datetime import timezone

        logical_date = logical_date.astimezone(timezone.utc).replace(tzinfo=None)
    return trigger(
        dag, creator=creator, params=dict(params or {}), dags=dags, db=db, logical_date=logical_date
    )
