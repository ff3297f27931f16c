"""What every claim statement writes on the attempts it takes (the unpooled claim in
attempts.py, the pooled ones in pools.py and pool_slots.py): one definition, so the
three cannot drift apart."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, Float, String, bindparam, func

from dagctl.states import TaskStatus


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


__all__ = ["lease_until", "running_values"]
